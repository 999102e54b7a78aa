//! Disposition mapping: what each VICIdial status means for the CRM.
//!
//! Three layers, each overriding the one before field by field: the statuses VICIdial ships
//! (built in below), `[dispositions.STATUS]` in the config, `[campaigns.ID.dispositions.STATUS]`.
//!
//! Deal stages and lead statuses are CRM values: a layer may give them per CRM
//! (`hubspot.deal_stage`, `salesforce.deal_stage`) beside the neutral `deal_stage`, and the
//! CRM's own value wins within a layer. The map is built for one CRM ([`CrmFlavor`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The CRM-neutral outcome of a call. HubSpot's six default call outcomes, which Salesforce's
/// free-text `CallDisposition` can carry too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    Connected,
    NoAnswer,
    Busy,
    LeftVoicemail,
    LeftLiveMessage,
    WrongNumber,
}

/// One layer of the mapping for one status; unset fields fall through to the layer below.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleOverride {
    /// Human name of the status, used in call titles and notes.
    pub label: Option<String>,
    pub outcome: Option<CallOutcome>,
    /// CRM deal stage / opportunity stage to move to (internal id for HubSpot).
    pub deal_stage: Option<String>,
    /// CRM lead status to set on the contact / lead.
    pub lead_status: Option<String>,
    /// Create a follow-up task due at `callback_datetime`.
    pub callback_task: Option<bool>,
    /// Flag the contact do-not-call.
    pub do_not_call: Option<bool>,
    /// HubSpot's own values (`hubspot.deal_stage`: a stage internal id), over the neutral ones.
    pub hubspot: Option<CrmValues>,
    /// Salesforce's own values (`salesforce.deal_stage`: an Opportunity StageName).
    pub salesforce: Option<CrmValues>,
}

/// Per-CRM values of one layer; unset fields fall back to the layer's neutral ones.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrmValues {
    pub deal_stage: Option<String>,
    pub lead_status: Option<String>,
}

/// Which CRM a mapping resolves its deal stages and lead statuses for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CrmFlavor {
    /// No CRM named (dry-run without a CRM section): neutral values only, no built-in stages.
    #[default]
    Neutral,
    Hubspot,
    Salesforce,
}

impl RuleOverride {
    fn crm(&self, flavor: CrmFlavor) -> Option<&CrmValues> {
        match flavor {
            CrmFlavor::Neutral => None,
            CrmFlavor::Hubspot => self.hubspot.as_ref(),
            CrmFlavor::Salesforce => self.salesforce.as_ref(),
        }
    }

    /// This layer's deal stage for the CRM: its own value, else the neutral one.
    pub fn deal_stage_for(&self, flavor: CrmFlavor) -> Option<&String> {
        self.crm(flavor).and_then(|c| c.deal_stage.as_ref()).or(self.deal_stage.as_ref())
    }

    /// This layer's lead status for the CRM: its own value, else the neutral one.
    pub fn lead_status_for(&self, flavor: CrmFlavor) -> Option<&String> {
        self.crm(flavor).and_then(|c| c.lead_status.as_ref()).or(self.lead_status.as_ref())
    }

    /// The config key a CRM value of this layer comes from (`hubspot.deal_stage` or `deal_stage`).
    pub fn key_for(&self, flavor: CrmFlavor, field: &str) -> String {
        let own = self.crm(flavor).is_some_and(|c| match field {
            "deal_stage" => c.deal_stage.is_some(),
            _ => c.lead_status.is_some(),
        });
        match (own, flavor) {
            (true, CrmFlavor::Hubspot) => format!("hubspot.{field}"),
            (true, CrmFlavor::Salesforce) => format!("salesforce.{field}"),
            _ => field.to_owned(),
        }
    }
}

/// The merged rule for one status in one campaign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DispositionRule {
    pub label: String,
    pub outcome: Option<CallOutcome>,
    pub deal_stage: Option<String>,
    pub lead_status: Option<String>,
    pub callback_task: bool,
    pub do_not_call: bool,
}

impl DispositionRule {
    fn apply(&mut self, o: &RuleOverride, flavor: CrmFlavor) {
        if let Some(v) = &o.label {
            self.label.clone_from(v);
        }
        if o.outcome.is_some() {
            self.outcome = o.outcome;
        }
        if let Some(v) = o.deal_stage_for(flavor) {
            self.deal_stage = non_empty(v);
        }
        if let Some(v) = o.lead_status_for(flavor) {
            self.lead_status = non_empty(v);
        }
        if let Some(v) = o.callback_task {
            self.callback_task = v;
        }
        if let Some(v) = o.do_not_call {
            self.do_not_call = v;
        }
    }
}

/// An empty string in the config clears a built-in value.
fn non_empty(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_owned())
}

use CallOutcome::{Busy, Connected, LeftLiveMessage, LeftVoicemail, NoAnswer, WrongNumber};

/// The statuses a stock VICIdial install ships (`vicidial_statuses`), plus the common
/// campaign statuses NQ and DEAD. (status, name, outcome, callback task, do-not-call)
const BUILT_IN: &[(&str, &str, Option<CallOutcome>, bool, bool)] = &[
    ("SALE", "Sale Made", Some(Connected), false, false),
    ("NI", "Not Interested", Some(Connected), false, false),
    ("NP", "No Pitch No Price", Some(Connected), false, false),
    ("DEC", "Declined Sale", Some(Connected), false, false),
    ("NQ", "Not Qualified", Some(Connected), false, false),
    ("CALLBK", "Call Back", Some(Connected), true, false),
    ("CBHOLD", "Call Back Hold", Some(Connected), true, false),
    ("DNC", "DO NOT CALL", Some(Connected), false, true),
    ("XFER", "Call Transferred", Some(Connected), false, false),
    ("PU", "Call Picked Up", Some(Connected), false, false),
    ("PM", "Played Message", Some(LeftLiveMessage), false, false),
    ("DEAD", "Dead Call", None, false, false),
    ("ERI", "Agent Error", None, false, false),
    ("A", "Answering Machine", Some(LeftVoicemail), false, false),
    ("AA", "Answering Machine Auto", Some(LeftVoicemail), false, false),
    ("AM", "Answering Machine SentToMesg", Some(LeftVoicemail), false, false),
    ("AL", "Answering Machine Msg Played", Some(LeftVoicemail), false, false),
    ("AFAX", "Fax Machine Auto", Some(WrongNumber), false, false),
    ("B", "Busy", Some(Busy), false, false),
    ("AB", "Busy Auto", Some(Busy), false, false),
    ("N", "No Answer", Some(NoAnswer), false, false),
    ("NA", "No Answer AutoDial", Some(NoAnswer), false, false),
    ("DC", "Disconnected Number", Some(WrongNumber), false, false),
    ("ADC", "Disconnected Number Auto", Some(WrongNumber), false, false),
    ("ADCT", "Disconnected Number Temporary", Some(NoAnswer), false, false),
    ("DROP", "Agent Not Available", Some(NoAnswer), false, false),
    ("PDROP", "Outbound Pre-Routing Drop", Some(NoAnswer), false, false),
    ("TIMEOT", "Inbound Call Timeout", Some(NoAnswer), false, false),
    ("AFTHRS", "Inbound After Hours Drop", Some(NoAnswer), false, false),
    ("NANQUE", "Inbound No Agent No Queue Drop", Some(NoAnswer), false, false),
    ("MAXCAL", "Inbound Max Calls Drop", Some(NoAnswer), false, false),
    ("QVMAIL", "Queue Abandon Voicemail Left", Some(LeftVoicemail), false, false),
    ("DNCL", "DO NOT CALL Hopper Match", None, false, true),
    ("DNCC", "DO NOT CALL Campaign Match", None, false, true),
];

/// The deal stage each CRM moves to by default, from the integration guide vicibridge
/// implements: a sale wins the deal, a refusal loses it, a transfer to a closer qualifies it,
/// a callback books the next step (HubSpot; Salesforce has no stage for it).
pub fn built_in_deal_stage(flavor: CrmFlavor, status: &str) -> Option<&'static str> {
    match (flavor, status) {
        (CrmFlavor::Hubspot, "SALE") => Some("closedwon"),
        (CrmFlavor::Hubspot, "NI" | "DNC" | "NQ" | "DEAD") => Some("closedlost"),
        (CrmFlavor::Hubspot, "XFER") => Some("qualifiedtobuy"),
        (CrmFlavor::Hubspot, "CALLBK") => Some("appointmentscheduled"),
        (CrmFlavor::Salesforce, "SALE") => Some("Closed Won"),
        (CrmFlavor::Salesforce, "NI" | "DNC" | "NQ" | "DEAD") => Some("Closed Lost"),
        (CrmFlavor::Salesforce, "XFER") => Some("Negotiation/Review"),
        _ => None,
    }
}

/// The whole mapping, ready to answer `rule_for(campaign, status)`.
#[derive(Clone, Debug, Default)]
pub struct DispositionMap {
    defaults: BTreeMap<String, RuleOverride>,
    campaigns: BTreeMap<String, BTreeMap<String, RuleOverride>>,
    flavor: CrmFlavor,
}

impl DispositionMap {
    pub fn new(
        defaults: BTreeMap<String, RuleOverride>,
        campaigns: BTreeMap<String, BTreeMap<String, RuleOverride>>,
    ) -> Self {
        DispositionMap { defaults, campaigns, flavor: CrmFlavor::Neutral }
    }

    /// The same mapping, resolving deal stages and lead statuses (and their built-in
    /// defaults) for `flavor`.
    pub fn for_crm(mut self, flavor: CrmFlavor) -> Self {
        self.flavor = flavor;
        self
    }

    /// `None` means nobody mapped this status: the call is still logged, the status is
    /// reported as unmapped (log + metric), and nothing else changes in the CRM.
    pub fn rule_for(&self, campaign: Option<&str>, status: &str) -> Option<DispositionRule> {
        let campaign_layer = campaign.and_then(|c| self.campaigns.get(c)).and_then(|m| m.get(status));
        let config_layer = self.defaults.get(status);
        let built_in = BUILT_IN.iter().find(|(s, ..)| *s == status);
        if built_in.is_none() && config_layer.is_none() && campaign_layer.is_none() {
            return None;
        }
        let mut rule = match built_in {
            Some(&(_, label, outcome, callback_task, do_not_call)) => DispositionRule {
                label: label.to_owned(),
                outcome,
                deal_stage: built_in_deal_stage(self.flavor, status).map(str::to_owned),
                lead_status: None,
                callback_task,
                do_not_call,
            },
            None => DispositionRule {
                label: status.to_owned(),
                outcome: None,
                deal_stage: None,
                lead_status: None,
                callback_task: false,
                do_not_call: false,
            },
        };
        for layer in [config_layer, campaign_layer].into_iter().flatten() {
            rule.apply(layer, self.flavor);
        }
        Some(rule)
    }

    /// Statuses shipped with VICIdial and known without configuration.
    pub fn built_in_statuses() -> impl Iterator<Item = &'static str> {
        BUILT_IN.iter().map(|(s, ..)| *s)
    }
}

/// `[dispositions.STATUS]` tables to paste into the config for statuses nobody mapped: each
/// gets its code as label (which makes it known) and the other fields commented out, to fill in.
pub fn config_snippet<'a>(statuses: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for status in statuses {
        let bare = !status.is_empty() && status.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let quoted = toml::Value::String(status.to_owned()).to_string();
        let key = if bare { status.to_owned() } else { quoted.clone() };
        out.push_str(&format!(
            "[dispositions.{key}]\nlabel = {quoted}\n\
             # outcome = \"connected\"  # or no_answer, busy, left_voicemail, left_live_message, wrong_number\n\
             # deal_stage = \"\"\n# lead_status = \"\"\n# callback_task = false\n# do_not_call = false\n\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snippet_parses_and_maps_what_it_names() {
        let snippet = config_snippet(["ZZTOP", "A B\"\\"]);
        let parsed: BTreeMap<String, BTreeMap<String, RuleOverride>> = toml::from_str(&snippet).unwrap();
        let tables = &parsed["dispositions"];
        assert_eq!(tables.keys().collect::<Vec<_>>(), ["A B\"\\", "ZZTOP"]);
        let map = DispositionMap::new(tables.clone(), BTreeMap::new());
        assert_eq!(map.rule_for(None, "ZZTOP").unwrap().label, "ZZTOP");
        assert!(map.rule_for(None, "A B\"\\").is_some());
    }

    fn map() -> DispositionMap {
        let mut defaults = BTreeMap::new();
        defaults.insert(
            "SALE".to_owned(),
            RuleOverride {
                deal_stage: Some("closedwon".into()),
                lead_status: Some("CONNECTED".into()),
                ..Default::default()
            },
        );
        defaults.insert("SURVEY".to_owned(), RuleOverride { label: Some("Survey done".into()), ..Default::default() });
        let mut spanish = BTreeMap::new();
        spanish
            .insert("SALE".to_owned(), RuleOverride { deal_stage: Some("contractsent".into()), ..Default::default() });
        spanish.insert(
            "NI".to_owned(),
            RuleOverride { lead_status: Some(String::new()), do_not_call: Some(true), ..Default::default() },
        );
        let mut campaigns = BTreeMap::new();
        campaigns.insert("SPANISH".to_owned(), spanish);
        DispositionMap::new(defaults, campaigns)
    }

    #[test]
    fn layers_merge_field_by_field() {
        let m = map();
        let sale = m.rule_for(Some("OTHER"), "SALE").unwrap();
        assert_eq!(sale.label, "Sale Made");
        assert_eq!(sale.outcome, Some(CallOutcome::Connected));
        assert_eq!(sale.deal_stage.as_deref(), Some("closedwon"));
        let spanish = m.rule_for(Some("SPANISH"), "SALE").unwrap();
        assert_eq!(spanish.deal_stage.as_deref(), Some("contractsent"));
        assert_eq!(spanish.lead_status.as_deref(), Some("CONNECTED"), "inherited from the default layer");
        let ni = m.rule_for(Some("SPANISH"), "NI").unwrap();
        assert!(ni.do_not_call);
        assert_eq!(ni.lead_status, None);
    }

    #[test]
    fn built_ins_cover_the_stock_statuses() {
        let m = DispositionMap::default();
        for s in ["SALE", "NI", "CALLBK", "DNC", "NQ", "XFER", "DEAD", "A", "B", "N", "NA", "DC", "DROP", "AFTHRS"] {
            assert!(m.rule_for(None, s).is_some(), "{s}");
        }
        assert!(m.rule_for(None, "CALLBK").unwrap().callback_task);
        assert!(m.rule_for(None, "DNC").unwrap().do_not_call);
        assert_eq!(m.rule_for(None, "B").unwrap().outcome, Some(CallOutcome::Busy));
        assert_eq!(m.rule_for(None, "ZZTOP"), None);
    }

    #[test]
    fn each_crm_has_its_default_stages_and_its_own_values_win() {
        let hubspot = DispositionMap::default().for_crm(CrmFlavor::Hubspot);
        let salesforce = DispositionMap::default().for_crm(CrmFlavor::Salesforce);
        let stage = |m: &DispositionMap, s: &str| m.rule_for(None, s).and_then(|r| r.deal_stage);
        for (status, hs, sf) in [
            ("SALE", Some("closedwon"), Some("Closed Won")),
            ("NI", Some("closedlost"), Some("Closed Lost")),
            ("DNC", Some("closedlost"), Some("Closed Lost")),
            ("NQ", Some("closedlost"), Some("Closed Lost")),
            ("DEAD", Some("closedlost"), Some("Closed Lost")),
            ("XFER", Some("qualifiedtobuy"), Some("Negotiation/Review")),
            ("CALLBK", Some("appointmentscheduled"), None),
            ("A", None, None),
        ] {
            assert_eq!(stage(&hubspot, status).as_deref(), hs, "{status}");
            assert_eq!(stage(&salesforce, status).as_deref(), sf, "{status}");
            assert_eq!(stage(&DispositionMap::default(), status), None, "{status}: neutral has no stages");
        }

        let layer: RuleOverride = toml::from_str(
            "deal_stage = \"contractsent\"\nsalesforce.deal_stage = \"Proposal/Price Quote\"\nhubspot.lead_status = \"OPEN_DEAL\"\n",
        )
        .unwrap();
        let cleared: RuleOverride = toml::from_str("salesforce.deal_stage = \"\"\n").unwrap();
        let mut defaults = BTreeMap::new();
        defaults.insert("SALE".to_owned(), layer);
        defaults.insert("XFER".to_owned(), cleared);
        let map = |f| DispositionMap::new(defaults.clone(), BTreeMap::new()).for_crm(f);
        assert_eq!(stage(&map(CrmFlavor::Hubspot), "SALE").as_deref(), Some("contractsent"));
        assert_eq!(stage(&map(CrmFlavor::Salesforce), "SALE").as_deref(), Some("Proposal/Price Quote"));
        assert_eq!(stage(&map(CrmFlavor::Neutral), "SALE").as_deref(), Some("contractsent"));
        let status = |f, s: &str| map(f).rule_for(None, s).and_then(|r| r.lead_status);
        assert_eq!(status(CrmFlavor::Hubspot, "SALE").as_deref(), Some("OPEN_DEAL"));
        assert_eq!(status(CrmFlavor::Salesforce, "SALE"), None);
        // "" clears the built-in default for that CRM only.
        assert_eq!(stage(&map(CrmFlavor::Salesforce), "XFER"), None);
        assert_eq!(stage(&map(CrmFlavor::Hubspot), "XFER").as_deref(), Some("qualifiedtobuy"));
    }

    #[test]
    fn config_can_add_statuses() {
        let r = map().rule_for(None, "SURVEY").unwrap();
        assert_eq!(r.label, "Survey done");
        assert_eq!(r.outcome, None);
    }
}

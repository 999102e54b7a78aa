//! The configuration file (TOML, not secret). One file for Lambda and `vicibridge serve`.

pub mod agents;
pub mod hubspot;
pub mod lead_injection;
pub mod salesforce;
pub mod screen_pop;
mod toml_errors;
pub mod watchdogs;
pub mod webhook;

use std::collections::BTreeMap;
use std::fmt;

pub use chrono_tz::Tz;
use serde::{Deserialize, Deserializer};

use crate::disposition::{CrmFlavor, DispositionMap, RuleOverride, built_in_deal_stage};
pub use agents::{AgentIdentity, AgentMapping, Agents, ClickToCallConfig, CrmUserKind};
pub use hubspot::HubspotConfig;
pub use lead_injection::LeadInjectionConfig;
pub use salesforce::SalesforceConfig;
pub use screen_pop::ScreenPopConfig;
pub use watchdogs::WatchdogsConfig;
pub use webhook::WebhookConfig;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub vicidial: VicidialConfig,
    pub crm: CrmConfig,
    /// Required when `crm.kind = "hubspot"`; with `dry-run` it makes the record show HubSpot's
    /// exact requests.
    #[serde(default)]
    pub hubspot: Option<HubspotConfig>,
    /// Required when `crm.kind = "salesforce"`.
    #[serde(default)]
    pub salesforce: Option<SalesforceConfig>,
    /// Required when `crm.kind = "webhook"`; with `dry-run` it makes the record show the
    /// exact signed requests.
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    #[serde(default)]
    pub queue: QueueConfig,
    /// CRM records → VICIdial `add_lead`; unset: no lead injection.
    #[serde(default)]
    pub lead_injection: Option<LeadInjectionConfig>,
    /// Overrides of the built-in mapping, by status code.
    #[serde(default)]
    pub dispositions: BTreeMap<String, RuleOverride>,
    /// Per-campaign overrides, by campaign id.
    #[serde(default)]
    pub campaigns: BTreeMap<String, CampaignConfig>,
    /// The agent-facing CRM page `GET /vicidial/screen-pop`.
    #[serde(default)]
    pub screen_pop: ScreenPopConfig,
    /// VICIdial user → the agent's CRM identities (sign-in, call and task owners).
    #[serde(default)]
    pub agents: Agents,
    /// The dialer pages and `POST /agent/dial`; unset: click-to-call is off.
    #[serde(default)]
    pub click_to_call: Option<ClickToCallConfig>,
    /// Replay of missed VICIdial URLs from its URL log; unset: `serve` does not reconcile.
    #[serde(default)]
    pub reconcile: Option<ReconcileConfig>,
    /// `serve`'s `GET /status` page.
    #[serde(default)]
    pub status: StatusConfig,
    /// Thresholds of the watchdogs (`serve`'s warnings; on AWS the alarms' are parameters).
    #[serde(default)]
    pub watchdogs: WatchdogsConfig,
}

/// `[reconcile]`: how often `serve` (and the `reconcile` Lambda's schedule) reads VICIdial's URL
/// log, and how far back.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconcileConfig {
    /// Minutes between two runs.
    pub interval_minutes: u32,
    /// Each run reads the URL log of the last this many hours.
    pub lookback_hours: u32,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig { interval_minutes: 15, lookback_hours: 24 }
    }
}

/// `[status]`: who may read `serve`'s `/status` page. A request presenting one of the secret's
/// `status_tokens` may, from anywhere; without a token, only a request from this machine, and
/// only while `loopback_without_token` holds.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    /// A request from a loopback address that no proxy forwarded (no `Forwarded`,
    /// `X-Forwarded-For` or `X-Real-IP` header) needs no token. Set `false` when a proxy on
    /// this machine forwards to `serve` without saying so: then every request looks local.
    pub loopback_without_token: bool,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig { loopback_without_token: true }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VicidialConfig {
    /// The VICIdial web server, e.g. `https://dialer.example.com`.
    pub base_url: String,
    /// IANA time zone of the dialer's clock: `callback_datetime` is server-local time.
    #[serde(default = "utc", deserialize_with = "time_zone")]
    pub server_time_zone: Tz,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrmKind {
    /// Record what would be done (`DATA_DIR/dry-run.jsonl` and the log), change nothing.
    DryRun,
    Hubspot,
    Salesforce,
    /// Signed JSON events (Standard Webhooks) to any HTTPS endpoint: `[webhook]`.
    Webhook,
}

impl fmt::Display for CrmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CrmKind::DryRun => "dry-run",
            CrmKind::Hubspot => "hubspot",
            CrmKind::Salesforce => "salesforce",
            CrmKind::Webhook => "webhook",
        })
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrmConfig {
    pub kind: CrmKind,
}

/// `contact_deal` of `[hubspot]` / `[salesforce]`: which deals (Opportunities) a disposition
/// keyed on a contact moves to its deal stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactDeal {
    /// The contact's open deal modified most recently (Salesforce: the open Opportunity the
    /// Contact is the primary contact of, else the most recent open one of its Account).
    #[default]
    LatestOpen,
    /// Every open deal of the contact.
    AllOpen,
    /// None: only a deal named in `vendor_lead_code` moves.
    None,
}

/// One CRM value (deal stage or lead status) the mapping can produce, with the key it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedValue {
    /// `dispositions.SALE.salesforce.deal_stage`, or `… (built-in default)`.
    pub key: String,
    /// `deal_stage` or `lead_status`.
    pub field: &'static str,
    pub value: String,
    pub built_in: bool,
}

/// The embedded queue of `vicibridge serve` (on AWS the SAM template sets SQS's own values).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Seconds a received message stays invisible before it is delivered again.
    pub visibility_timeout_secs: u32,
    /// Deliveries before a message moves to the dead-letter queue (SQS `maxReceiveCount`).
    pub max_receive_count: u32,
    /// Messages handed to the CRM worker at once.
    pub batch_size: u32,
    /// How long the worker waits for a batch to fill (SQS `MaximumBatchingWindowInSeconds`).
    pub batching_window_ms: u32,
    /// Durability of the SQLite queue file: see [`Durability`].
    pub durability: Durability,
}

/// When an accepted event is safe, for the embedded queue of `serve`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// Survives a crash or `kill -9` of vicibridge, not a crash of the machine (SQLite WAL,
    /// `synchronous=NORMAL`).
    #[default]
    Process,
    /// Also survives power loss: every group commit is fsynced (`synchronous=FULL`).
    Machine,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            visibility_timeout_secs: 60,
            max_receive_count: 5,
            batch_size: 1000,
            batching_window_ms: 500,
            durability: Durability::Process,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignConfig {
    #[serde(default)]
    pub dispositions: BTreeMap<String, RuleOverride>,
}

fn utc() -> Tz {
    Tz::UTC
}

fn time_zone<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
    let name = String::deserialize(d)?;
    name.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "unknown time zone {name:?}: use an IANA name such as \"America/New_York\" or \"UTC\""
        ))
    })
}

/// One thing `check-config` has to say, naming the key it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
    pub severity: Severity,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}: {}", self.key, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Every syntax error, unknown key and wrong type toml found (each message carries the
    /// line, column, the offending line and the key), then the problems of the rest.
    #[error("{}", syntax_and_problems(.errors, .problems))]
    Syntax { errors: Vec<String>, problems: Vec<Problem> },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

fn syntax_and_problems(errors: &[String], problems: &[Problem]) -> String {
    errors.iter().cloned().chain(problems.iter().map(ToString::to_string)).collect::<Vec<_>>().join("\n")
}

impl Config {
    /// Parses and validates. Warnings do not fail the load: see [`Config::problems`].
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let (config, syntax) = toml_errors::read(text);
        let errors: Vec<Problem> = config
            .as_ref()
            .map(|c| c.problems().into_iter().filter(|p| p.severity == Severity::Error).collect())
            .unwrap_or_default();
        let mut config = match config {
            Some(c) if syntax.is_empty() && errors.is_empty() => c,
            _ if syntax.is_empty() => return Err(ConfigError::Invalid(errors)),
            _ => return Err(ConfigError::Syntax { errors: syntax, problems: errors }),
        };
        config.vicidial.base_url = config.vicidial.base_url.trim_end_matches('/').to_owned();
        // One lookup for owners: `[agents.X] hubspot_owner_id` joins `[hubspot.owners]`, and
        // `salesforce_user_id` (the user who signs in) owns the agent's Salesforce Tasks.
        if let Some(h) = &mut config.hubspot {
            for (user, a) in &config.agents.0 {
                if let Some(owner) = &a.hubspot_owner_id {
                    h.owners.insert(user.clone(), owner.clone());
                }
            }
        }
        if let Some(sf) = &mut config.salesforce {
            for (user, a) in &config.agents.0 {
                if let Some(id) = &a.salesforce_user_id {
                    sf.owners.insert(user.clone(), id.clone());
                }
            }
        }
        Ok(config)
    }

    /// Everything wrong or suspicious, each naming its key.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut error = |key: String, message: String| out.push(Problem { key, message, severity: Severity::Error });
        let url = &self.vicidial.base_url;
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < "http://x".len() {
            error(
                "vicidial.base_url".into(),
                format!("{url:?} is not an http(s) URL such as \"https://dialer.example.com\""),
            );
        } else if url.contains('?') || url.contains('#') {
            error("vicidial.base_url".into(), "must not carry a query or fragment".into());
        }
        match self.crm.kind {
            CrmKind::Hubspot if self.hubspot.is_none() => error(
                "hubspot".into(),
                "crm.kind is \"hubspot\": add a [hubspot] section (base_url = \"https://api.hubapi.com\")".into(),
            ),
            CrmKind::Salesforce if self.salesforce.is_none() => error(
                "salesforce".into(),
                "crm.kind is \"salesforce\": add a [salesforce] section (login_url = \"https://login.salesforce.com\")"
                    .into(),
            ),
            CrmKind::Webhook if self.webhook.is_none() => error(
                "webhook".into(),
                "crm.kind is \"webhook\": add a [webhook] section (url = \"https://crm.example.com/hooks/vicidial\")"
                    .into(),
            ),
            _ => {}
        }
        let q = &self.queue;
        if q.visibility_timeout_secs == 0 || q.visibility_timeout_secs > 43_200 {
            error("queue.visibility_timeout_secs".into(), "must be between 1 and 43200 seconds (SQS's range)".into());
        }
        if q.max_receive_count == 0 || q.max_receive_count > 1000 {
            error("queue.max_receive_count".into(), "must be between 1 and 1000 (SQS's range)".into());
        }
        if q.batch_size == 0 || q.batch_size > 10_000 {
            error("queue.batch_size".into(), "must be between 1 and 10000".into());
        }
        let layers = std::iter::once(("dispositions".to_owned(), &self.dispositions))
            .chain(self.campaigns.iter().map(|(id, c)| (format!("campaigns.{id}.dispositions"), &c.dispositions)));
        for (prefix, map) in layers {
            for status in map.keys() {
                if status.is_empty()
                    || status.len() > 6
                    || !status.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    error(
                        format!("{prefix}.{status}"),
                        "a VICIdial status is 1 to 6 letters, digits, '-' or '_' (vicidial_list.status is 6 characters)".into(),
                    );
                }
            }
        }
        for id in self.campaigns.keys() {
            if id.is_empty() || id.len() > 8 {
                error(format!("campaigns.{id}"), "a VICIdial campaign id is 2 to 8 characters".into());
            }
        }
        if let Some(h) = &self.hubspot {
            out.extend(h.config_problems(self));
        }
        if let Some(s) = &self.salesforce {
            out.extend(s.problems(self));
        }
        if let Some(w) = &self.webhook {
            out.extend(w.problems());
        }
        if let Some(li) = &self.lead_injection {
            li.problems(&mut out);
        }
        self.screen_pop.problems(&mut out);
        self.agents.problems(&mut out);
        if let Some(h) = &self.hubspot {
            for (user, a) in &self.agents.0 {
                if let (Some(owner), Some(old)) = (&a.hubspot_owner_id, h.owners.get(user))
                    && owner != old
                {
                    out.push(Problem {
                        key: format!("agents.{user}.hubspot_owner_id"),
                        message: format!(
                            "{owner} disagrees with hubspot.owners.{user} = {old}: keep one (prefer [agents])"
                        ),
                        severity: Severity::Error,
                    });
                }
            }
        }
        if let Some(c) = &self.click_to_call {
            c.problems(&mut out);
        }
        if let Some(r) = &self.reconcile {
            if r.interval_minutes == 0 || r.interval_minutes > 24 * 60 {
                out.push(Problem {
                    key: "reconcile.interval_minutes".into(),
                    message: "must be between 1 and 1440 minutes".into(),
                    severity: Severity::Error,
                });
            }
            // VICIdial's archive cron keeps the URL log for 2 years by default; a week is plenty.
            if r.lookback_hours == 0 || r.lookback_hours > 7 * 24 {
                out.push(Problem {
                    key: "reconcile.lookback_hours".into(),
                    message: "must be between 1 and 168 hours".into(),
                    severity: Severity::Error,
                });
            }
        }
        self.watchdogs.problems(&mut out);
        out
    }

    /// The mapping for the CRM the sync writes to (or, for dry-run, the CRM whose section is
    /// present, so the record shows that CRM's values).
    pub fn disposition_map(&self) -> DispositionMap {
        DispositionMap::new(
            self.dispositions.clone(),
            self.campaigns.iter().map(|(id, c)| (id.clone(), c.dispositions.clone())).collect(),
        )
        .for_crm(self.crm_flavor())
    }

    pub fn crm_flavor(&self) -> CrmFlavor {
        match self.crm.kind {
            CrmKind::Hubspot => CrmFlavor::Hubspot,
            CrmKind::Salesforce => CrmFlavor::Salesforce,
            CrmKind::DryRun if self.hubspot.is_some() => CrmFlavor::Hubspot,
            CrmKind::DryRun if self.salesforce.is_some() => CrmFlavor::Salesforce,
            // The webhook carries the neutral mapping: the receiver decides what it means.
            CrmKind::DryRun | CrmKind::Webhook => CrmFlavor::Neutral,
        }
    }

    /// Every non-empty deal stage and lead status the mapping gives `flavor`, each with the key
    /// it comes from: per layer the CRM's own value, else the neutral one; with `built_ins`,
    /// also the built-in default stages a layer does not replace.
    pub fn mapped_values(&self, flavor: CrmFlavor, built_ins: bool) -> Vec<MappedValue> {
        let mut out = Vec::new();
        let layers = std::iter::once(("dispositions".to_owned(), &self.dispositions))
            .chain(self.campaigns.iter().map(|(id, c)| (format!("campaigns.{id}.dispositions"), &c.dispositions)));
        for (prefix, map) in layers {
            for (status, rule) in map {
                for (field, value) in
                    [("deal_stage", rule.deal_stage_for(flavor)), ("lead_status", rule.lead_status_for(flavor))]
                {
                    if let Some(v) = value.filter(|v| !v.is_empty()) {
                        out.push(MappedValue {
                            key: format!("{prefix}.{status}.{}", rule.key_for(flavor, field)),
                            field,
                            value: v.clone(),
                            built_in: false,
                        });
                    }
                }
            }
        }
        if built_ins {
            for status in DispositionMap::built_in_statuses() {
                let replaced = self.dispositions.get(status).is_some_and(|r| r.deal_stage_for(flavor).is_some());
                if let (false, Some(stage)) = (replaced, built_in_deal_stage(flavor, status)) {
                    out.push(MappedValue {
                        key: format!("dispositions.{status}.deal_stage (built-in default)"),
                        field: "deal_stage",
                        value: stage.to_owned(),
                        built_in: true,
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[vicidial]\nbase_url = \"https://dialer.example.com/\"\n[crm]\nkind = \"dry-run\"\n";

    #[test]
    fn minimal_config_loads_with_defaults() {
        let c = Config::from_toml(MINIMAL).unwrap();
        assert_eq!(c.vicidial.base_url, "https://dialer.example.com");
        assert_eq!(c.vicidial.server_time_zone, Tz::UTC);
        assert_eq!(c.queue.max_receive_count, 5);
        assert_eq!(c.crm.kind, CrmKind::DryRun);
    }

    fn err(text: &str) -> String {
        Config::from_toml(text).unwrap_err().to_string()
    }

    /// The shipped example works for either CRM as it is: only `[crm] kind` and the CRM's
    /// section change when a shop switches.
    #[test]
    fn the_example_config_is_valid_for_both_crms() {
        let example = include_str!("../../../../infra/vicibridge.example.toml");
        let dry = Config::from_toml(example).unwrap();
        assert!(dry.problems().is_empty(), "{:?}", dry.problems());
        for (kind, stage) in [("hubspot", "closedwon"), ("salesforce", "Closed Won")] {
            let text = example.replace("kind = \"dry-run\"", &format!("kind = \"{kind}\"\n[{kind}]"));
            let c = Config::from_toml(&text).unwrap();
            assert_eq!(c.crm.kind.to_string(), kind);
            assert!(c.problems().is_empty(), "{kind}: {:?}", c.problems());
            let sale = c.disposition_map().rule_for(Some("TESTCAMP"), "SALE").unwrap();
            assert_eq!(sale.deal_stage.as_deref(), Some(stage), "{kind}");
        }
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let e = err("[vicidial]\nbase_url = \"dialer\"\n[crm]\nkind = \"dry-run\"\n");
        assert!(e.contains("vicidial.base_url") && e.contains("not an http(s) URL"), "{e}");

        let e = err(&format!("{MINIMAL}[vicidial2]\n"));
        assert!(e.contains("unknown field `vicidial2`"), "{e}");

        let e =
            err("[vicidial]\nbase_url = \"https://d\"\nserver_time_zone = \"Mars/Base\"\n[crm]\nkind = \"dry-run\"\n");
        assert!(e.contains("Mars/Base") && e.contains("IANA"), "{e}");

        let e = err("[vicidial]\nbase_url = \"https://d\"\n[crm]\nkind = \"zapier\"\n");
        assert!(e.contains("kind") && e.contains("zapier") && e.contains("dry-run"), "{e}");

        let e = err(&format!("{MINIMAL}[dispositions.SALE]\noutcome = \"sold\"\n"));
        assert!(e.contains("outcome") && e.contains("connected"), "{e}");

        let e = err(&format!("{MINIMAL}[dispositions.TOOLONGSTATUS]\nlabel = \"x\"\n"));
        assert!(e.contains("dispositions.TOOLONGSTATUS"), "{e}");

        let e = err(&format!("{MINIMAL}[campaigns.SPANISH.dispositions.SALE]\ndeal_stage = 5\n"));
        assert!(e.contains("deal_stage") && e.contains("line"), "{e}");

        let e = err(&format!("{MINIMAL}[queue]\nmax_receive_count = 0\n"));
        assert!(e.contains("queue.max_receive_count"), "{e}");

        let e = err("[vicidial]\nbase_url = \"https://d\"\n[crm]\nkind = \"webhook\"\n");
        assert!(e.contains("[webhook] section"), "{e}");
        let e = err(
            "[vicidial]\nbase_url = \"https://d\"\n[crm]\nkind = \"webhook\"\n[webhook]\nurl = \"http://crm.example.com/\"\n",
        );
        assert!(e.contains("webhook.url") && e.contains("loopback"), "{e}");

        let e = err("[crm]\nkind = \"dry-run\"\n");
        assert!(e.contains("missing field `vicidial`"), "{e}");
    }

    #[test]
    fn agents_are_the_one_place_for_hubspot_owners() {
        let base = format!("{MINIMAL}[hubspot]\n[hubspot.owners]\n\"1001\" = \"88\"\n");
        let c = Config::from_toml(&format!(
            "{base}[agents.1000]\nhubspot_owner_id = \"77\"\nhubspot_user_id = \"424242\"\n"
        ))
        .unwrap();
        let owners = &c.hubspot.as_ref().unwrap().owners;
        assert_eq!(
            (owners.get("1000").map(String::as_str), owners.get("1001").map(String::as_str)),
            (Some("77"), Some("88"))
        );
        assert_eq!(c.agents.vicidial_user(CrmUserKind::Hubspot, "424242"), Some("1000"));
        let e = err(&format!("{base}[agents.1001]\nhubspot_owner_id = \"99\"\n"));
        assert!(e.contains("agents.1001.hubspot_owner_id") && e.contains("disagrees"), "{e}");
        let e = err(&format!("{MINIMAL}[agents.1000]\nsalesforce_user_id = \"abc\"\n"));
        assert!(e.contains("agents.1000.salesforce_user_id"), "{e}");
        let e = err(&format!(
            "{MINIMAL}[click_to_call]\npublic_base_url = \"https://b.example.com\"\nframe_ancestors = [\"https://x; script-src *\"]\n"
        ));
        assert!(e.contains("click_to_call.frame_ancestors"), "{e}");
    }
}

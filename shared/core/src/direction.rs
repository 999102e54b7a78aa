//! Which way a VICIdial call went, decided the way VICIdial itself tells its calls apart.
//!
//! - `group` is the campaign id on outbound calls and the in-group id on calls that came in
//!   through an in-group (`vdc_db_query.php` fills it from `vicidial_auto_calls.campaign_id`,
//!   and for the Dispo Call URL from `vicidial_closer_log`, else the campaign).
//! - `call_id` is the 20-character caller code: `M` manual dial, `V` auto-dial (outbound),
//!   `Y` inbound (`agi-VDAD_ALL_inbound.agi`); `vdc_db_query.php` itself treats `^M|^V` as OUT.
//!
//! A manual dial's Start Call URL carries an empty `group`, so both are needed.

use serde::{Deserialize, Serialize};

use crate::event::CallInfo;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallDirection {
    Inbound,
    Outbound,
}

impl CallDirection {
    /// `None` when the URL carries neither a `group` that can be compared with the campaign
    /// nor a `call_id` VICIdial's prefixes explain: the CRM's configured default applies.
    pub fn of(call: &CallInfo) -> Option<CallDirection> {
        let group = non_empty(call.ingroup.as_deref());
        let campaign = non_empty(call.campaign.as_deref());
        if let (Some(g), Some(c)) = (group, campaign) {
            return Some(if g == c { CallDirection::Outbound } else { CallDirection::Inbound });
        }
        match non_empty(call.call_id.as_deref()).and_then(|id| id.bytes().next()) {
            Some(b'M' | b'V') => Some(CallDirection::Outbound),
            Some(b'Y') => Some(CallDirection::Inbound),
            _ => None,
        }
    }

    pub fn is_inbound(self) -> bool {
        self == CallDirection::Inbound
    }
}

/// The in-group a call came in through: `group` when it names something other than the
/// campaign (outbound calls carry the campaign id there) and the call is inbound.
pub fn ingroup(call: &CallInfo) -> Option<String> {
    let group = non_empty(call.ingroup.as_deref())?;
    let inbound = CallDirection::of(call) == Some(CallDirection::Inbound);
    (inbound && non_empty(call.campaign.as_deref()) != Some(group)).then(|| group.to_owned())
}

fn non_empty(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::CallKey;

    fn call(campaign: Option<&str>, group: Option<&str>, call_id: Option<&str>) -> CallInfo {
        CallInfo {
            key: CallKey::Uniqueid("1796597989.6074".into()),
            uniqueid: Some("1796597989.6074".into()),
            call_id: call_id.map(str::to_owned),
            agent: Some("1000".into()),
            campaign: campaign.map(str::to_owned),
            ingroup: group.map(str::to_owned),
            dialed_number: None,
            epoch: None,
        }
    }

    #[test]
    fn vicidial_calls_have_their_direction() {
        use CallDirection::{Inbound, Outbound};
        // Auto-dial, both URLs: group is the campaign.
        let auto = call(Some("TESTCAMP"), Some("TESTCAMP"), Some("V1206225949000000010"));
        assert_eq!(CallDirection::of(&auto), Some(Outbound));
        assert_eq!(ingroup(&auto), None);
        // Manual dial's Start Call URL: group is empty, the caller code says M.
        let manual = call(Some("TESTCAMP"), None, Some("M2062259490000000010"));
        assert_eq!(CallDirection::of(&manual), Some(Outbound));
        // Inbound through an in-group.
        let inbound = call(Some("TESTCAMP"), Some("SALESLINE"), Some("Y2062259490000000010"));
        assert_eq!(CallDirection::of(&inbound), Some(Inbound));
        assert_eq!(ingroup(&inbound).as_deref(), Some("SALESLINE"));
        // Without a campaign to compare with, the caller code decides.
        assert_eq!(CallDirection::of(&call(None, Some("SALESLINE"), Some("Y2062259490000000010"))), Some(Inbound));
        assert_eq!(CallDirection::of(&call(None, Some("TESTCAMP"), Some("V1206225949000000010"))), Some(Outbound));
        // Nothing to tell by.
        assert_eq!(CallDirection::of(&call(Some("TESTCAMP"), None, None)), None);
        assert_eq!(CallDirection::of(&call(None, Some("SALESLINE"), None)), None);
        assert_eq!(ingroup(&call(None, Some("SALESLINE"), None)), None);
    }
}

//! `POST /agent/dial`: the signed-in agent's click, checked and turned into one `agent_status`
//! and one `external_dial`. Answers `{ok, code, message}` in words an agent understands.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use vicibridge_core::agent::{AgentDirectory, AgentPresence, AgentState, AgentUser};
use vicibridge_core::lead::DialerError;
use vicibridge_core::phone::{DialerPhone, normalise};
use vicibridge_vicidial::agent_api::{AgentRef, DialRefusal, ExternalDial};

/// The JSON body of `POST /agent/dial`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialRequest {
    pub phone: String,
    #[serde(default)]
    pub phone_code: Option<String>,
    /// The CRM record (contact, lead, ...): VICIdial's `vendor_id`, kept in `vendor_lead_code`.
    #[serde(default)]
    pub record_id: Option<String>,
    #[serde(default)]
    pub record_type: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DialAnswer {
    #[serde(skip)]
    pub status: u16,
    pub ok: bool,
    /// A fixed word the widget can branch on (`queued`, `sign_in`, `not_logged_in`, ...).
    pub code: &'static str,
    pub message: String,
    /// Set when the call was queued: the widget reports it to the CRM as its call id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dial_id: Option<String>,
}

impl DialAnswer {
    pub fn refused(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        DialAnswer { status, ok: false, code, message: message.into(), dial_id: None }
    }
}

/// VICIdial keeps `vendor_lead_code` to 20 characters; CRM ids are letters and digits.
pub const RECORD_ID_MAX: usize = 20;

pub fn valid_record_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= RECORD_ID_MAX
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The number as VICIdial wants it. `phone_code` reads a national number in that country;
/// a `+` number carries its own.
pub fn dialable(req: &DialRequest, region: phonenumber::country::Id) -> Option<DialerPhone> {
    let raw = req.phone.trim();
    if let Some(code) = req.phone_code.as_deref().filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
        && !raw.starts_with('+')
        && let Ok(p) = normalise(&format!("+{code} {raw}"), region)
    {
        return Some(p);
    }
    normalise(raw, region).ok()
}

/// The last 4 digits, for logs: `***1212`.
pub fn masked(number: &str) -> String {
    let digits: Vec<char> = number.chars().filter(char::is_ascii_digit).collect();
    let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
    format!("***{tail}")
}

/// Dial attempts per agent in a sliding minute (per process: on Lambda, per instance).
#[derive(Debug)]
pub struct RateLimit {
    per_minute: usize,
    seen: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimit {
    pub fn new(per_minute: u32) -> Self {
        RateLimit { per_minute: per_minute as usize, seen: Mutex::new(HashMap::new()) }
    }

    /// Counts an attempt; `false` when the agent is over the limit.
    pub fn allow(&self, agent: &str) -> bool {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < Duration::from_secs(60)));
        let q = seen.entry(agent.to_owned()).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
            q.pop_front();
        }
        if q.len() >= self.per_minute {
            return false;
        }
        q.push_back(now);
        true
    }
}

/// `agent_status` before the dial: the agent must be logged in and not on a call. Whether
/// READY is enough (QUEUE modes) or PAUSED is needed (STANDARD) is `external_dial`'s to say.
pub async fn precheck(directory: &dyn AgentDirectory, user: &AgentUser) -> Result<(), DialAnswer> {
    match directory.agent_status(user).await {
        Ok(AgentPresence::LoggedOut) => Err(refusal(&DialRefusal::NotLoggedIn)),
        Ok(AgentPresence::UnknownUser) => Err(DialAnswer::refused(
            403,
            "unknown_agent",
            "Your sign-in is mapped to a VICIdial user that does not exist. Ask your admin to fix your mapping.",
        )),
        Ok(AgentPresence::LoggedIn(s)) => {
            let busy =
                matches!(s.state, AgentState::InCall | AgentState::Queue | AgentState::MQueue) || s.lead_id.is_some();
            if busy { Err(refusal(&DialRefusal::NotPaused)) } else { Ok(()) }
        }
        Err(DialerError::Retryable { reason } | DialerError::Unknown { reason }) => {
            tracing::warn!(agent = %user, error = %reason, "agent_status failed before a dial");
            Err(refusal(&DialRefusal::Unavailable(reason)))
        }
        Err(DialerError::Permanent { reason, .. } | DialerError::Integration { reason }) => {
            tracing::error!(agent = %user, error = %reason, "agent_status refused: operator action needed");
            Err(refusal(&DialRefusal::Setup(reason)))
        }
    }
}

pub fn refusal(r: &DialRefusal) -> DialAnswer {
    let status = match r {
        DialRefusal::NotLoggedIn | DialRefusal::NotPaused | DialRefusal::AlreadyQueued => 409,
        DialRefusal::ManualDialNotAllowed | DialRefusal::NoAltUser => 403,
        DialRefusal::InvalidNumber(_) => 422,
        DialRefusal::Setup(_) => 502,
        DialRefusal::Unavailable(_) => 503,
    };
    DialAnswer::refused(status, r.code(), r.agent_message())
}

/// `external_dial` was sent but its answer did not come within the budget: VICIdial may be
/// dialling, so the agent looks before clicking again (a second click could dial twice).
pub fn undecided() -> DialAnswer {
    DialAnswer::refused(
        504,
        "no_answer",
        "VICIdial did not confirm the call in time. Check your agent screen before you click again.",
    )
}

pub fn external_dial(agent: AgentRef, phone: &DialerPhone, record_id: Option<&str>) -> ExternalDial {
    ExternalDial {
        agent,
        phone_code: phone.phone_code.clone(),
        phone_number: phone.phone_number.clone(),
        vendor_id: record_id.map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_all_but_the_last_four_digits() {
        assert_eq!(masked("+1 (727) 555-1212"), "***1212");
        assert_eq!(masked("12"), "***12");
    }

    #[test]
    fn rate_limit_is_per_agent() {
        let r = RateLimit::new(2);
        assert!(r.allow("a") && r.allow("a"));
        assert!(!r.allow("a"));
        assert!(r.allow("b"));
    }

    #[test]
    fn numbers_are_normalised_like_lead_injection() {
        let us = vicibridge_core::phone::parse_region("US").unwrap();
        let req = |phone: &str, code: Option<&str>| DialRequest {
            phone: phone.into(),
            phone_code: code.map(Into::into),
            record_id: None,
            record_type: None,
        };
        let p = dialable(&req("(727) 555-1212", None), us).unwrap();
        assert_eq!((p.phone_code.as_str(), p.phone_number.as_str()), ("1", "7275551212"));
        let p = dialable(&req("+44 20 7946 0958", Some("1")), us).unwrap();
        assert_eq!((p.phone_code.as_str(), p.phone_number.as_str()), ("44", "2079460958"));
        let p = dialable(&req("20 7946 0958", Some("44")), us).unwrap();
        assert_eq!(p.phone_code, "44");
        assert!(dialable(&req("call me", None), us).is_none());
        assert!(valid_record_id("0031x000abcDEF") && !valid_record_id("a!b") && !valid_record_id(""));
    }
}

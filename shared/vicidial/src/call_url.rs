//! From a parsed VICIdial call URL to a typed event, validating what each event needs.

use chrono::NaiveDateTime;
use vicibridge_core::LeadId;
use vicibridge_core::event::{CallInfo, CallKey, CallStart, Disposition, Event, EventKind, LeadFields, NewLead};

use crate::query::{VicidialQuery, form_decode};

/// The three URLs VICIdial calls, each an ingest route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallUrl {
    /// Start Call URL: `GET /vicidial/call-start`.
    CallStart,
    /// Dispo Call URL: `GET /vicidial/dispo`.
    Dispo,
    /// API New Lead URL: `GET /vicidial/new-lead`.
    NewLead,
}

impl CallUrl {
    pub fn event_kind(self) -> EventKind {
        match self {
            CallUrl::CallStart => EventKind::CallStart,
            CallUrl::Dispo => EventKind::Dispo,
            CallUrl::NewLead => EventKind::NewLead,
        }
    }
}

/// Why a request is refused. Messages name keys and never echo values (they may be PII).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("query is {len} bytes; the limit is {max}")]
    TooLarge { len: usize, max: usize },
    #[error("query key `{key}` is repeated with different values")]
    Conflicting { key: String },
    #[error(
        "VICIdial left `--A--{variable}--B--` unsubstituted in `{key}`: it does not know that variable in this URL; fix the URL in the campaign settings (see `vicibridge urls`)"
    )]
    Unsubstituted { key: String, variable: String },
    #[error("missing `{key}`")]
    Missing { key: &'static str },
    #[error("`{key}` {reason}")]
    Invalid { key: &'static str, reason: &'static str },
}

impl RequestError {
    pub fn http_status(&self) -> u16 {
        match self {
            RequestError::TooLarge { .. } => 413,
            _ => 400,
        }
    }

    /// A short, stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            RequestError::TooLarge { .. } => "too_large",
            RequestError::Conflicting { .. } => "conflicting_key",
            RequestError::Unsubstituted { .. } => "unsubstituted_tag",
            RequestError::Missing { .. } => "missing_variable",
            RequestError::Invalid { .. } => "invalid_variable",
        }
    }
}

const USER_REASON: &str = "is not a VICIdial user (letters, digits, - and _, at most 20)";
const CAMPAIGN_REASON: &str = "is not a VICIdial campaign id (letters, digits, - and _, at most 20)";

fn owned(q: &VicidialQuery, key: &str) -> Option<String> {
    q.get(key).map(str::to_owned)
}

fn lead_fields(q: &VicidialQuery) -> LeadFields {
    LeadFields {
        vendor_lead_code: owned(q, "vendor_lead_code"),
        source_id: owned(q, "source_id"),
        list_id: owned(q, "list_id"),
        phone_code: owned(q, "phone_code"),
        phone_number: owned(q, "phone_number"),
        alt_phone: owned(q, "alt_phone"),
        title: owned(q, "title"),
        first_name: owned(q, "first_name"),
        last_name: owned(q, "last_name"),
        email: owned(q, "email"),
        address1: owned(q, "address1"),
        city: owned(q, "city"),
        state: owned(q, "state"),
        postal_code: owned(q, "postal_code"),
        country_code: owned(q, "country_code"),
        comments: owned(q, "comments"),
    }
}

fn lead_id(q: &VicidialQuery) -> Result<LeadId, RequestError> {
    q.get("lead_id")
        .ok_or(RequestError::Missing { key: "lead_id" })?
        .parse()
        .map_err(|_| RequestError::Invalid { key: "lead_id", reason: "must be 1 to 10 digits" })
}

fn number<T: std::str::FromStr>(
    q: &VicidialQuery,
    key: &'static str,
    reason: &'static str,
) -> Result<Option<T>, RequestError> {
    q.get(key)
        .map(|v| {
            if v.bytes().all(|b| b.is_ascii_digit()) { v.parse().ok() } else { None }
                .ok_or(RequestError::Invalid { key, reason })
        })
        .transpose()
}

/// An identifier VICIdial fills from its own columns: present values must have that column's
/// shape, or the request is refused naming the key (a lossy or foreign value would merge or
/// split calls downstream).
fn identifier(
    q: &VicidialQuery,
    key: &'static str,
    valid: fn(&str) -> bool,
    reason: &'static str,
) -> Result<Option<String>, RequestError> {
    match q.get(key) {
        Some(v) if valid(v) => Ok(Some(v.to_owned())),
        Some(_) => Err(RequestError::Invalid { key, reason }),
        None => Ok(None),
    }
}

/// Asterisk's uniqueid, `{epoch}.{sequence}` (`1700000000.123`), optionally after the
/// `systemname-` prefix Asterisk adds when `asterisk.conf` sets one; the column is 50 wide.
fn is_uniqueid(v: &str) -> bool {
    let id = v.rsplit_once('-').map_or(v, |(prefix, id)| {
        let ok = !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok { id } else { "" }
    });
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    v.len() <= 50 && id.split_once('.').is_some_and(|(secs, seq)| digits(secs) && digits(seq))
}

/// VICIdial's caller code: 20 characters, a type letter (`M` manual dial, `V` auto-dial, `Y`
/// inbound) and then date, time and the zero-padded lead_id. Other call types (transfers,
/// consultations) use two-letter prefixes, so capitals are allowed after the first too.
fn is_call_id(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 20 && b[0].is_ascii_uppercase() && b[1..].iter().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
}

/// Status codes, user names and campaign ids: VICIdial keeps letters, digits, `-` and `_`
/// (`.` and `@` appear in some shops' user names); 20 is the widest of those columns.
fn is_code(v: &str) -> bool {
    v.len() <= 20 && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
}

fn call_info(q: &VicidialQuery) -> Result<CallInfo, RequestError> {
    let uniqueid = identifier(q, "uniqueid", is_uniqueid, "is not an Asterisk uniqueid (digits.digits)")?;
    let call_id =
        identifier(q, "call_id", is_call_id, "is not a VICIdial call_id (20 capitals and digits, a letter first)")?;
    let key = match (&uniqueid, &call_id) {
        (Some(u), _) => CallKey::Uniqueid(u.clone()),
        (None, Some(c)) => CallKey::CallId(c.clone()),
        (None, None) => return Err(RequestError::Missing { key: "uniqueid` or `call_id" }),
    };
    Ok(CallInfo {
        key,
        uniqueid,
        call_id,
        agent: identifier(q, "user", is_code, USER_REASON)?,
        campaign: identifier(q, "campaign", is_code, CAMPAIGN_REASON)?,
        ingroup: owned(q, "group"),
        dialed_number: owned(q, "dialed_number"),
        epoch: number(q, "epoch", "must be a Unix time in seconds")?,
    })
}

/// `callback_datetime` is `YYYY-MM-DD HH:MM:SS` (server-local); VICIdial sends zeros or
/// nothing when there is no callback.
fn callback_at(q: &VicidialQuery) -> Result<Option<NaiveDateTime>, RequestError> {
    match q.get("callback_datetime") {
        None => Ok(None),
        Some(v) if v.starts_with("0000-00-00") => Ok(None),
        Some(v) => NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S")
            .map(Some)
            .map_err(|_| RequestError::Invalid { key: "callback_datetime", reason: "must be YYYY-MM-DD HH:MM:SS" }),
    }
}

/// Builds the event a route announces. Checks run in a fixed order so the answer is stable:
/// conflicting repeats, unsubstituted tags, then each required variable.
pub fn to_event(url: CallUrl, q: &VicidialQuery) -> Result<Event, RequestError> {
    if let Some(key) = q.conflict() {
        return Err(RequestError::Conflicting { key: key.to_owned() });
    }
    if let Some((key, variable)) = q.unsubstituted() {
        return Err(RequestError::Unsubstituted { key: key.to_owned(), variable });
    }
    let lead_id = lead_id(q)?;
    let lead = lead_fields(q);
    Ok(match url {
        CallUrl::CallStart => Event::CallStart(CallStart { lead_id, lead, call: call_info(q)? }),
        CallUrl::Dispo => {
            let status = q.get("dispo").ok_or(RequestError::Missing { key: "dispo" })?;
            if !is_code(status) {
                return Err(RequestError::Invalid { key: "dispo", reason: "is not a VICIdial status code" });
            }
            Event::Dispo(Disposition {
                lead_id,
                lead,
                call: call_info(q)?,
                status: status.to_owned(),
                // Encoded twice by VICIdial: the first decoding left `Call+Back` or `Call%20Back`.
                status_name: q.get("dispo_name").map(form_decode).filter(|s| !s.trim().is_empty()),
                talk_time_secs: number(q, "talk_time", "must be a whole number of seconds")?,
                recording_filename: owned(q, "recording_filename"),
                recording_id: owned(q, "recording_id"),
                callback_at: callback_at(q)?,
                call_notes: owned(q, "call_notes"),
                term_reason: owned(q, "term_reason"),
            })
        }
        CallUrl::NewLead => Event::NewLead(NewLead {
            lead_id,
            lead,
            added_by: identifier(q, "user", is_code, USER_REASON)?,
            campaign: identifier(q, "campaign", is_code, CAMPAIGN_REASON)?,
            status: owned(q, "status"),
            entry_date: owned(q, "entry_date"),
        }),
    })
}

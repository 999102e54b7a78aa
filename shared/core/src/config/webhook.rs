//! `[webhook]`: the signed webhook destination (Standard Webhooks) for any CRM, Zapier, Make
//! or n8n. The signing secret is in the secret JSON (`webhook.signing_secret`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;

use super::{Problem, Severity};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where events are POSTed: HTTPS, or plain HTTP to a loopback address (tests, a local
    /// receiver).
    pub url: String,
    /// Per-request timeout; a request that takes longer is retried later.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// `false`: one event per POST (a JSON object). `true`: up to `batch_max` events per POST
    /// (a JSON array).
    #[serde(default)]
    pub batch: bool,
    #[serde(default = "default_batch_max")]
    pub batch_max: u32,
    /// Which event types are sent; the others are acknowledged without a request.
    #[serde(default = "EventType::all")]
    pub events: Vec<EventType>,
    /// Extra static headers on every request (e.g. an API key the receiver wants).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Pace of requests to the endpoint, for the whole process.
    #[serde(default = "default_rps")]
    pub requests_per_second: u32,
    /// Recording link in call events: `{filename}` and `{id}` are replaced by VICIdial's
    /// `recording_filename` and `recording_id`. Unset: no `recording_url` in the body.
    #[serde(default)]
    pub recording_url: Option<String>,
    /// An endpoint that answers nothing but timeouts, 429s and 5xx for this long is down: the
    /// sync pauses (events wait on the queue, none is dead-lettered for it) and probes it every
    /// 30 s until it answers again.
    #[serde(default = "default_outage_after")]
    pub outage_after_secs: u64,
}

/// The event types of the webhook body (`type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
pub enum EventType {
    #[serde(rename = "call.started")]
    CallStarted,
    #[serde(rename = "call.dispositioned")]
    CallDispositioned,
    /// VICIdial's API New Lead URL: a lead was added in VICIdial.
    #[serde(rename = "lead.created")]
    LeadCreated,
    /// A CRM lead was added to VICIdial by lead injection (with its lead_id).
    #[serde(rename = "lead.injected")]
    LeadInjected,
}

impl EventType {
    pub const ALL: [EventType; 4] =
        [EventType::CallStarted, EventType::CallDispositioned, EventType::LeadCreated, EventType::LeadInjected];

    pub fn all() -> Vec<EventType> {
        Self::ALL.to_vec()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::CallStarted => "call.started",
            EventType::CallDispositioned => "call.dispositioned",
            EventType::LeadCreated => "lead.created",
            EventType::LeadInjected => "lead.injected",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Headers vicibridge sets itself; a static header must not replace them.
pub const RESERVED_HEADERS: [&str; 7] =
    ["webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "content-length", "host", "user-agent"];

/// A request that hangs longer than this is abandoned; the Lambda crm-sync has 30 s in all.
pub const MAX_TIMEOUT_SECS: u64 = 15;
/// At or above 20 events per POST a burst costs at most 0.05 requests per event.
pub const MAX_BATCH: u32 = 1000;

fn default_timeout() -> u64 {
    10
}
fn default_batch_max() -> u32 {
    100
}
fn default_rps() -> u32 {
    10
}
fn default_outage_after() -> u64 {
    60
}

/// HTTPS, or HTTP to a loopback host; no credentials, no fragment.
pub fn url_problem(raw: &str) -> Option<String> {
    let Ok(url) = url::Url::parse(raw) else {
        return Some(format!("{raw:?} is not a URL such as \"https://crm.example.com/hooks/vicidial\""));
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Some("must not carry a user or password: put credentials in [webhook] headers".into());
    }
    if url.fragment().is_some() {
        return Some("must not carry a #fragment".into());
    }
    match url.scheme() {
        "https" if url.host().is_some() => None,
        "http" if is_loopback(&url) => None,
        "http" => Some(
            "plain http is only allowed to a loopback address (127.0.0.1, ::1, localhost): use https so the events and their signatures are not sent in clear".into(),
        ),
        _ => Some(format!("{raw:?} is not an https URL")),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// RFC 9110 `token` characters.
fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Visible ASCII, spaces and tabs; no line breaks.
fn is_header_value(value: &str) -> bool {
    value.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

impl WebhookConfig {
    /// Problems of the section, keys prefixed `webhook.`.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut push = |severity: Severity, key: &str, message: String| {
            out.push(Problem { key: format!("webhook.{key}"), message, severity });
        };
        if let Some(p) = url_problem(&self.url) {
            push(Severity::Error, "url", p);
        }
        if self.timeout_secs == 0 || self.timeout_secs > MAX_TIMEOUT_SECS {
            push(
                Severity::Error,
                "timeout_secs",
                format!("must be between 1 and {MAX_TIMEOUT_SECS} (the Lambda crm-sync has 30 seconds per batch)"),
            );
        }
        if self.outage_after_secs < self.timeout_secs {
            push(
                Severity::Error,
                "outage_after_secs",
                format!("must be at least timeout_secs ({}): one slow request is not an outage", self.timeout_secs),
            );
        }
        if self.batch_max == 0 || self.batch_max > MAX_BATCH {
            push(Severity::Error, "batch_max", format!("must be between 1 and {MAX_BATCH}"));
        } else if self.batch && self.batch_max < 20 {
            push(
                Severity::Warning,
                "batch_max",
                "below 20 a burst costs more than 0.05 requests per event; Zapier, Make and n8n take arrays of 100 easily".into(),
            );
        }
        if self.events.is_empty() {
            push(
                Severity::Warning,
                "events",
                "is empty: nothing is sent (list any of \"call.started\", \"call.dispositioned\", \"lead.created\", \"lead.injected\", or remove the key for all)".into(),
            );
        }
        for (name, value) in &self.headers {
            if !is_header_name(name) {
                push(Severity::Error, &format!("headers.{name}"), "is not an HTTP header name".into());
            } else if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                push(
                    Severity::Error,
                    &format!("headers.{name}"),
                    "vicibridge sets this header itself (the Standard Webhooks headers, content type, host)".into(),
                );
            }
            if !is_header_value(value) {
                push(
                    Severity::Error,
                    &format!("headers.{name}"),
                    "the value must be printable ASCII on one line".into(),
                );
            }
        }
        if self.requests_per_second == 0 || self.requests_per_second > 1000 {
            push(Severity::Error, "requests_per_second", "must be between 1 and 1000".into());
        }
        if let Some(t) = &self.recording_url {
            if !(t.contains("{filename}") || t.contains("{id}")) {
                push(
                    Severity::Warning,
                    "recording_url",
                    "has neither {filename} nor {id}: every call links the same URL".into(),
                );
            }
            let sample = t.replace("{filename}", "f").replace("{id}", "1");
            if !url::Url::parse(&sample).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
                push(Severity::Error, "recording_url", format!("{t:?} is not an http(s) URL template"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(extra: &str) -> WebhookConfig {
        toml::from_str(&format!("url = \"https://hooks.zapier.com/hooks/catch/1/abc/\"\n{extra}")).unwrap()
    }

    fn keys(c: &WebhookConfig) -> Vec<String> {
        c.problems().into_iter().filter(|p| p.severity == Severity::Error).map(|p| p.key).collect()
    }

    #[test]
    fn defaults_send_every_event_one_per_request() {
        let c = section("");
        assert_eq!((c.batch, c.batch_max, c.timeout_secs, c.requests_per_second), (false, 100, 10, 10));
        assert_eq!(c.events, EventType::all());
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[test]
    fn http_only_to_loopback() {
        for ok in ["https://crm.example.com/h", "http://127.0.0.1:9000/h", "http://localhost/h", "http://[::1]:80/"] {
            assert_eq!(url_problem(ok), None, "{ok}");
        }
        for bad in ["http://crm.example.com/h", "ftp://x/", "crm.example.com", "https://u:p@x/", "https://x/#f"] {
            assert!(url_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn every_key_is_checked() {
        let c = section(
            "timeout_secs = 0\nbatch_max = 0\nrequests_per_second = 0\n[headers]\n\"webhook-signature\" = \"x\"\n\"bad name\" = \"x\"\nX-Api-Key = \"a\\nb\"\n",
        );
        let k = keys(&c);
        for want in [
            "webhook.timeout_secs",
            "webhook.batch_max",
            "webhook.requests_per_second",
            "webhook.headers.webhook-signature",
            "webhook.headers.bad name",
            "webhook.headers.X-Api-Key",
        ] {
            assert!(k.iter().any(|x| x == want), "{want} missing from {k:?}");
        }
        let e = toml::from_str::<WebhookConfig>("url = \"https://x/\"\nevents = [\"call.ended\"]\n").unwrap_err();
        assert!(e.to_string().contains("call.dispositioned"), "{e}");
        let w = section("events = []\nbatch = true\nbatch_max = 5\n").problems();
        assert!(w.iter().all(|p| p.severity == Severity::Warning) && w.len() == 2, "{w:?}");
    }
}

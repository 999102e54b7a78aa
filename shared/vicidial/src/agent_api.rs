//! VICIdial's Agent API (`{base_url}/agc/api.php`): `external_dial`, which asks a logged-in
//! agent's screen to dial a number. Facts: `shared/reference/vicidial.md` §9, and
//! `www/agc/api.php` (the `external_dial` block), checked against the real PHP.
//!
//! `SUCCESS` only means VICIdial stored the request for the agent's screen (`vicidial_live_agents
//! .external_dial`); the agent's browser places the call within a second or so. Every other
//! reply becomes a [`DialRefusal`] with a sentence for the agent and a detail for the operator.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::time::Instant;
use vicibridge_core::ports::SecretStore;
use vicibridge_core::secrets::Secret;

use crate::non_agent_api::{DIALER_LATENCY_MS, DIALER_REQUESTS, Redactor};

/// Path of the Agent API under `[vicidial] base_url`.
pub const AGENT_API_PATH: &str = "/agc/api.php";
/// `source` of our calls (VICIdial keeps letters and digits; it shows in its API log).
pub const SOURCE: &str = "vicibridge";

const FORM: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'*');
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// Who dials: the VICIdial user, or `alt_user` (VICIdial looks it up in
/// `vicidial_users.custom_three`, keeping only letters and digits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentRef {
    User(String),
    AltUser(String),
}

/// One `external_dial` request. The number is already normalised (digits only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalDial {
    pub agent: AgentRef,
    pub phone_code: String,
    pub phone_number: String,
    /// The CRM record id: with `search=YES` VICIdial finds the lead by phone, or creates it with
    /// this value in `vendor_lead_code`.
    pub vendor_id: Option<String>,
}

/// `SUCCESS: external_dial function set - {value}|{agent_user}|…`: queued for the agent screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialQueued {
    /// The VICIdial user the call was queued for (resolved from `alt_user` when used).
    pub agent_user: String,
}

/// Why VICIdial did not queue the call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DialRefusal {
    #[error("agent is not logged in to VICIdial")]
    NotLoggedIn,
    #[error("agent is not paused with no lead on screen (api_manual_dial STANDARD)")]
    NotPaused,
    #[error("agent user may not place manual dial calls (agentcall_manual)")]
    ManualDialNotAllowed,
    #[error("no VICIdial user has custom_three = the CRM user id (alt_user)")]
    NoAltUser,
    #[error("the number is already in the agent's manual dial queue")]
    AlreadyQueued,
    #[error("VICIdial refused the number: {0}")]
    InvalidNumber(String),
    /// Login, permission, API switched off, caller id / group alias settings: the operator's.
    #[error("VICIdial refused the request (operator action needed): {0}")]
    Setup(String),
    /// No reply, or a reply VICIdial's code does not produce for this function.
    #[error("VICIdial did not answer usably: {0}")]
    Unavailable(String),
}

impl DialRefusal {
    /// What the agent reads in the widget: what happened and what to do, never VICIdial's line.
    pub fn agent_message(&self) -> &'static str {
        match self {
            DialRefusal::NotLoggedIn => {
                "You are not logged in to VICIdial. Log in to the agent screen, then click again."
            }
            DialRefusal::NotPaused => {
                "Finish or pause your current call first: VICIdial dials only while you are paused with no lead on screen."
            }
            DialRefusal::ManualDialNotAllowed => {
                "Your VICIdial user may not place manual calls. Ask your admin to allow manual dialling (Agent Call Manual)."
            }
            DialRefusal::NoAltUser => {
                "Your CRM user is not linked to a VICIdial agent. Ask your admin to map you to your VICIdial user."
            }
            DialRefusal::AlreadyQueued => "This number is already waiting in your manual dial queue.",
            DialRefusal::InvalidNumber(_) => "VICIdial cannot dial this number. Check the number on the record.",
            DialRefusal::Setup(_) => {
                "Click-to-call is not set up correctly on the server. Ask your admin (the details are in vicibridge's log)."
            }
            DialRefusal::Unavailable(_) => "VICIdial did not answer. Try again in a moment.",
        }
    }

    /// A fixed code for metrics and the audit line.
    pub fn code(&self) -> &'static str {
        match self {
            DialRefusal::NotLoggedIn => "not_logged_in",
            DialRefusal::NotPaused => "not_paused",
            DialRefusal::ManualDialNotAllowed => "manual_dial_not_allowed",
            DialRefusal::NoAltUser => "no_alt_user",
            DialRefusal::AlreadyQueued => "already_queued",
            DialRefusal::InvalidNumber(_) => "invalid_number",
            DialRefusal::Setup(_) => "setup",
            DialRefusal::Unavailable(_) => "unavailable",
        }
    }
}

/// Reads an `external_dial` reply. The first ERROR line decides (a missing `alt_user` prints
/// `no user found` and then `agent_user is not logged in -`, §9.1); NOTICE lines before a
/// SUCCESS are logged by the caller, not failures.
pub fn classify_external_dial(status: u16, body: &str, redactor: &Redactor) -> Result<DialQueued, DialRefusal> {
    let text = redactor.redact(body.trim());
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("SUCCESS: external_dial function set - ") {
            let agent_user = rest.split('|').nth(1).unwrap_or_default().to_owned();
            return Ok(DialQueued { agent_user });
        }
        let Some(error) = line.strip_prefix("ERROR: ") else { continue };
        let starts = |p: &str| error.starts_with(p);
        return Err(if starts("agent_user is not logged in") {
            DialRefusal::NotLoggedIn
        } else if starts("agent_user is not paused") {
            DialRefusal::NotPaused
        } else if starts("agent_user is not allowed to place manual dial calls") {
            DialRefusal::ManualDialNotAllowed
        } else if starts("no user found") {
            DialRefusal::NoAltUser
        } else if starts("phone_number is already in this agents manual dial queue") {
            DialRefusal::AlreadyQueued
        } else if starts("external_dial not valid")
            || starts("phone number is not valid")
            || starts("phone number lead_id search not found")
            || starts("lead_id is not valid")
        {
            DialRefusal::InvalidNumber(line.to_owned())
        } else if starts("Invalid Username/Password") {
            // The tail echoes the password and an SQL statement: keep the fixed part only.
            DialRefusal::Setup(
                "ERROR: Invalid Username/Password (check vicidial.api_user/api_pass and vdc_agent_api_access)".into(),
            )
        } else {
            // System API NOT ACTIVE, auth USER DOES NOT HAVE PERMISSION, Invalid Source,
            // group_alias / outbound_cid / vtiger settings.
            DialRefusal::Setup(line.to_owned())
        });
    }
    Err(DialRefusal::Unavailable(format!("HTTP {status}, no SUCCESS or ERROR line: {:.200}", text)))
}

#[derive(Clone, Debug)]
pub struct AgentApiOptions {
    /// The agent is waiting on a click: fail fast.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// After VICIdial refused the API login, calls with the same password wait this long
    /// (10 failures lock the user for 15 minutes, and every agent's click would count).
    pub login_failure_hold: Duration,
}

impl Default for AgentApiOptions {
    fn default() -> Self {
        AgentApiOptions {
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            login_failure_hold: Duration::from_secs(5 * 60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentApiError {
    #[error("[vicidial] base_url '{0}' must start with http:// or https://")]
    InvalidBaseUrl(String),
    #[error("cannot build the HTTP client for VICIdial: {0}")]
    Client(String),
}

/// The Agent API client; cheap to share.
pub struct AgentApi {
    endpoint: String,
    http: reqwest::Client,
    secrets: Arc<dyn SecretStore>,
    options: AgentApiOptions,
    /// (user, password) VICIdial refused, until when.
    held: Mutex<Option<(String, Secret, Instant)>>,
}

impl fmt::Debug for AgentApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentApi").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl AgentApi {
    pub fn new(base_url: &str, secrets: Arc<dyn SecretStore>, options: AgentApiOptions) -> Result<Self, AgentApiError> {
        let base = base_url.trim().trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() <= "https://".len() {
            return Err(AgentApiError::InvalidBaseUrl(base_url.to_owned()));
        }
        let http = vicibridge_http::client_builder()
            .connect_timeout(options.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AgentApiError::Client(e.to_string()))?;
        Ok(AgentApi { endpoint: format!("{base}{AGENT_API_PATH}"), http, secrets, options, held: Mutex::new(None) })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `external_dial` with `search=YES` (find the lead by phone or create it with `vendor_id`),
    /// `preview=NO`, `focus=YES`. A form POST: the API password stays out of access logs.
    pub async fn external_dial(&self, dial: &ExternalDial) -> Result<DialQueued, DialRefusal> {
        let doc = self.secrets.current().await.map_err(|e| DialRefusal::Setup(format!("secrets: {e}")))?;
        let v = doc
            .vicidial
            .as_ref()
            .ok_or_else(|| DialRefusal::Setup("the secret has no \"vicidial\" section (api_user, api_pass)".into()))?;
        if let Some((user, pass, until)) = &*self.held.lock().unwrap_or_else(PoisonError::into_inner)
            && *user == v.api_user
            && *pass == v.api_pass
            && Instant::now() < *until
        {
            return Err(DialRefusal::Setup(
                "not sent: VICIdial refused this API login recently and retrying extends its lockout; fix the secret"
                    .into(),
            ));
        }
        let (agent_key, agent_value) = match &dial.agent {
            AgentRef::User(u) => ("agent_user", u.as_str()),
            AgentRef::AltUser(a) => ("alt_user", a.as_str()),
        };
        let params: [(&str, &str); 11] = [
            ("source", SOURCE),
            ("user", &v.api_user),
            ("pass", v.api_pass.expose()),
            ("function", "external_dial"),
            (agent_key, agent_value),
            ("value", &dial.phone_number),
            ("phone_code", &dial.phone_code),
            ("search", "YES"),
            ("preview", "NO"),
            ("focus", "YES"),
            ("vendor_id", dial.vendor_id.as_deref().unwrap_or("")),
        ];
        let body =
            params.iter().map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, FORM))).collect::<Vec<_>>().join("&");
        let redactor = Redactor::for_password(v.api_pass.expose());
        let started = Instant::now();
        let sent = self
            .http
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .timeout(self.options.timeout)
            .send()
            .await;
        let result = match sent {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let mut bytes = Vec::new();
                let mut read_error = None;
                loop {
                    match response.chunk().await {
                        Ok(Some(c)) if bytes.len() < MAX_REPLY_BYTES => bytes.extend_from_slice(&c),
                        Ok(_) => break,
                        Err(e) => {
                            read_error = Some(e);
                            break;
                        }
                    }
                }
                match read_error {
                    Some(e) => Err(DialRefusal::Unavailable(redactor.redact(&vicibridge_core::error_chain(&e)))),
                    None => classify_external_dial(status, &String::from_utf8_lossy(&bytes), &redactor),
                }
            }
            Err(e) => {
                let what = if e.is_timeout() {
                    format!("no answer within {}s", self.options.timeout.as_secs_f64())
                } else {
                    redactor.redact(&vicibridge_core::error_chain(&e))
                };
                Err(DialRefusal::Unavailable(format!("{}: {what}", self.endpoint)))
            }
        };
        metrics::histogram!(DIALER_LATENCY_MS, "function" => "external_dial")
            .record(started.elapsed().as_secs_f64() * 1000.0);
        let label = match &result {
            Ok(_) => "queued",
            Err(r) => r.code(),
        };
        metrics::counter!(DIALER_REQUESTS, "function" => "external_dial", "result" => label, "reason" => label)
            .increment(1);
        if let Err(DialRefusal::Setup(detail)) = &result
            && detail.contains("Invalid Username/Password")
        {
            *self.held.lock().unwrap_or_else(PoisonError::into_inner) =
                Some((v.api_user.clone(), v.api_pass.clone(), Instant::now() + self.options.login_failure_hold));
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(body: &str) -> Result<DialQueued, DialRefusal> {
        classify_external_dial(200, body, &Redactor::for_password("s3cret-pass"))
    }

    /// Every line below was answered by the real `agc/api.php` (VICIdial trunk, r3939).
    #[test]
    fn replies_of_the_real_agent_api() {
        assert_eq!(
            classify("SUCCESS: external_dial function set - 7275551212|1997|1|YES|NO|YES|0031x000abc|1796598001||||\n"),
            Ok(DialQueued { agent_user: "1997".into() })
        );
        assert_eq!(classify("ERROR: agent_user is not logged in - 1997\n"), Err(DialRefusal::NotLoggedIn));
        assert_eq!(classify("ERROR: agent_user is not paused - 1997\n"), Err(DialRefusal::NotPaused));
        assert_eq!(
            classify("ERROR: agent_user is not allowed to place manual dial calls - 1996\n"),
            Err(DialRefusal::ManualDialNotAllowed)
        );
        assert_eq!(
            classify("ERROR: no user found - nobody\nERROR: agent_user is not logged in - \n"),
            Err(DialRefusal::NoAltUser)
        );
        assert!(matches!(
            classify("ERROR: external_dial not valid - |1|YES|NO|YES||1997|\n"),
            Err(DialRefusal::InvalidNumber(_))
        ));
        assert!(matches!(
            classify(
                "ERROR: auth USER DOES NOT HAVE PERMISSION TO USE THIS FUNCTION - 7275551212|vicibridge|external_dial|ADMIN\n"
            ),
            Err(DialRefusal::Setup(_))
        ));
        assert_eq!(
            classify("ERROR: phone_number is already in this agents manual dial queue - 1997|7275551212\n"),
            Err(DialRefusal::AlreadyQueued)
        );
    }

    #[test]
    fn a_refused_login_never_carries_the_password_or_sql() {
        let r = classify(
            "ERROR: Invalid Username/Password: |vbdial|s3cret-pass|0|1|BAD|0|api|SELECT count(*) from vicidial_users where user='vbdial' and pass='s3cret-pass';|\n",
        );
        let Err(DialRefusal::Setup(detail)) = r else { panic!("{r:?}") };
        assert!(!detail.contains("s3cret") && !detail.contains("SELECT"), "{detail}");
    }

    #[test]
    fn anything_else_is_unavailable_never_a_success() {
        for body in ["", "<html>Internal Server Error</html>", "NOTICE: defined dial_ingroup not found - X\n"] {
            assert!(matches!(classify(body), Err(DialRefusal::Unavailable(_))), "{body}");
        }
    }

    #[test]
    fn every_refusal_has_a_sentence_without_vicidial_jargon() {
        let all = [
            DialRefusal::NotLoggedIn,
            DialRefusal::NotPaused,
            DialRefusal::ManualDialNotAllowed,
            DialRefusal::NoAltUser,
            DialRefusal::AlreadyQueued,
            DialRefusal::InvalidNumber("ERROR: x".into()),
            DialRefusal::Setup("ERROR: x".into()),
            DialRefusal::Unavailable("x".into()),
        ];
        for r in all {
            let m = r.agent_message();
            assert!(m.ends_with('.') && !m.contains("ERROR") && !m.contains("agent_user"), "{m}");
        }
    }
}

//! VICIdial's non-agent API (`{base_url}/vicidial/non_agent_api.php`) as the [`Dialer`] of
//! lead injection: `add_lead`, and `lead_search` by `vendor_lead_code` to find a lead whose
//! insert had an unknown outcome; and as the [`AgentDirectory`]: `agent_status`, the live state
//! of one agent (screen pop, dialer). Facts: `shared/reference/vicidial.md` §1, §2, §5, §12,
//! §13; `crm-ui-and-backfill.md` §B.2.
//!
//! Both functions are form POSTs: the password stays out of web-server access logs and proxy
//! logs (a GET carries it in the URL). Every request ends with [`TRAILER`]: VICIdial writes the
//! value of the last POSTed field unescaped into its API log, so a `'` or a trailing `\` there
//! makes it answer 500 after inserting the lead and skip the hopper, callback and API New Lead
//! URL steps (observed on the real PHP; a POST does not avoid it by itself).

mod agent_status;
mod delete;
mod normalize;
mod probe;
mod rate;
mod reply;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::time::Instant;
use vicibridge_core::LeadId;
use vicibridge_core::agent::{AgentDirectory, AgentPresence, AgentUser};
use vicibridge_core::lead::{AddLeadOutcome, AddLeadRequest, Dialer, DialerError};
use vicibridge_core::ports::{SecretStore, SecretsError};
use vicibridge_core::secrets::Secret;

pub use agent_status::classify_agent_status;
pub use delete::Deleted;
pub use normalize::{
    SOURCE_MAX, VENDOR_LEAD_CODE_MAX, add_lead_params, email_value, name_value, source_value, text_value,
};
pub use probe::{PROBE_CODE, PROBE_LIST_ID, ProbeAnswer, ProbeFunction};
pub use rate::RateLimiter;
pub use reply::{AuthFailure, Classified, REDACTED, Redactor, classify_add_lead, classify_lead_search};

/// Path of the API under `[vicidial] base_url`.
pub const ENDPOINT_PATH: &str = "/vicidial/non_agent_api.php";

/// Calls to VICIdial by `function` (add_lead, lead_search, agent_status), `result` (added,
/// already_exists, found, not_found, logged_in, logged_out, unknown_user, retryable, unknown, permanent) and `reason` (a fixed code, never data).
pub const DIALER_REQUESTS: &str = "DialerRequests";
/// Time of each HTTP exchange with VICIdial, by `function`.
pub const DIALER_LATENCY_MS: &str = "DialerLatencyMs";
/// Login and permission refusals, by `kind` (bad_login, locked, not_permitted): alarm on it.
pub const DIALER_AUTH_FAILURES: &str = "DialerAuthFailures";

/// `source` of lead_search and agent_status calls (logged by VICIdial; letters and digits).
pub const LEAD_SEARCH_SOURCE: &str = "vicibridge";

/// Longest reply read; add_lead answers a few lines, lead_search one line per key.
const MAX_REPLY_BYTES: usize = 1024 * 1024;

/// The last field of every request. `non_agent_api.php` builds its log line from a loop over
/// `$_POST` that leaves the last value in `$value`, then inserts `value='$value'` into
/// `vicidial_api_log` unescaped: a fixed, harmless last field keeps lead data out of that SQL.
/// No VICIdial function reads this name.
pub const TRAILER: (&str, &str) = ("vicibridge_end", "1");

/// `application/x-www-form-urlencoded`: everything but `A-Za-z0-9-._*` percent-encoded.
const FORM: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'*');

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonAgentApiOptions {
    /// Requests per second to VICIdial, shared by every caller of the client.
    pub requests_per_second: u32,
    /// Whole exchange, connect to last byte. add_lead waits for the API New Lead URL
    /// receiver inside the same request (§3), so leave room for it.
    pub timeout: Duration,
    /// Whole exchange for a read a person waits on (agent_status behind a screen pop).
    pub interactive_timeout: Duration,
    pub connect_timeout: Duration,
    /// After `Login incorrect`, calls with the same credentials are refused locally for this
    /// long (unless the secret changes): 10 failures in 15 minutes lock the user (§13.8),
    /// and a queue of leads would reach that in seconds.
    pub login_failure_hold: Duration,
    /// After `Too many login attempts`, calls as that user are refused locally for this long.
    pub lock_hold: Duration,
}

impl Default for NonAgentApiOptions {
    fn default() -> Self {
        NonAgentApiOptions {
            requests_per_second: 10,
            timeout: Duration::from_secs(15),
            interactive_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(3),
            login_failure_hold: Duration::from_secs(5 * 60),
            lock_hold: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NonAgentApiError {
    #[error("[vicidial] base_url '{0}' must start with http:// or https://")]
    InvalidBaseUrl(String),
    #[error("cannot build the HTTP client for VICIdial: {0}")]
    Client(String),
}

#[derive(Clone, PartialEq, Eq)]
struct Credentials {
    user: String,
    pass: Secret,
}

/// Credentials VICIdial refused recently; `pass: None` holds every password of the user.
struct Hold {
    user: String,
    pass: Option<Secret>,
    since: Instant,
    until: Instant,
    reason: String,
}

/// The non-agent API client. Cheap to share (`Arc`); one rate limit for all its callers.
pub struct NonAgentApi {
    endpoint: String,
    http: reqwest::Client,
    secrets: Arc<dyn SecretStore>,
    limiter: RateLimiter,
    hold: Mutex<Option<Hold>>,
    /// Credentials VICIdial accepted (a call succeeded with them).
    verified: Mutex<Option<Credentials>>,
    /// Until then, one call at a time: a batch of concurrent calls with a wrong password
    /// would be 10 failures at once, and a lockout (§13.8).
    probe: tokio::sync::Mutex<()>,
    options: NonAgentApiOptions,
}

impl fmt::Debug for NonAgentApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonAgentApi").field("endpoint", &self.endpoint).field("options", &self.options).finish()
    }
}

/// Which function, and whether a lost reply may hide a change on VICIdial's side.
#[derive(Clone, Copy)]
struct Call {
    function: &'static str,
    mutating: bool,
    /// A person waits on it: [`NonAgentApiOptions::interactive_timeout`].
    interactive: bool,
}

impl Call {
    fn timeout(self, options: &NonAgentApiOptions) -> Duration {
        if self.interactive { options.interactive_timeout } else { options.timeout }
    }
}

impl NonAgentApi {
    pub fn new(
        base_url: &str,
        secrets: Arc<dyn SecretStore>,
        options: NonAgentApiOptions,
    ) -> Result<NonAgentApi, NonAgentApiError> {
        let base = base_url.trim().trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() <= "https://".len() {
            return Err(NonAgentApiError::InvalidBaseUrl(base_url.to_owned()));
        }
        let http = vicibridge_http::client_builder()
            .connect_timeout(options.connect_timeout)
            // A redirected POST comes back as a GET without its body: report it instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| NonAgentApiError::Client(e.to_string()))?;
        Ok(NonAgentApi {
            endpoint: format!("{base}{ENDPOINT_PATH}"),
            http,
            secrets,
            limiter: RateLimiter::per_second(options.requests_per_second),
            hold: Mutex::new(None),
            verified: Mutex::new(None),
            probe: tokio::sync::Mutex::new(()),
            options,
        })
    }

    /// `{base_url}/vicidial/non_agent_api.php`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn credentials(&self, refresh: bool) -> Result<Credentials, DialerError> {
        let doc = if refresh { self.secrets.refresh().await } else { self.secrets.current().await };
        let doc = doc.map_err(|e| match e {
            SecretsError::Unavailable(m) => DialerError::Retryable { reason: format!("VICIdial credentials: {m}") },
            SecretsError::Invalid(m) => DialerError::Integration { reason: format!("VICIdial credentials: {m}") },
        })?;
        let v = doc.vicidial.as_ref().ok_or_else(|| DialerError::Integration {
            reason: "the secret has no \"vicidial\" section (api_user, api_pass)".to_owned(),
        })?;
        Ok(Credentials { user: v.api_user.clone(), pass: v.api_pass.clone() })
    }

    fn held(&self, creds: &Credentials) -> Option<DialerError> {
        let hold = self.hold.lock().unwrap_or_else(PoisonError::into_inner);
        let h = hold.as_ref()?;
        let matches = h.user == creds.user && h.pass.as_ref().is_none_or(|p| *p == creds.pass);
        (matches && Instant::now() < h.until).then(|| DialerError::Integration {
            reason: format!(
                "not sent to VICIdial: it refused these credentials {}s ago and retrying extends its lockout; fix the \
                 secret (a changed secret is used at once) [{}]",
                h.since.elapsed().as_secs(),
                h.reason
            ),
        })
    }

    fn set_hold(&self, user: &str, pass: Option<&Secret>, duration: Duration, reason: &str) {
        *self.hold.lock().unwrap_or_else(PoisonError::into_inner) = Some(Hold {
            user: user.to_owned(),
            pass: pass.cloned(),
            since: Instant::now(),
            until: Instant::now() + duration,
            reason: reason.to_owned(),
        });
    }

    /// Counts a login or permission refusal and holds the credentials that caused it.
    fn note_auth<T>(&self, call: Call, creds: &Credentials, c: &Classified<T>) {
        let Some(kind) = c.auth else { return };
        metrics::counter!(DIALER_AUTH_FAILURES, "function" => call.function, "kind" => kind.as_str()).increment(1);
        let reason = match &c.result {
            Err(e) => e.to_string(),
            Ok(_) => String::new(),
        };
        match kind {
            AuthFailure::BadLogin => {
                self.set_hold(&creds.user, Some(&creds.pass), self.options.login_failure_hold, &reason);
            }
            AuthFailure::Locked => self.set_hold(&creds.user, None, self.options.lock_hold, &reason),
            AuthFailure::NotPermitted => {}
        }
    }

    /// One HTTP exchange, after waiting for a rate-limit slot.
    async fn attempt<T>(
        &self,
        call: Call,
        creds: &Credentials,
        params: &[(String, String)],
        classify: &(dyn Fn(u16, &str, &Redactor) -> Classified<T> + Sync),
    ) -> Classified<T> {
        self.limiter.acquire().await;
        let redactor = Redactor::for_password(creds.pass.expose());
        let mut body = format!(
            "function={}&user={}&pass={}",
            call.function,
            utf8_percent_encode(&creds.user, FORM),
            utf8_percent_encode(creds.pass.expose(), FORM)
        );
        for (k, v) in params {
            body.push('&');
            body.extend(utf8_percent_encode(k, FORM));
            body.push('=');
            body.extend(utf8_percent_encode(v, FORM));
        }
        body.push('&');
        body.push_str(TRAILER.0);
        body.push('=');
        body.push_str(TRAILER.1);
        let started = Instant::now();
        let sent = self
            .http
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .timeout(call.timeout(&self.options))
            .send()
            .await;
        let classified = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                match read_limited(response).await {
                    Ok(text) => classify(status, &text, &redactor),
                    Err(e) => self.transport_failure(call, &e, &redactor),
                }
            }
            Err(e) => self.transport_failure(call, &e, &redactor),
        };
        metrics::histogram!(DIALER_LATENCY_MS, "function" => call.function)
            .record(started.elapsed().as_secs_f64() * 1000.0);
        classified
    }

    /// A refused or failed connection never reached VICIdial: retry. Anything later (timeout,
    /// reset, truncated reply) may follow an insert (§13.1): unknown for add_lead.
    fn transport_failure<T>(&self, call: Call, e: &reqwest::Error, redactor: &Redactor) -> Classified<T> {
        let detail = redactor.redact(&error_chain(e));
        let f = call.function;
        let (reason, code, sent) = if e.is_connect() {
            (format!("cannot connect to VICIdial at {}: {detail}", self.endpoint), "connect", false)
        } else if e.is_timeout() {
            let secs = call.timeout(&self.options).as_secs_f64();
            (format!("VICIdial {f} did not answer within {secs}s (the request was sent): {detail}"), "timeout", true)
        } else {
            (format!("VICIdial {f}: connection lost after the request was sent: {detail}"), "connection_lost", true)
        };
        let error = if sent && call.mutating {
            DialerError::Unknown { reason: format!("{reason}; the lead may have been added") }
        } else {
            DialerError::Retryable { reason }
        };
        Classified { result: Err(error), code, auth: None }
    }

    /// Credentials, hold check, the call, and on `Login incorrect` one retry if the secret
    /// changed meanwhile (someone may just have fixed it) — never a second try with the same
    /// password.
    async fn execute<T>(
        &self,
        call: Call,
        params: &[(String, String)],
        classify: &(dyn Fn(u16, &str, &Redactor) -> Classified<T> + Sync),
    ) -> Classified<T> {
        let creds = match self.credentials(false).await {
            Ok(c) => c,
            Err(e) => return Classified { result: Err(e), code: "credentials", auth: None },
        };
        let verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner).as_ref() == Some(&creds);
        let _probe = if verified {
            None
        } else {
            match tokio::time::timeout(call.timeout(&self.options), self.probe.lock()).await {
                Ok(guard) => Some(guard),
                Err(_) => {
                    let reason = "another call is still checking the VICIdial login: retry".to_owned();
                    return Classified {
                        result: Err(DialerError::Retryable { reason }),
                        code: "login_probe",
                        auth: None,
                    };
                }
            }
        };
        // Checked once the probe is ours: the call before may just have been refused.
        if let Some(e) = self.held(&creds) {
            return Classified { result: Err(e), code: "login_held", auth: None };
        }
        let mut c = self.attempt(call, &creds, params, classify).await;
        let mut used = creds;
        if c.auth == Some(AuthFailure::BadLogin)
            && let Ok(fresh) = self.credentials(true).await
            && fresh != used
        {
            tracing::info!(
                function = call.function,
                "VICIdial refused the login; the secret changed since: retrying once"
            );
            metrics::counter!(DIALER_AUTH_FAILURES, "function" => call.function, "kind" => AuthFailure::BadLogin.as_str())
                .increment(1);
            c = self.attempt(call, &fresh, params, classify).await;
            used = fresh;
        }
        if c.auth == Some(AuthFailure::BadLogin)
            && !password_survives_filter(used.pass.expose())
            && let Err(DialerError::Permanent { reason, .. }) = &mut c.result
        {
            reason.push_str(
                "; note: VICIdial deletes every character other than letters, digits, '-' and '_' from the password \
                 it receives, and vicidial.api_pass has others: give the API user such a password",
            );
        }
        self.note_auth(call, &used, &c);
        // A refused login is a condition of the whole integration, not of this lead: the
        // worker pauses (vicibridge_runtime::breaker) and the lead waits on the queue.
        if c.auth.is_some()
            && let Err(DialerError::Permanent { reason, .. }) = &mut c.result
        {
            c.result = Err(DialerError::Integration { reason: std::mem::take(reason) });
        }
        let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if c.result.is_ok() {
            *verified = Some(used);
        } else if matches!(c.auth, Some(AuthFailure::BadLogin | AuthFailure::Locked)) {
            *verified = None;
        }
        c
    }
}

fn password_survives_filter(pass: &str) -> bool {
    pass.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The error and its sources on one line: reqwest's own message hides the cause.
fn error_chain(e: &reqwest::Error) -> String {
    vicibridge_core::error_chain(e)
}

async fn read_limited(mut response: reqwest::Response) -> Result<String, reqwest::Error> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_REPLY_BYTES.saturating_sub(bytes.len());
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if bytes.len() >= MAX_REPLY_BYTES {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn result_label<T>(result: &Result<T, DialerError>, ok: impl Fn(&T) -> &'static str) -> &'static str {
    match result {
        Ok(v) => ok(v),
        Err(DialerError::Retryable { .. }) => "retryable",
        Err(DialerError::Unknown { .. }) => "unknown",
        Err(DialerError::Permanent { .. }) => "permanent",
        Err(DialerError::Integration { .. }) => "login_refused",
    }
}

fn record<T>(function: &'static str, c: &Classified<T>, ok: impl Fn(&T) -> &'static str) {
    let result = result_label(&c.result, ok);
    metrics::counter!(DIALER_REQUESTS, "function" => function, "result" => result, "reason" => c.code).increment(1);
    match &c.result {
        Ok(_) => tracing::info!(function, result, code = c.code, "VICIdial call done"),
        // ERROR once per outage is the worker's circuit breaker's.
        Err(e @ DialerError::Integration { .. }) => {
            tracing::warn!(function, result, code = c.code, error = %e, "VICIdial refused the API login");
        }
        Err(e @ DialerError::Permanent { alert: true, .. }) => {
            tracing::error!(function, result, code = c.code, error = %e, "VICIdial call refused: operator action needed");
        }
        Err(e) => tracing::warn!(function, result, code = c.code, error = %e, "VICIdial call failed"),
    }
}

#[async_trait]
impl Dialer for NonAgentApi {
    async fn add_lead(&self, request: &AddLeadRequest) -> Result<AddLeadOutcome, DialerError> {
        const CALL: Call = Call { function: "add_lead", mutating: true, interactive: false };
        let c = match add_lead_params(request) {
            Ok(params) => self.execute(CALL, &params, &classify_add_lead).await,
            Err(e) => Classified { result: Err(e), code: "invalid_request", auth: None },
        };
        record(CALL.function, &c, |o| match o {
            AddLeadOutcome::Added { .. } => "added",
            AddLeadOutcome::AlreadyExists { .. } => "already_exists",
        });
        match &c.result {
            Ok(AddLeadOutcome::Added { lead_id, .. }) => {
                tracing::info!(lead_id = %lead_id, vendor_lead_code = %request.vendor_lead_code, "add_lead: lead added");
            }
            // Nothing was added: VICIdial's duplicate_check matched an existing lead.
            Ok(AddLeadOutcome::AlreadyExists { lead_id, how }) => tracing::info!(
                lead_id = %lead_id,
                vendor_lead_code = %request.vendor_lead_code,
                how = %how,
                "add_lead: not added, VICIdial already has a matching lead"
            ),
            Err(_) => {}
        }
        c.result
    }

    async fn find_by_vendor_lead_code(&self, code: &str) -> Result<Option<LeadId>, DialerError> {
        const CALL: Call = Call { function: "lead_search", mutating: false, interactive: false };
        let c = match normalize::vendor_lead_code(code) {
            Ok(code) => {
                // lead_search refuses a request without a `source` like add_lead does.
                let params = vec![
                    ("source".to_owned(), LEAD_SEARCH_SOURCE.to_owned()),
                    ("search_method".to_owned(), "VENDOR_LEAD_CODE".to_owned()),
                    ("vendor_lead_code".to_owned(), code.clone()),
                ];
                let classify =
                    move |status: u16, body: &str, r: &Redactor| classify_lead_search(status, body, &code, r);
                self.execute(CALL, &params, &classify).await
            }
            Err(e) => Classified { result: Err(e), code: "invalid_request", auth: None },
        };
        record(CALL.function, &c, |found| if found.is_some() { "found" } else { "not_found" });
        c.result
    }
}

#[async_trait]
impl AgentDirectory for NonAgentApi {
    async fn agent_status(&self, user: &AgentUser) -> Result<AgentPresence, DialerError> {
        const CALL: Call = Call { function: "agent_status", mutating: false, interactive: true };
        // stage=tab: the default pipe collides with names like "Ann | Sales" (agent_status.rs).
        let params = vec![
            ("source".to_owned(), LEAD_SEARCH_SOURCE.to_owned()),
            ("agent_user".to_owned(), user.as_str().to_owned()),
            ("stage".to_owned(), "tab".to_owned()),
        ];
        let c = self.execute(CALL, &params, &classify_agent_status).await;
        record(CALL.function, &c, AgentPresence::label);
        c.result
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use vicibridge_core::secrets::SecretDoc;

    use super::*;

    struct FixedSecrets(Arc<SecretDoc>);

    #[async_trait]
    impl SecretStore for FixedSecrets {
        async fn current(&self) -> Result<Arc<SecretDoc>, SecretsError> {
            Ok(self.0.clone())
        }
        async fn refresh(&self) -> Result<Arc<SecretDoc>, SecretsError> {
            Ok(self.0.clone())
        }
    }

    fn secrets(pass: &str) -> Arc<dyn SecretStore> {
        let json = format!(r#"{{"vicidial":{{"api_user":"6666","api_pass":"{pass}"}}}}"#);
        Arc::new(FixedSecrets(Arc::new(SecretDoc::from_json(&json).unwrap())))
    }

    /// Answers each connection with the next canned `(status, body)`.
    async fn canned(replies: Vec<(u16, &'static str)>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for (status, body) in replies {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                // Head, then the body by Content-Length.
                loop {
                    let n = s.read(&mut buf).await.unwrap();
                    seen.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&seen).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if seen.len() >= end + 4 + len || n == 0 {
                            break;
                        }
                    }
                }
                let head =
                    format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                s.write_all(head.as_bytes()).await.unwrap();
                s.write_all(body.as_bytes()).await.unwrap();
            }
        });
        format!("http://{addr}")
    }

    fn request() -> AddLeadRequest {
        AddLeadRequest {
            phone_code: "1".into(),
            phone_number: "7275558888".into(),
            list_id: "999".into(),
            vendor_lead_code: "CRM-1".into(),
            source: "vicibridge".into(),
            duplicate_check: None,
            fields: Default::default(),
        }
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Metrics and log lines of a bad login (whose reply echoes the password) and of a success.
    #[test]
    fn metrics_and_logs_never_carry_the_password() {
        const PASS: &str = "Hunter2secret";
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let logs = Buffer::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt().json().with_writer(move || writer.clone()).finish();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        tracing::subscriber::with_default(subscriber, || {
            metrics::with_local_recorder(&recorder, || {
                rt.block_on(async {
                    let url = canned(vec![
                        (200, "ERROR: Login incorrect, please try again: |6666|Hunter2secret|BAD|\n"),
                        (200, "SUCCESS: add_lead LEAD HAS BEEN ADDED - 7275558888|999|9|-5.00|6666\n"),
                    ])
                    .await;
                    let api = NonAgentApi::new(&url, secrets(PASS), NonAgentApiOptions::default()).unwrap();
                    let err = api.add_lead(&request()).await.unwrap_err();
                    assert!(!err.to_string().contains(PASS), "{err}");
                    // A second client: the first one holds the refused credentials.
                    let api = NonAgentApi::new(&url, secrets(PASS), NonAgentApiOptions::default()).unwrap();
                    assert_eq!(api.add_lead(&request()).await.unwrap().lead_id().get(), 9);
                })
            })
        });
        let snapshot = snapshotter.snapshot().into_vec();
        let rendered = format!("{snapshot:?}");
        assert!(!rendered.contains(PASS));
        let counter = |name: &str, labels: &[(&str, &str)]| -> u64 {
            snapshot
                .iter()
                .filter(|(k, _, _, _)| {
                    k.key().name() == name
                        && labels.iter().all(|(l, v)| k.key().labels().any(|x| x.key() == *l && x.value() == *v))
                })
                .map(|(_, _, _, v)| match v {
                    DebugValue::Counter(c) => *c,
                    _ => 0,
                })
                .sum()
        };
        assert_eq!(
            counter(
                DIALER_REQUESTS,
                &[("function", "add_lead"), ("result", "login_refused"), ("reason", "login_incorrect")]
            ),
            1
        );
        assert_eq!(counter(DIALER_REQUESTS, &[("function", "add_lead"), ("result", "added"), ("reason", "added")]), 1);
        assert_eq!(counter(DIALER_AUTH_FAILURES, &[("kind", "bad_login")]), 1);
        let latencies: usize = snapshot
            .iter()
            .filter(|(k, _, _, _)| k.key().name() == DIALER_LATENCY_MS)
            .map(|(_, _, _, v)| match v {
                DebugValue::Histogram(h) => h.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(latencies, 2);
        let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert!(logs.contains("login_incorrect") && logs.contains("[redacted]"), "{logs}");
        assert!(!logs.contains(PASS), "{logs}");
    }

    #[test]
    fn holds_match_the_refused_credentials_and_expire() {
        let api = NonAgentApi::new("http://127.0.0.1:9", secrets("x"), NonAgentApiOptions::default()).unwrap();
        let creds = |user: &str, pass: &str| Credentials { user: user.into(), pass: Secret::new(pass) };
        api.set_hold("6666", Some(&Secret::new("bad")), Duration::from_secs(300), "refused");
        assert!(matches!(api.held(&creds("6666", "bad")), Some(DialerError::Integration { .. })));
        assert!(api.held(&creds("6666", "fixed")).is_none());
        assert!(api.held(&creds("7777", "bad")).is_none());
        // A lock holds the user whatever the password.
        api.set_hold("6666", None, Duration::from_secs(900), "locked");
        assert!(api.held(&creds("6666", "fixed")).is_some());
        assert!(api.held(&creds("7777", "fixed")).is_none());
        api.set_hold("6666", None, Duration::ZERO, "expired");
        assert!(api.held(&creds("6666", "fixed")).is_none());
    }

    #[test]
    fn endpoint_and_base_url_checks() {
        let s = secrets("x");
        let api = NonAgentApi::new("https://dialer.example.com/", s.clone(), NonAgentApiOptions::default()).unwrap();
        assert_eq!(api.endpoint(), "https://dialer.example.com/vicidial/non_agent_api.php");
        for bad in ["dialer.example.com", "ftp://x", "https://", ""] {
            assert!(NonAgentApi::new(bad, s.clone(), NonAgentApiOptions::default()).is_err(), "{bad}");
        }
    }

    #[test]
    fn form_encoding_never_sends_a_raw_quote_or_plus() {
        let encoded = utf8_percent_encode("O'Brien a+b&c=d é", FORM).to_string();
        assert_eq!(encoded, "O%27Brien%20a%2Bb%26c%3Dd%20%C3%A9");
    }

    #[test]
    fn password_filter_hint() {
        assert!(password_survives_filter("Abc-123_x"));
        assert!(!password_survives_filter("12&34"));
    }
}

//! Click-to-call: the dialer pages (`GET /dialer/hubspot`, `/dialer/salesforce`, `/dialer`),
//! agent sign-in (`GET /agent/oauth/{crm}/start|callback`), the dial API (`POST /agent/dial`) and
//! the agent's call state (`GET /agent/state`, followed by the HubSpot widget).
//! One framework-neutral handler; `serve` and the `click-to-call` Lambda only translate types.
//! Facts: `shared/reference/crm-ui-and-backfill.md` §A, `vicidial.md` §9.

pub mod call_state;
pub mod dial;
pub mod oauth;
pub mod pages;
pub mod session;
pub mod setup;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, timeout_at};
use tracing::{info, warn};
use vicibridge_core::agent::{AgentDirectory, AgentUser};
use vicibridge_core::config::{AgentMapping, Agents, ClickToCallConfig, Config, CrmUserKind};
use vicibridge_core::phone::parse_region;
use vicibridge_core::ports::SecretStore;
use vicibridge_vicidial::agent_api::{AgentApi, AgentApiError, AgentApiOptions, AgentRef, DialRefusal};

use crate::budget::AGENT_REQUEST;

use self::call_state::{CallState, StateAnswer};
use self::dial::{DialAnswer, DialRequest, RateLimit};
use self::pages::Surface;
use self::session::{AgentSession, SessionError};

/// Largest dial request body.
pub const MAX_BODY_BYTES: usize = 4096;
const COOKIE: &str = "vicibridge_sign_in";

/// One request to the click-to-call surface.
#[derive(Debug)]
pub struct AgentRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl AgentResponse {
    fn new(status: u16, content_type: &str, body: String, mut headers: Vec<(&'static str, String)>) -> Self {
        headers.push(("content-type", content_type.to_owned()));
        AgentResponse { status, headers, body }
    }

    fn json(answer: &DialAnswer) -> Self {
        let body = serde_json::to_string(answer).unwrap_or_else(|_| "{\"ok\":false}".into());
        let headers = vec![("cache-control", "no-store".to_owned()), ("referrer-policy", "no-referrer".to_owned())];
        AgentResponse::new(answer.status, "application/json", body, headers)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClickToCallError {
    #[error(transparent)]
    AgentApi(#[from] AgentApiError),
    #[error(transparent)]
    NonAgentApi(#[from] vicibridge_vicidial::non_agent_api::NonAgentApiError),
    #[error("click_to_call.default_country: {0}")]
    Region(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// The handler with VICIdial's non-agent API as the agent directory (`agent_status`); `None`
/// without `[click_to_call]`.
pub fn build_click_to_call(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
) -> Result<Option<ClickToCall>, ClickToCallError> {
    if config.click_to_call.is_none() {
        return Ok(None);
    }
    let directory = vicibridge_vicidial::non_agent_api::NonAgentApi::new(
        &config.vicidial.base_url,
        secrets.clone(),
        vicibridge_vicidial::non_agent_api::NonAgentApiOptions::default(),
    )?;
    ClickToCall::from_config(config, secrets, Arc::new(directory))
}

pub struct ClickToCall {
    config: ClickToCallConfig,
    agents: Agents,
    secrets: Arc<dyn SecretStore>,
    directory: Arc<dyn AgentDirectory>,
    agent_api: AgentApi,
    http: reqwest::Client,
    limit: RateLimit,
    polls: RateLimit,
    region: phonenumber::country::Id,
    budget: Duration,
}

impl std::fmt::Debug for ClickToCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickToCall").field("public_base_url", &self.config.public_base_url).finish_non_exhaustive()
    }
}

fn path_and(crm: &str) -> Option<CrmUserKind> {
    match crm {
        "hubspot" => Some(CrmUserKind::Hubspot),
        "salesforce" => Some(CrmUserKind::Salesforce),
        _ => None,
    }
}

impl ClickToCall {
    /// `None` when the config has no `[click_to_call]`.
    pub fn from_config(
        config: &Config,
        secrets: Arc<dyn SecretStore>,
        directory: Arc<dyn AgentDirectory>,
    ) -> Result<Option<ClickToCall>, ClickToCallError> {
        let Some(c) = &config.click_to_call else { return Ok(None) };
        let region = parse_region(&c.default_country).map_err(|e| ClickToCallError::Region(e.to_string()))?;
        let agent_api = AgentApi::new(&config.vicidial.base_url, secrets.clone(), AgentApiOptions::default())?;
        let http = vicibridge_http::client_builder()
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClickToCallError::Client(e.to_string()))?;
        Ok(Some(ClickToCall {
            config: c.clone(),
            agents: config.agents.clone(),
            secrets,
            directory,
            agent_api,
            http,
            limit: RateLimit::new(c.dials_per_minute),
            polls: RateLimit::new(call_state::POLLS_PER_MINUTE),
            region,
            budget: AGENT_REQUEST.default,
        }))
    }

    /// The time one request (a dial, a sign-in) may take; each outside call is cut at its end
    /// and the agent told what happened. See [`crate::budget`].
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    pub async fn handle(&self, req: AgentRequest<'_>) -> AgentResponse {
        let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
        match (req.method, segments.as_slice()) {
            ("POST", ["agent", "dial"]) => self.dial(&req).await,
            ("GET", ["agent", "state"]) => self.state(&req).await,
            ("GET", ["dialer"]) => self.page(Surface::Plain),
            ("GET", ["dialer", "hubspot"]) => self.page(Surface::Hubspot),
            ("GET", ["dialer", "salesforce"]) => self.page(Surface::Salesforce),
            ("GET", ["dialer", "widget.js"]) => asset("text/javascript; charset=utf-8", pages::WIDGET_JS),
            ("GET", ["dialer", "widget.css"]) => asset("text/css; charset=utf-8", pages::WIDGET_CSS),
            ("GET", ["agent", "oauth", crm, "start"]) if path_and(crm).is_some() => {
                self.sign_in_start(path_and(crm).unwrap_or(CrmUserKind::Hubspot)).await
            }
            ("GET", ["agent", "oauth", crm, "callback"]) if path_and(crm).is_some() => {
                self.sign_in_callback(path_and(crm).unwrap_or(CrmUserKind::Hubspot), &req).await
            }
            _ => AgentResponse::new(404, "text/plain; charset=utf-8", "no such route".into(), Vec::new()),
        }
    }

    fn sign_in_crms(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.config.hubspot.is_some() {
            out.push("hubspot");
        }
        if self.config.salesforce.is_some() {
            out.push("salesforce");
        }
        out
    }

    fn page(&self, surface: Surface) -> AgentResponse {
        let html = |status, body, headers| AgentResponse::new(status, "text/html; charset=utf-8", body, headers);
        match surface {
            Surface::Hubspot => {
                let Some(h) = &self.config.hubspot else {
                    return html(
                        404,
                        pages::problem("HubSpot dialer not set up", "[click_to_call.hubspot] is missing."),
                        pages::headers(&[], None),
                    );
                };
                let headers = pages::headers(&h.frame_ancestors, pages::origin_of(&h.sdk_url).as_deref());
                html(200, pages::widget(surface, Some((&h.sdk_url, Some(&h.sdk_integrity))), &["hubspot"]), headers)
            }
            Surface::Salesforce => {
                let Some(s) = &self.config.salesforce else {
                    return html(
                        404,
                        pages::problem("Salesforce softphone not set up", "[click_to_call.salesforce] is missing."),
                        pages::headers(&[], None),
                    );
                };
                let opencti = s.opencti_url();
                let headers = pages::headers(&s.frame_ancestors(), pages::origin_of(&opencti).as_deref());
                html(200, pages::widget(surface, Some((&opencti, None)), &["salesforce"]), headers)
            }
            Surface::Plain => html(
                200,
                pages::widget(surface, None, &self.sign_in_crms()),
                pages::headers(&self.config.frame_ancestors, None),
            ),
        }
    }

    fn redirect_uri(&self, crm: CrmUserKind) -> String {
        format!("{}/agent/oauth/{}/callback", self.config.public_base_url, crm.as_str())
    }

    fn problem(&self, status: u16, title: &str, message: &str) -> AgentResponse {
        AgentResponse::new(
            status,
            "text/html; charset=utf-8",
            pages::problem(title, message),
            pages::headers(&[], None),
        )
    }

    async fn sign_in_start(&self, crm: CrmUserKind) -> AgentResponse {
        let doc = match self.secrets.current().await {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "cannot read secrets for a sign-in");
                return self.problem(
                    503,
                    "Sign-in unavailable",
                    "vicibridge cannot read its secrets. Try again in a moment.",
                );
            }
        };
        let started = session::new_state(&doc.agent_session_keys, crm)
            .and_then(|(state, nonce)| Ok((session::pkce_verifier(&doc.agent_session_keys, &nonce)?, state, nonce)));
        let (verifier, state, nonce) = match started {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "agent sign-in impossible");
                return self.problem(
                    500,
                    "Sign-in is not set up",
                    "Ask your admin: vicibridge has no agent session key.",
                );
            }
        };
        let challenge = session::pkce_challenge(&verifier);
        let redirect = self.redirect_uri(crm);
        let location = match (crm, &self.config.hubspot, &self.config.salesforce) {
            (CrmUserKind::Hubspot, Some(h), _) => oauth::hubspot_authorize_url(h, &redirect, &state, &challenge),
            (CrmUserKind::Salesforce, _, Some(s)) => oauth::salesforce_authorize_url(s, &redirect, &state, &challenge),
            _ => return self.problem(404, "Sign-in not set up", "This CRM is not configured for click-to-call."),
        };
        let secure = if self.config.public_base_url.starts_with("https://") { "; Secure" } else { "" };
        let cookie = format!(
            "{COOKIE}={nonce}; Path=/agent/oauth; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            session::STATE_LIFETIME.as_secs()
        );
        let mut headers = pages::headers(&[], None);
        headers.push(("location", location));
        headers.push(("set-cookie", cookie));
        AgentResponse::new(302, "text/plain; charset=utf-8", "Signing in…".into(), headers)
    }

    async fn sign_in_callback(&self, crm: CrmUserKind, req: &AgentRequest<'_>) -> AgentResponse {
        let deadline = Instant::now() + self.budget;
        let params: std::collections::HashMap<String, String> =
            form_urlencoded::parse(req.query.unwrap_or("").as_bytes()).into_owned().collect();
        let cookie_nonce = req
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .map(|(_, v)| v.to_owned());
        if let Some(error) = params.get("error") {
            info!(crm = crm.as_str(), error = %error, "agent sign-in cancelled or refused by the CRM");
            return self.problem(
                401,
                "Sign-in cancelled",
                "The CRM did not sign you in. Close this window and try again.",
            );
        }
        let (Some(code), Some(state)) = (params.get("code"), params.get("state")) else {
            return self.problem(
                400,
                "Sign-in failed",
                "The CRM's answer has no code. Close this window and try again.",
            );
        };
        let doc = match timeout_at(deadline, self.secrets.current()).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                warn!(error = %e, "cannot read secrets for a sign-in");
                return self.problem(
                    503,
                    "Sign-in unavailable",
                    "vicibridge cannot read its secrets. Try again in a moment.",
                );
            }
            Err(_) => return self.sign_in_timed_out(crm, "reading the secret"),
        };
        let keys = &doc.agent_session_keys;
        let nonce = match session::check_state(keys, state, crm, cookie_nonce.as_deref()) {
            Ok(n) => n,
            Err(e) => {
                warn!(crm = crm.as_str(), error = %e, "agent sign-in with a bad state or without its cookie");
                return self.problem(
                    400,
                    "Sign-in expired",
                    "This sign-in was started elsewhere or too long ago. Close this window and sign in again.",
                );
            }
        };
        let verifier = match session::pkce_verifier(keys, &nonce) {
            Ok(v) => v,
            Err(_) => {
                return self.problem(
                    500,
                    "Sign-in is not set up",
                    "Ask your admin: vicibridge has no agent session key.",
                );
            }
        };
        let redirect = self.redirect_uri(crm);
        let user = match (crm, &self.config.hubspot, &self.config.salesforce) {
            (CrmUserKind::Hubspot, Some(h), _) => {
                timeout_at(deadline, oauth::hubspot_user(&self.http, h, &doc, code, &redirect, &verifier)).await
            }
            (CrmUserKind::Salesforce, _, Some(s)) => {
                timeout_at(deadline, oauth::salesforce_user(&self.http, s, &doc, code, &redirect, &verifier)).await
            }
            _ => return self.problem(404, "Sign-in not set up", "This CRM is not configured for click-to-call."),
        };
        let user = match user {
            Ok(Ok(u)) => u,
            Err(_) => return self.sign_in_timed_out(crm, "asking the CRM who signed in"),
            Ok(Err(e)) => {
                warn!(crm = crm.as_str(), error = %e, "agent sign-in failed");
                let msg = match e {
                    oauth::OAuthError::Unavailable(_) => "The CRM did not answer. Try again in a moment.",
                    _ => "The CRM refused the sign-in. Ask your admin (the details are in vicibridge's log).",
                };
                return self.problem(502, "Sign-in failed", msg);
            }
        };
        let mapped = self.agents.vicidial_user(crm, &user.user_id).map(str::to_owned);
        let alt = (mapped.is_none() && self.config.agent_mapping == AgentMapping::AltUser)
            .then(|| user.user_id.chars().filter(char::is_ascii_alphanumeric).collect::<String>());
        if mapped.is_none() && alt.is_none() {
            info!(crm = crm.as_str(), crm_user = %user.user_id, account = %user.account, "agent sign-in: CRM user not mapped to a VICIdial agent");
            return self.problem(
                403,
                "You are not mapped to a VICIdial agent",
                &format!(
                    "Ask your admin to map your {} user id {} to your VICIdial user ([agents] in vicibridge's configuration).",
                    if crm == CrmUserKind::Hubspot { "HubSpot" } else { "Salesforce" },
                    user.user_id
                ),
            );
        }
        let lifetime = Duration::from_secs(u64::from(self.config.session_hours) * 3600);
        let s = AgentSession::new(mapped.as_deref(), alt, crm, &user.user_id, lifetime);
        let token = match s.sign(keys) {
            Ok(t) => t,
            Err(_) => {
                return self.problem(
                    500,
                    "Sign-in is not set up",
                    "Ask your admin: vicibridge has no agent session key.",
                );
            }
        };
        info!(crm = crm.as_str(), crm_user = %user.user_id, agent = %s.agent_label(), "agent signed in");
        let mut headers = pages::headers(&[], None);
        // The sign-in cookie has done its job.
        headers.push(("set-cookie", format!("{COOKIE}=; Path=/agent/oauth; HttpOnly; SameSite=Lax; Max-Age=0")));
        AgentResponse::new(200, "text/html; charset=utf-8", pages::signed_in(&token, &s.agent_label()), headers)
    }

    fn sign_in_timed_out(&self, crm: CrmUserKind, step: &str) -> AgentResponse {
        warn!(
            crm = crm.as_str(),
            budget_ms = self.budget.as_millis(),
            step,
            "agent sign-in cut at the end of its budget"
        );
        self.problem(
            504,
            "Sign-in took too long",
            "The CRM did not answer in time. Close this window and sign in again.",
        )
    }

    /// The agent's verified session from the `Authorization: Bearer` header.
    async fn signed_in(
        &self,
        req: &AgentRequest<'_>,
        deadline: Instant,
        what: &str,
    ) -> Result<AgentSession, DialAnswer> {
        let bearer = req
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("")
            .trim();
        let doc = match timeout_at(deadline, self.secrets.current()).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                warn!(error = %e, what, "cannot read secrets for an agent request");
                return Err(DialAnswer::refused(503, "unavailable", "vicibridge is not ready. Try again in a moment."));
            }
            Err(_) => {
                warn!(budget_ms = self.budget.as_millis(), what, "secrets not read within the request budget");
                return Err(DialAnswer::refused(503, "unavailable", "vicibridge is not ready. Try again in a moment."));
            }
        };
        AgentSession::verify(&doc.agent_session_keys, bearer).map_err(|e| {
            warn!(error = %e, what, "agent request refused: no valid agent session");
            metrics::counter!(crate::metrics::CLICK_TO_CALL, "result" => "sign_in").increment(1);
            let message = match e {
                SessionError::Expired => "Your session has expired. Sign in again.",
                SessionError::NoKey => "Click-to-call is not set up on the server. Ask your admin.",
                _ => "Sign in to dial.",
            };
            DialAnswer::refused(401, "sign_in", message)
        })
    }

    /// `GET /agent/state`: one `agent_status` for the session's agent, as a [`CallState`].
    async fn state(&self, req: &AgentRequest<'_>) -> AgentResponse {
        let deadline = Instant::now() + self.budget;
        let s = match self.signed_in(req, deadline, "state").await {
            Ok(s) => s,
            Err(refused) => return AgentResponse::json(&refused),
        };
        if !self.polls.allow(&s.agent_label()) {
            return AgentResponse::json(&DialAnswer::refused(429, "rate_limited", "Asking too often."));
        }
        // An alt_user session has no VICIdial user name to ask about (only VICIdial knows it).
        let Ok(user) = s.sub.parse::<AgentUser>() else {
            return AgentResponse::json(&DialAnswer::refused(
                409,
                "unknown_agent",
                "The call state is not available for this sign-in.",
            ));
        };
        let state = match timeout_at(deadline, self.directory.agent_status(&user)).await {
            Ok(Ok(presence)) => CallState::of(&presence),
            Ok(Err(e)) => {
                warn!(agent = %user, error = %e, "agent_status failed for the call state");
                return AgentResponse::json(&DialAnswer::refused(503, "unavailable", "VICIdial did not answer."));
            }
            Err(_) => {
                return AgentResponse::json(&DialAnswer::refused(
                    503,
                    "unavailable",
                    "VICIdial did not answer in time.",
                ));
            }
        };
        let body = serde_json::to_string(&StateAnswer { ok: true, state }).unwrap_or_else(|_| "{\"ok\":false}".into());
        let headers = vec![("cache-control", "no-store".to_owned()), ("referrer-policy", "no-referrer".to_owned())];
        AgentResponse::new(200, "application/json", body, headers)
    }

    async fn dial(&self, req: &AgentRequest<'_>) -> AgentResponse {
        let answer = self.dial_answer(req).await;
        AgentResponse::json(&answer)
    }

    async fn dial_answer(&self, req: &AgentRequest<'_>) -> DialAnswer {
        let deadline = Instant::now() + self.budget;
        let s = match self.signed_in(req, deadline, "dial").await {
            Ok(s) => s,
            Err(refused) => return refused,
        };
        let request: DialRequest = match serde_json::from_slice(req.body) {
            Ok(r) if req.body.len() <= MAX_BODY_BYTES => r,
            _ => {
                return self.audited(
                    &s,
                    "?",
                    None,
                    DialAnswer::refused(400, "bad_request", "The dial request was not understood. Reload the dialer."),
                );
            }
        };
        let record_id = request.record_id.as_deref().filter(|r| !r.is_empty());
        if let Some(r) = record_id
            && !dial::valid_record_id(r)
        {
            return self.audited(
                &s,
                &request.phone,
                None,
                DialAnswer::refused(400, "bad_record", "This record's id cannot be passed to VICIdial."),
            );
        }
        let Some(phone) = dial::dialable(&request, self.region) else {
            return self.audited(
                &s,
                &request.phone,
                record_id,
                DialAnswer::refused(
                    422,
                    "invalid_number",
                    "This phone number cannot be dialled. Check it on the record.",
                ),
            );
        };
        if !self.limit.allow(&s.agent_label()) {
            return self.audited(
                &s,
                &phone.phone_number,
                record_id,
                DialAnswer::refused(429, "rate_limited", "Too many dial attempts. Wait a minute, then try again."),
            );
        }
        let agent = if s.sub.is_empty() {
            AgentRef::AltUser(s.alt_user.clone().unwrap_or_default())
        } else {
            let Ok(user) = s.sub.parse::<AgentUser>() else {
                return DialAnswer::refused(401, "sign_in", "Sign in to dial.");
            };
            // alt_user sessions skip this: the VICIdial user is only known to VICIdial, and
            // external_dial runs the same checks.
            match timeout_at(deadline, dial::precheck(self.directory.as_ref(), &user)).await {
                Ok(Ok(())) => {}
                Ok(Err(refused)) => return self.audited(&s, &phone.phone_number, record_id, refused),
                // Nothing was dialled yet: trying again is safe.
                Err(_) => {
                    let unavailable = dial::refusal(&DialRefusal::Unavailable("agent_status cut by the budget".into()));
                    return self.audited(&s, &phone.phone_number, record_id, unavailable);
                }
            }
            AgentRef::User(s.sub.clone())
        };
        let external_dial = dial::external_dial(agent, &phone, record_id);
        let Ok(dialled) = timeout_at(deadline, self.agent_api.external_dial(&external_dial)).await else {
            warn!(budget_ms = self.budget.as_millis(), "external_dial cut by the dial budget");
            return self.audited(&s, &phone.phone_number, record_id, dial::undecided());
        };
        let answer = match dialled {
            Ok(_) => DialAnswer {
                status: 200,
                ok: true,
                code: "queued",
                message: format!(
                    "VICIdial is dialling +{} {} on your agent screen.",
                    phone.phone_code, phone.phone_number
                ),
                dial_id: Some(format!("vb-{:016x}", fastrand::u64(..))),
            },
            Err(r) => {
                if matches!(r, vicibridge_vicidial::agent_api::DialRefusal::Setup(_)) {
                    tracing::error!(error = %r, "external_dial refused: operator action needed");
                }
                dial::refusal(&r)
            }
        };
        self.audited(&s, &phone.phone_number, record_id, answer)
    }

    /// One audit line per dial attempt; the number only by its last 4 digits.
    fn audited(&self, s: &AgentSession, number: &str, record_id: Option<&str>, answer: DialAnswer) -> DialAnswer {
        metrics::counter!(crate::metrics::CLICK_TO_CALL, "result" => answer.code).increment(1);
        info!(
            target: "vicibridge::audit",
            agent = %s.agent_label(),
            crm = s.crm.as_str(),
            crm_user = %s.crm_user,
            number = %dial::masked(number),
            record_id = record_id.unwrap_or(""),
            result = answer.code,
            "dial"
        );
        answer
    }
}

fn asset(content_type: &str, body: &str) -> AgentResponse {
    let headers =
        vec![("cache-control", "public, max-age=300".to_owned()), ("x-content-type-options", "nosniff".to_owned())];
    AgentResponse::new(200, content_type, body.to_owned(), headers)
}

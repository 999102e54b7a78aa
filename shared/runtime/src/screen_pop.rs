//! `GET /vicidial/screen-pop`: the page VICIdial's Script `<iframe>` (or Web Form) opens per
//! call. Token (`screen_pop_tokens`, never an ingest token), then VICIdial's word that the agent
//! is on that lead (`agent_status`, cached a few seconds per agent), then the CRM context
//! (cached `[screen_pop] cache_secs`), rendered as plain HTML (`page.rs`). One audit line per
//! pop. Facts: `shared/reference/crm-ui-and-backfill.md` §B.

mod page;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use vicibridge_core::LeadId;
use vicibridge_core::agent::{AgentDirectory, AgentPresence, AgentStatus, AgentUser};
use vicibridge_core::auth::token_matches;
use vicibridge_core::config::Config;
use vicibridge_core::config::screen_pop::ScreenPopConfig;
use vicibridge_core::lead::DialerError;
use vicibridge_core::ports::SecretStore;
use vicibridge_core::screen_pop::{PopError, PopLookup, PopView, ScreenPopSource};
use vicibridge_vicidial::VicidialQuery;
use vicibridge_vicidial::query::MAX_QUERY_BYTES;

pub use page::{Caller, Denial, Page};

/// How long VICIdial's "this agent is on this lead" is reused. Only a positive answer is
/// cached: a pop for a new call always asks again, so it is never refused on a stale answer.
pub const AGENT_STATUS_CACHE: Duration = Duration::from_secs(3);
/// Everything a pop may wait for: VICIdial, then the CRM.
pub const POP_BUDGET: Duration = Duration::from_secs(8);
/// Entries kept in each cache before expired ones are swept.
const SWEEP_AT: usize = 4096;

/// Pops by `decision` (allowed, denied, invalid, unavailable, rate_limited).
pub const SCREEN_POPS: &str = "ScreenPops";

/// An HTTP answer, framework-neutral.
#[derive(Clone, Debug)]
pub struct PopResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

struct Cached<T> {
    at: Instant,
    value: T,
}

pub struct ScreenPop {
    config: ScreenPopConfig,
    csp: String,
    secrets: Arc<dyn SecretStore>,
    agents: Arc<dyn AgentDirectory>,
    source: Arc<dyn ScreenPopSource>,
    on_lead: Mutex<HashMap<AgentUser, Cached<Arc<AgentStatus>>>>,
    contexts: Mutex<HashMap<PopLookup, Cached<PopView>>>,
    pops: Mutex<HashMap<AgentUser, (Instant, u32)>>,
}

impl std::fmt::Debug for ScreenPop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScreenPop").field("crm", &self.source.crm_name()).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why a pop shows no CRM data: the page, the status and a fixed code for the audit line.
struct Refusal {
    status: u16,
    denial: Denial,
    code: &'static str,
}

impl ScreenPop {
    pub fn new(
        config: &Config,
        secrets: Arc<dyn SecretStore>,
        agents: Arc<dyn AgentDirectory>,
        source: Arc<dyn ScreenPopSource>,
    ) -> ScreenPop {
        let ancestors = config.screen_pop.frame_ancestors(&config.vicidial.base_url);
        ScreenPop {
            csp: page::content_security_policy(&ancestors),
            config: config.screen_pop.clone(),
            secrets,
            agents,
            source,
            on_lead: Mutex::new(HashMap::new()),
            contexts: Mutex::new(HashMap::new()),
            pops: Mutex::new(HashMap::new()),
        }
    }

    fn respond(&self, status: u16, body: String) -> PopResponse {
        PopResponse {
            status,
            headers: vec![
                ("content-type", "text/html; charset=utf-8".to_owned()),
                ("content-security-policy", self.csp.clone()),
                // The page URL carries the token: no Referer to the CRM on "Open in …".
                ("referrer-policy", "no-referrer".to_owned()),
                ("cache-control", "no-store".to_owned()),
                ("x-content-type-options", "nosniff".to_owned()),
            ],
            body,
        }
    }

    fn refuse(&self, r: Refusal, agent: Option<&AgentUser>, lead: Option<LeadId>) -> PopResponse {
        audit(agent, lead, None, "denied", r.code);
        self.respond(r.status, Page::Denied(r.denial).render())
    }

    pub async fn handle(&self, query: Option<&str>) -> PopResponse {
        let started = Instant::now();
        let raw = query.unwrap_or("");
        if raw.len() > MAX_QUERY_BYTES {
            return self.refuse(Refusal { status: 414, denial: Denial::BadLink, code: "too_large" }, None, None);
        }
        let q = VicidialQuery::parse(raw);
        let (agent, lead) = match self.authorize_request(&q).await {
            Ok(v) => v,
            Err((r, agent, lead)) => return self.refuse(r, agent.as_ref(), lead),
        };
        if !self.within_rate(&agent) {
            let r = Refusal { status: 429, denial: Denial::TooMany, code: "rate_limited" };
            return self.refuse(r, Some(&agent), Some(lead));
        }
        let session_id = q.get("session_id");
        let caller = if self.config.verify_agent {
            match tokio::time::timeout(POP_BUDGET, self.verified(&agent, lead, session_id)).await {
                Ok(Ok(status)) => Caller::verified(&agent, lead, &status),
                Ok(Err(r)) => return self.refuse(r, Some(&agent), Some(lead)),
                Err(_) => {
                    let r = Refusal { status: 503, denial: Denial::VicidialUnavailable, code: "vicidial_timeout" };
                    return self.refuse(r, Some(&agent), Some(lead));
                }
            }
        } else {
            Caller::from_url(&agent, lead, &q)
        };
        let lookup = self.lookup(lead, &caller);
        let remaining = POP_BUDGET.saturating_sub(started.elapsed());
        let view = match tokio::time::timeout(remaining, self.context(&lookup)).await {
            Ok(Ok(view)) => view,
            Ok(Err(e)) => {
                tracing::warn!(agent = %agent, lead_id = %lead, error = %e, "screen pop: CRM read failed");
                audit(Some(&agent), Some(lead), None, "unavailable", "crm_error");
                return self.unavailable(caller);
            }
            Err(_) => {
                audit(Some(&agent), Some(lead), None, "unavailable", "crm_timeout");
                return self.unavailable(caller);
            }
        };
        let shown = match &view {
            PopView::Record(r) => format!("{}:{}", r.kind, r.id),
            PopView::Choose { candidates, .. } => format!("choose:{}", candidates.len()),
            PopView::NoRecord { .. } => "none".to_owned(),
            PopView::LeadOnly => "lead-only".to_owned(),
        };
        audit(
            Some(&agent),
            Some(lead),
            Some(&shown),
            "allowed",
            if self.config.verify_agent { "on_lead" } else { "unverified" },
        );
        self.respond(200, Page::Pop { caller, view }.render())
    }

    /// The pop of the lead VICIdial would show for a record, rendered as [`ScreenPop::handle`]
    /// renders it once the token and the agent are checked: the CRM read (`[screen_pop]`'s
    /// settings, no cache), then the page. For `vicibridge preflight`'s screen pop line, which
    /// proves the read side on a test record without an agent on a call.
    pub async fn render_for(
        &self,
        agent: &AgentUser,
        lead: LeadId,
        vendor_lead_code: &str,
    ) -> (Result<PopView, PopError>, PopResponse) {
        let q = VicidialQuery::parse(
            &form_urlencoded::Serializer::new(String::new()).append_pair("vendor_lead_code", vendor_lead_code).finish(),
        );
        let caller = Caller::from_url(agent, lead, &q);
        let lookup = self.lookup(lead, &caller);
        match tokio::time::timeout(POP_BUDGET, self.source.context(&lookup)).await {
            Ok(Ok(view)) => {
                let page = self.respond(200, Page::Pop { caller, view: view.clone() }.render());
                (Ok(view), page)
            }
            Ok(Err(e)) => (Err(e), self.unavailable(caller)),
            Err(_) => {
                let page = self.unavailable(caller);
                let reason = format!("no answer within {} s", POP_BUDGET.as_secs());
                (Err(PopError::Unavailable { crm: self.source.crm_name(), reason }), page)
            }
        }
    }

    /// What the CRM is asked for `caller`'s pop.
    fn lookup(&self, lead: LeadId, caller: &Caller) -> PopLookup {
        PopLookup {
            lead_id: lead,
            vendor_lead_code: caller.vendor_lead_code.clone(),
            phone_number: caller.phone_number.clone(),
            phone_code: caller.phone_code.clone(),
            activities: self.config.activities,
        }
    }

    /// The page when the CRM did not answer (503).
    fn unavailable(&self, caller: Caller) -> PopResponse {
        self.respond(503, Page::CrmUnavailable { crm: self.source.crm_name(), caller }.render())
    }

    /// Token, the `pass` guard and the identifiers, before anything is asked of VICIdial.
    async fn authorize_request(
        &self,
        q: &VicidialQuery,
    ) -> Result<(AgentUser, LeadId), (Refusal, Option<AgentUser>, Option<LeadId>)> {
        let bad = |code| (Refusal { status: 400, denial: Denial::BadLink, code }, None, None);
        let doc = self.secrets.current().await.map_err(|e| {
            tracing::error!(error = %e, "screen pop: cannot read the secrets");
            (Refusal { status: 503, denial: Denial::Misconfigured, code: "secrets_unavailable" }, None, None)
        })?;
        let presented = q.token().unwrap_or("");
        if !token_matches(presented, &doc.screen_pop_tokens) {
            if !presented.is_empty() && token_matches(presented, &doc.ingest_tokens) {
                // Someone put the ingest token in the pop template: it is now visible to agents.
                tracing::error!(
                    "screen pop: called with an INGEST token; agents can see this URL: rotate ingest_tokens and use a \
                     screen_pop_tokens value in the Script/Web Form"
                );
            }
            let code = if doc.screen_pop_tokens.is_empty() { "no_screen_pop_tokens" } else { "bad_token" };
            return Err((Refusal { status: 403, denial: Denial::BadToken, code }, None, None));
        }
        if q.dropped_secrets().contains(&"pass") {
            // Scripts get --A--pass--B-- substituted: the agent's password must never be in a URL.
            return Err(bad("pass_in_url"));
        }
        let agent = q.get("user").and_then(|u| u.parse::<AgentUser>().ok()).ok_or_else(|| bad("bad_user"))?;
        let lead = q.get("lead_id").and_then(|l| l.parse::<LeadId>().ok()).filter(|l| l.get() > 0);
        let lead = lead.ok_or_else(|| {
            (Refusal { status: 400, denial: Denial::BadLink, code: "bad_lead_id" }, Some(agent.clone()), None)
        })?;
        if let Some(s) = q.get("session_id")
            && !(s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err((
                Refusal { status: 400, denial: Denial::BadLink, code: "bad_session_id" },
                Some(agent),
                Some(lead),
            ));
        }
        Ok((agent, lead))
    }

    fn within_rate(&self, agent: &AgentUser) -> bool {
        let now = Instant::now();
        let mut pops = lock(&self.pops);
        if pops.len() >= SWEEP_AT {
            pops.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let entry = pops.entry(agent.clone()).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(60) {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= self.config.max_pops_per_minute
    }

    async fn verified(
        &self,
        agent: &AgentUser,
        lead: LeadId,
        session_id: Option<&str>,
    ) -> Result<Arc<AgentStatus>, Refusal> {
        if let Some(c) = lock(&self.on_lead).get(agent)
            && c.at.elapsed() < AGENT_STATUS_CACHE
            && c.value.on_lead(lead, session_id)
        {
            return Ok(c.value.clone());
        }
        let presence = self.agents.agent_status(agent).await.map_err(|e| {
            let alert = matches!(e, DialerError::Permanent { alert: true, .. } | DialerError::Integration { .. });
            if alert {
                tracing::error!(agent = %agent, error = %e, "screen pop: VICIdial agent_status refused: operator action needed");
            } else {
                tracing::warn!(agent = %agent, error = %e, "screen pop: VICIdial agent_status failed");
            }
            let code = if alert { "vicidial_refused" } else { "vicidial_error" };
            Refusal { status: 503, denial: Denial::VicidialUnavailable, code }
        })?;
        let AgentPresence::LoggedIn(status) = presence else {
            return Err(Refusal { status: 403, denial: Denial::NotOnCall, code: "not_logged_in" });
        };
        if !status.on_lead(lead, session_id) {
            let code = if status.lead_id == Some(lead) { "lead_not_active" } else { "other_lead" };
            return Err(Refusal { status: 403, denial: Denial::NotOnCall, code });
        }
        let status: Arc<AgentStatus> = Arc::from(status);
        let mut cache = lock(&self.on_lead);
        if cache.len() >= SWEEP_AT {
            cache.retain(|_, c| c.at.elapsed() < AGENT_STATUS_CACHE);
        }
        cache.insert(agent.clone(), Cached { at: Instant::now(), value: status.clone() });
        Ok(status)
    }

    async fn context(&self, lookup: &PopLookup) -> Result<PopView, PopError> {
        let ttl = Duration::from_secs(u64::from(self.config.cache_secs));
        if let Some(c) = lock(&self.contexts).get(lookup)
            && c.at.elapsed() < ttl
        {
            return Ok(c.value.clone());
        }
        let view = self.source.context(lookup).await?;
        if !ttl.is_zero() {
            let mut cache = lock(&self.contexts);
            if cache.len() >= SWEEP_AT {
                cache.retain(|_, c| c.at.elapsed() < ttl);
            }
            cache.insert(lookup.clone(), Cached { at: Instant::now(), value: view.clone() });
        }
        Ok(view)
    }
}

/// One line per pop: who, which lead, which record, and the decision. Never the token.
fn audit(
    agent: Option<&AgentUser>,
    lead: Option<LeadId>,
    record: Option<&str>,
    decision: &'static str,
    reason: &'static str,
) {
    metrics::counter!(SCREEN_POPS, "decision" => decision, "reason" => reason).increment(1);
    tracing::info!(
        target: "vicibridge::audit",
        event = "screen_pop",
        agent = agent.map(AgentUser::as_str).unwrap_or(""),
        lead_id = lead.map(LeadId::get).unwrap_or(0),
        record = record.unwrap_or(""),
        decision,
        reason,
        "screen pop {decision}"
    );
}

#[derive(Debug, thiserror::Error)]
pub enum ScreenPopSetupError {
    #[error("the screen pop has no read side for crm.kind = \"{0}\": it needs hubspot, salesforce or dry-run")]
    NoReadSide(vicibridge_core::config::CrmKind),
    #[error("cannot set up the CRM read side: {0}")]
    Crm(String),
    #[error(transparent)]
    Dialer(#[from] vicibridge_vicidial::non_agent_api::NonAgentApiError),
}

/// The CRM's read side as configured. Salesforce's `writer` stores a rotated refresh token
/// (as the sync's does; each reader re-reads the secret when the other rotated it).
pub fn pop_source(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    writer: Option<Arc<dyn vicibridge_core::ports::SecretWriter>>,
) -> Result<Arc<dyn ScreenPopSource>, ScreenPopSetupError> {
    use vicibridge_core::config::CrmKind;
    Ok(match config.crm.kind {
        CrmKind::DryRun => Arc::new(vicibridge_core::screen_pop::LeadOnlySource),
        CrmKind::Hubspot => {
            vicibridge_hubspot::pop_source(config, secrets).map_err(|e| ScreenPopSetupError::Crm(e.to_string()))?
        }
        CrmKind::Salesforce => {
            let section = config.salesforce.clone().ok_or(ScreenPopSetupError::NoReadSide(CrmKind::Salesforce))?;
            Arc::new(
                vicibridge_salesforce::SalesforceCrm::new(section, secrets, writer)
                    .map_err(|e| ScreenPopSetupError::Crm(e.to_string()))?,
            )
        }
        kind => return Err(ScreenPopSetupError::NoReadSide(kind)),
    })
}

/// The page as configured: VICIdial's non-agent API for `agent_status` (credentials from the
/// secret's `vicidial` section) and the CRM's read side.
pub fn build_screen_pop(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    writer: Option<Arc<dyn vicibridge_core::ports::SecretWriter>>,
) -> Result<ScreenPop, ScreenPopSetupError> {
    use vicibridge_vicidial::non_agent_api::{NonAgentApi, NonAgentApiOptions};
    let source = pop_source(config, secrets.clone(), writer)?;
    let agents = NonAgentApi::new(&config.vicidial.base_url, secrets.clone(), NonAgentApiOptions::default())?;
    Ok(ScreenPop::new(config, secrets, Arc::new(agents), source))
}

//! The lead-webhook handler behind `POST /hubspot/leads` and `POST /salesforce/leads`:
//! authenticate, parse, enqueue every announced record on the lead-injections queue, and only
//! then answer — for Salesforce, with the exact ACK it waits for.

use std::sync::Arc;

use chrono::Utc;
use http::HeaderMap;
use tracing::{info, warn};
use vicibridge_core::Envelope;
use vicibridge_core::config::Config;
use vicibridge_core::event::{Event, LeadInjection, LeadSource};
use vicibridge_core::ports::{OutgoingMessage, Queue, SecretStore};
use vicibridge_core::secrets::SecretDoc;
use vicibridge_hubspot::webhook::{self as hubspot, ReplayGuard, SignedRequest};
use vicibridge_salesforce::outbound_message::{self as soap, ACK, ACK_CONTENT_TYPE};

use crate::budget::LEAD_WEBHOOK;
use crate::metrics as m;
use crate::retry::QUICK_RETRY_DELAYS;

/// Larger bodies are refused (413). 100 SOAP notifications with a few fields each stay far below.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Header carrying the Flow callout's shared secret (`salesforce.webhook_token`).
pub const SALESFORCE_TOKEN_HEADER: &str = "x-vicibridge-token";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl WebhookResponse {
    fn text(status: u16, body: impl Into<String>) -> Self {
        WebhookResponse { status, content_type: "text/plain; charset=utf-8", body: body.into() }
    }
}

/// One inbound request, framework-neutral.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl WebhookRequest<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The URL the caller used: the configured public base URL, else rebuilt from `Host`
    /// and `X-Forwarded-Proto` (API Gateway and proxies set both), else the scheme the request
    /// really arrived over (`direct_scheme`).
    fn public_uri(&self, public_base_url: Option<&str>, direct_scheme: &str) -> String {
        let base = match public_base_url {
            Some(b) => b.trim_end_matches('/').to_owned(),
            None => {
                // A chain of proxies appends: the first value is the client's.
                let forwarded = self.header("x-forwarded-proto").and_then(|p| p.split(',').next()).map(str::trim);
                let proto = forwarded.filter(|p| !p.is_empty()).unwrap_or(direct_scheme);
                format!("{proto}://{}", self.header("host").unwrap_or(""))
            }
        };
        match self.query {
            Some(q) if !q.is_empty() => format!("{base}{}?{q}", self.path),
            _ => format!("{base}{}", self.path),
        }
    }
}

pub struct LeadWebhook {
    queue: Arc<dyn Queue>,
    secrets: Arc<dyn SecretStore>,
    public_base_url: Option<String>,
    /// The scheme requests arrive over when no proxy says otherwise: `https` on API Gateway,
    /// `http` on `vicibridge serve`.
    direct_scheme: &'static str,
    /// The sources `[lead_injection]` maps; `None`: no `[lead_injection]` section at all.
    configured: Option<Configured>,
    replay: ReplayGuard,
    budget: std::time::Duration,
}

/// Which CRMs `[lead_injection]` has a mapping for. A lead from another one could only be
/// dead-lettered by the worker, so it is refused before it is acknowledged.
#[derive(Debug, Clone, Copy)]
struct Configured {
    hubspot: bool,
    salesforce: bool,
}

impl std::fmt::Debug for LeadWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeadWebhook").field("public_base_url", &self.public_base_url).finish_non_exhaustive()
    }
}

fn rejected(source: LeadSource, status: u16, reason: &str) -> WebhookResponse {
    metrics::counter!(m::WEBHOOK_REJECTED, "source" => source.as_str(), "status" => status.to_string()).increment(1);
    warn!(source = %source, status, reason, "lead webhook rejected");
    WebhookResponse::text(status, format!("rejected: {reason}"))
}

impl LeadWebhook {
    /// `public_base_url`: the URL HubSpot is configured to call, when a proxy or custom
    /// domain changes what the request shows (signature v2/v3 sign the public URL).
    pub fn new(queue: Arc<dyn Queue>, secrets: Arc<dyn SecretStore>, public_base_url: Option<String>) -> Self {
        LeadWebhook {
            queue,
            secrets,
            public_base_url,
            direct_scheme: "https",
            configured: Some(Configured { hubspot: true, salesforce: true }),
            replay: ReplayGuard::default(),
            budget: LEAD_WEBHOOK.default,
        }
    }

    /// As configured: `[lead_injection] public_base_url`, and a 503 for the leads of a CRM that
    /// `[lead_injection]` does not map (or for every lead without that section).
    pub fn from_config(queue: Arc<dyn Queue>, secrets: Arc<dyn SecretStore>, config: &Config) -> Self {
        let li = config.lead_injection.as_ref();
        let mut webhook = LeadWebhook::new(queue, secrets, li.and_then(|l| l.public_base_url.clone()));
        webhook.configured = li.map(|l| Configured {
            hubspot: l.mapping(LeadSource::Hubspot).is_some(),
            salesforce: l.mapping(LeadSource::Salesforce).is_some(),
        });
        webhook
    }

    /// The scheme requests arrive over when neither `public_base_url` nor `X-Forwarded-Proto`
    /// names one: HubSpot signs the URL it called, scheme included.
    pub fn with_direct_scheme(mut self, scheme: &'static str) -> Self {
        self.direct_scheme = scheme;
        self
    }

    /// The most a request may take (secret read and every queue attempt together) before it
    /// is answered 503; see [`crate::budget`].
    pub fn with_budget(mut self, budget: std::time::Duration) -> Self {
        self.budget = budget;
        self
    }

    /// `POST /hubspot/leads` or `POST /salesforce/leads`, answered 503 once the budget is spent.
    pub async fn handle(&self, source: LeadSource, req: WebhookRequest<'_>) -> WebhookResponse {
        let answer = match source {
            LeadSource::Hubspot => tokio::time::timeout(self.budget, self.hubspot(req)).await,
            LeadSource::Salesforce => tokio::time::timeout(self.budget, self.salesforce(req)).await,
        };
        answer.unwrap_or_else(|_| {
            metrics::counter!(m::INGEST_QUEUE_FAILURES, "kind" => "lead-injection").increment(1);
            warn!(source = %source, budget_ms = self.budget.as_millis(), "lead webhook not done within its budget; answered 503");
            WebhookResponse::text(503, "secrets or queue unavailable, not acknowledged: retry")
        })
    }

    /// `POST /hubspot/leads`: a workflow's "Send a webhook" with one contact.
    pub async fn hubspot(&self, req: WebhookRequest<'_>) -> WebhookResponse {
        let source = LeadSource::Hubspot;
        let doc = match self.admit(source, &req).await {
            Ok(doc) => doc,
            Err(refused) => return refused,
        };
        let uri = req.public_uri(self.public_base_url.as_deref(), self.direct_scheme);
        let signed = SignedRequest { method: req.method, uri: &uri, body: req.body, headers: req.headers };
        let verified = match hubspot::verify(&signed, doc.hubspot.as_ref(), Utc::now().timestamp_millis(), &self.replay)
        {
            Ok(v) => v,
            Err(e) => return rejected(source, 401, &e.to_string()),
        };
        let contact = match hubspot::parse_contact(req.body) {
            Ok(c) => c,
            Err(e) => return rejected(source, 400, &e.to_string()),
        };
        let injection = LeadInjection {
            source,
            crm_ref: contact.id,
            object: Some("contact".into()),
            origin: "workflow".into(),
            properties: contact.properties,
        };
        match self.enqueue_all(vec![injection]).await {
            Ok(n) => {
                info!(source = %source, auth = ?verified, queued = n, "lead webhook queued");
                WebhookResponse::text(200, "OK queued 1 lead")
            }
            // HubSpot retries 5xx (and never a 4xx).
            Err(e) => WebhookResponse::text(503, format!("queue unavailable, nothing stored: retry ({e})")),
        }
    }

    /// `POST /salesforce/leads`: an outbound message (SOAP) or a Flow HTTP callout (JSON).
    pub async fn salesforce(&self, req: WebhookRequest<'_>) -> WebhookResponse {
        let source = LeadSource::Salesforce;
        let doc = match self.admit(source, &req).await {
            Ok(doc) => doc,
            Err(refused) => return refused,
        };
        let sf = doc.salesforce.as_ref();
        let is_json = req.header("content-type").is_some_and(|c| c.to_ascii_lowercase().contains("json"));
        let injections = if is_json {
            let expected = sf.and_then(|s| s.webhook_token.as_ref()).filter(|t| !t.expose().is_empty());
            let Some(expected) = expected else {
                return rejected(source, 401, "the secret has no salesforce.webhook_token for Flow callouts");
            };
            let presented = req.header(SALESFORCE_TOKEN_HEADER).unwrap_or("");
            if !vicibridge_core::auth::token_matches(presented, std::slice::from_ref(expected)) {
                return rejected(source, 401, "missing or wrong X-Vicibridge-Token");
            }
            match soap::parse_flow(req.body) {
                Ok(records) => records
                    .into_iter()
                    .map(|r| LeadInjection {
                        source,
                        origin: format!("flow:{}", r.record_id),
                        crm_ref: r.record_id,
                        object: r.object,
                        properties: r.fields,
                    })
                    .collect::<Vec<_>>(),
                Err(e) => return rejected(source, 400, &e.to_string()),
            }
        } else {
            let message = match soap::parse(req.body) {
                Ok(m) => m,
                Err(e) => return rejected(source, 400, &e.to_string()),
            };
            let Some(org) = sf.and_then(|s| s.organization_id.as_deref()) else {
                return rejected(source, 401, "the secret has no salesforce.organization_id to check messages against");
            };
            if !soap::same_org(&message.organization_id, org) {
                return rejected(source, 403, "OrganizationId does not match salesforce.organization_id");
            }
            message
                .notifications
                .into_iter()
                .map(|n| LeadInjection {
                    source,
                    crm_ref: n.record_id,
                    object: n.object,
                    origin: format!("notification:{}", n.id),
                    properties: n.fields,
                })
                .collect()
        };
        let count = injections.len();
        match self.enqueue_all(injections).await {
            Ok(_) if is_json => WebhookResponse::text(200, format!("OK queued {count} lead(s)")),
            Ok(_) => {
                info!(source = %source, queued = count, "outbound message queued; acknowledged");
                WebhookResponse { status: 200, content_type: ACK_CONTENT_TYPE, body: ACK.to_owned() }
            }
            // Not acknowledged: Salesforce redelivers the whole message; the ones already
            // queued are recognised as duplicates downstream.
            Err(e) => WebhookResponse::text(503, format!("queue unavailable, not acknowledged: retry ({e})")),
        }
    }

    /// What both routes check first: that lead injection is configured for the source, the
    /// body's size, then that the secret can be read.
    async fn admit(&self, source: LeadSource, req: &WebhookRequest<'_>) -> Result<Arc<SecretDoc>, WebhookResponse> {
        // 503, not 4xx: both CRMs retry a 5xx (HubSpot for hours, Salesforce for 24 h), so
        // leads sent before the configuration is fixed still arrive.
        let missing = match self.configured {
            None => Some("lead injection is not configured: add a [lead_injection] section"),
            Some(c) if source == LeadSource::Hubspot && !c.hubspot => {
                Some("lead injection is not configured for HubSpot: add [lead_injection.hubspot]")
            }
            Some(c) if source == LeadSource::Salesforce && !c.salesforce => {
                Some("lead injection is not configured for Salesforce: add [lead_injection.salesforce]")
            }
            Some(_) => None,
        };
        if let Some(reason) = missing {
            return Err(rejected(source, 503, reason));
        }
        if req.body.len() > MAX_BODY_BYTES {
            return Err(rejected(source, 413, "body larger than 1 MiB"));
        }
        self.secrets.current().await.map_err(|e| {
            warn!(source = %source, error = %e, "cannot read secrets; answered 503");
            WebhookResponse::text(503, "secrets unavailable: retry")
        })
    }

    /// Every record, or an error: a caller never acknowledges a partly stored batch.
    async fn enqueue_all(&self, injections: Vec<LeadInjection>) -> Result<usize, String> {
        let now = Utc::now();
        let mut tasks = tokio::task::JoinSet::new();
        for injection in injections {
            let envelope = Envelope::new(Event::LeadInjection(injection), now);
            let message = OutgoingMessage { key: envelope.key.to_string(), body: envelope.to_json() };
            let queue = self.queue.clone();
            tasks.spawn(async move {
                let mut result = queue.send(&message).await;
                for delay in QUICK_RETRY_DELAYS {
                    if result.is_ok() {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    result = queue.send(&message).await;
                }
                result.map(|()| message.key)
            });
        }
        let mut queued = 0;
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(_)) => queued += 1,
                Ok(Err(e)) => first_error = first_error.or(Some(e.to_string())),
                Err(e) => first_error = first_error.or(Some(e.to_string())),
            }
        }
        match first_error {
            None => {
                metrics::counter!(m::WEBHOOK_QUEUED).increment(queued as u64);
                Ok(queued)
            }
            Some(e) => {
                metrics::counter!(m::INGEST_QUEUE_FAILURES, "kind" => "lead-injection").increment(1);
                warn!(queued, error = %e, "lead webhook: queue unavailable; answered 503");
                Err(e)
            }
        }
    }
}

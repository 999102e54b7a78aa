//! The ingest handler behind `GET /vicidial/{call-start,dispo,new-lead}`.
//!
//! Authenticate, validate, enqueue durably, and only then answer 200. VICIdial never retries
//! and the Start Call URL holds the agent's screen while it waits: answer fast, never 200 for
//! an event not stored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::Mutex;
use tracing::{info, warn};
use vicibridge_core::auth::token_matches;
use vicibridge_core::ports::{OutgoingMessage, Queue, SecretStore};
use vicibridge_core::watchdog::dispositions::CallNote;
use vicibridge_core::{Envelope, EventKind};
use vicibridge_vicidial::call_url::RequestError;
use vicibridge_vicidial::query::MAX_QUERY_BYTES;
use vicibridge_vicidial::{CallUrl, VicidialQuery, to_event};

use crate::budget::VICIDIAL_INGEST;
use crate::metrics as m;
use crate::retry::QUICK_RETRY_DELAYS;

/// A token that does not match may be newer than our cached secret (a rotation): re-read
/// the secret, but at most this often, so bad requests cannot hammer Secrets Manager.
const REFRESH_ON_MISMATCH_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestResponse {
    pub status: u16,
    /// One short line; VICIdial stores it in its URL log.
    pub body: String,
}

impl IngestResponse {
    fn new(status: u16, body: impl Into<String>) -> Self {
        IngestResponse { status, body: body.into() }
    }
}

/// Told of every call start and disposition that was queued (`serve`'s disposition
/// watchdog). Called on the request's path: it must not wait.
pub trait CallObserver: Send + Sync {
    fn observe(&self, note: CallNote);
}

pub struct Ingest {
    queue: Arc<dyn Queue>,
    secrets: Arc<dyn SecretStore>,
    last_refresh: Mutex<Option<Instant>>,
    budget: Duration,
    calls: Option<Arc<dyn CallObserver>>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").field("budget", &self.budget).finish_non_exhaustive()
    }
}

impl Ingest {
    pub fn new(queue: Arc<dyn Queue>, secrets: Arc<dyn SecretStore>) -> Self {
        Ingest { queue, secrets, last_refresh: Mutex::new(None), budget: VICIDIAL_INGEST.default, calls: None }
    }

    /// Also tell `observer` of each call start and disposition queued (replays included).
    pub fn with_call_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.calls = Some(observer);
        self
    }

    fn observe(&self, envelope: &Envelope) {
        if let Some(observer) = &self.calls
            && let Some(note) = CallNote::from_event(&envelope.event, envelope.received_at)
        {
            observer.observe(note);
        }
    }

    /// The most a request may take (secret read and every queue attempt together) before it
    /// is answered 503; see [`crate::budget`].
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// `raw_query` is the query string as received, without the `?`.
    pub async fn handle(&self, url: CallUrl, raw_query: Option<&str>) -> IngestResponse {
        let deadline = tokio::time::Instant::now() + self.budget;
        let kind = url.event_kind();
        let raw = raw_query.unwrap_or("");
        if raw.len() > MAX_QUERY_BYTES {
            return reject(kind, &RequestError::TooLarge { len: raw.len(), max: MAX_QUERY_BYTES });
        }
        let query = VicidialQuery::parse(raw);
        match tokio::time::timeout_at(deadline, self.authenticate(kind, query.token())).await {
            Ok(None) => {}
            Ok(Some(refused)) => return refused,
            Err(_) => {
                warn!(kind = %kind, budget_ms = self.budget.as_millis(), "secrets not read within the ingest budget; answered 503");
                return IngestResponse::new(503, "secrets unavailable: retry");
            }
        }
        if !query.dropped_secrets().is_empty() {
            // Dropped already; tell the operator to take the agent's password out of the URL.
            warn!(kind = %kind, variables = ?query.dropped_secrets(), "VICIdial URL carries password variables; they were dropped, remove them from the URL");
        }
        let event = match to_event(url, &query) {
            Ok(event) => event,
            Err(e) => return reject(kind, &e),
        };
        let envelope = Envelope::new(event, Utc::now());
        let message = OutgoingMessage { key: envelope.key.to_string(), body: envelope.to_json() };
        let queued = tokio::time::timeout_at(deadline, self.enqueue(&message)).await.unwrap_or_else(|_| {
            Err(vicibridge_core::ports::QueueError::Unavailable(format!(
                "not queued within the ingest budget of {} ms",
                self.budget.as_millis()
            )))
        });
        match queued {
            Ok(()) => {
                let lead = envelope.event.lead_id().map_or_else(String::new, |l| l.to_string());
                metrics::counter!(m::INGEST_ACCEPTED, "kind" => kind.as_str()).increment(1);
                info!(kind = %kind, key = %envelope.key, lead_id = %lead, "queued");
                self.observe(&envelope);
                IngestResponse::new(200, receipt(kind, &lead))
            }
            Err(e) => {
                metrics::counter!(m::INGEST_QUEUE_FAILURES, "kind" => kind.as_str()).increment(1);
                warn!(kind = %kind, key = %envelope.key, error = %e, "queue unavailable; answered 503, event not stored");
                IngestResponse::new(503, "queue unavailable, event not stored: retry")
            }
        }
    }

    /// Replays a URL read from VICIdial's URL log (`vicibridge reconcile`): the same parsing,
    /// validation, envelope and idempotency key as [`Ingest::handle`], so a replay of an event
    /// already applied is a no-op downstream. The `token=` is not checked: the URL comes from
    /// VICIdial's own log, read with the reports user's credentials, and a token rotated
    /// since it was logged must not lose the event. With `dry_run`, nothing is queued.
    pub async fn replay(&self, url: CallUrl, raw_query: &str, dry_run: bool) -> Replay {
        let kind = url.event_kind();
        if raw_query.len() > MAX_QUERY_BYTES {
            return Replay::Rejected(RequestError::TooLarge { len: raw_query.len(), max: MAX_QUERY_BYTES }.to_string());
        }
        let event = match to_event(url, &VicidialQuery::parse(raw_query)) {
            Ok(event) => event,
            Err(e) => return Replay::Rejected(e.to_string()),
        };
        let envelope = Envelope::new(event, Utc::now());
        if dry_run {
            return Replay::WouldQueue { key: envelope.key.to_string() };
        }
        let message = OutgoingMessage { key: envelope.key.to_string(), body: envelope.to_json() };
        match self.enqueue(&message).await {
            Ok(()) => {
                let lead = envelope.event.lead_id().map_or_else(String::new, |l| l.to_string());
                metrics::counter!(m::INGEST_ACCEPTED, "kind" => kind.as_str()).increment(1);
                info!(kind = %kind, key = %envelope.key, lead_id = %lead, replayed = true, "queued: replayed from VICIdial's URL log");
                self.observe(&envelope);
                Replay::Queued { key: message.key }
            }
            Err(e) => Replay::QueueUnavailable(e.to_string()),
        }
    }

    async fn authenticate(&self, kind: EventKind, token: Option<&str>) -> Option<IngestResponse> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Some(unauthorized(kind, "missing token"));
        };
        let doc = match self.secrets.current().await {
            Ok(doc) => doc,
            Err(e) => {
                warn!(kind = %kind, error = %e, "cannot read secrets; answered 503");
                return Some(IngestResponse::new(503, "secrets unavailable: retry"));
            }
        };
        if doc.ingest_tokens.is_empty() {
            warn!("the secret has no ingest_tokens: every VICIdial request is refused until one is set");
        }
        if token_matches(token, &doc.ingest_tokens) {
            return None;
        }
        if self.may_refresh().await
            && let Ok(fresh) = self.secrets.refresh().await
            && token_matches(token, &fresh.ingest_tokens)
        {
            return None;
        }
        Some(unauthorized(kind, "wrong token"))
    }

    async fn may_refresh(&self) -> bool {
        let mut last = self.last_refresh.lock().await;
        let due = last.is_none_or(|t| t.elapsed() >= REFRESH_ON_MISMATCH_EVERY);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    async fn enqueue(&self, message: &OutgoingMessage) -> Result<(), vicibridge_core::ports::QueueError> {
        let mut result = self.queue.send(message).await;
        for delay in QUICK_RETRY_DELAYS {
            if result.is_ok() {
                break;
            }
            tokio::time::sleep(delay).await;
            result = self.queue.send(message).await;
        }
        result
    }
}

/// What one replayed URL came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    Queued {
        key: String,
    },
    /// `dry_run`: valid, would be queued.
    WouldQueue {
        key: String,
    },
    /// Invalid as logged (the reason names keys, never values): it never will be accepted.
    Rejected(String),
    QueueUnavailable(String),
}

/// The body of a 200: VICIdial stores it in its URL log, where `reconcile` recognises it.
pub fn receipt(kind: EventKind, lead: &str) -> String {
    format!("OK {kind} queued lead={lead}")
}

/// Whether an answer stored in VICIdial's URL log is vicibridge's [`receipt`] (and not, say,
/// a proxy's 200 page).
pub fn is_receipt(body: &str) -> bool {
    let mut words = body.split_whitespace();
    words.next() == Some("OK")
        && words.next().is_some_and(|kind| {
            [EventKind::CallStart, EventKind::Dispo, EventKind::NewLead].iter().any(|k| k.as_str() == kind)
        })
        && words.next() == Some("queued")
}

fn unauthorized(kind: EventKind, why: &'static str) -> IngestResponse {
    metrics::counter!(m::INGEST_REJECTED, "kind" => kind.as_str(), "reason" => "unauthorized").increment(1);
    warn!(kind = %kind, status = 401, reason = why, "rejected");
    IngestResponse::new(401, format!("unauthorized: {why}"))
}

fn reject(kind: EventKind, e: &RequestError) -> IngestResponse {
    metrics::counter!(m::INGEST_REJECTED, "kind" => kind.as_str(), "reason" => e.label()).increment(1);
    warn!(kind = %kind, status = e.http_status(), reason = %e, "rejected");
    IngestResponse::new(e.http_status(), format!("rejected: {e}"))
}

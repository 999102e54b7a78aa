//! `GET /status` (HTML) and `GET /status.json` on `vicibridge serve`: the last hour's ingest and
//! sync per minute, the queues (depth, oldest age, dead letters by reason), the last event
//! applied per CRM, the last reconcile, the unmapped dispositions with a `[dispositions]`
//! snippet to paste, and what the watchdogs see (see [`crate::watchdog`]). Readable only with a status token or from this machine (see [`access`]).

pub mod access;
pub mod activity;
mod chart;
mod page;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::warn;
use vicibridge_core::config::{Config, StatusConfig};
use vicibridge_core::ports::SecretStore;
use vicibridge_runtime::reconcile::ReconcileReport;

use crate::disposition_watch::{DispositionWatchStatus, LocalDispositionWatch};
use crate::queue::SqliteQueue;
use crate::queue_status::{ServeQueuesStatus, serve_queues_status};
use crate::watchdog::{WatchdogReport, Watchdogs};
use access::{Access, decide, is_local, presented_token};
use activity::{Activity, ActivitySnapshot};

/// The outcome of `serve`'s last scheduled reconcile, kept in memory (a run starts with serve).
#[derive(Clone, Debug, Serialize)]
pub struct ReconcileRun {
    pub finished_at: DateTime<Utc>,
    #[serde(flatten)]
    pub outcome: ReconcileOutcome,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconcileOutcome {
    Done(ReconcileReport),
    Failed { error: String },
}

/// Where the reconcile schedule leaves its last run for `/status`.
#[derive(Clone, Debug, Default)]
pub struct LastReconcile(Arc<Mutex<Option<ReconcileRun>>>);

impl LastReconcile {
    pub fn set(&self, run: ReconcileRun) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(run);
    }

    pub fn get(&self) -> Option<ReconcileRun> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// What `/status` shows; `/status.json` is this, serialised.
#[derive(Clone, Debug, Serialize)]
pub struct StatusReport {
    pub generated_at: DateTime<Utc>,
    /// The CRM adapter (`crm.kind`).
    pub crm: String,
    pub activity: ActivitySnapshot,
    #[serde(flatten)]
    pub queues: ServeQueuesStatus,
    /// `None`: `[reconcile]` is not configured.
    pub reconcile: Option<ReconcileState>,
    /// `[dispositions.…]` tables for the unmapped statuses; empty when there are none.
    pub dispositions_snippet: String,
    /// What the watchdogs see now: bridge id alerts, the data directory's disk.
    pub watchdogs: WatchdogReport,
    /// Campaigns whose calls get no disposition, or that went silent; `None`: the watchdog is
    /// off (`[watchdogs] calls_without_disposition_after_minutes = 0`).
    pub disposition_watch: Option<DispositionWatchStatus>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconcileState {
    /// Configured, and no run has finished since serve started.
    NotRunYet,
    Last(ReconcileRun),
}

/// What the status routes read.
#[derive(Clone)]
pub struct StatusSource {
    pub activity: Activity,
    pub crm_events: Arc<SqliteQueue>,
    pub lead_injections: Arc<SqliteQueue>,
    pub secrets: Arc<dyn SecretStore>,
    pub access: StatusConfig,
    pub crm: String,
    /// `None`: `[reconcile]` is not configured.
    pub reconcile: Option<LastReconcile>,
    pub watchdogs: Arc<Watchdogs>,
    /// `None`: the disposition watchdog is off.
    pub disposition_watch: Option<Arc<LocalDispositionWatch>>,
}

impl std::fmt::Debug for StatusSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusSource").field("crm", &self.crm).finish_non_exhaustive()
    }
}

impl StatusSource {
    pub fn new(
        config: &Config,
        activity: Activity,
        queues: (Arc<SqliteQueue>, Arc<SqliteQueue>),
        secrets: Arc<dyn SecretStore>,
        reconcile: Option<LastReconcile>,
        watchdogs: Arc<Watchdogs>,
    ) -> StatusSource {
        StatusSource {
            activity,
            crm_events: queues.0,
            lead_injections: queues.1,
            secrets,
            access: config.status.clone(),
            crm: config.crm.kind.to_string(),
            reconcile,
            watchdogs,
            disposition_watch: None,
        }
    }

    /// Also show the disposition watchdog.
    pub fn with_disposition_watch(mut self, watch: Option<Arc<LocalDispositionWatch>>) -> Self {
        self.disposition_watch = watch;
        self
    }

    pub async fn report(&self) -> Result<StatusReport, crate::queue::LocalQueueError> {
        let now = Utc::now();
        let mut queues = serve_queues_status(&self.crm_events, &self.lead_injections).await?;
        let dispositions_snippet = self.watchdogs.still_unmapped(&mut queues.unmapped_statuses);
        Ok(StatusReport {
            generated_at: now,
            crm: self.crm.clone(),
            activity: self.activity.snapshot(now),
            dispositions_snippet,
            queues,
            reconcile: self.reconcile.as_ref().map(|r| r.get().map_or(ReconcileState::NotRunYet, ReconcileState::Last)),
            watchdogs: self.watchdogs.check(now),
            disposition_watch: self.disposition_watch.as_ref().map(|w| w.status(now)),
        })
    }
}

pub fn routes(source: StatusSource) -> Router {
    Router::new()
        .route("/status", get(|s, c, h, u| route(s, c, h, u, Format::Html)))
        .route("/status.json", get(|s, c, h, u| route(s, c, h, u, Format::Json)))
        .with_state(source)
}

#[derive(Clone, Copy)]
enum Format {
    Html,
    Json,
}

async fn route(
    State(source): State<StatusSource>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    format: Format,
) -> Response {
    let tokens = match source.secrets.current().await {
        Ok(doc) => doc.status_tokens.clone(),
        Err(e) => {
            warn!(error = %e, "/status: cannot read the secrets; only loopback requests are answered");
            Vec::new()
        }
    };
    let presented = presented_token(&headers, uri.query());
    let local = is_local(peer.ip(), &headers);
    match decide(local, presented.as_deref(), &tokens, source.access.loopback_without_token) {
        Access::Allowed => {}
        Access::Unauthorized => {
            warn!(peer = %peer.ip(), status = 401, "/status refused: missing or wrong status token");
            let mut r = plain(StatusCode::UNAUTHORIZED, "status: a status token is needed (Authorization: Bearer …)");
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
        Access::LoopbackOnly => {
            warn!(peer = %peer.ip(), status = 403, "/status refused: not from this machine");
            return plain(
                StatusCode::FORBIDDEN,
                "status: answered on this machine only; add status_tokens to the secrets to read it from elsewhere",
            );
        }
    }
    let report = match source.report().await {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "/status: cannot read the queues");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "status: cannot read the queues (see the log)");
        }
    };
    let mut response = match format {
        Format::Json => match serde_json::to_string_pretty(&report) {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("status: {e}")),
        },
        Format::Html => {
            let mut r = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page::render(&report)).into_response();
            if let Ok(csp) = HeaderValue::from_str(&page::content_security_policy()) {
                r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp);
            }
            r
        }
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

fn plain(status: StatusCode, text: &str) -> Response {
    let mut r = (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{text}\n")).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

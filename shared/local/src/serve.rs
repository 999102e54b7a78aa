//! `vicibridge serve`: every ingest route on one port, the crm-sync worker in-process, the
//! queue in an embedded SQLite file. Same handlers as the Lambdas, other adapters.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use tokio::sync::watch;
use tracing::{error, info, warn};
use vicibridge_core::config::{Config, Durability};
use vicibridge_core::event::LeadSource;
use vicibridge_core::ports::SecretStore;
use vicibridge_runtime::budget::{BudgetError, LEAD_WEBHOOK, VICIDIAL_INGEST};
use vicibridge_runtime::click_to_call::build_click_to_call;
use vicibridge_runtime::crm::{CrmSetupError, build_crm_with_writer};
use vicibridge_runtime::lead_inject::build_lead_inject;
use vicibridge_runtime::lead_webhook::MAX_BODY_BYTES;
use vicibridge_runtime::screen_pop::{ScreenPop, build_screen_pop};
use vicibridge_runtime::{
    Admit, BatchHandler, CrmSync, Delivery, Guarded, Hold, Ingest, Integration, LeadWebhook, Outcome, WebhookRequest,
};
use vicibridge_vicidial::CallUrl;
use vicibridge_vicidial::non_agent_api::NonAgentApiError;

use crate::disposition_watch::LocalDispositionWatch;
use crate::queue::{LocalQueueError, QueueOptions, Settle, SqliteQueue, Synchronous};
use crate::status::activity::Activity;
use crate::status::{LastReconcile, StatusSource};

/// File names under `--data-dir`.
pub const CRM_EVENTS_DB: &str = "crm-events.db";
pub const LEAD_INJECTIONS_DB: &str = "lead-injections.db";

/// Time a webhook's body may take to arrive once its headers have.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ServeOptions {
    pub config: Config,
    pub secrets: Arc<dyn SecretStore>,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    DataDirLock(#[from] crate::data_dir_lock::DataDirLockError),
    #[error("cannot open the queue: {0}")]
    Queue(#[from] LocalQueueError),
    #[error(transparent)]
    Crm(#[from] CrmSetupError),
    #[error(transparent)]
    Dialer(#[from] NonAgentApiError),
    #[error(transparent)]
    ClickToCall(#[from] vicibridge_runtime::click_to_call::ClickToCallError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
    #[error("cannot start the workers' thread: {0}")]
    Workers(std::io::Error),
    #[error(transparent)]
    Budget(#[from] BudgetError),
    #[error("[reconcile]: {0}")]
    Reconcile(String),
}

/// The queue options `[queue]` sets; operator commands open the queues with the same.
pub fn queue_options(config: &Config) -> QueueOptions {
    QueueOptions {
        visibility_timeout: Duration::from_secs(u64::from(config.queue.visibility_timeout_secs)),
        max_receive_count: config.queue.max_receive_count,
        synchronous: match config.queue.durability {
            Durability::Process => Synchronous::Normal,
            Durability::Machine => Synchronous::Full,
        },
    }
}

#[derive(Clone)]
struct Handlers {
    ingest: Arc<Ingest>,
    webhook: Arc<LeadWebhook>,
    /// `None` when the configured CRM has no read side yet (the route answers 501).
    screen_pop: Option<Arc<ScreenPop>>,
}

/// Every route of the API Gateway HTTP API, on one port.
fn router(handlers: Handlers) -> Router {
    Router::new()
        .route("/vicidial/call-start", get(|s, u| ingest_route(s, u, CallUrl::CallStart)))
        .route("/vicidial/dispo", get(|s, u| ingest_route(s, u, CallUrl::Dispo)))
        .route("/vicidial/new-lead", get(|s, u| ingest_route(s, u, CallUrl::NewLead)))
        .route("/hubspot/leads", post(|s, r| webhook_route(s, r, LeadSource::Hubspot)))
        .route("/salesforce/leads", post(|s, r| webhook_route(s, r, LeadSource::Salesforce)))
        .route("/vicidial/screen-pop", get(screen_pop_route))
        .route("/healthz", get(|| async { "ok" }))
        // The handler answers 413 itself above 1 MiB; axum's own cap just sits above that.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES + 1024))
        .with_state(handlers)
}

async fn ingest_route(State(h): State<Handlers>, uri: Uri, url: CallUrl) -> Response {
    let answer = h.ingest.handle(url, uri.query()).await;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], answer.body).into_response()
}

async fn screen_pop_route(State(h): State<Handlers>, uri: Uri) -> Response {
    let Some(pop) = &h.screen_pop else {
        return (StatusCode::NOT_IMPLEMENTED, "screen pop: not available for this crm.kind (see the log)")
            .into_response();
    };
    let answer = pop.handle(uri.query()).await;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, answer.body).into_response();
    for (name, value) in answer.headers {
        if let Ok(v) = header::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, v);
        }
    }
    response
}

async fn webhook_route(State(h): State<Handlers>, request: Request, source: LeadSource) -> Response {
    let (parts, body) = request.into_parts();
    // The header-read timeout does not cover the body: a client trickling it would hold the
    // connection (and its request) for as long as it likes.
    let body = match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, MAX_BODY_BYTES + 1024)).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => return (StatusCode::PAYLOAD_TOO_LARGE, "rejected: body larger than 1 MiB").into_response(),
        Err(_) => {
            warn!(source = %source, status = 408, "request body not received in time");
            let reason = format!("rejected: body not received within {}s", BODY_READ_TIMEOUT.as_secs());
            return (StatusCode::REQUEST_TIMEOUT, [(header::CONNECTION, "close")], reason).into_response();
        }
    };
    let req = WebhookRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        body: &body,
    };
    let answer = h.webhook.handle(source, req).await;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, answer.content_type)], answer.body).into_response()
}

/// Runs until `shutdown` resolves; then stops accepting, answers what is in flight and lets
/// the worker finish its batch.
pub async fn serve(
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_with_secret_writer(options, None, shutdown).await
}

/// [`serve`], with the writer that stores a rotated Salesforce refresh token back into the
/// secrets file (`crate::secret_writer::FileSecretWriter` on the `--secrets` path).
pub async fn serve_with_secret_writer(
    options: ServeOptions,
    writer: Option<Arc<dyn vicibridge_core::ports::SecretWriter>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_with_activity(options, writer, Activity::new(), shutdown).await
}

/// [`serve_with_secret_writer`], with the [`Activity`] `/status` charts: the process's
/// `metrics` recorder must be `activity.recorder()` (the `vicibridge` binary installs it),
/// or the charts stay flat.
pub async fn serve_with_activity(
    options: ServeOptions,
    writer: Option<Arc<dyn vicibridge_core::ports::SecretWriter>>,
    activity: Activity,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let ServeOptions { config, secrets, listen, data_dir } = options;
    std::fs::create_dir_all(&data_dir)
        .map_err(|source| ServeError::DataDir { path: data_dir.display().to_string(), source })?;
    // Held until serve returns: a second serve on this directory stops here.
    let _data_dir_lock = crate::data_dir_lock::DataDirLock::acquire(&data_dir)?;
    let crm_events = Arc::new(SqliteQueue::open(&data_dir.join(CRM_EVENTS_DB), queue_options(&config))?);
    let lead_injections = Arc::new(SqliteQueue::open(&data_dir.join(LEAD_INJECTIONS_DB), queue_options(&config))?);
    let crm = build_crm_with_writer(&config, secrets.clone(), writer.clone(), Some(&data_dir))?;
    let integration = Integration::crm(crm.name());
    let sync = CrmSync::new(&config, crm).with_unmapped_log(crm_events.clone());
    let sync = Guarded::new(Arc::new(sync), integration, secrets.clone(), Hold::InDriver);
    let inject = Arc::new(build_lead_inject(&config, secrets.clone(), crm_events.clone())?);
    let inject = Guarded::new(inject, Integration::dialer(), secrets.clone(), Hold::InDriver);
    let screen_pop = match build_screen_pop(&config, secrets.clone(), writer) {
        Ok(p) => Some(Arc::new(p)),
        Err(e) => {
            warn!(error = %e, "GET /vicidial/screen-pop is off");
            None
        }
    };
    let click_to_call = build_click_to_call(&config, secrets.clone())?.map(Arc::new);
    let disposition_watch = LocalDispositionWatch::open(&config, crm_events.clone()).await?;
    let mut ingest = Ingest::new(crm_events.clone(), secrets.clone()).with_budget(VICIDIAL_INGEST.from_env()?);
    if let Some(watch) = &disposition_watch {
        ingest = ingest.with_call_observer(watch.clone());
    }
    let ingest = Arc::new(ingest);
    let reconcile = match &config.reconcile {
        Some(_) => Some(
            crate::reconcile::reconciler(&config, &data_dir, secrets.clone(), ingest.clone())
                .map_err(ServeError::Reconcile)?,
        ),
        None => None,
    };
    let last_reconcile = reconcile.as_ref().map(|_| LastReconcile::default());
    let watchdogs =
        Arc::new(crate::watchdog::Watchdogs::new(&config, &data_dir, activity.clone(), crm_events.clone(), Utc::now()));
    let status = crate::status::routes(
        StatusSource::new(
            &config,
            activity,
            (crm_events.clone(), lead_injections.clone()),
            secrets.clone(),
            last_reconcile.clone(),
            watchdogs.clone(),
        )
        .with_disposition_watch(disposition_watch.clone()),
    );
    let handlers = Handlers {
        screen_pop,
        ingest,
        // serve itself speaks plain HTTP: a TLS proxy in front says so in X-Forwarded-Proto.
        webhook: Arc::new(
            LeadWebhook::from_config(lead_injections.clone(), secrets, &config)
                .with_direct_scheme("http")
                .with_budget(LEAD_WEBHOOK.from_env()?),
        ),
    };
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|source| ServeError::Listen { addr: listen, source })?;
    let bound = listener.local_addr().unwrap_or(listen);
    info!(
        listen = %bound,
        data_dir = %data_dir.display(),
        crm = %config.crm.kind,
        "vicibridge serve: listening on http://{bound} (GET /vicidial/call-start, /vicidial/dispo, /vicidial/new-lead, /vicidial/screen-pop, /status; POST /hubspot/leads, /salesforce/leads)"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(crate::watchdog::run(watchdogs, stop_rx.clone()));
    if let (Some(reconciler), Some(schedule), Some(last)) = (reconcile, config.reconcile.clone(), last_reconcile) {
        tokio::spawn(crate::reconcile::run_schedule(reconciler, schedule, last, stop_rx.clone()));
    }
    if let Some(watch) = disposition_watch {
        tokio::spawn(watch.run(config.watchdogs.check_interval(), stop_rx.clone()));
    }
    // The workers get a thread and runtime of their own: a batch is CPU work done in one go,
    // and on the HTTP runtime it would hold up the requests queued behind it, while VICIdial
    // (and an agent's screen) waits on those. The queue absorbs what the workers have not
    // reached yet.
    let workers = std::thread::Builder::new()
        .name("vicibridge-workers".into())
        .spawn(move || {
            lower_priority();
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    error!(error = %e, "cannot start the workers' runtime");
                    return;
                }
            };
            runtime.block_on(async move {
                tokio::join!(
                    worker_loop(crm_events, Arc::new(sync), config.clone(), stop_rx.clone()),
                    worker_loop(lead_injections, Arc::new(inject), config, stop_rx),
                );
            });
        })
        .map_err(ServeError::Workers)?;
    let app = router(handlers).merge(crate::click_to_call::routes(click_to_call)).merge(status);
    let result = crate::http_server::run(listener, app, shutdown).await;
    let _ = stop_tx.send(true);
    let joined = tokio::task::spawn_blocking(move || workers.join()).await;
    if !matches!(joined, Ok(Ok(()))) {
        warn!("the workers' thread ended abnormally");
    }
    info!("vicibridge serve: stopped");
    result.map_err(ServeError::Http)
}

/// Lowest scheduling priority for the workers' thread: under load the kernel gives the CPU
/// to the HTTP threads first, and the workers catch up from the durable queue when it eases.
/// On Linux that is SCHED_IDLE, which also never preempts a request being handled.
fn lower_priority() {
    if !vicibridge_runtime::background::lower_current_thread_priority() {
        warn!("cannot lower the workers' thread priority; they share the CPU evenly");
    }
}

/// How often a paused worker looks at the secret for a fix (a `stat` of the secrets file).
const PAUSED_CHECK: Duration = Duration::from_secs(1);

/// An in-process worker: receive a batch (waiting up to the batching window for it to fill,
/// like SQS's batching window), process it, carry out every outcome. While its integration
/// is paused (the breaker is open) it takes nothing, or one message when a probe is due.
async fn worker_loop(queue: Arc<SqliteQueue>, handler: Arc<Guarded>, config: Config, mut stop: watch::Receiver<bool>) {
    let batch_size = config.queue.batch_size as usize;
    let window = Duration::from_millis(u64::from(config.queue.batching_window_ms));
    loop {
        if *stop.borrow() {
            return;
        }
        let want = match handler.admit().await {
            Admit::Batch => batch_size,
            Admit::Probe => 1,
            Admit::Wait(wait) => {
                tokio::select! {
                    _ = tokio::time::sleep(wait.min(PAUSED_CHECK)) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        let received = tokio::select! {
            r = queue.receive_wait(want, Duration::from_secs(1)) => r,
            _ = stop.changed() => return,
        };
        let mut batch = match received {
            Ok(batch) if batch.is_empty() => continue,
            Ok(batch) => batch,
            Err(e) => {
                warn!(error = %e, "cannot receive from the queue; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.len() < want && !window.is_zero() {
            tokio::time::sleep(window).await;
            match queue.receive(want - batch.len()).await {
                Ok(more) => batch.extend(more),
                Err(e) => warn!(error = %e, "cannot receive from the queue"),
            }
        }
        let deliveries: Vec<Delivery<'_>> = batch
            .iter()
            .map(|m| Delivery { message_id: &m.message_id, body: &m.body, receive_count: m.receive_count })
            .collect();
        let outcomes = handler.process(&deliveries).await;
        let settled = batch
            .iter()
            .zip(outcomes)
            .map(|(message, outcome)| {
                let settle = match outcome {
                    Outcome::Done => Settle::Delete,
                    Outcome::Retry { delay, reason } => Settle::RetryLater { delay, reason },
                    Outcome::DeadLetter { reason } => Settle::DeadLetter { reason },
                    Outcome::Paused { delay, reason } => Settle::Postpone { delay, reason },
                };
                (message.receipt.clone(), settle)
            })
            .collect();
        if let Err(e) = queue.settle(settled).await {
            // The visibility timeout brings the messages back: at-least-once, never lost.
            warn!(error = %e, "cannot record the batch's outcomes; its messages will be delivered again");
        }
    }
}

//! The `reconcile` Lambda: on an EventBridge schedule, VICIdial's URL log → replay of the
//! URLs that never reached vicibridge onto the crm-events queue
//! ([`vicibridge_runtime::reconcile`]). Where each run starts is an SSM parameter (the
//! checkpoint): runs read adjoining windows, so a missed URL is replayed once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lambda_runtime::{LambdaEvent, service_fn};
use tokio::time::Instant;
use tracing::{info, warn};
use vicibridge_core::config::Config;
use vicibridge_core::ports::SecretStore;
use vicibridge_core::watchdog::dispositions::DispositionDays;
use vicibridge_runtime::Ingest;
use vicibridge_runtime::reconcile::{
    Checkpoint, DispositionMemory, ReconcileError, ReconcileReport, Reconciler, report_failure,
};
use vicibridge_vicidial::url_log::{UrlLogClient, UrlLogOptions};

use crate::config_source::{aws_config, load_config, sdk_error_message};
use crate::function::{InitError, env, start};
use crate::lambda::{QUEUE_URL_ENV, SECRET_ENV, deadline};
use crate::limits::WORKER;
use crate::secrets_manager::SecretsManagerStore;
use crate::sqs::SqsQueue;

/// Name of the SSM parameter holding the checkpoint.
pub const CHECKPOINT_ENV: &str = "VICIBRIDGE_RECONCILE_CHECKPOINT";
/// Name of the SSM parameter holding the silent-campaign check's summary (optional: without
/// it the check is off).
pub const DISPOSITION_WATCH_ENV: &str = "VICIBRIDGE_DISPOSITION_WATCH";
/// The checkpoint's (and the summary's) value before the first run (CloudFormation needs a non-empty value).
pub const NO_CHECKPOINT: &str = "none";
/// One day's URL Log Report download; a run starts no download that could outlast the
/// function's timeout (infra/template.yaml: 300 s).
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(60);
/// Kept free at the end of a run for the checkpoint write and the answer.
const RESERVE: Duration = Duration::from_secs(10);

/// The checkpoint in an SSM String parameter, as RFC 3339.
#[derive(Debug, Clone)]
pub struct SsmCheckpoint {
    client: aws_sdk_ssm::Client,
    name: String,
}

impl SsmCheckpoint {
    pub fn new(client: aws_sdk_ssm::Client, name: impl Into<String>) -> Self {
        SsmCheckpoint { client, name: name.into() }
    }

    /// The parameter's value; `None` while it is [`NO_CHECKPOINT`].
    async fn get(&self) -> Result<Option<String>, String> {
        let out = self
            .client
            .get_parameter()
            .name(&self.name)
            .send()
            .await
            .map_err(|e| format!("SSM GetParameter {}: {}", self.name, sdk_error_message(&e)))?;
        let value = out.parameter().and_then(|p| p.value()).unwrap_or(NO_CHECKPOINT).trim();
        Ok((value != NO_CHECKPOINT).then(|| value.to_owned()))
    }

    async fn put(&self, value: String) -> Result<(), String> {
        self.client
            .put_parameter()
            .name(&self.name)
            .value(value)
            .overwrite(true)
            .send()
            .await
            .map(drop)
            .map_err(|e| format!("SSM PutParameter {}: {}", self.name, sdk_error_message(&e)))
    }
}

#[async_trait]
impl Checkpoint for SsmCheckpoint {
    async fn load(&self) -> Result<Option<DateTime<Utc>>, String> {
        let Some(value) = self.get().await? else {
            return Ok(None);
        };
        DateTime::parse_from_rfc3339(&value).map(|t| Some(t.with_timezone(&Utc))).map_err(|_| {
            format!("SSM parameter {} holds {value:?}, not an RFC 3339 time or {NO_CHECKPOINT:?}", self.name)
        })
    }

    async fn save(&self, at: DateTime<Utc>) -> Result<(), String> {
        self.put(at.to_rfc3339()).await
    }
}

/// The silent-campaign check's summary in an SSM String parameter, as JSON (under 4 KB: at
/// most [`DispositionDays::MAX_CAMPAIGNS`] campaigns).
#[derive(Debug, Clone)]
pub struct SsmDispositionMemory(SsmCheckpoint);

impl SsmDispositionMemory {
    pub fn new(client: aws_sdk_ssm::Client, name: impl Into<String>) -> Self {
        SsmDispositionMemory(SsmCheckpoint::new(client, name))
    }
}

#[async_trait]
impl DispositionMemory for SsmDispositionMemory {
    async fn load(&self) -> Result<DispositionDays, String> {
        let Some(value) = self.0.get().await? else {
            return Ok(DispositionDays::default());
        };
        serde_json::from_str(&value).map_err(|e| {
            format!("SSM parameter {} holds no summary ({e}); put {NO_CHECKPOINT:?} in it to start afresh", self.0.name)
        })
    }

    async fn save(&self, days: &DispositionDays) -> Result<(), String> {
        let json = serde_json::to_string(days).map_err(|e| e.to_string())?;
        self.0.put(json).await
    }
}

/// The function's state between invocations.
pub struct ReconcileFunction {
    reconciler: Reconciler,
    checkpoint: Arc<dyn Checkpoint>,
    /// `[reconcile] lookback_hours`; `None`: no `[reconcile]`, the function does nothing.
    lookback: Option<chrono::Duration>,
    /// The disposition watchdog: `[watchdogs] calls_without_disposition_after_minutes` and the
    /// slice of starts each run counts (the run interval, at least an hour); `None`: off.
    watch: Option<(chrono::Duration, chrono::Duration)>,
    /// The silent-campaign check's summary between runs; `None`: the check is off.
    memory: Option<Arc<dyn DispositionMemory>>,
}

impl std::fmt::Debug for ReconcileFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconcileFunction").field("reconciler", &self.reconciler).finish_non_exhaustive()
    }
}

impl ReconcileFunction {
    /// The reconciler of `config`: the URL Log Report with the reports user of `secrets`,
    /// the normal ingest onto `crm_events`; `memory`: the silent-campaign check's summary
    /// (with the disposition watchdog on).
    pub fn new(
        config: &Config,
        secrets: Arc<dyn SecretStore>,
        crm_events: SqsQueue,
        checkpoint: Arc<dyn Checkpoint>,
        memory: Option<Arc<dyn DispositionMemory>>,
    ) -> Result<Self, InitError> {
        let options = UrlLogOptions { timeout: REPORT_TIMEOUT, ..UrlLogOptions::default() };
        let client = UrlLogClient::new(&config.vicidial.base_url, secrets.clone(), options)?;
        let ingest = Arc::new(Ingest::new(Arc::new(crm_events), secrets));
        Ok(ReconcileFunction {
            reconciler: Reconciler::new(client, ingest, config.vicidial.server_time_zone, None),
            checkpoint,
            lookback: config.reconcile.as_ref().map(|r| chrono::Duration::hours(i64::from(r.lookback_hours))),
            watch: config.watchdogs.calls_without_disposition_after().zip(config.reconcile.as_ref()).map(
                |(after, r)| {
                    (after, chrono::Duration::minutes(i64::from(r.interval_minutes)).max(chrono::Duration::hours(1)))
                },
            ),
            memory,
        })
    }

    /// One scheduled run, finished before `deadline`. A failure is logged (an alert when an
    /// operator must act) and returned, so Lambda records the invocation as failed.
    pub async fn handle(&self, deadline: Instant) -> Result<ReconcileReport, ReconcileError> {
        let Some(lookback) = self.lookback else {
            info!("reconcile is off: the configuration has no [reconcile] section");
            return Ok(ReconcileReport::default());
        };
        let stop_by = deadline.checked_sub(RESERVE).unwrap_or(deadline);
        let result = self.reconciler.run_from_checkpoint(self.checkpoint.as_ref(), lookback, stop_by).await;
        if let Err(e) = &result {
            report_failure(e);
        }
        let mut report = result?;
        if let Some((after, slice)) = self.watch {
            // The dispositions of the reconcile window and of the watchdog's: overlapping
            // windows (and a window read again after a failure) note the same hours again.
            let mut seen = std::mem::take(&mut report.dispositions);
            let now = Utc::now();
            match self.reconciler.watch_dispositions(after, slice, now, Some(stop_by), &mut seen).await {
                Ok(found) => report.calls_without_disposition = found,
                Err(e) => {
                    warn!(error = %e, "disposition watchdog: cannot read VICIdial's URL log; the next run looks again")
                }
            }
            if let Some(memory) = &self.memory {
                match self.reconciler.check_silent(memory.as_ref(), &seen, now).await {
                    Ok(silent) => report.silent_campaigns = silent,
                    Err(e) => warn!(error = %e, "silent-campaign check: skipped this run"),
                }
            }
        }
        Ok(report)
    }
}

/// `reconcile`: the scheduled function.
pub async fn run_reconcile() -> Result<(), lambda_runtime::Error> {
    let (metrics, function) = start(Box::pin(async {
        let (secret_id, queue_url, checkpoint) = (env(SECRET_ENV)?, env(QUEUE_URL_ENV)?, env(CHECKPOINT_ENV)?);
        let sdk = aws_config().await;
        let config = load_config().await?;
        let secrets = Arc::new(SecretsManagerStore::new(WORKER.secrets_manager(sdk), secret_id));
        let ssm = WORKER.ssm(sdk);
        let memory = std::env::var(DISPOSITION_WATCH_ENV)
            .ok()
            .filter(|name| !name.is_empty())
            .map(|name| Arc::new(SsmDispositionMemory::new(ssm.clone(), name)) as Arc<dyn DispositionMemory>);
        let checkpoint = Arc::new(SsmCheckpoint::new(ssm, checkpoint));
        ReconcileFunction::new(&config, secrets, SqsQueue::new(WORKER.sqs(sdk), queue_url), checkpoint, memory)
    }))
    .await;
    let (function, metrics) = (&function, &metrics);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        metrics.begin(&event.context.request_id);
        let result = function.handle(deadline(event.context.deadline)).await;
        metrics.end();
        result.map(|report| serde_json::to_value(report).unwrap_or_default()).map_err(lambda_runtime::Error::from)
    }))
    .await
}

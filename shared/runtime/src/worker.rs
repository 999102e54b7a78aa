//! The crm-sync worker's decisions for one queue batch: decode, plan, apply through the CRM
//! port, and classify every message. The drivers (the SQS Lambda, `serve`'s loop) only carry
//! the outcomes out: delete, retry later, or dead-letter with the reason.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};
use vicibridge_core::config::Config;
use vicibridge_core::config::Tz;
use vicibridge_core::disposition::DispositionMap;
use vicibridge_core::plan::{SyncPlan, plan};
use vicibridge_core::ports::{Applied, Crm};
use vicibridge_core::{Envelope, SyncError};

use crate::metrics as m;
use crate::retry::{backoff, paused_delay};

/// One received message.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub message_id: &'a str,
    pub body: &'a str,
    /// How many times the queue has delivered it, this delivery included.
    pub receive_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied (or already applied): delete the message.
    Done,
    /// Put back; visible again after `delay`.
    Retry { delay: Duration, reason: String },
    /// Will never succeed as it is: to the DLQ now, with the reason.
    DeadLetter { reason: String },
    /// Not this message's fault: the integration is down (its credential is refused, see
    /// [`crate::breaker`]). Put back after `delay`; where the queue allows it (`serve`'s), this
    /// delivery does not count toward the redrive to the DLQ. Never dead-lettered for this.
    Paused { delay: Duration, reason: String },
}

impl Outcome {
    /// A message held back while its integration is paused: it comes back after
    /// [`paused_delay`] for this receive count.
    pub fn paused(receive_count: u32, reason: impl Into<String>) -> Outcome {
        Outcome::Paused { delay: paused_delay(receive_count), reason: reason.into() }
    }
}

/// A queue consumer's decisions for one batch: one outcome per delivery, in order. The
/// drivers (the SQS Lambda runtime, `serve`'s loop) carry the outcomes out.
#[async_trait::async_trait]
pub trait BatchHandler: Send + Sync {
    async fn process(&self, batch: &[Delivery<'_>]) -> Vec<Outcome>;
}

/// Where the sync notes a disposition status the mapping does not know, by call. `serve`
/// keeps them in its data dir for `vicibridge queue status` and `/status`; on Lambda the
/// `UnmappedDispositions` metric and the log line are the record.
#[async_trait::async_trait]
pub trait UnmappedStatusLog: Send + Sync {
    async fn note(&self, key: &str, status: &str);
}

pub struct CrmSync {
    crm: Arc<dyn Crm>,
    map: DispositionMap,
    server_tz: Tz,
    unmapped: Option<Arc<dyn UnmappedStatusLog>>,
}

impl std::fmt::Debug for CrmSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrmSync").field("crm", &self.crm.name()).finish_non_exhaustive()
    }
}

impl CrmSync {
    pub fn new(config: &Config, crm: Arc<dyn Crm>) -> Self {
        CrmSync { crm, map: config.disposition_map(), server_tz: config.vicidial.server_time_zone, unmapped: None }
    }

    /// Also note unmapped statuses in `log`.
    pub fn with_unmapped_log(mut self, log: Arc<dyn UnmappedStatusLog>) -> Self {
        self.unmapped = Some(log);
        self
    }

    /// One outcome per delivery, in order.
    pub async fn process_batch(&self, batch: &[Delivery<'_>]) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
        let mut plans: Vec<SyncPlan> = Vec::with_capacity(batch.len());
        // Which deliveries each plan answers: a message the queue delivered twice in one
        // batch is applied once.
        let mut owners: Vec<Vec<usize>> = Vec::with_capacity(batch.len());
        let mut by_key: HashMap<String, usize> = HashMap::new();

        for (i, d) in batch.iter().enumerate() {
            let envelope = match Envelope::from_json(d.body) {
                Ok(e) => e,
                Err(e) => {
                    outcomes[i] = Some(unreadable(e.to_string()));
                    continue;
                }
            };
            if let Some(&p) = by_key.get(envelope.key.as_str()) {
                owners[p].push(i);
                continue;
            }
            let plan = match plan(&envelope, &self.map, self.server_tz) {
                Ok(plan) => plan,
                Err(e) => {
                    outcomes[i] = Some(unreadable(e.to_string()));
                    continue;
                }
            };
            if let Some(status) = report_plan(&plan)
                && let Some(log) = &self.unmapped
            {
                log.note(plan.key().as_str(), status).await;
            }
            by_key.insert(envelope.key.to_string(), plans.len());
            plans.push(plan);
            owners.push(vec![i]);
        }

        let results = if plans.is_empty() { Vec::new() } else { self.crm.apply(&plans).await };
        for (p, plan) in plans.iter().enumerate() {
            let result = results.get(p).cloned().unwrap_or_else(|| {
                Err(SyncError::retryable(format!(
                    "CRM adapter {} returned no result for this message",
                    self.crm.name()
                )))
            });
            for &i in &owners[p] {
                outcomes[i] = Some(self.classify(plan, &batch[i], &result));
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Retry { delay: backoff(1, None), reason: "not processed".into() }))
            .collect()
    }

    fn classify(&self, plan: &SyncPlan, d: &Delivery<'_>, result: &Result<Applied, SyncError>) -> Outcome {
        let key = plan.key();
        let crm = self.crm.name();
        match result {
            Ok(applied) => {
                metrics::counter!(m::SYNC_APPLIED, "crm" => crm).increment(1);
                info!(key = %key, lead_id = %plan.lead_id(), crm, outcome = ?applied, "synced");
                Outcome::Done
            }
            Err(SyncError::Retryable { reason, retry_after }) => {
                let delay = backoff(d.receive_count, *retry_after);
                metrics::counter!(m::SYNC_RETRIES, "crm" => crm).increment(1);
                warn!(key = %key, crm, attempt = d.receive_count, retry_in_secs = delay.as_secs(), reason = %reason, "sync failed; will retry");
                Outcome::Retry { delay, reason: reason.clone() }
            }
            Err(SyncError::Permanent { reason }) => {
                // No dimension: the SyncFailures alarm watches the dimension-less metric.
                metrics::counter!(m::SYNC_FAILURES).increment(1);
                // The ERROR line of the dead letter is the breaker's (one place for every worker).
                info!(key = %key, lead_id = %plan.lead_id(), crm, "sync failed permanently");
                Outcome::DeadLetter { reason: reason.clone() }
            }
            Err(SyncError::Integration { reason }) => {
                metrics::counter!(m::SYNC_PAUSED, "crm" => crm).increment(1);
                Outcome::paused(d.receive_count, reason.clone())
            }
        }
    }
}

/// Logs the plan's warnings; returns the disposition status when the mapping does not know it.
fn report_plan(plan: &SyncPlan) -> Option<&str> {
    let SyncPlan::Call(call) = plan else { return None };
    let d = call.disposition.as_ref()?;
    for w in &d.warnings {
        warn!(key = %call.key, "{w}");
    }
    if d.mapped {
        return None;
    }
    metrics::counter!(m::UNMAPPED_DISPOSITIONS, "status" => d.status.clone()).increment(1);
    metrics::counter!(m::UNMAPPED_DISPOSITIONS_TOTAL).increment(1);
    warn!(key = %call.key, status = %d.status, campaign = call.campaign.as_deref().unwrap_or(""), "unmapped disposition: the call is logged, nothing else changes; add it under [dispositions] to map it");
    Some(&d.status)
}

#[async_trait::async_trait]
impl BatchHandler for CrmSync {
    async fn process(&self, batch: &[Delivery<'_>]) -> Vec<Outcome> {
        self.process_batch(batch).await
    }
}

/// A message that cannot become a plan (not an envelope, or an event no plan can be made of)
/// is dead-lettered, and counted like any other event that will not be applied.
fn unreadable(reason: String) -> Outcome {
    metrics::counter!(m::SYNC_FAILURES).increment(1);
    Outcome::DeadLetter { reason }
}

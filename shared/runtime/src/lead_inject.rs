//! The lead-inject worker's decisions for one queue batch: map each announced CRM record to
//! `add_lead`, make sure a redelivery or a retry after a lost reply never adds a second lead,
//! and queue the write-back of VICIdial's lead_id to the CRM.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tracing::{info, warn};
use vicibridge_core::Envelope;
use vicibridge_core::config::{Config, LeadInjectionConfig};
use vicibridge_core::event::{Event, LeadInjected, LeadInjection};
use vicibridge_core::lead::{AddLeadOutcome, Dialer, DialerError, to_add_lead};
use vicibridge_core::ports::{OutgoingMessage, Queue, SecretStore};
use vicibridge_vicidial::non_agent_api::{NonAgentApi, NonAgentApiError, NonAgentApiOptions};

use crate::metrics as m;
use crate::retry::backoff;
use crate::worker::{BatchHandler, Delivery, Outcome};

pub struct LeadInject {
    dialer: Arc<dyn Dialer>,
    config: Option<LeadInjectionConfig>,
    /// Where the write-back (`lead-injected`) events go: the crm-events queue.
    crm_events: Arc<dyn Queue>,
}

impl std::fmt::Debug for LeadInject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeadInject").finish_non_exhaustive()
    }
}

fn counted(result: &'static str, reason: &'static str) {
    metrics::counter!(m::LEAD_INJECTIONS, "result" => result, "reason" => reason).increment(1);
}

/// The lead-inject worker as configured: VICIdial's non-agent API at `[vicidial] base_url`,
/// paced and timed per `[lead_injection]`, credentials from the secret's `vicidial` section.
pub fn build_lead_inject(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    crm_events: Arc<dyn Queue>,
) -> Result<LeadInject, NonAgentApiError> {
    let li = config.lead_injection.as_ref();
    let options = NonAgentApiOptions {
        requests_per_second: li.map_or(10, |l| l.requests_per_second),
        timeout: Duration::from_secs(u64::from(li.map_or(15, |l| l.timeout_secs))),
        ..NonAgentApiOptions::default()
    };
    let dialer = NonAgentApi::new(&config.vicidial.base_url, secrets, options)?;
    Ok(LeadInject::new(config.lead_injection.clone(), Arc::new(dialer), crm_events))
}

impl LeadInject {
    pub fn new(config: Option<LeadInjectionConfig>, dialer: Arc<dyn Dialer>, crm_events: Arc<dyn Queue>) -> Self {
        LeadInject { dialer, config, crm_events }
    }

    /// One outcome per delivery, in order. Deliveries are handled one by one: VICIdial is
    /// paced by the dialer client anyway, and a record announced twice in one batch must see
    /// the first one's lead.
    pub async fn process_batch(&self, batch: &[Delivery<'_>]) -> Vec<Outcome> {
        let mut done: HashMap<String, Outcome> = HashMap::new();
        let mut out = Vec::with_capacity(batch.len());
        for d in batch {
            let envelope = match Envelope::from_json(d.body) {
                Ok(e) => e,
                Err(e) => {
                    out.push(Outcome::DeadLetter { reason: e.to_string() });
                    continue;
                }
            };
            let Event::LeadInjection(injection) = envelope.event else {
                out.push(Outcome::DeadLetter {
                    reason: format!("a {} event does not belong on the lead-injections queue", envelope.event.kind()),
                });
                continue;
            };
            let dedupe = format!("{}:{}", injection.source, injection.crm_ref);
            if let Some(previous) = done.get(&dedupe) {
                out.push(previous.clone());
                continue;
            }
            let outcome = self.inject(&injection, d.receive_count).await;
            done.insert(dedupe, outcome.clone());
            out.push(outcome);
        }
        out
    }

    async fn inject(&self, injection: &LeadInjection, receive_count: u32) -> Outcome {
        let crm_ref = injection.crm_ref.as_str();
        let Some(config) = &self.config else {
            counted("rejected", "not_configured");
            return Outcome::DeadLetter { reason: "no [lead_injection] section in the configuration".into() };
        };
        let request = match to_add_lead(injection, config) {
            Ok(r) => r,
            Err(e) => {
                counted("rejected", "mapping");
                warn!(source = %injection.source, crm_ref, reason = %e, "lead cannot be injected; sent to the dead-letter queue");
                return Outcome::DeadLetter { reason: e.to_string() };
            }
        };
        // A redelivery (or a retry after a reply that never came, or the record re-sent with a
        // changed phone) must find the lead it added before: always look it up by
        // vendor_lead_code first. VICIdial's duplicate_check matches phones and names, which a
        // re-sent record may have changed, so it cannot stand in for this lookup.
        let existing = match self.dialer.find_by_vendor_lead_code(crm_ref).await {
            Ok(found) => found,
            Err(e) => return self.failed(injection, &e, receive_count),
        };
        let outcome = match existing {
            Some(lead_id) => AddLeadOutcome::AlreadyExists { lead_id, how: "found by vendor_lead_code".into() },
            None => match self.dialer.add_lead(&request).await {
                Ok(o) => o,
                Err(DialerError::Unknown { reason }) => match self.dialer.find_by_vendor_lead_code(crm_ref).await {
                    Ok(Some(lead_id)) => AddLeadOutcome::AlreadyExists {
                        lead_id,
                        how: format!("added although the reply was lost ({reason})"),
                    },
                    _ => return self.failed(injection, &DialerError::Unknown { reason }, receive_count),
                },
                Err(e) => return self.failed(injection, &e, receive_count),
            },
        };
        match &outcome {
            AddLeadOutcome::Added { lead_id, notices } => {
                counted("added", "");
                info!(source = %injection.source, crm_ref, lead_id = %lead_id, notices = notices.len(), "lead added to VICIdial");
            }
            AddLeadOutcome::AlreadyExists { lead_id, how } if existing.is_none() => {
                // A DUPLICATE reply: the configured duplicate_check matched on the phone (or
                // name), which may be another CRM record's lead. Link only a lead that is ours.
                match self.dialer.find_by_vendor_lead_code(crm_ref).await {
                    Ok(Some(ours)) if ours == *lead_id => {
                        counted("duplicate", "");
                        info!(source = %injection.source, crm_ref, lead_id = %lead_id, how, "lead already in VICIdial");
                    }
                    Ok(_) => {
                        counted("duplicate", "other_record");
                        warn!(source = %injection.source, crm_ref, lead_id = %lead_id, how, "VICIdial's duplicate_check matched a lead of another record: not added, not linked");
                        return Outcome::Done;
                    }
                    Err(e) => return self.failed(injection, &e, receive_count),
                }
            }
            AddLeadOutcome::AlreadyExists { lead_id, how } => {
                counted("duplicate", "");
                info!(source = %injection.source, crm_ref, lead_id = %lead_id, how, "lead already in VICIdial");
            }
        }
        self.write_back(injection, outcome.lead_id(), config, receive_count).await
    }

    async fn write_back(
        &self,
        injection: &LeadInjection,
        lead_id: vicibridge_core::LeadId,
        config: &LeadInjectionConfig,
        receive_count: u32,
    ) -> Outcome {
        if config.mapping(injection.source).and_then(|m| m.write_back.as_ref()).is_none() {
            return Outcome::Done;
        }
        let event = Event::LeadInjected(LeadInjected {
            source: injection.source,
            crm_ref: injection.crm_ref.clone(),
            object: injection.object.clone(),
            lead_id,
        });
        let envelope = Envelope::new(event, Utc::now());
        let message = OutgoingMessage { key: envelope.key.to_string(), body: envelope.to_json() };
        match self.crm_events.send(&message).await {
            Ok(()) => Outcome::Done,
            // The lead exists; the retry finds it and queues the write-back again.
            Err(e) => Outcome::Retry {
                delay: backoff(receive_count, None),
                reason: format!("cannot queue the CRM write-back: {e}"),
            },
        }
    }

    fn failed(&self, injection: &LeadInjection, e: &DialerError, receive_count: u32) -> Outcome {
        let crm_ref = injection.crm_ref.as_str();
        match e {
            DialerError::Retryable { reason } | DialerError::Unknown { reason } => {
                counted("retry", "dialer");
                warn!(source = %injection.source, crm_ref, attempt = receive_count, reason = %reason, "add_lead failed; will retry");
                Outcome::Retry { delay: backoff(receive_count, None), reason: reason.clone() }
            }
            DialerError::Permanent { reason, alert } => {
                counted("rejected", if *alert { "dialer_auth" } else { "dialer" });
                if *alert {
                    metrics::counter!(m::DIALER_AUTH_ALERTS).increment(1);
                }
                // The ERROR line of the dead letter is the breaker's (one place for every worker).
                info!(source = %injection.source, crm_ref, alert, "VICIdial refused the lead");
                Outcome::DeadLetter { reason: reason.clone() }
            }
            // The breaker pauses the worker and raises DialerAuthAlerts once per outage.
            DialerError::Integration { reason } => {
                counted("paused", "dialer_auth");
                Outcome::paused(receive_count, reason.clone())
            }
        }
    }
}

#[async_trait::async_trait]
impl BatchHandler for LeadInject {
    async fn process(&self, batch: &[Delivery<'_>]) -> Vec<Outcome> {
        self.process_batch(batch).await
    }
}

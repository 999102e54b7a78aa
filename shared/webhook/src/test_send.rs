//! `vicibridge webhook test`: one signed sample `call.dispositioned`, sent now to the
//! configured endpoint, and its answer: the first thing to try when wiring a new receiver.

use std::sync::Arc;

use chrono::Utc;
use vicibridge_core::config::Config;
use vicibridge_core::envelope::Envelope;
use vicibridge_core::event::{CallInfo, CallKey, Disposition, Event, LeadFields};
use vicibridge_core::plan::{SyncPlan, plan};
use vicibridge_core::ports::SecretStore;

use crate::body::BodyContext;
use crate::delivery::{Answer, Endpoint};
use crate::signing::SigningKeys;
use crate::{WebhookSetupError, requests};

#[derive(Debug, thiserror::Error)]
pub enum TestSendError {
    #[error(transparent)]
    Setup(#[from] WebhookSetupError),
    #[error("{0}")]
    Secret(String),
    #[error("the sample event was not built: {0}")]
    Sample(String),
}

/// What was sent and what came back.
#[derive(Debug, Clone)]
pub struct TestReport {
    pub url: String,
    pub webhook_id: String,
    pub body: String,
    /// The answer, or why none came (timeout, network).
    pub answer: Result<Answer, String>,
}

/// A sample disposition (lead 1, a SALE by agent 1000) mapped with the config's own mapping.
pub fn sample_plan(config: &Config) -> Result<SyncPlan, TestSendError> {
    let now = Utc::now();
    let uniqueid = format!("{}.1", now.timestamp());
    let lead_id = "1".parse().map_err(|_| TestSendError::Sample("lead id".into()))?;
    let event = Event::Dispo(Disposition {
        lead_id,
        lead: LeadFields {
            vendor_lead_code: Some("CRM-1".into()),
            list_id: Some("101".into()),
            phone_code: Some("1".into()),
            phone_number: Some("7275558888".into()),
            first_name: Some("Sample".into()),
            last_name: Some("Lead".into()),
            ..LeadFields::default()
        },
        call: CallInfo {
            key: CallKey::Uniqueid(uniqueid.clone()),
            uniqueid: Some(uniqueid),
            call_id: Some(format!("M{}0000000001", now.format("%m%d%H%M%S"))),
            agent: Some("1000".into()),
            campaign: Some("TESTCAMP".into()),
            ingroup: None,
            dialed_number: None,
            epoch: Some(now.timestamp()),
        },
        status: "SALE".into(),
        status_name: Some("Sale Made".into()),
        talk_time_secs: Some(63),
        recording_filename: Some(format!("{}_7275558888_1000-all", now.format("%Y%m%d-%H%M%S"))),
        recording_id: Some("17".into()),
        callback_at: None,
        call_notes: Some("vicibridge webhook test".into()),
        term_reason: None,
    });
    plan(&Envelope::new(event, now), &config.disposition_map(), config.vicidial.server_time_zone)
        .map_err(|e| TestSendError::Sample(e.to_string()))
}

/// Sends the sample. `Ok` carries the report whatever the endpoint answered.
pub async fn send_test(config: &Config, secrets: Arc<dyn SecretStore>) -> Result<TestReport, TestSendError> {
    let mut cfg = config.webhook.clone().ok_or(WebhookSetupError::MissingSection)?;
    // The test is sent whatever `events` and `batch` say: one event, one request.
    cfg.batch = false;
    cfg.events = vec![vicibridge_core::config::webhook::EventType::CallDispositioned];
    let endpoint = Endpoint::new(&cfg).map_err(WebhookSetupError::from)?;
    let doc = secrets.current().await.map_err(|e| TestSendError::Secret(e.to_string()))?;
    let keys = SigningKeys::from_secrets(doc.webhook.as_ref()).map_err(|e| TestSendError::Secret(e.to_string()))?;
    let ctx = BodyContext::new(&cfg, config.vicidial.server_time_zone);
    let plan = sample_plan(config)?;
    let request = requests(&cfg, &ctx, std::slice::from_ref(&plan))
        .into_iter()
        .next()
        .ok_or_else(|| TestSendError::Sample("no request was built".into()))?;
    let answer = endpoint.send(&keys, &request).await.map(|(a, _)| a).map_err(|e| e.reason().to_owned());
    Ok(TestReport { url: cfg.url, webhook_id: request.webhook_id, body: request.body, answer })
}

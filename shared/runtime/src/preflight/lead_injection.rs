//! Lead injection lines: a test lead goes through the real lead-inject worker twice (the second
//! time as a queue redelivery) and must land once in VICIdial; then it is deleted
//! (`update_lead` with `delete_lead=Y`) unless `--keep`. Opt-in: it needs a phone number the
//! operator owns, and the API user needs `update_lead` for the clean-up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use vicibridge_core::config::{Config, CrmKind};
use vicibridge_core::event::{Event, LeadInjection, LeadSource};
use vicibridge_core::lead::{Dialer, DialerError, default_phone_property};
use vicibridge_core::ports::{OutgoingMessage, Queue, QueueError, SecretStore};
use vicibridge_core::{Envelope, LeadId};
use vicibridge_vicidial::non_agent_api::{Deleted, NonAgentApi, NonAgentApiOptions};

use super::{Check, Options, Status};
use crate::lead_inject::LeadInject;
use crate::worker::{Delivery, Outcome};

pub(super) const ID: &str = "lead_injection.duplicate";
pub(super) const TITLE: &str = "A test lead injected twice lands once in VICIdial";
const CLEANUP_ID: &str = "lead_injection.cleanup";
const CLEANUP_TITLE: &str = "The test lead is removed from VICIdial";

/// The write-back a real worker would queue for the CRM: dropped, the test record is not one.
struct Discard;

#[async_trait::async_trait]
impl Queue for Discard {
    async fn send(&self, _message: &OutgoingMessage) -> Result<(), QueueError> {
        Ok(())
    }
}

pub(super) async fn checks(config: &Config, secrets: Arc<dyn SecretStore>, options: &Options) -> Vec<Check> {
    let Some(li) = &config.lead_injection else { return Vec::new() };
    let Some(phone) = &options.test_lead_phone else {
        return vec![Check::skip(
            ID,
            TITLE,
            "pass --test-lead-phone NUMBER (a number you own) to inject a test lead; its removal needs update_lead \
             in the API user's api_allowed_functions",
        )];
    };
    let prefer_salesforce = config.crm.kind == CrmKind::Salesforce || li.hubspot.is_none();
    let source =
        if prefer_salesforce && li.salesforce.is_some() { LeadSource::Salesforce } else { LeadSource::Hubspot };
    let Some(mapping) = li.mapping(source) else {
        return vec![Check::skip(ID, TITLE, "no [lead_injection.hubspot] or [lead_injection.salesforce] section")];
    };
    let api = match NonAgentApi::new(
        &config.vicidial.base_url,
        secrets,
        NonAgentApiOptions {
            timeout: Duration::from_secs(u64::from(li.timeout_secs)),
            ..NonAgentApiOptions::default()
        },
    ) {
        Ok(api) => Arc::new(api),
        Err(e) => return vec![Check::fail(ID, TITLE, e.to_string())],
    };
    // A vendor_lead_code no CRM record has (VICIdial keeps 20 characters).
    let crm_ref = format!("vbpreflight{:09}", fastrand::u32(..1_000_000_000));
    let phone_property = mapping.phone.clone().unwrap_or_else(|| default_phone_property(source).to_owned());
    let properties = BTreeMap::from([(phone_property, phone.clone())]);
    let injection = LeadInjection {
        source,
        crm_ref: crm_ref.clone(),
        object: None,
        origin: "vicibridge preflight".into(),
        properties,
    };
    let body = Envelope::new(Event::LeadInjection(injection), chrono::Utc::now()).to_json();
    let worker = LeadInject::new(Some(li.clone()), api.clone() as Arc<dyn Dialer>, Arc::new(Discard));

    let mut out = Vec::new();
    let mut added = Vec::new();
    let result = inject_twice(&worker, &api, &body, &crm_ref, &mut added).await;
    out.push(match result {
        Ok(lead_id) => Check::pass(
            ID,
            TITLE,
            format!(
                "lead {lead_id} added to list {} (vendor_lead_code {crm_ref}); the redelivery found it, no second lead",
                mapping.list_id
            ),
        ),
        Err(reason) => Check::fail(ID, TITLE, reason),
    });
    if added.is_empty() {
        return out;
    }
    let list = added.iter().map(LeadId::to_string).collect::<Vec<_>>().join(", ");
    if options.keep {
        out.push(Check::new(
            CLEANUP_ID,
            CLEANUP_TITLE,
            Status::Warn,
            format!("--keep: lead(s) {list} left in VICIdial"),
        ));
        return out;
    }
    let mut failures = Vec::new();
    for lead_id in &added {
        match api.delete_lead(*lead_id).await {
            Ok(Deleted::Deleted | Deleted::NotFound) => {}
            // The reason alone: a refused permission is not a refused login, whatever the
            // worker's classification.
            Err(
                DialerError::Retryable { reason }
                | DialerError::Unknown { reason }
                | DialerError::Permanent { reason, .. }
                | DialerError::Integration { reason },
            ) => failures.push(format!("lead {lead_id}: {reason}")),
        }
    }
    out.push(if failures.is_empty() {
        Check::pass(CLEANUP_ID, CLEANUP_TITLE, format!("lead(s) {list} deleted (update_lead delete_lead=Y)"))
    } else {
        Check::fail(
            CLEANUP_ID,
            CLEANUP_TITLE,
            format!("delete by hand (or allow update_lead for the API user): {}", failures.join("; ")),
        )
    });
    out
}

/// Both deliveries through the worker; `added` collects every lead found, for the clean-up.
async fn inject_twice(
    worker: &LeadInject,
    api: &NonAgentApi,
    body: &str,
    crm_ref: &str,
    added: &mut Vec<LeadId>,
) -> Result<LeadId, String> {
    let mut first = None;
    for receive_count in 1..=2 {
        let delivery = Delivery { message_id: "preflight", body, receive_count };
        let outcome = worker.process_batch(&[delivery]).await;
        let found = api.find_by_vendor_lead_code(crm_ref).await.map_err(|e| format!("lead_search: {e}"))?;
        if let Some(id) = found
            && !added.contains(&id)
        {
            added.push(id);
        }
        if outcome != [Outcome::Done] {
            return Err(format!("delivery {receive_count} did not complete: {outcome:?}"));
        }
        match (first, found) {
            (_, None) => return Err(format!("after delivery {receive_count}, no lead has the test vendor_lead_code")),
            (None, Some(id)) => first = Some(id),
            (Some(a), Some(b)) if a != b => {
                return Err(format!("the redelivery added a second lead {b} (the first is {a})"));
            }
            (Some(_), Some(_)) => {}
        }
    }
    first.ok_or_else(|| "no lead found".to_owned())
}

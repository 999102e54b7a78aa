//! Metric names (CloudWatch EMF in Lambda; the alarms in infra/template.yaml use them).

pub const NAMESPACE: &str = "vicibridge";
/// Events accepted and queued, by `kind`.
pub const INGEST_ACCEPTED: &str = "IngestAccepted";
/// Requests refused, by `reason` (unauthorized, too_large, unsubstituted_tag, ...).
pub const INGEST_REJECTED: &str = "IngestRejected";
/// 503s: the queue did not take an event.
pub const INGEST_QUEUE_FAILURES: &str = "IngestQueueFailures";
/// Events that will not be applied (dead-lettered), by `reason`.
pub const SYNC_FAILURES: &str = "SyncFailures";
/// Events put back for a later retry, by `reason`.
pub const SYNC_RETRIES: &str = "SyncRetries";
pub const SYNC_APPLIED: &str = "SyncApplied";
/// Events held back because their integration is paused (credential refused), by `crm`.
pub const SYNC_PAUSED: &str = "SyncPaused";
/// The CRM refused vicibridge's credentials: raised once per outage by the crm-sync worker's
/// circuit breaker (the CrmAuthAlarm watches it).
pub const CRM_AUTH_ALERTS: &str = "CrmAuthAlerts";
/// Outages of an integration (circuit breaker opened), by `integration`.
pub const INTEGRATION_PAUSES: &str = "IntegrationPauses";
/// Dispositions whose status no layer of the mapping knows, by `status`.
pub const UNMAPPED_DISPOSITIONS: &str = "UnmappedDispositions";
/// The same without dimensions: the UnmappedDispositionsAlarm in infra/template.yaml.
pub const UNMAPPED_DISPOSITIONS_TOTAL: &str = "UnmappedDispositionsTotal";
/// `vendor_lead_code` lookups by the CRM adapters, and those that found no record, by
/// `campaign` and `list`, and without dimensions for the BridgeIdAlarm (see
/// [`vicibridge_core::bridge_id`]).
pub use vicibridge_core::bridge_id::{
    BRIDGE_ID_LOOKUPS, BRIDGE_ID_LOOKUPS_TOTAL, BRIDGE_ID_NOT_FOUND, BRIDGE_ID_NOT_FOUND_TOTAL,
};
/// Lead webhooks refused, by `source` and `status`.
pub const WEBHOOK_REJECTED: &str = "WebhookRejected";
/// Records queued for injection.
pub const WEBHOOK_QUEUED: &str = "WebhookQueued";
/// Lead injection outcomes, by `result` (added, duplicate, rejected, retry) and `reason`.
pub const LEAD_INJECTIONS: &str = "LeadInjections";
/// Login / permission errors from VICIdial: an operator must act. Raised once per outage by
/// the lead-inject worker's circuit breaker, and for configuration errors.
pub const DIALER_AUTH_ALERTS: &str = "DialerAuthAlerts";
/// Click-to-call dial attempts, by `result` (queued, sign_in, not_logged_in, not_paused, ...).
pub const CLICK_TO_CALL: &str = "ClickToCall";
/// URLs VICIdial logged that never reached vicibridge, found by reconcile.
pub const RECONCILE_MISSING: &str = "ReconcileMissing";
/// Of those, the ones reconcile queued again.
pub const RECONCILE_REPLAYED: &str = "ReconcileReplayed";
/// The disposition watchdog (reconcile Lambda): calls of a campaign that started `[watchdogs]
/// calls_without_disposition_after_minutes` or more ago with no disposition since, by
/// `campaign`; without a campaign, the largest of them (the CallsWithoutDispositionAlarm).
pub const CALLS_WITHOUT_DISPOSITION: &str = "CallsWithoutDisposition";
/// The silent-campaign check (reconcile Lambda): 1 per campaign that sent dispositions
/// yesterday and none today while others did in its hours, by `campaign`; without a campaign,
/// how many are silent (0 when none; the SilentCampaignAlarm).
pub const SILENT_CAMPAIGNS: &str = "SilentCampaigns";

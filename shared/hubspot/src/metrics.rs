//! Metric names of the HubSpot adapter, beside those of `vicibridge_runtime::metrics`
//! (`SyncFailures` by reason and `UnmappedDispositions` are emitted by the worker).

/// HubSpot API requests, by `op` (e.g. `calls.batch.upsert`) and `status` (HTTP code or `network`).
pub const CRM_API_CALLS: &str = "CrmApiCalls";
/// Latency of each HubSpot request in milliseconds, by `op` (histogram).
pub const CRM_LATENCY_MS: &str = "CrmLatencyMs";
/// HubSpot refused the token twice (also after re-reading the secret): alarm on it.
pub const CRM_AUTH_FAILURES: &str = "CrmAuthFailures";
/// The same failures without dimensions: the CrmAuthAlarm in infra/template.yaml watches it.
pub const CRM_AUTH_ALERTS: &str = "CrmAuthAlerts";
/// 429 answers, by `policy` (`TEN_SECONDLY_ROLLING`, `DAILY`, ...).
pub const CRM_RATE_LIMITED: &str = "CrmRateLimited";
/// Plans HubSpot refused one by one (per-input errors), by `op`.
pub const CRM_RECORD_ERRORS: &str = "CrmRecordErrors";

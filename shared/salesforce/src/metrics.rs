//! Metric names of the Salesforce adapter (CloudWatch EMF through the `metrics` facade; every
//! one carries `crm = "salesforce"`).

/// Requests sent to Salesforce (token endpoint included), by `op`.
pub const API_CALLS: &str = "CrmApiCalls";
/// Latency of one request, milliseconds, by `op`.
pub const LATENCY_MS: &str = "CrmLatencyMs";
/// Failed requests or records, by `reason` (the Salesforce errorCode, or network/timeout).
pub const FAILURES: &str = "CrmFailures";
/// Access tokens obtained, by `flow` (refresh_token, jwt_bearer).
pub const TOKEN_REFRESHES: &str = "CrmTokenRefreshes";
/// Login failures an operator must fix (invalid_grant, invalid_client, a rotated refresh
/// token that could not be stored), by `reason`: alarm on any.
pub const AUTH_FAILURES: &str = "CrmAuthFailures";
/// The same failures without dimensions: the CrmAuthAlarm in infra/template.yaml watches it.
pub const AUTH_ALERTS: &str = "CrmAuthAlerts";
/// From `Sforce-Limit-Info`: daily API calls used, the org's limit, and what remains.
pub const API_USED: &str = "CrmApiUsed";
pub const API_LIMIT: &str = "CrmApiLimit";
pub const API_REMAINING: &str = "CrmApiRemaining";
/// Batches slowed down because the remaining API calls fell below `api_floor`.
pub const THROTTLED: &str = "CrmThrottled";

pub(crate) const CRM: &str = "salesforce";

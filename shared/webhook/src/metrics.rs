//! Metric names of the webhook adapter, beside those of `vicibridge_runtime::metrics`.

/// Requests to the endpoint, by `status` (HTTP code or `network`); `crm` = `webhook`, the
/// same names the HubSpot adapter uses.
pub const CRM_API_CALLS: &str = "CrmApiCalls";
/// Latency of each request in milliseconds (histogram).
pub const CRM_LATENCY_MS: &str = "CrmLatencyMs";
/// The endpoint answered 410 Gone: it was removed and every event dead-letters until
/// `webhook.url` is changed. Alarm on it.
pub const WEBHOOK_ENDPOINT_GONE: &str = "WebhookEndpointGone";

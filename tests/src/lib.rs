//! Shared helpers for the integration tests in `tests/tests/`.

pub mod browser;
pub mod call_urls;
pub mod faults;
pub mod hubspot_sim;
pub mod log_capture;
pub mod moto;
pub mod oauth_sim;
pub mod runtime_api;
pub mod salesforce_sim;
pub mod tls_proxy;
pub mod url_log_sim;
pub mod vicidial_sim;

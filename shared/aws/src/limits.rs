//! Timeouts and retries for every AWS call, chosen per use so that no call can outlast the
//! budget of what waits on it: an ingest request (about a second), a worker batch (the
//! function's timeout), a cold start (Lambda's 10 s init limit).
//!
//! Without them the SDK waits for a connection or an answer as long as the OS lets it (a
//! listener that accepts and never answers hangs the call for good), and its default three
//! attempts multiply with any retry of our own.

use std::time::Duration;

use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::SdkConfig;

/// How long one kind of AWS call may take, and how often it is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// Establishing the TCP (and TLS) connection.
    pub connect: Duration,
    /// One attempt, from sending the request to the end of the response.
    pub attempt: Duration,
    /// All attempts and the backoff between them.
    pub operation: Duration,
    /// Attempts in all (1 = no retry), with the SDK's standard retry classification
    /// (throttling, 5xx, timeouts, connection errors).
    pub max_attempts: u32,
    /// First backoff; it doubles up to `max_backoff`, with jitter.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// The ingest path (Secrets Manager read, SQS SendMessage): every call fits in the ingest
/// budget (`vicibridge_runtime::budget`), which cuts whatever is left.
pub const INGEST: CallLimits = CallLimits {
    connect: Duration::from_millis(300),
    attempt: Duration::from_millis(500),
    operation: Duration::from_millis(900),
    max_attempts: 2,
    initial_backoff: Duration::from_millis(20),
    max_backoff: Duration::from_millis(100),
};

/// Workers (crm-sync, lead-inject): SQS ChangeMessageVisibility / SendMessage to the DLQ and
/// the crm-events queue, Secrets Manager reads and writes. A worker keeps
/// [`WORKER.operation`](CallLimits::operation) of its function's time for them.
pub const WORKER: CallLimits = CallLimits {
    connect: Duration::from_secs(1),
    attempt: Duration::from_secs(2),
    operation: Duration::from_secs(5),
    max_attempts: 3,
    initial_backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(1),
};

/// Cold start (SSM GetParameter): inside [`INIT_BUDGET`], so a slow or unreachable SSM ends
/// as an init error that names it, before Lambda's own 10 s init limit.
pub const INIT: CallLimits = CallLimits {
    connect: Duration::from_secs(1),
    attempt: Duration::from_secs(2),
    operation: Duration::from_secs(6),
    max_attempts: 3,
    initial_backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(1),
};

/// The whole of a function's init (Lambda stops an init at 10 s and retries it at the first
/// invocation, where it counts against the function's timeout).
pub const INIT_BUDGET: Duration = Duration::from_secs(8);

impl CallLimits {
    pub fn timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .read_timeout(self.attempt)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }

    pub fn retry_config(&self) -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(self.max_attempts)
            .with_initial_backoff(self.initial_backoff)
            .with_max_backoff(self.max_backoff)
    }

    pub fn sqs(&self, sdk: &SdkConfig) -> aws_sdk_sqs::Client {
        let mut config = aws_sdk_sqs::config::Builder::from(sdk)
            .timeout_config(self.timeout_config())
            .retry_config(self.retry_config());
        if let Some(endpoint) = crate::sdk::service_endpoint("SQS") {
            config = config.endpoint_url(endpoint);
        }
        let config = config.build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    pub fn secrets_manager(&self, sdk: &SdkConfig) -> aws_sdk_secretsmanager::Client {
        let mut config = aws_sdk_secretsmanager::config::Builder::from(sdk)
            .timeout_config(self.timeout_config())
            .retry_config(self.retry_config());
        if let Some(endpoint) = crate::sdk::service_endpoint("SECRETS_MANAGER") {
            config = config.endpoint_url(endpoint);
        }
        let config = config.build();
        aws_sdk_secretsmanager::Client::from_conf(config)
    }

    pub fn ssm(&self, sdk: &SdkConfig) -> aws_sdk_ssm::Client {
        let mut config = aws_sdk_ssm::config::Builder::from(sdk)
            .timeout_config(self.timeout_config())
            .retry_config(self.retry_config());
        if let Some(endpoint) = crate::sdk::service_endpoint("SSM") {
            config = config.endpoint_url(endpoint);
        }
        let config = config.build();
        aws_sdk_ssm::Client::from_conf(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_fits_its_budget() {
        for limits in [INGEST, WORKER, INIT] {
            assert!(limits.connect <= limits.attempt && limits.attempt <= limits.operation, "{limits:?}");
            assert!(limits.max_attempts >= 1);
        }
        assert!(INGEST.operation < vicibridge_runtime::budget::VICIDIAL_INGEST.default);
        assert!(INIT.operation < INIT_BUDGET && INIT_BUDGET < Duration::from_secs(10));
    }
}

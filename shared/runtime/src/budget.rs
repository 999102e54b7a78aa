//! The time an HTTP ingest request may take before it is answered 503.
//!
//! VICIdial's Start Call URL holds the agent's screen until it is answered and VICIdial never
//! retries; HubSpot and Salesforce retry a 5xx. So the whole of an ingest request — reading the
//! secret, every queue attempt — gets one budget, after which the answer is 503 (the event is
//! not stored), never a hang and never past the Lambda function's timeout.

use std::time::Duration;

/// Environment variable overriding the budget, in milliseconds (Lambda and serve).
pub const INGEST_BUDGET_ENV: &str = "VICIBRIDGE_INGEST_BUDGET_MS";

/// A route family's budget: its default and the most it may be set to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetLimits {
    pub default: Duration,
    pub max: Duration,
}

/// VICIdial's call URLs: one second by default, well inside the ingest functions' 5 s timeout
/// and long enough for a cold TLS handshake to Secrets Manager and SQS plus a quick retry.
pub const VICIDIAL_INGEST: BudgetLimits = BudgetLimits { default: Duration::from_secs(1), max: Duration::from_secs(4) };
/// The CRM lead webhooks: a Salesforce outbound message queues up to 100 notifications before
/// its ACK, and Salesforce and HubSpot wait longer than VICIdial (lead-webhook's timeout: 10 s).
pub const LEAD_WEBHOOK: BudgetLimits = BudgetLimits { default: Duration::from_secs(5), max: Duration::from_secs(9) };

/// The click-to-call surface (`POST /agent/dial`, the sign-in callback): an agent waits on
/// it. A dial is one `agent_status` (3 s timeout) and one `external_dial` (5 s); a sign-in two
/// calls to the CRM (5 s each). Whatever is still running when it is spent is cut, and the
/// agent is told so (click-to-call's timeout: 15 s).
pub const AGENT_REQUEST: BudgetLimits = BudgetLimits { default: Duration::from_secs(10), max: Duration::from_secs(13) };

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{INGEST_BUDGET_ENV}={value} is not a budget: give whole milliseconds from 1 to {max_ms} (unset: {default_ms})"
)]
pub struct BudgetError {
    pub value: String,
    pub max_ms: u128,
    pub default_ms: u128,
}

impl BudgetLimits {
    /// [`INGEST_BUDGET_ENV`] if set (and not blank), else the default.
    pub fn from_env(self) -> Result<Duration, BudgetError> {
        match std::env::var(INGEST_BUDGET_ENV) {
            Ok(value) => self.parse(&value),
            Err(std::env::VarError::NotPresent) => Ok(self.default),
            Err(std::env::VarError::NotUnicode(v)) => Err(self.error(&v.to_string_lossy())),
        }
    }

    /// Whole milliseconds, 1..=max; blank means the default.
    pub fn parse(self, value: &str) -> Result<Duration, BudgetError> {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Ok(self.default);
        }
        match trimmed.parse::<u64>() {
            Ok(ms) if ms >= 1 && u128::from(ms) <= self.max.as_millis() => Ok(Duration::from_millis(ms)),
            _ => Err(self.error(value)),
        }
    }

    fn error(self, value: &str) -> BudgetError {
        BudgetError { value: value.to_owned(), max_ms: self.max.as_millis(), default_ms: self.default.as_millis() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_whole_milliseconds_within_the_function_timeout() {
        assert_eq!(VICIDIAL_INGEST.parse("750"), Ok(Duration::from_millis(750)));
        assert_eq!(VICIDIAL_INGEST.parse(" "), Ok(VICIDIAL_INGEST.default));
        assert_eq!(LEAD_WEBHOOK.parse("9000"), Ok(Duration::from_secs(9)));
        for bad in ["0", "4001", "1s", "-5", "1.5"] {
            let e = VICIDIAL_INGEST.parse(bad).unwrap_err().to_string();
            assert!(e.contains(INGEST_BUDGET_ENV) && e.contains(bad) && e.contains("4000"), "{e}");
        }
    }
}

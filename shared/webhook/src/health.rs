//! When a failing endpoint stops being one message's problem.
//!
//! One timeout or 503 is retried like any other (the queue's backoff). An endpoint that has
//! answered nothing but retryable failures for `webhook.outage_after_secs` (and at least
//! [`OUTAGE_MIN_FAILURES`] requests) is down: its failures become
//! [`SyncError::Integration`], so the worker's circuit breaker pauses the sync — events wait on
//! the queue instead of burning their receives toward the dead-letter queue — and probes it
//! until it answers again. Any answer that is not a retryable failure (2xx, or a 4xx refusing
//! one event) shows the endpoint is up and ends the outage.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use vicibridge_core::SyncError;

/// Failed requests it takes at least: the first one only starts the clock.
pub const OUTAGE_MIN_FAILURES: u32 = 2;

#[derive(Debug, Clone, Copy)]
struct Failing {
    since: Instant,
    failures: u32,
}

/// The endpoint's recent record, shared by every batch of one adapter.
#[derive(Debug)]
pub struct EndpointHealth {
    failing: Mutex<Option<Failing>>,
    /// How long an endpoint must fail without a single good answer before it counts as down.
    outage_after: Duration,
}

impl EndpointHealth {
    pub fn new(outage_after: Duration) -> Self {
        EndpointHealth { failing: Mutex::new(None), outage_after }
    }

    /// Records one request's result and says how the worker must treat it.
    pub fn observe<T>(&self, result: Result<T, SyncError>) -> Result<T, SyncError> {
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        let reason = match &result {
            Err(SyncError::Retryable { reason, .. }) => reason,
            _ => {
                *failing = None;
                return result;
            }
        };
        let now = Instant::now();
        let f = failing.get_or_insert(Failing { since: now, failures: 0 });
        f.failures += 1;
        let down_for = now.duration_since(f.since);
        if f.failures >= OUTAGE_MIN_FAILURES && down_for >= self.outage_after {
            return Err(SyncError::integration(format!(
                "the webhook endpoint has failed every request for {} s ({} requests); last: {reason}",
                down_for.as_secs(),
                f.failures
            )));
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retryable() -> Result<(), SyncError> {
        Err(SyncError::retryable("the webhook endpoint answered HTTP 503"))
    }

    #[test]
    fn sustained_failures_become_an_outage_and_one_answer_ends_it() {
        let health = EndpointHealth::new(Duration::from_millis(30));
        assert!(health.observe(retryable()).unwrap_err().is_retryable());
        std::thread::sleep(Duration::from_millis(40));
        let second = health.observe(retryable()).unwrap_err();
        assert!(second.is_integration(), "{second:?}");
        assert!(second.reason().contains("2 requests") && second.reason().contains("HTTP 503"), "{}", second.reason());
        // A 4xx refusing one event is an answer: the endpoint is up again.
        let refused = health.observe::<()>(Err(SyncError::permanent("HTTP 422"))).unwrap_err();
        assert!(!refused.is_retryable() && !refused.is_integration());
        assert!(health.observe(retryable()).unwrap_err().is_retryable());
    }

    #[test]
    fn failures_closer_together_than_the_threshold_are_not_an_outage() {
        let health = EndpointHealth::new(Duration::from_secs(3600));
        for _ in 0..50 {
            assert!(health.observe(retryable()).unwrap_err().is_retryable());
        }
        assert_eq!(health.observe(Ok(())), Ok(()));
    }
}

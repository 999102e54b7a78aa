//! Retry schedules as data.

use std::time::Duration;

/// Backoff before the n-th redelivery of a failed message (n = receive count so far).
const SCHEDULE_SECS: [u64; 6] = [5, 15, 60, 300, 900, 1800];
/// A Retry-After longer than this is not honoured as such: the DLQ alarm should fire instead.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Delay before a retryable failure is retried: the schedule step with ±20 % jitter (so a
/// burst that failed together does not retry together), or the CRM's Retry-After if longer.
pub fn backoff(receive_count: u32, retry_after: Option<Duration>) -> Duration {
    let idx = (receive_count.max(1) as usize - 1).min(SCHEDULE_SECS.len() - 1);
    let base = SCHEDULE_SECS[idx] as f64;
    let jittered = Duration::from_secs_f64(base * (0.8 + 0.4 * fastrand::f64()));
    match retry_after {
        Some(asked) => jittered.max(asked.min(MAX_RETRY_AFTER)),
        None => jittered,
    }
}

/// While an integration is paused, a message the queue keeps delivering (SQS) goes back for
/// this long, by its receive count: short at first (a fixed secret is picked up soon), then
/// 15 minutes, so that `maxReceiveCount` receives span a multi-hour outage (README, "Token
/// outages"). `serve` holds its loop instead and puts messages back at once.
const PAUSED_SCHEDULE_SECS: [u64; 5] = [60, 120, 300, 600, 900];

/// Delay before a message held back by a paused integration is delivered again, ±20 %.
pub fn paused_delay(receive_count: u32) -> Duration {
    let idx = (receive_count.max(1) as usize - 1).min(PAUSED_SCHEDULE_SECS.len() - 1);
    Duration::from_secs_f64(PAUSED_SCHEDULE_SECS[idx] as f64 * (0.8 + 0.4 * fastrand::f64()))
}

/// Short in-request retries for the ingest path: the caller is waiting.
pub const QUICK_RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(20), Duration::from_millis(100)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_attempts_and_honours_retry_after() {
        for _ in 0..100 {
            let first = backoff(1, None);
            assert!(first >= Duration::from_secs(4) && first <= Duration::from_secs(6));
            let late = backoff(40, None);
            assert!(late >= Duration::from_secs(1440));
            assert!(backoff(1, Some(Duration::from_secs(120))) >= Duration::from_secs(120));
            assert!(backoff(1, Some(Duration::from_secs(86_400))) <= MAX_RETRY_AFTER);
        }
    }
}

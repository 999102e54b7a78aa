//! At most N requests per second to VICIdial, shared by every caller of one client.
//!
//! Evenly spaced slots (a token bucket of depth one): any one-second window holds at most
//! N + 1 requests, and a burst of queued events cannot hit the dialer's web server at once.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// `per_second` of 0 is taken as 1: a limiter that never lets anything through would
    /// only hide a configuration mistake behind timeouts.
    pub fn per_second(per_second: u32) -> Self {
        let interval = Duration::from_secs(1) / per_second.max(1);
        RateLimiter { interval, next: Mutex::new(None) }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits for this caller's slot. The slot is reserved before waiting, so callers go in
    /// arrival order; a caller dropped while waiting only wastes its slot.
    pub async fn acquire(&self) {
        let at = {
            let mut next = self.next.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            let at = next.map_or(now, |n| n.max(now));
            *next = Some(at + self.interval);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Virtual time (`start_paused`): the spacing is exact and the test takes no real time.
    #[tokio::test(start_paused = true)]
    async fn spaces_concurrent_callers_evenly() {
        let limiter = Arc::new(RateLimiter::per_second(10));
        let start = Instant::now();
        let tasks: Vec<_> = (0..25)
            .map(|_| {
                let l = limiter.clone();
                tokio::spawn(async move {
                    l.acquire().await;
                    Instant::now()
                })
            })
            .collect();
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap() - start);
        }
        times.sort();
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(100), "{times:?}");
        }
        for (i, t) in times.iter().enumerate() {
            let in_window = times.iter().filter(|u| **u >= *t && **u < *t + Duration::from_secs(1)).count();
            assert!(in_window <= 11, "{i}: {in_window}");
        }
        assert_eq!(times.last().copied(), Some(Duration::from_millis(2400)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_limiter_lets_the_next_call_through_at_once() {
        let limiter = RateLimiter::per_second(2);
        limiter.acquire().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let before = Instant::now();
        limiter.acquire().await;
        assert_eq!(Instant::now(), before);
        assert_eq!(RateLimiter::per_second(0).interval(), Duration::from_secs(1));
    }
}

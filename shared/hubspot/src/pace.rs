//! Pacing under HubSpot's rolling windows: a sliding log of the last requests, shared by
//! every `HubspotCrm` of the process that talks to the same account (same base URL).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

/// At most `limit` requests in any `window`. A sliding log rather than a token bucket: a
/// bucket that starts full lets `capacity + limit` requests into one rolling window.
#[derive(Debug)]
pub struct Pacer {
    limit: usize,
    window: Duration,
    state: Mutex<PacerState>,
}

#[derive(Debug, Default)]
struct PacerState {
    sent: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

impl Pacer {
    pub fn new(limit: u32, window: Duration) -> Self {
        Pacer { limit: limit.max(1) as usize, window, state: Mutex::new(PacerState::default()) }
    }

    /// Waits until a request may go, and counts it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let Ok(mut s) = self.state.lock() else { return };
                let now = Instant::now();
                match s.paused_until {
                    Some(until) if until > now => Some(until - now),
                    _ => {
                        s.paused_until = None;
                        while s.sent.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
                            s.sent.pop_front();
                        }
                        if s.sent.len() < self.limit {
                            s.sent.push_back(now);
                            None
                        } else {
                            s.sent.front().map(|t| self.window.saturating_sub(now.duration_since(*t)))
                        }
                    }
                }
            };
            match wait {
                None => return,
                Some(d) => tokio::time::sleep(d.max(Duration::from_millis(1))).await,
            }
        }
    }

    /// Nobody sends before `now + d` (after a 429, or when HubSpot says the window is spent).
    pub fn pause(&self, d: Duration) {
        if let Ok(mut s) = self.state.lock() {
            let until = Instant::now() + d;
            if s.paused_until.is_none_or(|u| u < until) {
                s.paused_until = Some(until);
            }
        }
    }
}

/// The process-wide pacers for one HubSpot account: the general budget and search's 5/s.
#[derive(Debug)]
pub struct Pacers {
    pub general: Pacer,
    pub search: Pacer,
}

/// One `Pacers` per (base URL, budget) for the whole process: several adapters built in one
/// process (tests, a future second worker) still share HubSpot's budget.
pub fn shared(base_url: &str, per_10s: u32) -> Arc<Pacers> {
    type Registry = Mutex<HashMap<(String, u32), Arc<Pacers>>>;
    static ALL: OnceLock<Registry> = OnceLock::new();
    let make = || {
        Arc::new(Pacers {
            // A little slack on the window: HubSpot's clock starts when the request lands.
            general: Pacer::new(per_10s, Duration::from_millis(10_250)),
            search: Pacer::new(5, Duration::from_millis(1_100)),
        })
    };
    let Ok(mut all) = ALL.get_or_init(Default::default).lock() else { return make() };
    all.entry((base_url.to_owned(), per_10s)).or_insert_with(make).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_limit_in_a_window() {
        let p = Pacer::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let mut at = Vec::new();
        for _ in 0..7 {
            p.acquire().await;
            at.push(Instant::now().duration_since(t0));
        }
        for w in at.windows(4) {
            assert!(w[3] - w[0] >= Duration::from_secs(10), "{at:?}");
        }
        p.pause(Duration::from_secs(30));
        let before = Instant::now();
        p.acquire().await;
        assert!(Instant::now().duration_since(before) >= Duration::from_secs(30));
    }
}

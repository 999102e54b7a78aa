//! The circuit breaker of a queue worker: a refused credential pauses the worker instead of
//! dead-lettering its backlog.
//!
//! Each worker writes to one integration (crm-sync to the CRM, lead-inject to VICIdial). When
//! that integration refuses vicibridge's credential (HubSpot 401, Salesforce `invalid_grant`,
//! VICIdial `Login incorrect`) or is down as a whole (a webhook endpoint failing every request
//! for `webhook.outage_after_secs`) — [`SyncError::Integration`](vicibridge_core::SyncError) /
//! [`DialerError::Integration`](vicibridge_core::lead::DialerError), [`Outcome::Paused`] here —
//! no message can succeed until that changes. The breaker then:
//! - opens: one ERROR line and one alert metric (CrmAuthAlerts / DialerAuthAlerts) per outage;
//! - stops taking work: `serve`'s loop asks [`Guarded::admit`] before it receives; on SQS,
//!   where Lambda keeps delivering, every batch goes straight back with a long visibility
//!   ([`crate::retry::paused_delay`]) without calling the integration;
//! - probes with one message every [`PROBE_INTERVAL`], and at once when the secret changes
//!   (the adapters re-read the secret on a refused credential, so a probe also picks up a fix);
//! - closes when a probe is applied: one "recovered" line, and the backlog drains.
//!
//! [`Guarded`] is also the one place where every dead letter of every worker is logged at
//! ERROR with its reason.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};
use vicibridge_core::Envelope;
use vicibridge_core::ports::SecretStore;
use vicibridge_core::secrets::SecretDoc;

use crate::metrics as m;
use crate::worker::{BatchHandler, Delivery, Outcome};

/// How often a paused worker tries one message, when the secret has not changed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(30);

/// Where the messages of a paused worker wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// The driver asks [`Guarded::admit`] before it receives and stops receiving while the
    /// breaker is open (`serve`): messages it already took go back visible at once, and the
    /// queue does not count their delivery.
    InDriver,
    /// The queue keeps delivering whatever the worker does (SQS → Lambda): each delivery goes
    /// back with a visibility that grows with its receive count.
    OnQueue,
}

/// The integration a worker writes to, as the breaker names and alarms it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Integration {
    /// `hubspot`, `salesforce`, `vicidial`, ...: for log lines and metrics.
    pub name: &'static str,
    /// The alarm metric raised once per outage.
    pub alert_metric: &'static str,
}

impl Integration {
    pub fn crm(name: &'static str) -> Self {
        Integration { name, alert_metric: m::CRM_AUTH_ALERTS }
    }

    pub fn dialer() -> Self {
        Integration { name: "vicidial", alert_metric: m::DIALER_AUTH_ALERTS }
    }
}

/// What the worker may take from its queue now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Closed: a whole batch.
    Batch,
    /// Open, and a probe is due (time, or the secret changed): one message.
    Probe,
    /// Open: nothing for this long (the next scheduled probe).
    Wait(Duration),
}

#[derive(Debug)]
enum State {
    Closed,
    Open(Open),
}

#[derive(Debug)]
struct Open {
    since: Instant,
    next_probe: Instant,
    /// The secret as it was when the credential was last refused: a different one is tried
    /// at once.
    secret: Option<Arc<SecretDoc>>,
    /// Deliveries held back during this outage.
    held: u64,
}

/// A batch handler behind its integration's circuit breaker. It is itself a
/// [`BatchHandler`], so the drivers (the SQS Lambda, `serve`'s loop) use it like any other.
pub struct Guarded {
    inner: Arc<dyn BatchHandler>,
    integration: Integration,
    secrets: Arc<dyn SecretStore>,
    hold: Hold,
    probe_interval: Duration,
    state: Mutex<State>,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("integration", &self.integration.name)
            .field("hold", &self.hold)
            .finish_non_exhaustive()
    }
}

impl Guarded {
    pub fn new(
        inner: Arc<dyn BatchHandler>,
        integration: Integration,
        secrets: Arc<dyn SecretStore>,
        hold: Hold,
    ) -> Self {
        Guarded { inner, integration, secrets, hold, probe_interval: PROBE_INTERVAL, state: Mutex::new(State::Closed) }
    }

    /// How long a paused worker waits between probes when the secret does not change.
    pub fn with_probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = interval;
        self
    }

    /// `true` while the integration is paused.
    pub fn is_open(&self) -> bool {
        matches!(*self.lock(), State::Open(_))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Only plain values are swapped under the lock; a panic cannot leave them torn.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What to take from the queue now. While open, reads the secret (cheap: the adapters
    /// cache it; the local file is only re-read when it changed) to probe at once after a fix.
    pub async fn admit(&self) -> Admit {
        let wait = match &*self.lock() {
            State::Closed => return Admit::Batch,
            State::Open(open) => open.next_probe.saturating_duration_since(Instant::now()),
        };
        if wait.is_zero() {
            return Admit::Probe;
        }
        let Ok(now) = self.secrets.current().await else { return Admit::Wait(wait) };
        let mut state = self.lock();
        let State::Open(open) = &mut *state else { return Admit::Batch };
        if open.secret.as_ref().is_some_and(|before| **before != *now) {
            info!(integration = self.integration.name, "the secret changed: trying the integration again now");
            open.secret = Some(now);
            open.next_probe = Instant::now();
            return Admit::Probe;
        }
        Admit::Wait(wait)
    }

    /// The outcome of a message held back without being tried.
    fn held(&self, d: &Delivery<'_>, reason: &str) -> Outcome {
        let outcome = Outcome::paused(d.receive_count, reason);
        self.adjust(outcome)
    }

    /// `serve` stops receiving while open: what it took goes back at once.
    fn adjust(&self, outcome: Outcome) -> Outcome {
        match (outcome, self.hold) {
            (Outcome::Paused { reason, .. }, Hold::InDriver) => Outcome::Paused { delay: Duration::ZERO, reason },
            (outcome, _) => outcome,
        }
    }

    /// Opens (or keeps open) the breaker after a refused credential.
    async fn trip(&self, reason: &str) {
        let secret = self.secrets.current().await.ok();
        let mut state = self.lock();
        let now = Instant::now();
        match &mut *state {
            State::Open(open) => {
                open.next_probe = now + self.probe_interval;
                open.secret = secret;
                warn!(
                    integration = self.integration.name,
                    paused_secs = open.since.elapsed().as_secs(),
                    reason,
                    "still unavailable; next try in {} s or when the secret changes",
                    self.probe_interval.as_secs()
                );
            }
            State::Closed => {
                metrics::counter!(self.integration.alert_metric).increment(1);
                metrics::counter!(m::INTEGRATION_PAUSES, "integration" => self.integration.name).increment(1);
                error!(
                    integration = self.integration.name,
                    reason,
                    "{} is unavailable: the worker is paused and its messages wait on the queue (none is \
                     dead-lettered for this); it is tried again every {} s, and at once when the secret changes",
                    self.integration.name,
                    self.probe_interval.as_secs()
                );
                *state = State::Open(Open { since: now, next_probe: now + self.probe_interval, secret, held: 0 });
            }
        }
    }

    fn recover(&self) {
        let mut state = self.lock();
        if let State::Open(open) = &*state {
            info!(
                integration = self.integration.name,
                paused_secs = open.since.elapsed().as_secs(),
                held = open.held,
                "{} works again: the worker resumed",
                self.integration.name
            );
        }
        *state = State::Closed;
    }

    fn count_held(&self, n: usize) {
        if let State::Open(open) = &mut *self.lock() {
            open.held += n as u64;
        }
    }

    /// Runs the inner handler on `batch`, opening the breaker on a refused credential.
    async fn run(&self, batch: &[Delivery<'_>]) -> Vec<Outcome> {
        let outcomes = self.inner.process(batch).await;
        let refused = outcomes.iter().find_map(|o| match o {
            Outcome::Paused { reason, .. } => Some(reason.clone()),
            _ => None,
        });
        match refused {
            Some(reason) => self.trip(&reason).await,
            None if outcomes.contains(&Outcome::Done) => self.recover(),
            None => {}
        }
        outcomes.into_iter().map(|o| self.adjust(o)).collect()
    }

    /// Probe: one message at a time until one is applied (closed: the rest as one batch) or
    /// refused (still open: the rest held back). A message that fails for its own reasons
    /// says nothing about the credential, so the next one is tried.
    async fn probe(&self, batch: &[Delivery<'_>]) -> Vec<Outcome> {
        let mut out = Vec::with_capacity(batch.len());
        for (i, d) in batch.iter().enumerate() {
            let mut one = self.run(std::slice::from_ref(d)).await;
            let outcome = one.pop().unwrap_or_else(|| self.held(d, "not processed"));
            out.push(outcome);
            if !self.is_open() {
                out.extend(self.run(&batch[i + 1..]).await);
                return out;
            }
            if matches!(out.last(), Some(Outcome::Paused { .. })) {
                let rest = &batch[i + 1..];
                self.count_held(rest.len());
                out.extend(rest.iter().map(|d| self.held(d, "the integration is paused")));
                return out;
            }
        }
        out
    }

    async fn process_guarded(&self, batch: &[Delivery<'_>]) -> Vec<Outcome> {
        if batch.is_empty() {
            return Vec::new();
        }
        match self.admit().await {
            Admit::Batch => self.run(batch).await,
            Admit::Probe => self.probe(batch).await,
            Admit::Wait(_) => {
                self.count_held(batch.len());
                batch.iter().map(|d| self.held(d, "the integration is paused")).collect()
            }
        }
    }

    fn log_dead_letters(&self, batch: &[Delivery<'_>], outcomes: &[Outcome]) {
        for (d, outcome) in batch.iter().zip(outcomes) {
            if let Outcome::DeadLetter { reason } = outcome {
                let key = Envelope::from_json(d.body).map(|e| e.key.to_string()).unwrap_or_default();
                error!(
                    integration = self.integration.name,
                    message_id = d.message_id,
                    key = %key,
                    attempt = d.receive_count,
                    reason = %reason,
                    "sent to the dead-letter queue"
                );
            }
        }
    }
}

#[async_trait::async_trait]
impl BatchHandler for Guarded {
    async fn process(&self, batch: &[Delivery<'_>]) -> Vec<Outcome> {
        let outcomes = self.process_guarded(batch).await;
        self.log_dead_letters(batch, &outcomes);
        outcomes
    }
}

//! The HubSpot CRM adapter: one HubSpot call per VICIdial call (batch upsert on a unique
//! property holding VICIdial's `uniqueid`), outcomes, deal stages, lead status, callback
//! tasks and do-not-call, for every plan of a queue batch in as few requests as HubSpot's
//! batch endpoints allow, paced under the account's rolling limit.
//!
//! Ordering and idempotency: see [`sync`] and [`props::call_properties`]. In short, each
//! event kind owns its call fields, and every record carries a sync-state property naming
//! the events applied to it (`s:<epoch>;d:<epoch>`), read in one batch before writing, so a
//! redelivered or older event never moves a record back.

pub mod check;
pub mod client;
pub mod metrics;
pub mod pace;
pub mod preview;
pub mod probe;
pub mod props;
pub mod screen_pop;
pub mod setup;
pub mod sync;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use vicibridge_core::SyncError;
use vicibridge_core::config::{Config, HubspotConfig};
use vicibridge_core::plan::SyncPlan;
use vicibridge_core::ports::{Applied, Crm, PreviewRequests, SecretStore};

pub use preview::HubspotPreview;

#[derive(Debug, thiserror::Error)]
pub enum HubspotSetupError {
    #[error("crm.kind is \"hubspot\" but the config has no [hubspot] section")]
    MissingSection,
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// The adapter behind the `Crm` port.
#[derive(Debug)]
pub struct HubspotCrm {
    engine: sync::Engine,
}

fn section(config: &Config) -> Result<&HubspotConfig, HubspotSetupError> {
    config.hubspot.as_ref().ok_or(HubspotSetupError::MissingSection)
}

pub(crate) fn client(cfg: &HubspotConfig, secrets: Arc<dyn SecretStore>) -> Result<client::Client, HubspotSetupError> {
    let pacers = pace::shared(&cfg.base_url, cfg.requests_per_10s);
    client::Client::new(&cfg.base_url, secrets, pacers, Duration::from_secs(cfg.timeout_secs), cfg.max_retries)
        .map_err(|e| HubspotSetupError::Http(e.to_string()))
}

impl HubspotCrm {
    pub fn new(config: &Config, secrets: Arc<dyn SecretStore>) -> Result<Self, HubspotSetupError> {
        let cfg = section(config)?.clone();
        let client = client(&cfg, secrets)?;
        let write_back =
            config.lead_injection.as_ref().and_then(|l| l.hubspot.as_ref()).and_then(|h| h.write_back.clone());
        Ok(HubspotCrm { engine: sync::Engine { cfg, client, write_back } })
    }
}

/// `crm.kind = "hubspot"`.
pub fn crm(config: &Config, secrets: Arc<dyn SecretStore>) -> Result<Arc<dyn Crm>, HubspotSetupError> {
    Ok(Arc::new(HubspotCrm::new(config, secrets)?))
}

/// The screen pop's read side (`crm.kind = "hubspot"`).
pub fn pop_source(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
) -> Result<Arc<dyn vicibridge_core::screen_pop::ScreenPopSource>, HubspotSetupError> {
    Ok(Arc::new(screen_pop::PopReader::new(section(config)?.clone(), secrets)?))
}

/// For the dry-run record: HubSpot's requests for a batch, without sending them.
pub fn preview(config: &Config) -> Option<Arc<dyn PreviewRequests>> {
    config.hubspot.as_ref().map(|cfg| Arc::new(HubspotPreview::new(cfg.clone())) as Arc<dyn PreviewRequests>)
}

#[async_trait]
impl Crm for HubspotCrm {
    fn name(&self) -> &'static str {
        "hubspot"
    }

    async fn apply(&self, plans: &[SyncPlan]) -> Vec<Result<Applied, SyncError>> {
        self.engine.apply(plans).await
    }
}

//! `vicibridge hubspot setup --config PATH --secrets PATH`: creates the custom HubSpot
//! properties the adapter writes (idempotent: what exists is checked, never changed).

use clap::Subcommand;
use vicibridge_core::config::Config;
use vicibridge_core::ports::SecretStore;

#[derive(Subcommand, Debug)]
pub enum HubspotCommand {
    /// Create the custom properties vicibridge writes (call key, sync state, task key, lead id,
    /// do-not-call); safe to run again.
    Setup {
        #[arg(long, env = "VICIBRIDGE_CONFIG")]
        config: std::path::PathBuf,
        #[arg(long, env = "VICIBRIDGE_SECRETS")]
        secrets: Option<std::path::PathBuf>,
    },
}

/// Creates what is missing and prints one line per property.
pub async fn setup(config: &Config, secrets: std::sync::Arc<dyn SecretStore>) -> Result<(), String> {
    if config.hubspot.is_none() {
        return Err("the config has no [hubspot] section (base_url = \"https://api.hubapi.com\")".into());
    }
    let report = vicibridge_hubspot::setup::run(config, secrets).await.map_err(|e| e.to_string())?;
    for line in report {
        println!("{line}");
    }
    Ok(())
}

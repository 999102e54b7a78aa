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
    /// Register the click-to-call widget as the calling app's settings
    /// (`/crm/v3/extensions/calling/{appId}/settings`): name, url, width, height, isReady.
    CallingSetup {
        #[arg(long, env = "VICIBRIDGE_CONFIG")]
        config: std::path::PathBuf,
        /// The developer account's API key (HubSpot's calling settings endpoints take it).
        #[arg(long, env = "HUBSPOT_DEVELOPER_API_KEY", hide_env_values = true, required_unless_present = "print")]
        developer_api_key: Option<String>,
        /// Register with isReady=true (the app shows for users); without it, for testing.
        #[arg(long)]
        ready: bool,
        /// Print the settings JSON instead of sending it.
        #[arg(long)]
        print: bool,
        /// HubSpot's API, e.g. a test server.
        #[arg(long, default_value = "https://api.hubapi.com")]
        api_base: String,
    },
}

/// `vicibridge hubspot calling-setup`.
pub async fn calling_setup(
    config: &Config,
    developer_api_key: Option<&str>,
    ready: bool,
    print: bool,
    api_base: &str,
) -> Result<(), String> {
    use vicibridge_runtime::click_to_call::setup;
    let c = config.click_to_call.as_ref().ok_or("the config has no [click_to_call] section")?;
    if print {
        println!("{:#}", setup::hubspot_calling_settings(c, ready));
        return Ok(());
    }
    let key = developer_api_key.ok_or("--developer-api-key (or HUBSPOT_DEVELOPER_API_KEY) is needed")?;
    let done = setup::register_hubspot_calling(c, api_base.trim_end_matches('/'), key, ready)
        .await
        .map_err(|e| e.to_string())?;
    println!("{done}");
    Ok(())
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

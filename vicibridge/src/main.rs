//! The `vicibridge` command: `serve`, `check-config`, `preflight`, `urls`, and the tools.

#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

mod broken_pipe;
mod dlq_cmd;
mod hubspot_setup;
mod queue_cmd;
mod queue_target;
mod reconcile_cmd;
mod webhook_test;

// Measured under `serve` load: glibc's allocator spent about a tenth of the HTTP threads'
// time in malloc/free, mostly freeing on one thread what another allocated (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand, ValueEnum};
use vicibridge_core::config::{Config, ConfigError, CrmKind, Problem, Severity};
use vicibridge_core::ports::{SecretStore, SecretWriter};
use vicibridge_local::secret_writer::FileSecretWriter;
use vicibridge_local::secrets_file::{FileSecrets, SECRETS_JSON_ENV};
use vicibridge_local::serve::{ServeOptions, serve_with_activity};
use vicibridge_local::status::activity::Activity;
use vicibridge_runtime::telemetry::{LogFormat, init_logging};
use vicibridge_vicidial::url_templates::{call_urls, screen_pop_url};

#[derive(Parser, Debug)]
#[command(name = "vicibridge", version, about = "Bridge between the VICIdial dialer and CRMs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve every route on one port, with the workers in-process and the queue in SQLite.
    Serve {
        #[arg(long, env = "VICIBRIDGE_CONFIG")]
        config: PathBuf,
        /// The secret JSON file. Without it, the JSON is read from VICIBRIDGE_SECRETS_JSON.
        #[arg(long, env = "VICIBRIDGE_SECRETS")]
        secrets: Option<PathBuf>,
        /// Address and port to listen on: an IP address (`127.0.0.1:8080`, `0.0.0.0:8080`,
        /// `[::1]:8080`) or a host name (`localhost:8080`), bound to the first address it
        /// resolves to.
        #[arg(long, default_value = "127.0.0.1:8080", value_parser = listen_address)]
        listen: SocketAddr,
        /// Queue database and dry-run record live here.
        #[arg(long, env = "VICIBRIDGE_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        #[arg(long, value_enum, default_value_t = LogFormatArg::Text)]
        log_format: LogFormatArg,
    },
    /// Validate a configuration file; errors name the key and what is wrong.
    CheckConfig {
        #[arg(long, env = "VICIBRIDGE_CONFIG")]
        config: PathBuf,
        /// With credentials at hand, also check the CRM org itself (Salesforce: the custom
        /// fields exist, the picklist values of the mapping are the org's; HubSpot: the deal
        /// stages are the account's pipeline stages, the lead statuses hs_lead_status options).
        #[arg(long)]
        secrets: Option<PathBuf>,
    },
    /// Prove the installation against the real configured systems before going live: a
    /// checklist with ✓/✗ and a reason per line; exit status 0 only when no line failed.
    Preflight {
        #[arg(long, env = "VICIBRIDGE_CONFIG")]
        config: PathBuf,
        /// The secret JSON file. Without it, the JSON is read from VICIBRIDGE_SECRETS_JSON.
        #[arg(long, env = "VICIBRIDGE_SECRETS")]
        secrets: Option<PathBuf>,
        /// Print the checklist as one JSON document (for CI).
        #[arg(long)]
        json: bool,
        /// With `[lead_injection]`: inject a test lead with this phone number (a number you
        /// own) twice, check it lands once, then delete it (the API user needs update_lead).
        #[arg(long)]
        test_lead_phone: Option<String>,
        /// A CRM record preflight may change and put back (what VICIdial's vendor_lead_code
        /// holds for it: a HubSpot contact id, a Salesforce Lead/Contact/Opportunity id): a
        /// synthetic call per mapped disposition goes through the worker to it and is read
        /// back; its screen pop is rendered. `new`: preflight creates a test record (HubSpot: a
        /// contact with an open deal; Salesforce: an Account, Contact and open Opportunity) and
        /// deletes it afterwards.
        #[arg(long)]
        test_contact: Option<String>,
        /// Leave what preflight created (the test lead, the test calls and tasks) for inspection.
        #[arg(long)]
        keep: bool,
    },
    /// Print the Start Call, Dispo Call and API New Lead URLs to paste into VICIdial.
    Urls {
        /// Public base URL of vicibridge (the stack's ApiBaseUrl output, or serve's address).
        #[arg(long)]
        base_url: String,
        #[arg(long, env = "VICIBRIDGE_CONFIG")]
        config: PathBuf,
        #[arg(long, env = "VICIBRIDGE_SECRETS", required_unless_present = "redact")]
        secrets: Option<PathBuf>,
        /// Print a placeholder instead of the ingest token.
        #[arg(long)]
        redact: bool,
    },
    /// Read VICIdial's URL log and replay the Start/Dispo/New Lead URLs that never reached
    /// vicibridge (through the normal ingest: a replay of something applied is a no-op).
    Reconcile(reconcile_cmd::ReconcileArgs),
    /// Queue tools: `vicibridge queue status`.
    #[command(subcommand)]
    Queue(queue_cmd::QueueCommand),
    /// Dead letters: `vicibridge dlq list|show|replay|purge`.
    #[command(subcommand)]
    Dlq(dlq_cmd::DlqCommand),
    /// HubSpot tools: `vicibridge hubspot setup` creates the custom properties.
    #[command(subcommand)]
    Hubspot(hubspot_setup::HubspotCommand),
    /// Webhook tools: `vicibridge webhook test` sends a signed sample event.
    #[command(subcommand)]
    Webhook(webhook_test::WebhookCommand),
    /// Salesforce tools: `vicibridge salesforce call-center` prints the call center XML.
    #[command(subcommand)]
    Salesforce(SalesforceCommand),
}

#[derive(Subcommand, Debug)]
enum SalesforceCommand {
    /// Print the call center definition (XML) to import in Setup → Call Centers: the Open CTI
    /// softphone at `{public_base_url}/dialer/salesforce`, Lightning.
    CallCenter {
        #[arg(long, env = "VICIBRIDGE_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

/// `--listen`: `HOST:PORT`, the host an IP address or a name resolved now.
fn listen_address(value: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = value.parse() {
        return Ok(addr);
    }
    let mut addrs = value
        .to_socket_addrs()
        .map_err(|e| format!("expected HOST:PORT (127.0.0.1:8080, [::1]:8080, localhost:8080): {e}"))?;
    addrs.next().ok_or_else(|| format!("{value} resolves to no address"))
}

fn load_config(path: &Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Config::from_toml(&text).map_err(|e: ConfigError| format!("{}:\n{e}", path.display()))
}

fn secrets(path: Option<&Path>) -> Result<Arc<dyn SecretStore>, String> {
    let store = match path {
        Some(p) => FileSecrets::open(p),
        None => match std::env::var(SECRETS_JSON_ENV) {
            Ok(json) => FileSecrets::from_json(&json),
            Err(_) => {
                return Err(format!("no secrets: pass --secrets PATH or set VICIBRIDGE_SECRETS or {SECRETS_JSON_ENV}"));
            }
        },
    };
    store.map(|s| Arc::new(s) as Arc<dyn SecretStore>).map_err(|e| e.to_string())
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are registered here, before serve starts
/// listening: registered on first poll instead, a SIGTERM right after start-up would still
/// kill the process the default way (no graceful shutdown, a signal exit status).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    };
    async move {
        #[cfg(unix)]
        if let (Ok(mut term), Ok(mut int)) = signals {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve { config, secrets: secrets_path, listen, data_dir, log_format } => {
            let _log = init_logging(match log_format {
                LogFormatArg::Text => LogFormat::Text,
                LogFormatArg::Json => LogFormat::Json,
            });
            let config = load_config(&config)?;
            let secrets = secrets(secrets_path.as_deref())?;
            // Fail at start, not at the first call, when the secret file is unusable.
            let doc = secrets.current().await.map_err(|e| e.to_string())?;
            if doc.ingest_tokens.is_empty() {
                tracing::warn!("the secrets have no ingest_tokens: every VICIdial request will be refused (401)");
            }
            // A rotated Salesforce refresh token is written back into the --secrets file.
            let writer = secrets_path.map(|p| Arc::new(FileSecretWriter::new(p)) as Arc<dyn SecretWriter>);
            // The metrics the shared code counts feed /status's charts (the Lambdas write the
            // same metrics as EMF instead).
            let activity = Activity::new();
            if metrics::set_global_recorder(activity.recorder()).is_err() {
                tracing::warn!("a metrics recorder is installed already: /status shows no rates");
            }
            serve_with_activity(ServeOptions { config, secrets, listen, data_dir }, writer, activity, shutdown_signal())
                .await
                .map_err(|e| e.to_string())
        }
        Command::CheckConfig { config: path, secrets: secrets_path } => {
            let config = load_config(&path)?;
            let mut problems: Vec<_> =
                config.problems().into_iter().filter(|p| p.severity == Severity::Warning).collect();
            if let Some(secrets_path) = secrets_path.as_deref()
                && config.crm.kind == CrmKind::Salesforce
            {
                // This login may rotate the refresh token: store it like serve would.
                let writer = Arc::new(FileSecretWriter::new(secrets_path));
                let org = vicibridge_salesforce::check::check_with_secrets(
                    &config,
                    secrets(Some(secrets_path))?,
                    Some(writer),
                )
                .await
                .map_err(|e| format!("cannot check the Salesforce org: {e}"))?;
                problems.extend(org);
            }
            if let Some(secrets_path) = secrets_path.as_deref()
                && config.crm.kind == CrmKind::Webhook
            {
                let doc = secrets(Some(secrets_path))?.current().await.map_err(|e| e.to_string())?;
                if let Err(e) = vicibridge_webhook::signing::SigningKeys::from_secrets(doc.webhook.as_ref()) {
                    problems.push(vicibridge_core::config::Problem {
                        key: "webhook.signing_secret".into(),
                        message: e.to_string(),
                        severity: Severity::Error,
                    });
                }
            }
            if let Some(secrets_path) = secrets_path.as_deref()
                && config.crm.kind == CrmKind::Hubspot
            {
                let account = vicibridge_hubspot::check::check_with_secrets(&config, secrets(Some(secrets_path))?)
                    .await
                    .map_err(|e| format!("cannot check the HubSpot account: {e}"))?;
                problems.extend(account);
            }
            if let Some(secrets_path) = secrets_path.as_deref()
                && config.screen_pop.verify_agent
            {
                problems.extend(check_agent_status(&config, secrets(Some(secrets_path))?).await);
            }
            for p in &problems {
                println!("{p}");
            }
            if problems.iter().any(|p| p.severity == Severity::Error) {
                return Err(format!(
                    "{}: the checks above failed (the CRM org, the secret or VICIdial)",
                    path.display()
                ));
            }
            let campaigns = config.campaigns.len();
            println!(
                "ok: {}: crm {}, {} status override(s), {} campaign override(s), dialer time zone {}",
                path.display(),
                config.crm.kind,
                config.dispositions.len(),
                campaigns,
                config.vicidial.server_time_zone
            );
            Ok(())
        }
        Command::Preflight { config, secrets: secrets_path, json, test_lead_phone, test_contact, keep } => {
            let config = load_config(&config)?;
            let store = secrets(secrets_path.as_deref())?;
            // A Salesforce login may rotate the refresh token: store it like serve would.
            let writer = secrets_path.map(|p| Arc::new(FileSecretWriter::new(p)) as Arc<dyn SecretWriter>);
            let options = vicibridge_runtime::preflight::Options { test_lead_phone, test_contact, keep };
            let report = vicibridge_runtime::preflight::run(&config, store, writer, &options).await;
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            if report.passed { Ok(()) } else { Err(PREFLIGHT_FAILED.to_owned()) }
        }
        Command::Urls { base_url, config, secrets: secrets_path, redact } => {
            load_config(&config)?;
            if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
                return Err(format!("--base-url {base_url:?} is not an http(s) URL"));
            }
            let (token, pop_token) = if redact {
                ("INGEST_TOKEN".to_owned(), "SCREEN_POP_TOKEN".to_owned())
            } else {
                let doc = secrets(secrets_path.as_deref())?.current().await.map_err(|e| e.to_string())?;
                let first = doc.ingest_tokens.first().ok_or("the secrets have no ingest_tokens: add one first")?;
                let pop = match doc.screen_pop_tokens.first() {
                    Some(t) => t.expose().to_owned(),
                    None => {
                        eprintln!("note: the secrets have no screen_pop_tokens: add one for the screen pop");
                        "SCREEN_POP_TOKEN".to_owned()
                    }
                };
                (first.expose().to_owned(), pop)
            };
            let urls = call_urls(&base_url, &token);
            println!("start_call_url: {}", urls.start_call_url);
            println!("dispo_call_url: {}", urls.dispo_call_url);
            println!("api_new_lead_url: {}", urls.api_new_lead_url);
            println!("screen_pop_url: {}", screen_pop_url(&base_url, &pop_token));
            Ok(())
        }
        Command::Reconcile(args) => {
            let _log = init_logging(LogFormat::Text);
            let config = load_config(&args.config)?;
            let secrets = secrets(args.secrets.as_deref())?;
            reconcile_cmd::run(args, config, secrets).await
        }
        Command::Queue(command) => queue_cmd::run(command).await,
        Command::Dlq(command) => dlq_cmd::run(command).await,
        Command::Hubspot(hubspot_setup::HubspotCommand::Setup { config, secrets: secrets_path }) => {
            let config = load_config(&config)?;
            hubspot_setup::setup(&config, secrets(secrets_path.as_deref())?).await
        }
        Command::Webhook(webhook_test::WebhookCommand::Test { config, secrets: secrets_path }) => {
            let config = load_config(&config)?;
            webhook_test::test(&config, secrets(secrets_path.as_deref())?).await
        }
        Command::Hubspot(hubspot_setup::HubspotCommand::CallingSetup {
            config,
            developer_api_key,
            ready,
            print,
            api_base,
        }) => {
            let config = load_config(&config)?;
            hubspot_setup::calling_setup(&config, developer_api_key.as_deref(), ready, print, &api_base).await
        }
        Command::Salesforce(SalesforceCommand::CallCenter { config }) => {
            let config = load_config(&config)?;
            let c = config.click_to_call.as_ref().ok_or("the config has no [click_to_call] section")?;
            print!("{}", vicibridge_runtime::click_to_call::setup::salesforce_call_center_xml(c));
            Ok(())
        }
    }
}

/// The screen pop asks VICIdial `agent_status` on every pop: try it once with the API user.
/// Any answer about the agent (even "not found") proves the permission.
async fn check_agent_status(config: &Config, secrets: Arc<dyn SecretStore>) -> Vec<Problem> {
    use vicibridge_core::agent::AgentDirectory;
    use vicibridge_vicidial::non_agent_api::{NonAgentApi, NonAgentApiOptions};
    let problem = |severity, message: String| Problem { key: "screen_pop.verify_agent".into(), message, severity };
    let api = match NonAgentApi::new(&config.vicidial.base_url, secrets, NonAgentApiOptions::default()) {
        Ok(a) => a,
        Err(e) => return vec![problem(Severity::Error, e.to_string())],
    };
    let Ok(probe) = "vicibridge-check".parse() else { return Vec::new() };
    match api.agent_status(&probe).await {
        Ok(_) => Vec::new(),
        Err(vicibridge_core::lead::DialerError::Permanent { reason, .. }) => vec![problem(
            Severity::Error,
            format!(
                "the screen pop cannot verify agents: {reason} (the API user needs agent_status in api_allowed_functions, user level 7+, view_reports and agent API access)"
            ),
        )],
        Err(e) => vec![problem(Severity::Warning, format!("could not reach VICIdial agent_status: {e}"))],
    }
}

/// The error line of a failed preflight: the checklist above already says what failed.
const PREFLIGHT_FAILED: &str = "preflight failed: see the ✗ lines above";

#[tokio::main]
async fn main() -> ExitCode {
    broken_pipe::exit_quietly_on_broken_pipe();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

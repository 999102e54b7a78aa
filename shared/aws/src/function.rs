//! What every function does around its handler: logs and metrics set up once, an init bounded
//! by [`INIT_BUDGET`] whose failure reaches Lambda through the Runtime API's
//! `/runtime/init/error` (so the console shows the operator message, not `Runtime.ExitError`),
//! and the metrics of each invocation flushed when it ends.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use lambda_runtime_api_client::body::Body;
use metrics_cloudwatch_embedded::Collector;
use vicibridge_runtime::budget::BudgetError;
use vicibridge_runtime::click_to_call::ClickToCallError;
use vicibridge_runtime::crm::CrmSetupError;
use vicibridge_runtime::metrics::NAMESPACE;
use vicibridge_vicidial::non_agent_api::NonAgentApiError;

use crate::config_source::ConfigSourceError;
use crate::limits::INIT_BUDGET;

pub type Error = lambda_runtime::Error;

/// Why a function could not start. The message is what the operator reads in the init error
/// and the log; it says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("environment variable {name} is not set (see infra/template.yaml)")]
    MissingEnv { name: &'static str },
    #[error(transparent)]
    Config(#[from] ConfigSourceError),
    #[error(transparent)]
    Budget(#[from] BudgetError),
    #[error(transparent)]
    Crm(#[from] CrmSetupError),
    #[error(transparent)]
    Vicidial(#[from] NonAgentApiError),
    #[error(transparent)]
    ScreenPop(#[from] vicibridge_runtime::screen_pop::ScreenPopSetupError),
    #[error(transparent)]
    ClickToCall(#[from] ClickToCallError),
    #[error(transparent)]
    UrlLog(#[from] vicibridge_vicidial::url_log::UrlLogError),
    #[error("{what}")]
    NotConfigured { what: &'static str },
    #[error(
        "the function did not start within {} s (Lambda's init limit is 10 s): check that the function reaches SSM (VPC endpoints or NAT) and the configuration parameter's size",
        INIT_BUDGET.as_secs()
    )]
    TimedOut,
    #[error("cannot set up metrics: {0}")]
    Metrics(String),
}

impl InitError {
    /// The `errorType` Lambda shows: what kind of fix it needs.
    pub fn error_type(&self) -> &'static str {
        match self {
            InitError::MissingEnv { .. } | InitError::Budget(_) => "Vicibridge.EnvironmentInvalid",
            InitError::Config(ConfigSourceError::ReadParameter { .. }) => "Vicibridge.ConfigUnreachable",
            InitError::Config(ConfigSourceError::Invalid { .. })
            | InitError::Crm(_)
            | InitError::Vicidial(_)
            | InitError::ScreenPop(_)
            | InitError::ClickToCall(_)
            | InitError::UrlLog(_)
            | InitError::NotConfigured { .. } => "Vicibridge.ConfigInvalid",
            InitError::Config(_) => "Vicibridge.ConfigMissing",
            InitError::TimedOut => "Vicibridge.InitTimeout",
            InitError::Metrics(_) => "Vicibridge.InitFailed",
        }
    }
}

/// A required environment variable.
pub fn env(name: &'static str) -> Result<String, InitError> {
    std::env::var(name).map_err(|_| InitError::MissingEnv { name })
}

/// The EMF metrics of a function: flushed to stdout after each invocation, with the request
/// id as a property and a `ColdStart` count on the first.
#[derive(Clone, Copy)]
pub struct Metrics {
    collector: &'static Collector,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

const REQUEST_ID_PROPERTY: &str = "RequestId";
const COLD_START_METRIC: &str = "ColdStart";

impl Metrics {
    /// Call when an invocation begins.
    pub fn begin(&self, request_id: &str) {
        static COLD: AtomicBool = AtomicBool::new(true);
        self.collector.set_property(REQUEST_ID_PROPERTY, request_id.to_owned());
        if COLD.swap(false, Ordering::Relaxed)
            && let Err(e) =
                self.collector.write_single(COLD_START_METRIC, Some(metrics::Unit::Count), 1, std::io::stdout())
        {
            tracing::warn!(error = %e, "cannot write the cold-start metric");
        }
    }

    /// Call when an invocation ends: its metrics go out as one EMF line.
    pub fn end(&self) {
        if let Err(e) = self.collector.flush(std::io::stdout()) {
            tracing::warn!(error = %e, "cannot write metrics");
        }
    }
}

/// Logs (JSON when Lambda's log format is JSON) and metrics; then `build` within
/// [`INIT_BUDGET`]. A failure is logged as one line and reported to `/runtime/init/error`,
/// and the process exits with status 1 (without Rust's debug dump of the error on stderr,
/// which would be a second, unstructured log line).
pub async fn start<T>(build: impl Future<Output = Result<T, InitError>>) -> (Metrics, T) {
    // Roots for the first TLS handshake (SSM at init, SQS at the first request): compiled in.
    vicibridge_http::use_bundled_roots();
    lambda_runtime::tracing::init_default_subscriber();
    let result = async {
        let collector = metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace(NAMESPACE)
            .init()
            .map_err(|e| InitError::Metrics(e.to_string()))?;
        let built = tokio::time::timeout(INIT_BUDGET, build).await.map_err(|_| InitError::TimedOut)??;
        Ok::<_, InitError>((Metrics { collector }, built))
    }
    .await;
    match result {
        Ok(started) => started,
        Err(e) => {
            report_init_error(&e).await;
            std::process::exit(1)
        }
    }
}

/// One log line, then `POST /2018-06-01/runtime/init/error` (best effort: the process exits
/// either way, and Lambda then shows `Runtime.ExitError` with this log line).
async fn report_init_error(e: &InitError) {
    let error_type = e.error_type();
    tracing::error!(error_type, "init failed: {e}");
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": e.to_string() }).to_string();
    let request = http::Request::builder()
        .method("POST")
        .uri("/2018-06-01/runtime/init/error")
        .header("Lambda-Runtime-Function-Error-Type", error_type)
        .header("Content-Type", "application/json")
        .body(Body::from(body));
    let sent: Result<_, Error> = match (request, lambda_runtime_api_client::Client::builder().build()) {
        (Ok(request), Ok(client)) => match tokio::time::timeout(REPORT_TIMEOUT, client.call(request)).await {
            Ok(answer) => answer,
            Err(_) => Err("timed out".into()),
        },
        (Err(e), _) => Err(e.into()),
        (_, Err(e)) => Err(e.into()),
    };
    match sent {
        Ok(response) if response.status().is_success() => {}
        Ok(response) => tracing::warn!(status = %response.status(), "the Runtime API refused the init error"),
        Err(e) => tracing::warn!(error = %e, "cannot report the init error to the Runtime API"),
    }
}

/// The Runtime API is local to the sandbox; this only guards against a wedged one.
const REPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

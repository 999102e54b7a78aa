//! moto's server as a child process, for tests against real SQS, Secrets Manager and SSM
//! wire protocols without an AWS account.
//!
//! Each [`Moto`] is its own server on a free port (state never leaks between tests) and is
//! killed when dropped, also when a test panics. A missing `moto_server` is a loud panic,
//! never a skipped test.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::config::Credentials;
use aws_sdk_sqs::types::QueueAttributeName;

/// Environment variable naming the `moto_server` executable to use.
pub const MOTO_SERVER_ENV: &str = "VICIBRIDGE_MOTO_SERVER";
pub const REGION: &str = "us-east-1";
/// moto's default account.
pub const ACCOUNT_ID: &str = "123456789012";

/// Generous: a cold Python start on a loaded 2-core machine. Only a hang guard.
const STARTUP_LIMIT: Duration = Duration::from_secs(60);
const START_ATTEMPTS: usize = 3;

/// A running `moto_server`.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    endpoint: String,
    config: SdkConfig,
    /// moto's stdout/stderr; kept so a failure can show it, deleted with `self`.
    log: tempfile::NamedTempFile,
}

impl Moto {
    /// Starts `moto_server -H 127.0.0.1 -p <free port>` and waits until it answers.
    /// Panics (with what to do) when moto is missing or does not come up.
    pub async fn start() -> Moto {
        let program = moto_server_path();
        let mut last_failure = String::new();
        // The free port is found by binding and releasing it; another process may take it in
        // between, so a server that exits at once is retried on a new port.
        for _ in 0..START_ATTEMPTS {
            match try_start(&program).await {
                Ok(moto) => return moto,
                Err(failure) => last_failure = failure,
            }
        }
        panic!("moto_server ({}) did not start: {last_failure}", program.display());
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Region us-east-1, dummy static credentials, every service's endpoint set to moto.
    pub fn sdk_config(&self) -> &SdkConfig {
        &self.config
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.config)
    }

    pub fn secrets_manager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.config)
    }

    pub fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.config)
    }

    /// What moto printed so far (request log, tracebacks).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Creates a secret holding `value` (JSON) under a name of its own; returns its ARN.
    pub async fn create_secret(&self, value: &serde_json::Value) -> String {
        let name = format!("vicibridge-{}", fastrand::u64(..));
        let request = self.secrets_manager().create_secret().name(&name).secret_string(value.to_string());
        let out = request.send().await.unwrap_or_else(|e| panic!("moto CreateSecret {name}: {}", sdk_error(&e)));
        out.arn.unwrap_or_else(|| panic!("moto CreateSecret {name} returned no ARN"))
    }

    /// Creates a standard queue with the given attributes; returns its URL.
    pub async fn create_queue(&self, name: &str, attributes: &[(QueueAttributeName, &str)]) -> String {
        let mut request = self.sqs().create_queue().queue_name(name);
        for (key, value) in attributes {
            request = request.attributes(key.clone(), *value);
        }
        let out = request.send().await.unwrap_or_else(|e| panic!("moto CreateQueue {name}: {}", sdk_error(&e)));
        out.queue_url.unwrap_or_else(|| panic!("moto CreateQueue {name} returned no QueueUrl"))
    }

    pub async fn queue_arn(&self, queue_url: &str) -> String {
        self.queue_attribute(queue_url, QueueAttributeName::QueueArn).await
    }

    /// Creates `<name>-dlq`, then `<name>` with a RedrivePolicy to it, both through the SDK.
    /// Returns (queue URL, DLQ URL).
    pub async fn create_queue_with_dlq(&self, name: &str, max_receive_count: u32) -> (String, String) {
        let dlq_url = self.create_queue(&format!("{name}-dlq"), &[]).await;
        let dlq_arn = self.queue_arn(&dlq_url).await;
        let policy = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": max_receive_count.to_string(),
        })
        .to_string();
        let url = self.create_queue(name, &[(QueueAttributeName::RedrivePolicy, &policy)]).await;
        (url, dlq_url)
    }

    /// (ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible): exact on moto.
    pub async fn queue_depth(&self, queue_url: &str) -> (u64, u64) {
        let visible = self.queue_attribute(queue_url, QueueAttributeName::ApproximateNumberOfMessages).await;
        let hidden = self.queue_attribute(queue_url, QueueAttributeName::ApproximateNumberOfMessagesNotVisible).await;
        let parse = |v: &str| v.parse::<u64>().unwrap_or_else(|_| panic!("moto queue attribute {v:?} is not a number"));
        (parse(&visible), parse(&hidden))
    }

    async fn queue_attribute(&self, queue_url: &str, name: QueueAttributeName) -> String {
        let out = self
            .sqs()
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(name.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto GetQueueAttributes {queue_url}: {}", sdk_error(&e)));
        out.attributes
            .and_then(|mut a| a.remove(&name))
            .unwrap_or_else(|| panic!("moto returned no {name} for {queue_url}"))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Errors mean the process is already gone: nothing left to clean up.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `$VICIBRIDGE_MOTO_SERVER`, else `moto_server` on PATH, else `<workspace>/.venv/bin/moto_server`.
pub fn moto_server_path() -> PathBuf {
    if let Some(path) = std::env::var_os(MOTO_SERVER_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            panic!("{MOTO_SERVER_ENV}={} does not exist: point it at moto's `moto_server`", path.display());
        }
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|dir| dir.join("moto_server")).find(|p| p.is_file()));
    if let Some(path) = on_path.flatten() {
        return path;
    }
    let venv = workspace_root().join(".venv/bin/moto_server");
    if venv.is_file() {
        return venv;
    }
    panic!(
        "moto_server not found ({MOTO_SERVER_ENV} unset, not on PATH, not at {}). \
         The AWS tests need moto's server: run the README's test command `./scripts/test`, \
         which installs moto into .venv, or set {MOTO_SERVER_ENV} to a moto_server executable.",
        venv.display()
    );
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_owned()
}

async fn try_start(program: &Path) -> Result<Moto, String> {
    let port = free_port()?;
    let log = tempfile::NamedTempFile::new().map_err(|e| format!("cannot create a log file: {e}"))?;
    let stdout = log.reopen().map_err(|e| format!("cannot open the log file: {e}"))?;
    let stderr = stdout.try_clone().map_err(|e| format!("cannot open the log file: {e}"))?;
    let child = Command::new(program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(&endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .http_client(vicibridge_aws::sdk::http_client())
        .load()
        .await;
    // From here on Drop kills the child whatever happens.
    let mut moto = Moto { child, endpoint, config, log };
    wait_until_up(&mut moto).await?;
    Ok(moto)
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("cannot find a free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| format!("cannot find a free port: {e}"))
}

async fn wait_until_up(moto: &mut Moto) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let deadline = Instant::now() + STARTUP_LIMIT;
    loop {
        if let Ok(Some(status)) = moto.child.try_wait() {
            return Err(format!("it exited with {status}; its output:\n{}", moto.log()));
        }
        // Any HTTP answer means a server is serving on the port; it is ours if our server
        // logged this very request (another test's moto may have taken the port first).
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let probe = format!("probe-{}-{nanos}", std::process::id());
        if http.get(format!("{}/moto-api/?{probe}", moto.endpoint)).send().await.is_ok() {
            let logged_by = Instant::now() + Duration::from_secs(3);
            while Instant::now() < logged_by {
                if moto.log().contains(&probe) {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            return Err(format!("{} is served by another process", moto.endpoint));
        }
        if Instant::now() > deadline {
            return Err(format!("no answer on {} after {STARTUP_LIMIT:?}; its output:\n{}", moto.endpoint, moto.log()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An SDK error with its whole cause chain (the plain Display says only "service error").
pub fn sdk_error<E: std::error::Error>(e: &E) -> String {
    aws_sdk_sqs::error::DisplayErrorContext(e).to_string()
}

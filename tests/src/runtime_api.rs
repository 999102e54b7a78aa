//! A local Lambda Runtime API (the protocol `provided.al2023` speaks to a function's
//! `bootstrap`), for running the real function binaries in tests and in `bench/cold-start`:
//! `GET /runtime/invocation/next` hands out queued events, `POST …/response` and `…/error`
//! record the answers, `POST /runtime/init/error` records an init failure.
//!
//! [`LambdaProcess`] starts a binary against it with the environment Lambda gives, its stdout
//! (the function's log) kept in a file, and kills it when dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helper: a panic is the failure report

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Notify;

/// How a function answered one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `POST /invocation/{id}/response`, with its JSON body.
    Response(serde_json::Value),
    /// `POST /invocation/{id}/error`, with its JSON body.
    Error(serde_json::Value),
}

/// What a function posted to `/runtime/init/error`.
#[derive(Debug, Clone, PartialEq)]
pub struct InitErrorReport {
    /// The `Lambda-Runtime-Function-Error-Type` header.
    pub header_type: Option<String>,
    pub error_type: String,
    pub error_message: String,
}

struct Pending {
    request_id: String,
    deadline_ms: u64,
    payload: String,
}

#[derive(Default)]
struct Inner {
    events: VecDeque<Pending>,
    answers: Vec<(String, Answer)>,
    init_errors: Vec<InitErrorReport>,
    first_next: Option<Instant>,
    next_calls: usize,
    counter: u64,
}

#[derive(Default)]
struct Shared {
    inner: Mutex<Inner>,
    changed: Notify,
}

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// [`Shared::with`], then wakes every waiter.
    fn update<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let out = self.with(f);
        self.changed.notify_waiters();
        out
    }

    /// Waits until `f` returns `Some`, or `limit` passes.
    async fn wait_for<T>(&self, limit: Duration, mut f: impl FnMut(&mut Inner) -> Option<T>) -> Option<T> {
        let until = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(found) = self.with(&mut f) {
                return Some(found);
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                return None;
            }
        }
    }
}

/// A running Runtime API server on 127.0.0.1.
#[derive(Clone)]
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RuntimeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeApi").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(invocation_error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the Runtime API");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        RuntimeApi { addr, shared }
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Queues an invocation with `function_timeout` from now as its deadline, and waits up to
    /// `wait` for its answer (`None`: no answer by then).
    pub async fn invoke(
        &self,
        payload: &serde_json::Value,
        function_timeout: Duration,
        wait: Duration,
    ) -> Option<Answer> {
        let request_id = self.shared.update(|inner| {
            inner.counter += 1;
            let request_id = format!("req-{}", inner.counter);
            let deadline = SystemTime::now() + function_timeout;
            let deadline_ms = deadline.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
            inner.events.push_back(Pending {
                request_id: request_id.clone(),
                deadline_ms,
                payload: payload.to_string(),
            });
            request_id
        });
        self.shared
            .wait_for(wait, |inner| inner.answers.iter().find(|(id, _)| *id == request_id).map(|(_, a)| a.clone()))
            .await
    }

    /// The first `/runtime/init/error` report, waiting up to `wait` for it.
    pub async fn init_error(&self, wait: Duration) -> Option<InitErrorReport> {
        self.shared.wait_for(wait, |inner| inner.init_errors.first().cloned()).await
    }

    /// When the function first asked for an invocation (its init was done), waiting up to `wait`.
    pub async fn first_next(&self, wait: Duration) -> Option<Instant> {
        self.shared.wait_for(wait, |inner| inner.first_next).await
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    shared.update(|inner| {
        inner.first_next.get_or_insert_with(Instant::now);
        inner.next_calls += 1;
    });
    // Like Lambda: the request is held until there is an event (a frozen sandbox).
    let event = shared.wait_for(Duration::from_secs(3600), |inner| inner.events.pop_front()).await;
    let Some(event) = event else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let headers = [
        ("lambda-runtime-aws-request-id", event.request_id),
        ("lambda-runtime-deadline-ms", event.deadline_ms.to_string()),
        ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:test".to_owned()),
        ("lambda-runtime-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".to_owned()),
        ("content-type", "application/json".to_owned()),
    ];
    let mut response = event.payload.into_response();
    for (name, value) in headers {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn json(body: &Bytes) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into()))
}

async fn response(State(shared): State<Arc<Shared>>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    shared.update(|inner| inner.answers.push((id, Answer::Response(json(&body)))));
    StatusCode::ACCEPTED
}

async fn invocation_error(State(shared): State<Arc<Shared>>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    shared.update(|inner| inner.answers.push((id, Answer::Error(json(&body)))));
    StatusCode::ACCEPTED
}

async fn init_error(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let value = json(&body);
    let report = InitErrorReport {
        header_type: headers.get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok()).map(str::to_owned),
        error_type: value["errorType"].as_str().unwrap_or_default().to_owned(),
        error_message: value["errorMessage"].as_str().unwrap_or_default().to_owned(),
    };
    shared.update(|inner| inner.init_errors.push(report));
    StatusCode::ACCEPTED
}

/// A function binary running against a [`RuntimeApi`]; killed when dropped.
#[derive(Debug)]
pub struct LambdaProcess {
    child: Child,
    log: tempfile::NamedTempFile,
    pub started: Instant,
}

impl LambdaProcess {
    /// Starts `binary` with Lambda's environment (function name, memory, JSON log format,
    /// `AWS_LAMBDA_RUNTIME_API`), dummy credentials in region us-east-1, and `env` on top.
    pub fn start(binary: &Path, api: &RuntimeApi, env: &[(&str, String)]) -> LambdaProcess {
        let log = tempfile::NamedTempFile::new().expect("log file");
        // One open file for both streams, so their writes share an offset and none is lost.
        let stdout = log.reopen().expect("log file");
        let stderr = stdout.try_clone().expect("log file");
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", "test")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/test")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_REGION", crate::moto::REGION)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_SESSION_TOKEN", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        for (name, value) in env {
            command.env(name, value);
        }
        let started = Instant::now();
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        LambdaProcess { child, log, started }
    }

    /// What the function wrote so far (its log lines).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// The exit status, waiting up to `wait` for the process to end.
    pub async fn exit(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + wait;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Peak resident memory in KiB (Linux `VmHWM`), while the process runs.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An API Gateway HTTP API (payload 2.0) event for `GET {path}?{raw_query}`.
pub fn apigw_get(path: &str, raw_query: &str) -> serde_json::Value {
    apigw_event("GET", path, raw_query, &[], "")
}

/// An API Gateway HTTP API (payload 2.0) event for `POST {path}` with `headers` and `body`.
pub fn apigw_post(path: &str, headers: &[(&str, &str)], body: &str) -> serde_json::Value {
    apigw_event("POST", path, "", headers, body)
}

/// An API Gateway HTTP API (v2) event as API Gateway sends it to a function.
pub fn apigw_event(
    method: &str,
    path: &str,
    raw_query: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> serde_json::Value {
    let mut header_map = serde_json::json!({
        "host": "abc123defg.execute-api.us-east-1.amazonaws.com",
        "x-forwarded-proto": "https",
    });
    for (name, value) in headers {
        header_map[*name] = serde_json::Value::String((*value).to_owned());
    }
    serde_json::json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": header_map,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123defg",
            "domainName": "abc123defg.execute-api.us-east-1.amazonaws.com",
            "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "" },
            "requestId": "LV7fzho-PHcEJPw=",
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": "21/Nov/2026:22:09:42 +0000",
            "timeEpoch": 1795298982000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// The HTTP status of a function's answer to an API Gateway event; panics (with the
/// function's log) when it did not answer in time or answered with an invocation error.
pub fn http_status(answer: Option<Answer>, process: &LambdaProcess) -> u16 {
    match answer {
        Some(Answer::Response(r)) => r["statusCode"].as_u64().map_or(0, |s| s as u16),
        Some(Answer::Error(e)) => panic!("invocation error {e}; log:\n{}", process.log()),
        None => panic!("no answer before the function timeout; log:\n{}", process.log()),
    }
}

/// The JSON log lines a function wrote (non-JSON lines, such as EMF-less text, are skipped).
pub fn json_log_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

//! The real `call-start` binary under a local Lambda Runtime API, with moto as AWS and the
//! SQS or Secrets Manager endpoint refusing connections or accepting them and never
//! answering — from the first request and from the middle of a run. Every request must be
//! answered before the function's timeout, and 200 only when the event is on the queue.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;
use std::time::Duration;

use vicibridge_tests::faults::{Fault, FaultProxy, HangingListener, refused_endpoint};
use vicibridge_tests::moto::Moto;
use vicibridge_tests::runtime_api::{LambdaProcess, RuntimeApi, apigw_get, http_status, json_log_lines};

/// The ingest functions' timeout in infra/template.yaml (Globals: Timeout).
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(5);
const TOKEN: &str = "fault-test-token-1c9e";
const BINARY: &str = env!("CARGO_BIN_EXE_call-start");

struct Setup {
    moto: Moto,
    queue_url: String,
    secret_arn: String,
}

async fn setup() -> Setup {
    let moto = Moto::start().await;
    let queue_url = moto.create_queue("crm-events", &[]).await;
    let value = serde_json::json!({ "ingest_tokens": [TOKEN] }).to_string();
    let out = moto.secrets_manager().create_secret().name("vicibridge").secret_string(value).send().await.unwrap();
    Setup { secret_arn: out.arn().unwrap().to_owned(), moto, queue_url }
}

/// `call-start` with every AWS endpoint at moto, then `overrides`.
fn start(s: &Setup, api: &RuntimeApi, overrides: &[(&str, String)]) -> LambdaProcess {
    let mut env = vec![
        ("AWS_ENDPOINT_URL", s.moto.endpoint().to_owned()),
        ("VICIBRIDGE_QUEUE_URL", s.queue_url.clone()),
        ("VICIBRIDGE_SECRET_ARN", s.secret_arn.clone()),
    ];
    env.extend(overrides.iter().cloned());
    LambdaProcess::start(Path::new(BINARY), api, &env)
}

fn call_start(uniqueid: &str, token: &str) -> serde_json::Value {
    apigw_get(
        "/vicidial/call-start",
        &format!(
            "token={token}&lead_id=9&phone_number=7275558888&user=1000&campaign=TESTCAMP&uniqueid={uniqueid}&epoch=1795298982"
        ),
    )
}

async fn status(api: &RuntimeApi, process: &LambdaProcess, uniqueid: &str, token: &str) -> u16 {
    http_status(api.invoke(&call_start(uniqueid, token), FUNCTION_TIMEOUT, FUNCTION_TIMEOUT).await, process)
}

async fn queued(s: &Setup) -> u64 {
    s.moto.queue_depth(&s.queue_url).await.0
}

#[tokio::test]
async fn a_call_start_is_queued_and_answered_200() {
    let s = setup().await;
    let api = RuntimeApi::start().await;
    let process = start(&s, &api, &[]);
    assert_eq!(status(&api, &process, "1795298900.1", TOKEN).await, 200);
    assert_eq!(queued(&s).await, 1);
}

/// One fresh function per endpoint fault, each on its first request (what a cold start meets).
async fn first_request_answers_503(service_var: &str, endpoint: String) {
    let s = setup().await;
    let api = RuntimeApi::start().await;
    let process = start(&s, &api, &[(service_var, endpoint)]);
    assert_eq!(status(&api, &process, "1795298900.2", TOKEN).await, 503);
    assert_eq!(queued(&s).await, 0);
}

#[tokio::test]
async fn hanging_sqs_answers_503_before_the_function_timeout() {
    let hang = HangingListener::start();
    first_request_answers_503("AWS_ENDPOINT_URL_SQS", hang.endpoint()).await;
    assert!(hang.connections() > 0, "the function reached the hanging endpoint");
}

#[tokio::test]
async fn refused_sqs_answers_503_before_the_function_timeout() {
    first_request_answers_503("AWS_ENDPOINT_URL_SQS", refused_endpoint()).await;
}

#[tokio::test]
async fn hanging_secrets_manager_answers_503_before_the_function_timeout() {
    let hang = HangingListener::start();
    first_request_answers_503("AWS_ENDPOINT_URL_SECRETS_MANAGER", hang.endpoint()).await;
    assert!(hang.connections() > 0, "the function reached the hanging endpoint");
}

#[tokio::test]
async fn refused_secrets_manager_answers_503_before_the_function_timeout() {
    first_request_answers_503("AWS_ENDPOINT_URL_SECRETS_MANAGER", refused_endpoint()).await;
}

#[tokio::test]
async fn sqs_failing_mid_run_answers_503() {
    let s = setup().await;
    let proxy = FaultProxy::start(s.moto.endpoint()).await;
    let api = RuntimeApi::start().await;
    let process = start(&s, &api, &[("AWS_ENDPOINT_URL_SQS", proxy.endpoint())]);
    assert_eq!(status(&api, &process, "1795298900.3", TOKEN).await, 200);

    proxy.set(Fault::Hang);
    assert_eq!(status(&api, &process, "1795298900.4", TOKEN).await, 503, "open connection goes silent");
    assert_eq!(status(&api, &process, "1795298900.5", TOKEN).await, 503, "still silent");
    proxy.set(Fault::Refuse);
    assert_eq!(status(&api, &process, "1795298900.6", TOKEN).await, 503, "refused");
    assert_eq!(queued(&s).await, 1, "only the first event was stored");
}

#[tokio::test]
async fn secrets_manager_hanging_mid_run_keeps_the_cached_secret() {
    let s = setup().await;
    let proxy = FaultProxy::start(s.moto.endpoint()).await;
    let api = RuntimeApi::start().await;
    let process = start(&s, &api, &[("AWS_ENDPOINT_URL_SECRETS_MANAGER", proxy.endpoint())]);
    assert_eq!(status(&api, &process, "1795298900.7", TOKEN).await, 200);

    proxy.set(Fault::Hang);
    // A wrong token makes the function re-read the secret (a rotation?): that read hangs.
    let refused = status(&api, &process, "1795298900.8", "not-the-token").await;
    assert!(refused == 401 || refused == 503, "{refused}");
    assert_eq!(status(&api, &process, "1795298900.9", TOKEN).await, 200, "the cached secret still serves");
    assert_eq!(queued(&s).await, 2);
}

#[tokio::test]
async fn a_missing_environment_variable_is_an_init_error_with_the_operator_message() {
    let s = setup().await;
    let api = RuntimeApi::start().await;
    // Everything but VICIBRIDGE_QUEUE_URL.
    let env = [("AWS_ENDPOINT_URL", s.moto.endpoint().to_owned()), ("VICIBRIDGE_SECRET_ARN", s.secret_arn.clone())];
    let mut process = LambdaProcess::start(Path::new(BINARY), &api, &env);

    let report = api.init_error(Duration::from_secs(10)).await.expect("an init error is reported");
    assert_eq!(report.error_type, "Vicibridge.EnvironmentInvalid");
    assert_eq!(report.header_type.as_deref(), Some("Vicibridge.EnvironmentInvalid"));
    assert_eq!(report.error_message, "environment variable VICIBRIDGE_QUEUE_URL is not set (see infra/template.yaml)");
    let exit = process.exit(Duration::from_secs(10)).await.expect("the process ends after an init error");
    assert!(!exit.success());
    let lines = json_log_lines(&process.log());
    let logged: Vec<_> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert_eq!(logged.len(), 1, "one JSON error line: {lines:?}");
    let message = logged[0]["fields"]["message"].as_str().unwrap();
    assert!(message.contains(&report.error_message), "{message}");
    assert_eq!(logged[0]["fields"]["error_type"], "Vicibridge.EnvironmentInvalid");
}

//! The real `crm-sync` binary under a local Lambda Runtime API: its cold start reads the
//! configuration from SSM (moto, or an endpoint that hangs or refuses), and its batches settle
//! on SQS (moto behind a proxy that starts hanging). An init failure must reach
//! `/runtime/init/error` with the operator message before Lambda's 10 s init limit; a batch
//! must be answered before the function's timeout, never dropping a message. Over HTTPS, an
//! endpoint signed by a private CA is trusted only through `SSL_CERT_FILE`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;
use std::time::Duration;

use vicibridge_tests::faults::{Fault, FaultProxy, HangingListener, refused_endpoint};
use vicibridge_tests::moto::Moto;
use vicibridge_tests::runtime_api::{Answer, InitErrorReport, LambdaProcess, RuntimeApi, json_log_lines};
use vicibridge_tests::tls_proxy::TlsProxy;

const BINARY: &str = env!("CARGO_BIN_EXE_crm-sync");
/// Lambda stops an init at 10 s.
const INIT_LIMIT: Duration = Duration::from_secs(10);
/// crm-sync's timeout in infra/template.yaml.
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(30);
const PARAMETER: &str = "/vicibridge/config";
const CONFIG: &str = "[vicidial]\nbase_url = \"https://dialer.example.com\"\n[crm]\nkind = \"dry-run\"\n";

fn base_env(aws_endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", aws_endpoint.to_owned()),
        ("VICIBRIDGE_CONFIG_PARAMETER", PARAMETER.to_owned()),
        ("VICIBRIDGE_SECRET_ARN", "vicibridge".to_owned()),
        ("VICIBRIDGE_QUEUE_URL", format!("{aws_endpoint}/123456789012/crm-events")),
        ("VICIBRIDGE_DLQ_URL", format!("{aws_endpoint}/123456789012/crm-events-dlq")),
    ]
}

/// Starts crm-sync with `env` and returns its init error report, after checking that the
/// process ends and logged the same message as one JSON line.
async fn init_error(env: &[(&str, String)]) -> InitErrorReport {
    let api = RuntimeApi::start().await;
    let mut process = LambdaProcess::start(Path::new(BINARY), &api, env);
    let report = api
        .init_error(INIT_LIMIT)
        .await
        .unwrap_or_else(|| panic!("no init error reported within Lambda's init limit; log:\n{}", process.log()));
    assert_eq!(report.header_type.as_deref(), Some(report.error_type.as_str()));
    let exit = process.exit(Duration::from_secs(5)).await.expect("the process ends after an init error");
    assert!(!exit.success());
    let lines = json_log_lines(&process.log());
    let errors: Vec<_> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert_eq!(errors.len(), 1, "one JSON error line: {lines:?}");
    assert!(errors[0]["fields"]["message"].as_str().unwrap().contains(&report.error_message));
    report
}

#[tokio::test]
async fn hanging_ssm_at_init_is_reported_before_the_init_limit() {
    let hang = HangingListener::start();
    let report = init_error(&base_env(&hang.endpoint())).await;
    assert_eq!(report.error_type, "Vicibridge.ConfigUnreachable");
    assert!(report.error_message.starts_with(&format!("cannot read SSM parameter {PARAMETER}")), "{report:?}");
    assert!(hang.connections() > 0);
}

#[tokio::test]
async fn refused_ssm_at_init_is_reported_before_the_init_limit() {
    let report = init_error(&base_env(&refused_endpoint())).await;
    assert_eq!(report.error_type, "Vicibridge.ConfigUnreachable");
    assert!(report.error_message.starts_with(&format!("cannot read SSM parameter {PARAMETER}")), "{report:?}");
}

#[tokio::test]
async fn a_missing_parameter_is_reported_with_what_to_create() {
    let moto = Moto::start().await;
    // moto builds its SSM backend at the first SSM request, seconds on a loaded machine: longer
    // than crm-sync's 2 s attempts. Done here, the function sees SSM's answer, not moto's start.
    let absent = moto.ssm().get_parameter().name(PARAMETER).send().await;
    assert!(absent.is_err(), "{PARAMETER} exists before the test");
    let report = init_error(&base_env(moto.endpoint())).await;
    assert_eq!(report.error_type, "Vicibridge.ConfigMissing");
    assert_eq!(
        report.error_message,
        format!(
            "SSM parameter {PARAMETER} (named by VICIBRIDGE_CONFIG_PARAMETER) does not exist in this account and region: create it with the configuration TOML as its value, or fix the name"
        )
    );
}

#[tokio::test]
async fn an_invalid_configuration_is_reported_with_check_config() {
    let moto = Moto::start().await;
    let bad = "[vicidial\nbase_url = ";
    moto.ssm().put_parameter().name(PARAMETER).value(bad).r#type(aws_type()).send().await.unwrap();
    let report = init_error(&base_env(moto.endpoint())).await;
    assert_eq!(report.error_type, "Vicibridge.ConfigInvalid");
    assert!(report.error_message.contains("vicibridge check-config"), "{report:?}");
}

fn aws_type() -> aws_sdk_ssm::types::ParameterType {
    aws_sdk_ssm::types::ParameterType::String
}

/// An SQS event with one message whose body is not an envelope: a permanent failure, which
/// the worker sends to the DLQ.
fn broken_message_event() -> serde_json::Value {
    serde_json::json!({ "Records": [{
        "messageId": "m-broken-1",
        "receiptHandle": "rh-1",
        "body": "not an envelope",
        "attributes": { "ApproximateReceiveCount": "1" },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:crm-events",
        "awsRegion": "us-east-1"
    }]})
}

#[tokio::test]
async fn a_batch_is_answered_before_the_timeout_when_sqs_hangs_mid_run() {
    let moto = Moto::start().await;
    moto.ssm().put_parameter().name(PARAMETER).value(CONFIG).r#type(aws_type()).send().await.unwrap();
    let (_queue, dlq) = moto.create_queue_with_dlq("crm-events", 5).await;
    let proxy = FaultProxy::start(moto.endpoint()).await;
    let api = RuntimeApi::start().await;
    let mut env = base_env(moto.endpoint());
    env.push(("AWS_ENDPOINT_URL_SQS", proxy.endpoint()));
    env.push(("VICIBRIDGE_DLQ_URL", dlq.clone()));
    let process = LambdaProcess::start(Path::new(BINARY), &api, &env);

    let answer = api.invoke(&broken_message_event(), FUNCTION_TIMEOUT, FUNCTION_TIMEOUT).await;
    assert_eq!(answer, Some(Answer::Response(serde_json::json!({ "batchItemFailures": [] }))), "{}", process.log());
    assert_eq!(moto.queue_depth(&dlq).await.0, 1, "dead-lettered with its reason");

    proxy.set(Fault::Hang);
    let answer = api.invoke(&broken_message_event(), FUNCTION_TIMEOUT, FUNCTION_TIMEOUT).await;
    let failures = serde_json::json!({ "batchItemFailures": [{ "itemIdentifier": "m-broken-1" }] });
    assert_eq!(answer, Some(Answer::Response(failures)), "kept on the queue; log:\n{}", process.log());
}

/// The functions trust Mozilla's roots compiled in, not the image's store: an endpoint whose
/// certificate a private CA signed is refused, until `SSL_CERT_FILE` names that CA (README,
/// "Deploy"). Here every AWS call (SSM at init, SQS for the batch) goes through HTTPS.
#[tokio::test]
async fn a_private_ca_is_trusted_only_when_ssl_cert_file_names_it() {
    let moto = Moto::start().await;
    moto.ssm().put_parameter().name(PARAMETER).value(CONFIG).r#type(aws_type()).send().await.unwrap();
    let (_queue, dlq) = moto.create_queue_with_dlq("crm-events", 5).await;
    let tls = TlsProxy::start(moto.endpoint()).await;
    // base_env's queue URLs are moto's paths on the proxy's origin.
    let report = init_error(&base_env(&tls.endpoint())).await;
    assert_eq!(report.error_type, "Vicibridge.ConfigUnreachable");
    assert!(report.error_message.to_lowercase().contains("certificate"), "{report:?}");
    assert!(tls.refused_handshakes() > 0 && tls.handshakes() == 0, "the handshake was refused by the client");

    let mut trusted = base_env(&tls.endpoint());
    trusted.push(("SSL_CERT_FILE", tls.ca_file()));
    let api = RuntimeApi::start().await;
    let process = LambdaProcess::start(Path::new(BINARY), &api, &trusted);
    let answer = api.invoke(&broken_message_event(), FUNCTION_TIMEOUT, FUNCTION_TIMEOUT).await;
    assert_eq!(answer, Some(Answer::Response(serde_json::json!({ "batchItemFailures": [] }))), "{}", process.log());
    assert_eq!(moto.queue_depth(&dlq).await.0, 1, "dead-lettered through the TLS endpoint");
    assert!(tls.handshakes() > 0);
}

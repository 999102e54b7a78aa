//! The real `lead-webhook` binary under a local Lambda Runtime API with an SQS endpoint that
//! accepts connections and never answers, or refuses them: the CRM gets a 503 (and retries)
//! before the function's timeout, never an acknowledgement for what was not stored.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;
use std::time::Duration;

use vicibridge_tests::faults::{HangingListener, refused_endpoint};
use vicibridge_tests::moto::Moto;
use vicibridge_tests::runtime_api::{Answer, LambdaProcess, RuntimeApi, apigw_post, http_status};

const BINARY: &str = env!("CARGO_BIN_EXE_lead-webhook");
/// lead-webhook's timeout in infra/template.yaml.
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(10);
const SF_TOKEN: &str = "sf-flow-token-fault-7d1";

async fn status_with_sqs_at(sqs_endpoint: String) -> u16 {
    let moto = Moto::start().await;
    let secret = serde_json::json!({ "salesforce": { "webhook_token": SF_TOKEN } }).to_string();
    let out = moto.secrets_manager().create_secret().name("vicibridge").secret_string(secret).send().await.unwrap();
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "[vicidial]\nbase_url = \"https://dialer.example.com\"\n[crm]\nkind = \"dry-run\"\n[lead_injection]\n[lead_injection.salesforce]\nlist_id = \"2000\"\n")
        .unwrap();
    let api = RuntimeApi::start().await;
    let env = [
        ("AWS_ENDPOINT_URL", moto.endpoint().to_owned()),
        ("AWS_ENDPOINT_URL_SQS", sqs_endpoint),
        ("VICIBRIDGE_CONFIG", config.path().display().to_string()),
        ("VICIBRIDGE_SECRET_ARN", out.arn().unwrap().to_owned()),
        ("VICIBRIDGE_QUEUE_URL", format!("{}/123456789012/lead-injections", moto.endpoint())),
    ];
    let process = LambdaProcess::start(Path::new(BINARY), &api, &env);
    let body = r#"[{"Id":"00Q5g00000XYZ001AAA","Phone":"4155552671","attributes":{"type":"Lead"}}]"#;
    let event = apigw_post(
        "/salesforce/leads",
        &[("content-type", "application/json"), ("x-vicibridge-token", SF_TOKEN)],
        body,
    );
    let answer = api.invoke(&event, FUNCTION_TIMEOUT, FUNCTION_TIMEOUT).await;
    if let Some(Answer::Response(r)) = &answer {
        let body = r["body"].as_str().unwrap_or_default();
        assert!(body.contains("unavailable") && body.contains("retry"), "{body}");
    }
    http_status(answer, &process)
}

#[tokio::test]
async fn hanging_sqs_answers_503_before_the_function_timeout() {
    let hang = HangingListener::start();
    assert_eq!(status_with_sqs_at(hang.endpoint()).await, 503);
    assert!(hang.connections() > 0, "the function reached the hanging endpoint");
}

#[tokio::test]
async fn refused_sqs_answers_503_before_the_function_timeout() {
    assert_eq!(status_with_sqs_at(refused_endpoint()).await, 503);
}

//! Cold-start benchmark: starts each binary in `DIR` afresh, `ROUNDS` times, interleaved
//! (hello, sdk-hello, then every function, then again), each under its own local Lambda
//! Runtime API with moto as SQS, Secrets Manager and SSM, and measures:
//! - init: from exec to the first `GET /runtime/invocation/next`;
//! - first invocation: from queueing one real event to its answer;
//! - peak RSS (`VmHWM`) after that invocation, and the binary's size.
//!
//! `cargo run -p cold-start -- DIR [ROUNDS]` (DIR: where the release binaries are).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)] // a CLI report

use std::path::{Path, PathBuf};
use std::time::Duration;

use vicibridge_tests::moto::Moto;
use vicibridge_tests::runtime_api::{LambdaProcess, RuntimeApi, apigw_get, apigw_post};

const BINARIES: [&str; 8] =
    ["hello", "sdk-hello", "call-start", "dispo", "new-lead", "lead-webhook", "crm-sync", "lead-inject"];
const TOKEN: &str = "bench-token-3e1f";
const PARAMETER: &str = "/vicibridge/config";
const WAIT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Samples {
    init_ms: Vec<f64>,
    first_ms: Vec<f64>,
    rss_kib: Vec<u64>,
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: cold-start DIR [ROUNDS]"));
    let rounds: usize = args.next().map_or(20, |r| r.parse().expect("ROUNDS is a number"));

    let moto = Moto::start().await;
    let queue = moto.create_queue("crm-events", &[]).await;
    let (_, dlq) = moto.create_queue_with_dlq("lead-injections", 5).await;
    let secret = serde_json::json!({ "ingest_tokens": [TOKEN], "vicidial": { "api_user": "api", "api_pass": "pass" } });
    let arn = moto
        .secrets_manager()
        .create_secret()
        .name("vicibridge")
        .secret_string(secret.to_string())
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let config =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/vicibridge.example.toml"))
            .expect("infra/vicibridge.example.toml");
    moto.ssm()
        .put_parameter()
        .name(PARAMETER)
        .value(config)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    let env = [
        ("AWS_ENDPOINT_URL", moto.endpoint().to_owned()),
        ("VICIBRIDGE_QUEUE_URL", queue.clone()),
        ("VICIBRIDGE_DLQ_URL", dlq),
        ("VICIBRIDGE_CRM_EVENTS_URL", queue),
        ("VICIBRIDGE_SECRET_ARN", arn),
        ("VICIBRIDGE_CONFIG_PARAMETER", PARAMETER.to_owned()),
        ("AWS_LAMBDA_LOG_LEVEL", "warn".to_owned()),
    ];

    let mut samples: Vec<Samples> = BINARIES.iter().map(|_| Samples::default()).collect();
    for round in 0..rounds {
        for (i, name) in BINARIES.iter().enumerate() {
            let binary = dir.join(name);
            let api = RuntimeApi::start().await;
            let process = LambdaProcess::start(&binary, &api, &env);
            let ready = api.first_next(WAIT).await.unwrap_or_else(|| panic!("{name} never asked for an event"));
            let init = ready.duration_since(process.started);
            let event = event_for(name, round);
            let sent = std::time::Instant::now();
            let answer = api.invoke(&event, WAIT, WAIT).await;
            let first = sent.elapsed();
            assert!(answer.is_some(), "{name} did not answer; log:\n{}", process.log());
            let s = &mut samples[i];
            s.init_ms.push(init.as_secs_f64() * 1000.0);
            s.first_ms.push(first.as_secs_f64() * 1000.0);
            s.rss_kib.push(process.peak_rss_kib().unwrap_or(0));
        }
    }

    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let sdk_best = best(&samples[1].init_ms);
    println!("{rounds} rounds, binaries in {}", dir.display());
    println!(
        "| binary | init best | init median | × sdk-hello (best) | first invocation median | peak RSS (max) | size |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, s) in BINARIES.iter().zip(&samples) {
        let size = std::fs::metadata(dir.join(name)).map_or(0, |m| m.len());
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.2} | {:.1} ms | {:.1} MiB | {:.1} MiB |",
            best(&s.init_ms),
            median(&s.init_ms),
            best(&s.init_ms) / sdk_best,
            median(&s.first_ms),
            s.rss_kib.iter().copied().max().unwrap_or(0) as f64 / 1024.0,
            size as f64 / (1024.0 * 1024.0),
        );
    }
}

/// One real event for each binary's first invocation.
fn event_for(name: &str, round: usize) -> serde_json::Value {
    let query = |extra: &str| {
        format!(
            "token={TOKEN}&lead_id=9&phone_number=7275558888&user=1000&campaign=TESTCAMP&uniqueid=1795298900.{round}&epoch=1795298982{extra}"
        )
    };
    match name {
        "call-start" => apigw_get("/vicidial/call-start", &query("")),
        "dispo" => apigw_get("/vicidial/dispo", &query("&dispo=SALE&talk_time=63")),
        "new-lead" => apigw_get("/vicidial/new-lead", &query("")),
        // No webhook secret: answered 401 after the secret is read (the full cold path).
        "lead-webhook" => apigw_post("/hubspot/leads", &[("content-type", "application/json")], "{}"),
        "crm-sync" | "lead-inject" => sqs_event(name),
        _ => serde_json::json!({ "hello": round }),
    }
}

/// An SQS event with one message: a dispo envelope for crm-sync (dry-run), a body that is not
/// an envelope for lead-inject (dead-lettered: no VICIdial needed).
fn sqs_event(name: &str) -> serde_json::Value {
    let body = if name == "crm-sync" {
        r#"{"v":1,"key":"vicidial:dispo:9:uniqueid:1795298900.1","received_at":"2026-11-22T10:00:00Z","event":{"kind":"dispo","lead_id":9,"uniqueid":"1795298900.1","dispo":"SALE","phone_number":"7275558888"}}"#
    } else {
        "not an envelope"
    };
    serde_json::json!({ "Records": [{
        "messageId": "m-1", "receiptHandle": "rh-1", "body": body,
        "attributes": { "ApproximateReceiveCount": "1" }, "messageAttributes": {},
        "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"
    }]})
}

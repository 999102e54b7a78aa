//! Cold-start benchmark: starts each binary in `DIR` afresh, `ROUNDS` times, interleaved
//! (hello, sdk-hello, then every function, then again), each under its own local Lambda
//! Runtime API with moto as SQS, Secrets Manager and SSM, and measures:
//! - init: from exec to the first `GET /runtime/invocation/next`;
//! - first invocation: from queueing one real event to its answer;
//! - peak RSS (`VmHWM`) after that invocation, and the binary's size.
//!
//! `cargo run -p cold-start -- DIR [ROUNDS] [BEFORE_DIR]` (DIR: where the release binaries
//! are; BEFORE_DIR: the functions of another build, e.g. the commit before a change, measured
//! in the same rounds and listed as `name (before)`).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)] // a CLI report

use std::path::{Path, PathBuf};
use std::time::Duration;

use vicibridge_core::Envelope;
use vicibridge_core::event::{Event, LeadInjection, LeadSource};
use vicibridge_tests::moto::Moto;
use vicibridge_tests::runtime_api::{LambdaProcess, RuntimeApi, apigw_get, apigw_post};

const BASELINES: [&str; 3] = ["hello", "sdk-hello", "sdk-ssm-hello"];
const FUNCTIONS: [&str; 9] = [
    "call-start",
    "dispo",
    "new-lead",
    "lead-webhook",
    "crm-sync",
    "lead-inject",
    "screen-pop",
    "click-to-call",
    "reconcile",
];
const CHECKPOINT: &str = "/vicibridge/bench/reconcile-checkpoint";
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
    let dir = PathBuf::from(args.next().expect("usage: cold-start DIR [ROUNDS] [BEFORE_DIR]"));
    let rounds: usize = args.next().map_or(20, |r| r.parse().expect("ROUNDS is a number"));
    let before = args.next().map(PathBuf::from);
    // (label, function name, binary)
    let mut binaries: Vec<(String, &str, PathBuf)> =
        BASELINES.iter().chain(&FUNCTIONS).map(|name| (name.to_string(), *name, dir.join(name))).collect();
    if let Some(before) = &before {
        binaries.extend(FUNCTIONS.iter().map(|name| (format!("{name} (before)"), *name, before.join(name))));
    }

    let moto = Moto::start().await;
    let queue = moto.create_queue("crm-events", &[]).await;
    let (_, dlq) = moto.create_queue_with_dlq("lead-injections", 5).await;
    let secret = serde_json::json!({ "ingest_tokens": [TOKEN], "vicidial": { "api_user": "api", "api_pass": "pass" } });
    let arn = moto.create_secret(&secret).await;
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/vicibridge.example.toml"))
            .expect("infra/vicibridge.example.toml");
    // Lead injection on, towards a VICIdial that refuses connections: lead-inject's first
    // invocation maps one real lead (its phone number parsed) and gets a retryable failure.
    // Screen pop, click-to-call and reconcile on too, so every function starts as deployed.
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = format!(
        "{}\n{}",
        example.replace("https://dialer.example.com", &format!("http://127.0.0.1:{refused}")),
        r#"[lead_injection]
[lead_injection.hubspot]
list_id = "1000"
[screen_pop]
verify_agent = false
[agents.1000]
hubspot_user_id = "424242"
[click_to_call]
public_base_url = "https://abc123defg.execute-api.us-east-1.amazonaws.com"
[click_to_call.hubspot]
client_id = "bench-client"
[reconcile]
interval_minutes = 15
lookback_hours = 2
"#
    );
    assert!(config.contains(&format!("127.0.0.1:{refused}")), "the example's [vicidial] base_url changed");
    moto.ssm()
        .put_parameter()
        .name(PARAMETER)
        .value(config)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    moto.ssm()
        .put_parameter()
        .name(CHECKPOINT)
        .value("none")
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
        ("VICIBRIDGE_RECONCILE_CHECKPOINT", CHECKPOINT.to_owned()),
        ("AWS_LAMBDA_LOG_LEVEL", "warn".to_owned()),
    ];

    let mut samples: Vec<Samples> = binaries.iter().map(|_| Samples::default()).collect();
    for round in 0..rounds {
        for (i, (_, name, binary)) in binaries.iter().enumerate() {
            let api = RuntimeApi::start().await;
            let process = LambdaProcess::start(binary, &api, &env);
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
    let ssm_best = best(&samples[2].init_ms);
    println!("{rounds} rounds, binaries in {}", dir.display());
    if let Some(before) = &before {
        println!("(before): {}", before.display());
    }
    println!(
        "| binary | init best | init median | × sdk-hello (best) | × sdk-ssm-hello (best) | first invocation median | peak RSS (max) | size |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for ((label, _, binary), s) in binaries.iter().zip(&samples) {
        let size = std::fs::metadata(binary).map_or(0, |m| m.len());
        println!(
            "| {label} | {:.1} ms | {:.1} ms | {:.2} | {:.2} | {:.1} ms | {:.1} MiB | {:.1} MiB |",
            best(&s.init_ms),
            median(&s.init_ms),
            best(&s.init_ms) / sdk_best,
            best(&s.init_ms) / ssm_best,
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
        // No token: refused after the secret is read (the pop's CRM lookup is not cold start).
        "screen-pop" => apigw_get("/vicidial/screen-pop", "lead_id=9&phone_number=7275558888"),
        "click-to-call" => apigw_get("/dialer", "phone=7275558888"),
        // A scheduled run: reads the checkpoint, then VICIdial's URL log refuses the connection.
        "reconcile" => serde_json::json!({ "source": "aws.events", "detail-type": "Scheduled Event" }),
        _ => serde_json::json!({ "hello": round }),
    }
}

/// An SQS event with one message: a dispo envelope for crm-sync (dry-run), a HubSpot lead for
/// lead-inject (its phone parsed, then VICIdial refuses the connection: retried later).
fn sqs_event(name: &str) -> serde_json::Value {
    let lead = Event::LeadInjection(LeadInjection {
        source: LeadSource::Hubspot,
        crm_ref: "101".into(),
        object: Some("contact".into()),
        origin: "bench".into(),
        properties: [("phone".to_owned(), "(415) 555-2671".to_owned())].into(),
    });
    let body = if name == "crm-sync" {
        r#"{"v":1,"key":"vicidial:dispo:9:uniqueid:1795298900.1","received_at":"2026-11-22T10:00:00Z","event":{"kind":"dispo","lead_id":9,"uniqueid":"1795298900.1","dispo":"SALE","phone_number":"7275558888"}}"#.to_owned()
    } else {
        Envelope::new(lead, chrono::Utc::now()).to_json()
    };
    serde_json::json!({ "Records": [{
        "messageId": "m-1", "receiptHandle": "rh-1", "body": body,
        "attributes": { "ApproximateReceiveCount": "1" }, "messageAttributes": {},
        "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"
    }]})
}

//! `/status` and `/status.json` through the real `vicibridge serve`: what it shows after real
//! traffic (ingest, syncs, a dead letter, an unmapped status), in headless Chromium too, and who
//! may read it (loopback, a proxied or remote request, status tokens).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::{Value, json};
use vicibridge_core::ports::OutgoingMessage;
use vicibridge_local::queue::{QueueOptions, SqliteQueue};

const STATUS_TOKEN: &str = "status-e2e-token-5d1c9e7a";

/// The test secrets plus `status_tokens` (when `Some`), in `DIR/NAME`.
fn secrets_with_status_token(dir: &Path, name: &str, token: Option<&str>) -> PathBuf {
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(write_secrets(dir)).unwrap()).unwrap();
    if let Some(token) = token {
        doc["status_tokens"] = json!([token]);
    }
    let path = dir.join(name);
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = reqwest::Client::new().get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.headers().clone(), r.text().await.unwrap())
}

fn total(status: &Value, series: &str) -> u64 {
    let s = status["activity"]["series"].as_array().unwrap().iter().find(|s| s["series"] == series).unwrap();
    s["total"].as_u64().unwrap()
}

fn queue<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["queues"].as_array().unwrap().iter().find(|q| q["name"] == name).unwrap()
}

#[tokio::test]
async fn the_status_page_shows_ingest_syncs_dead_letters_and_unmapped_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path());
    let secrets = secrets_with_status_token(dir.path(), "with-token.json", Some(STATUS_TOKEN));
    let serve = Serve::start(&config, &secrets, &data, "serve.log");

    let dispo = |lead: u64, uniqueid: &str, status: &str| {
        format!("{}/vicidial/dispo?{}", serve.base, dispo_query(TOKEN, lead, uniqueid, status))
    };
    for (lead, uniqueid, status) in
        [(21, "1795300001.1", "SALE"), (22, "1795300002.1", "NI"), (23, "1795300003.1", "ZZTOP")]
    {
        assert_eq!(get(&dispo(lead, uniqueid, status), &[]).await.0, 200);
    }
    let refused = dispo(24, "1795300004.1", "SALE").replace(TOKEN, "not-the-ingest-token");
    assert_eq!(get(&refused, &[]).await.0, 401);
    // A message no worker can read (written into serve's queue as any other process could):
    // the worker dead-letters it with the reason.
    let crm_events = SqliteQueue::open(&data.join("crm-events.db"), QueueOptions::default()).unwrap();
    crm_events.enqueue(&OutgoingMessage { key: "garbled-1".into(), body: "{not an envelope".into() }).await.unwrap();

    let status = serve
        .wait_status("3 syncs and a dead letter", |s| {
            total(s, "sync_applied") >= 3 && queue(s, "crm-events")["dead_letters"] == 1
        })
        .await;
    assert_eq!(total(&status, "ingest_accepted"), 3, "{status:#}");
    assert_eq!(total(&status, "ingest_rejected"), 1, "{status:#}");
    assert_eq!(total(&status, "sync_applied"), 3);
    assert_eq!(total(&status, "sync_failures"), 1);
    let per_minute = &status["activity"]["series"][0]["per_minute"];
    assert_eq!(per_minute.as_array().unwrap().len(), 60, "an hour, minute by minute");
    assert!(status["activity"]["last_applied"]["dry-run"].is_string(), "{status:#}");
    let events = queue(&status, "crm-events");
    // Drained: no oldest message. The age is whole seconds under a name that says so.
    assert_eq!(events.get("oldest_age_secs"), Some(&Value::Null), "{events:#}");
    let reasons = events["dead_letters_by_reason"].as_array().unwrap();
    assert_eq!(reasons.len(), 1);
    let reason = reasons[0][0].as_str().unwrap().to_owned();
    assert!(!reason.is_empty());
    assert_eq!(reasons[0][1], 1);
    assert_eq!(status["unmapped_statuses"], json!([["ZZTOP", 1]]), "SALE and NI are built in");
    assert!(status["dispositions_snippet"].as_str().unwrap().starts_with("[dispositions.ZZTOP]\nlabel = \"ZZTOP\""));
    assert_eq!(status["reconcile"], Value::Null, "no [reconcile] in this config");

    let (code, headers, html) = get(&format!("{}/status", serve.base), &[]).await;
    assert_eq!(code, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'; style-src 'sha256-"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"));
    for shown in ["ZZTOP", "[dispositions.ZZTOP]", "dry-run", "crm-events", "Not configured"] {
        assert!(html.contains(shown), "{shown} missing:\n{html}");
    }
    let escaped = reason.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    assert!(html.contains(&escaped), "the dead letter's reason {reason:?} is on the page");

    // In a real browser: charts drawn, styles applied under the CSP, nothing refused.
    let shot = vicibridge_tests::browser::screenshot_dir().join("status.png");
    let out = vicibridge_tests::browser::run(
        "status.mjs",
        &json!({"url": format!("{}/status", serve.base), "screenshot": shot, "width": 1000}),
    )
    .await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 0);
    assert_eq!(out["status"], 200);
    assert_eq!(out["violations"], json!([]), "{out:#}");
    assert_eq!(out["errors"], json!([]), "{out:#}");
    assert_eq!(out["console"], json!([]), "{out:#}");
    let charts = out["charts"].as_array().unwrap();
    assert_eq!(charts.len(), 2, "{out:#}");
    let dots = |chart: &Value, line: usize| -> u64 {
        // Dots of one line share its colour.
        let stroke = chart["lines"][line]["stroke"].as_str().unwrap().to_owned();
        chart["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["fill"] == stroke)
            .map(|p| p["count"].as_u64().unwrap())
            .sum()
    };
    for chart in charts {
        assert!(chart["svg_width"].as_f64().unwrap() > 200.0 && chart["svg_height"].as_f64().unwrap() > 40.0);
        for line in chart["lines"].as_array().unwrap() {
            assert_eq!(line["vertices"], 60, "{chart:#}");
            assert_eq!(line["fill"], "none", "the stylesheet applies: {chart:#}");
        }
    }
    let (ingest, sync) = (&charts[0], &charts[1]);
    assert_eq!(ingest["lines"][0]["stroke"], "rgb(11, 87, 208)", "the page's colours, allowed by the CSP hash");
    assert_eq!((dots(ingest, 0), dots(ingest, 1)), (3, 1), "{ingest:#}");
    assert_eq!((dots(sync, 0), dots(sync, 1)), (3, 1), "{sync:#}");
    let text = out["text"].as_str().unwrap();
    assert!(text.contains("ZZTOP") && text.contains(&reason), "{text}");
}

/// The machine's own non-loopback address: a request to it reaches serve from a non-loopback
/// peer, as one from another machine would. (Connecting a UDP socket sends nothing.)
fn this_machines_address() -> IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket.connect("192.0.2.1:9").expect("this test needs a network interface besides loopback");
    let ip = socket.local_addr().unwrap().ip();
    assert!(!ip.is_loopback(), "{ip}");
    ip
}

#[tokio::test]
async fn the_status_page_needs_a_token_unless_asked_from_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let with_token = secrets_with_status_token(dir.path(), "with-token.json", Some(STATUS_TOKEN));
    let serve = Serve::start_on("0.0.0.0", &config, &with_token, &dir.path().join("a"), "a.log");
    let port = serve.base.rsplit(':').next().unwrap().to_owned();
    let local = format!("{}/status.json", serve.base);
    let remote = format!("http://{}:{port}/status.json", this_machines_address());
    let bearer = format!("Bearer {STATUS_TOKEN}");
    let proxied = ("x-forwarded-for", "203.0.113.7");

    assert_eq!(get(&local, &[]).await.0, 200, "loopback needs no token");
    let (code, headers, body) = get(&remote, &[]).await;
    assert_eq!((code, headers["www-authenticate"].to_str().unwrap()), (401, "Bearer"), "{body}");
    assert_eq!(get(&local, &[proxied]).await.0, 401, "a proxy on this machine does not make a request local");
    assert_eq!(get(&remote, &[("authorization", &bearer)]).await.0, 200);
    assert_eq!(get(&format!("{remote}?token={STATUS_TOKEN}"), &[]).await.0, 200);
    assert_eq!(get(&local, &[proxied, ("authorization", &bearer)]).await.0, 200);
    assert_eq!(get(&remote, &[("authorization", "Bearer not-it")]).await.0, 401);
    assert_eq!(get(&local, &[("authorization", "Bearer not-it")]).await.0, 401, "a wrong token is refused anywhere");
    assert_eq!(get(&remote.replace(".json", ""), &[]).await.0, 401, "the HTML page too");
    assert!(!serve.log_text().contains(STATUS_TOKEN), "the token is never logged");
    drop(serve);

    // No status token configured: nothing a remote request could present.
    let without = secrets_with_status_token(dir.path(), "without-token.json", None);
    let serve = Serve::start_on("0.0.0.0", &config, &without, &dir.path().join("b"), "b.log");
    let port = serve.base.rsplit(':').next().unwrap().to_owned();
    let remote = format!("http://{}:{port}/status", this_machines_address());
    let (code, _, body) = get(&remote, &[]).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("status_tokens"), "{body}");
    assert_eq!(get(&format!("{}/status", serve.base), &[proxied]).await.0, 403);
    assert_eq!(get(&format!("{}/status", serve.base), &[]).await.0, 200);
    drop(serve);

    // loopback_without_token = false: a token everywhere.
    let text = std::fs::read_to_string(&config).unwrap() + "\n[status]\nloopback_without_token = false\n";
    let strict = dir.path().join("strict.toml");
    std::fs::write(&strict, text).unwrap();
    let serve = Serve::start(&strict, &with_token, &dir.path().join("c"), "c.log");
    let local = format!("{}/status", serve.base);
    assert_eq!(get(&local, &[]).await.0, 401);
    assert_eq!(get(&local, &[("authorization", &bearer)]).await.0, 200);
}

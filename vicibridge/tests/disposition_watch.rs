//! The disposition watchdog through the real `vicibridge serve`: a campaign whose calls start
//! and get no disposition, and one that dispositioned yesterday and is silent today while
//! another works its hours, show on `/status.json` and `/status` and are logged once each;
//! a restart remembers them; a disposition clears them. The clock is moved through VICIdial's
//! own `epoch` of each URL (when VICIdial built it), as a replay from its URL log would.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use common::*;
use serde_json::Value;
use vicibridge_core::config::Tz;

/// The test config, looking every second, with the dialer's clock in `tz`.
fn config(dir: &Path, tz: &str) -> std::path::PathBuf {
    let path = write_config(dir);
    let text = std::fs::read_to_string(&path).unwrap();
    let changed = text
        .replace("check_interval_secs = 30\n", "check_interval_secs = 1\n")
        .replace("server_time_zone = \"America/New_York\"", &format!("server_time_zone = \"{tz}\""));
    assert!(
        changed.contains("check_interval_secs = 1\n") && changed.contains(&format!("\"{tz}\"")),
        "the example config changed shape; update this test"
    );
    std::fs::write(&path, changed).unwrap();
    path
}

/// A Start Call URL (`dispo: None`) or Dispo Call URL of `campaign`'s call, built by VICIdial at `at`.
async fn send(serve: &Serve, campaign: &str, uniqueid: &str, at: DateTime<Utc>, dispo: Option<&str>) {
    let (route, extra) = match dispo {
        None => ("call-start", String::new()),
        Some(status) => ("dispo", format!("&dispo={status}&talk_time=20")),
    };
    let url = format!(
        "{}/vicidial/{route}?token={TOKEN}&lead_id=41&phone_number=7275558888&user=1000&campaign={campaign}&uniqueid={uniqueid}&epoch={}{extra}",
        serve.base,
        at.timestamp()
    );
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
}

fn campaign<'a>(status: &'a Value, id: &str) -> Option<&'a Value> {
    status["disposition_watch"]["campaigns"].as_array()?.iter().find(|c| c["campaign"] == id)
}

/// Log lines holding every one of `parts`.
fn log_lines(serve: &Serve, parts: &[&str]) -> usize {
    serve.log_text().lines().filter(|l| parts.iter().all(|p| l.contains(p))).count()
}

async fn wait_log(serve: &Serve, what: &str, parts: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while log_lines(serve, parts) == 0 {
        assert!(Instant::now() < deadline, "timed out waiting for the log line {what}; log:\n{}", serve.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const MISSING: &str = "calls without a disposition: calls of this campaign started";
const SILENT: &str = "silent campaign: it sent dispositions yesterday";

#[tokio::test]
async fn a_campaign_without_dispositions_is_reported_until_one_arrives() {
    let now = Utc::now();
    // A dialer clock past 01:00, so that one hour of today is over.
    let tz_name = if now.hour() >= 1 { "UTC" } else { "Asia/Tokyo" };
    let tz: Tz = tz_name.parse().unwrap();
    let local = now.with_timezone(&tz);
    let last_hour = local.with_minute(0).unwrap().with_second(0).unwrap() - chrono::Duration::minutes(30);

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config(dir.path(), tz_name);
    let secrets = write_secrets(dir.path());
    let mut serve = Serve::start(&config, &secrets, &data, "serve.log");

    let hours = |h: i64| now - chrono::Duration::minutes(h * 60);
    // CLONED lost its Dispo Call URL: two calls over 2 h old, one recent.
    send(&serve, "CLONED", "1795500000.1", hours(3), None).await;
    send(&serve, "CLONED", "1795500000.2", now - chrono::Duration::minutes(150), None).await;
    send(&serve, "CLONED", "1795500000.3", now - chrono::Duration::minutes(10), None).await;
    // TESTCAMP works, yesterday and today (in the last complete hour).
    send(&serve, "TESTCAMP", "1795500100.1", hours(3), None).await;
    send(&serve, "TESTCAMP", "1795500100.1", hours(3) + chrono::Duration::minutes(4), Some("SALE")).await;
    send(&serve, "TESTCAMP", "1795500100.2", last_hour.to_utc() - chrono::Duration::days(1), Some("NI")).await;
    send(&serve, "TESTCAMP", "1795500100.3", last_hour.to_utc(), Some("NI")).await;
    // SPANISH dispositioned in that hour yesterday, and nothing today.
    send(&serve, "SPANISH", "1795500200.1", last_hour.to_utc() - chrono::Duration::days(1), Some("SALE")).await;

    let silent_hour = last_hour.hour();
    let status = serve
        .wait_status("CLONED and SPANISH on /status.json", |s| {
            campaign(s, "CLONED").is_some_and(|c| c["calls_without_disposition"] == 2)
                && campaign(s, "SPANISH").is_some_and(|c| c["silent_hours"] == serde_json::json!([silent_hour]))
        })
        .await;
    assert_eq!(status["disposition_watch"]["after_minutes"], 120);
    let cloned = campaign(&status, "CLONED").unwrap();
    assert_eq!(cloned["oldest_call_started_at"].as_str().unwrap(), hours(3).format("%Y-%m-%dT%H:%M:%SZ").to_string());
    assert!(cloned["last_disposition_at"].is_null(), "{cloned}");
    let testcamp = campaign(&status, "TESTCAMP").unwrap();
    assert_eq!(
        (testcamp["calls_without_disposition"].as_u64(), testcamp["silent_hours"].as_array().map(Vec::len)),
        (Some(0), Some(0))
    );
    assert_eq!(campaign(&status, "SPANISH").unwrap()["calls_without_disposition"], 0);

    wait_log(&serve, "CLONED missing", &[MISSING, "\"campaign\":\"CLONED\"", "\"level\":\"WARN\""]).await;
    wait_log(&serve, "SPANISH silent", &[SILENT, "\"campaign\":\"SPANISH\"", "\"level\":\"WARN\""]).await;
    let page = reqwest::get(format!("{}/status", serve.base)).await.unwrap().text().await.unwrap();
    assert!(
        page.contains("Dispositions by campaign") && page.contains("CLONED") && page.contains("Dispo Call URL"),
        "{page}"
    );
    // In a real browser: the section renders under the page's CSP, nothing refused.
    let shot = vicibridge_tests::browser::screenshot_dir().join("status-dispositions.png");
    let out = vicibridge_tests::browser::run(
        "status.mjs",
        &serde_json::json!({"url": format!("{}/status", serve.base), "screenshot": shot, "width": 1000}),
    )
    .await;
    assert_eq!((&out["violations"], &out["errors"]), (&serde_json::json!([]), &serde_json::json!([])), "{out:#}");
    let text = out["text"].as_str().unwrap();
    assert!(text.contains("CLONED\t2\t"), "one line per campaign with its count: {text}");
    assert!(text.contains(&format!("others sent some at {silent_hour}:00")), "{text}");
    // Reported once, however many looks.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(log_lines(&serve, &[MISSING, "\"campaign\":\"CLONED\""]), 1);
    assert_eq!(log_lines(&serve, &[MISSING, "\"campaign\":\"TESTCAMP\""]), 0);

    // A restart remembers the calls (and reports them again, once).
    serve.stop();
    let serve = Serve::start(&config, &secrets, &data, "serve-2.log");
    let status = serve.status_json().await;
    assert_eq!(campaign(&status, "CLONED").unwrap()["calls_without_disposition"], 2, "{status:#}");
    wait_log(&serve, "CLONED missing after the restart", &[MISSING, "\"campaign\":\"CLONED\""]).await;

    // The Dispo Call URL is fixed: the next call's disposition clears CLONED; SPANISH speaks.
    send(&serve, "CLONED", "1795500000.4", now - chrono::Duration::minutes(5), None).await;
    send(&serve, "CLONED", "1795500000.4", now, Some("NI")).await;
    send(&serve, "SPANISH", "1795500200.2", now, Some("NI")).await;
    serve
        .wait_status("CLONED and SPANISH cleared", |s| {
            campaign(s, "CLONED").is_some_and(|c| c["calls_without_disposition"] == 0)
                && campaign(s, "SPANISH").is_some_and(|c| c["silent_hours"] == serde_json::json!([]))
        })
        .await;
    wait_log(&serve, "CLONED cleared", &["calls without a disposition: recovered", "\"campaign\":\"CLONED\""]).await;
    wait_log(&serve, "SPANISH cleared", &["silent campaign: recovered", "\"campaign\":\"SPANISH\""]).await;
}

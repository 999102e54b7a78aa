//! `vicibridge reconcile` and serve's `[reconcile]` schedule against the simulated URL Log
//! Report (`vicibridge_tests::url_log_sim`, which answers the CSV exactly as
//! `AST_url_log_report.php` does), with the real `vicibridge` binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{Timelike, Utc};
use common::{Serve, TOKEN, dispo_query};
use vicibridge_tests::url_log_sim::{LoggedUrl, ReportsUser, UrlLogSim};

const REPORTS_USER: &str = "reports";
const REPORTS_PASS: &str = "Rep0rtsPassw0rd";
/// The token the missed URLs were logged with, rotated away since.
const ROTATED_TOKEN: &str = "tok-rotated-away-5c1e";

fn write_config(dir: &Path, vicidial: &str, reconcile: bool) -> PathBuf {
    let example = std::fs::read_to_string(common::example_config()).unwrap();
    let mut text = example
        .replace("base_url = \"https://dialer.example.com\"", &format!("base_url = \"{vicidial}\""))
        .replace("server_time_zone = \"America/New_York\"", "server_time_zone = \"UTC\"")
        .replace("batching_window_ms = 200", "batching_window_ms = 20");
    assert!(text.contains(vicidial), "the example config changed shape; update this test");
    if reconcile {
        text.push_str("\n[reconcile]\ninterval_minutes = 60\nlookback_hours = 2\n");
    }
    let path = dir.join(if reconcile { "reconcile.toml" } else { "plain.toml" });
    std::fs::write(&path, text).unwrap();
    path
}

fn write_secrets(dir: &Path, reports_pass: &str) -> PathBuf {
    let path = dir.join(format!("secrets-{reports_pass}.json"));
    let json = format!(
        r#"{{"ingest_tokens":["{TOKEN}"],"vicidial":{{"api_user":"vicibridge","api_pass":"x","reports_user":"{REPORTS_USER}","reports_pass":"{reports_pass}"}}}}"#
    );
    std::fs::write(&path, json).unwrap();
    path
}

fn vicibridge(args: &[&str]) -> Output {
    Command::new(common::bin()).args(args).env("RUST_LOG", "info").output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The number after `label` in reconcile's summary.
fn count(summary: &str, label: &str) -> usize {
    let line = summary.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no {label:?} in:\n{summary}"));
    line[label.len()..].trim().parse().unwrap()
}

/// The drill: ingest is down while VICIdial logs 50 dispositions (their URLs answered
/// `PHP ERROR`, with a token rotated away since); reconcile replays each once, leaves the
/// delivered ones alone, and a second run replays nothing.
#[tokio::test(flavor = "multi_thread")]
async fn missed_dispositions_drill() {
    let sim = UrlLogSim::start().await;
    sim.add_user(ReportsUser::allowed(REPORTS_USER, REPORTS_PASS));
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let secrets = write_secrets(dir.path(), REPORTS_PASS);
    let plain = write_config(dir.path(), &sim.base_url(), false);

    // Up: 10 dispositions reach vicibridge, VICIdial logs its receipt.
    let mut serve = Serve::start(&plain, &secrets, &data_dir, "serve-1.log");
    for i in 0..10 {
        let url = format!(
            "{}/vicidial/dispo?{}",
            serve.base,
            dispo_query(TOKEN, 100 + i, &format!("1795300000.{i}"), "SALE")
        );
        let stored = sim.fire(&format!("1795300000.{i}"), "dispo", &url).await;
        assert!(stored.contains("|OK dispo queued lead="), "{stored}");
    }
    // Another system's Dispo Call URL, logged in the same table.
    sim.fire("1795300000.99", "dispo", "http://127.0.0.1:9/crm-hook?lead_id=1").await;
    serve.wait_records("the delivered dispositions", |r| r.len() == 10);
    let down_base = serve.base.clone();
    serve.stop();

    // Down: 50 dispositions fail in VICIdial's RUNurls.
    for i in 0..50 {
        let uniqueid = format!("1795301000.{i}");
        let url = format!("{down_base}/vicidial/dispo?{}", dispo_query(ROTATED_TOKEN, 200 + i, &uniqueid, "NI"));
        let stored = sim.fire(&uniqueid, "dispo", &url).await;
        assert!(stored.contains("|PHP ERROR: "), "{stored}");
    }
    // One missed URL that is invalid as logged, and one record the CSV mangles (a newline in
    // the URL, which the PHP writes as is).
    let invalid = format!("{down_base}/vicidial/dispo?token={ROTATED_TOKEN}&lead_id=300&uniqueid=1795302000.1");
    sim.fire("1795302000.1", "dispo", &invalid).await;
    sim.push(LoggedUrl {
        uniqueid: "1795302000.2".into(),
        url_date: Utc::now().naive_utc().with_nanosecond(0).unwrap(),
        url_type: "dispo".into(),
        response_sec: 0,
        url: format!("{down_base}/vicidial/dispo?token={ROTATED_TOKEN}\n&lead_id=301"),
        url_response: String::new(),
    });

    // Back up with [reconcile]: serve reconciles at start.
    let scheduled = write_config(dir.path(), &sim.base_url(), true);
    let mut serve = Serve::start(&scheduled, &secrets, &data_dir, "serve-2.log");
    serve.wait_records("the replayed dispositions", |r| r.len() >= 60);

    // A second run, from the CLI, while serve runs: nothing left to replay.
    let out = vicibridge(&[
        "reconcile",
        "--config",
        scheduled.to_str().unwrap(),
        "--secrets",
        secrets.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--since",
        "1h",
    ]);
    let cli = text(&out);
    assert!(out.status.success(), "{cli}");
    assert_eq!(count(&cli, "rows read:"), 62, "{cli}");
    assert_eq!(count(&cli, "already received:"), 10, "{cli}");
    assert_eq!(count(&cli, "already replayed:"), 50, "{cli}");
    assert_eq!(count(&cli, "replayed:"), 0, "{cli}");
    assert_eq!(count(&cli, "rejected:"), 1, "{cli}");
    assert!(cli.contains("1795302000.1") && cli.contains("missing `dispo`"), "{cli}");
    assert_eq!(count(&cli, "not vicibridge's:"), 1, "{cli}");
    assert_eq!(count(&cli, "unreadable records:"), 1, "{cli}");
    serve.stop();

    // Every disposition applied exactly once.
    let records = serve.dry_run_records();
    let mut per_key: HashMap<String, usize> = HashMap::new();
    for r in &records {
        *per_key.entry(r["key"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(records.len(), 60, "{per_key:?}");
    assert_eq!(per_key.len(), 60);
    for i in 0..50 {
        assert_eq!(per_key.get(&format!("vicidial:dispo:{}:uniqueid:1795301000.{i}", 200 + i)), Some(&1));
    }

    let serve_log = serve.log_text();
    assert!(serve_log.contains("replayed from VICIdial's URL log"), "{serve_log}");
    assert!(serve_log.contains("\"replayed\":true"));
    for secret in [TOKEN, ROTATED_TOKEN, REPORTS_PASS] {
        assert!(!serve_log.contains(secret), "serve logged a secret");
        assert!(!cli.contains(secret), "reconcile printed a secret");
    }
    // One request per day, `url_type[]` as an array, SUBMIT and the CSV download.
    for q in sim.requests() {
        assert!(q.contains("url_type%5B%5D=dispo") && q.contains("SUBMIT=") && q.contains("file_download=1"), "{q}");
        assert_eq!(q.matches("query_date=").count(), 1, "{q}");
    }
}

/// A dry run reads and decides but queues nothing; refusals of the report are named, and the
/// password VICIdial echoes in its "Login incorrect" page is never shown.
#[tokio::test(flavor = "multi_thread")]
async fn dry_run_and_refusals() {
    let sim = UrlLogSim::start().await;
    sim.add_user(ReportsUser::allowed(REPORTS_USER, REPORTS_PASS));
    sim.add_user(ReportsUser { view_reports: false, ..ReportsUser::allowed("agentonly", "AgentPass1") });
    sim.add_user(ReportsUser {
        allowed_reports: "Agent Time Detail".into(),
        ..ReportsUser::allowed("norep", "NoRep1")
    });
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = write_config(dir.path(), &sim.base_url(), false);
    for i in 0..3 {
        let uniqueid = format!("1795303000.{i}");
        let url = format!("http://127.0.0.1:9/vicidial/dispo?{}", dispo_query(TOKEN, 400 + i, &uniqueid, "SALE"));
        sim.fire(&uniqueid, "dispo", &url).await;
    }
    let run = |secrets: &Path, extra: &[&str]| {
        let mut args = vec!["reconcile", "--config", config.to_str().unwrap(), "--secrets", secrets.to_str().unwrap()];
        args.extend(["--data-dir", data_dir.to_str().unwrap()]);
        args.extend(extra);
        vicibridge(&args)
    };

    let out = run(&write_secrets(dir.path(), REPORTS_PASS), &["--dry-run"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("(dry run)"), "{t}");
    assert_eq!(count(&t, "would replay:"), 3, "{t}");
    let out = vicibridge(&["queue", "status", "--data-dir", data_dir.to_str().unwrap()]);
    let status = text(&out);
    assert!(out.status.success(), "{status}");
    assert!(status.contains("crm-events: 0 visible"), "{status}");

    let wrong = write_secrets(dir.path(), "WrongPass9");
    let out = run(&wrong, &[]);
    let t = text(&out);
    assert!(!out.status.success());
    assert!(t.contains("Login incorrect") && !t.contains("WrongPass9"), "{t}");

    let agent_only = dir.path().join("agent-only.json");
    std::fs::write(
        &agent_only,
        format!(r#"{{"ingest_tokens":["{TOKEN}"],"vicidial":{{"api_user":"v","api_pass":"x","reports_user":"agentonly","reports_pass":"AgentPass1"}}}}"#),
    )
    .unwrap();
    let t = text(&run(&agent_only, &[]));
    assert!(t.contains("may not view reports") && t.contains("View Reports"), "{t}");

    let no_report = dir.path().join("no-report.json");
    std::fs::write(
        &no_report,
        format!(r#"{{"ingest_tokens":["{TOKEN}"],"vicidial":{{"api_user":"v","api_pass":"x","reports_user":"norep","reports_pass":"NoRep1"}}}}"#),
    )
    .unwrap();
    let t = text(&run(&no_report, &[]));
    assert!(t.contains("Allowed Reports"), "{t}");
}

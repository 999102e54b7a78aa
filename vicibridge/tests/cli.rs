//! `vicibridge check-config` and `vicibridge urls`, as an operator runs them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::*;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).env_remove("VICIBRIDGE_CONFIG").env_remove("VICIBRIDGE_SECRETS").output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn check_config_accepts_the_example() {
    let config = example_config();
    let out = run(&["check-config", "--config", config.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("ok: ") && stdout.contains("crm dry-run"), "{stdout}");
}

#[test]
fn check_config_names_the_key_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[vicidial]\nbase_url = \"dialer.example.com\"\n[crm]\nkind = \"dry-run\"\n", "vicidial.base_url"),
        (
            "[vicidial]\nbase_url = \"https://d.example.com\"\n[crm]\nkind = \"hubspots\"\n",
            "unknown variant `hubspots`",
        ),
        (
            "[vicidial]\nbase_url = \"https://d.example.com\"\n[crm]\nkind = \"dry-run\"\n[dispositions.SALE]\nstage = \"x\"\n",
            "unknown field `stage`",
        ),
    ];
    for (toml, expected) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, toml).unwrap();
        let out = run(&["check-config", "--config", path.to_str().unwrap()]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{stderr:?} should name {expected:?}");
        assert!(stderr.contains("bad.toml"), "{stderr}");
    }
    let out = run(&["check-config", "--config", "/nonexistent/vicibridge.toml"]);
    assert!(text(&out).1.contains("cannot read /nonexistent/vicibridge.toml"));
}

#[test]
fn urls_prints_four_ready_to_paste_lines() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = write_secrets(dir.path());
    let config = example_config();
    let base = "https://abc123.execute-api.us-east-1.amazonaws.com";
    let out = run(&[
        "urls",
        "--base-url",
        base,
        "--config",
        config.to_str().unwrap(),
        "--secrets",
        secrets.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines[0].starts_with(&format!(
            "start_call_url: {base}/vicidial/call-start?token={TOKEN}&lead_id=--A--lead_id--B--"
        ))
    );
    assert!(lines[1].starts_with(&format!("dispo_call_url: {base}/vicidial/dispo?token={TOKEN}&")));
    assert!(lines[1].contains("&dispo=--A--dispo--B--") && lines[1].contains("&talk_time=--A--talk_time--B--"));
    assert!(lines[2].starts_with(&format!("api_new_lead_url: {base}/vicidial/new-lead?token={TOKEN}&")));
    // The screen pop has its own token (agents see it): never the ingest token.
    assert!(lines[3].starts_with(&format!("screen_pop_url: {base}/vicidial/screen-pop?token=")), "{stdout}");
    assert!(!lines[3].contains(TOKEN), "{stdout}");
    assert!(!stdout.contains("pass="), "never ask VICIdial for the agent's password");

    let out = run(&["urls", "--base-url", base, "--config", config.to_str().unwrap(), "--redact"]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert!(!stdout.contains(TOKEN) && stdout.contains("token=INGEST_TOKEN&"), "{stdout}");
}

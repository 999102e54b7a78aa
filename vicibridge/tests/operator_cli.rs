//! What a newcomer runs into first: a typo in the secrets file, a config with several
//! mistakes, output piped into `head`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::*;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).env_remove("VICIBRIDGE_CONFIG").env_remove("VICIBRIDGE_SECRETS").output().unwrap()
}

#[test]
fn a_typo_in_the_secrets_file_names_the_keys_and_never_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let config = example_config();
    // A missing comma after a value, on a line that holds two secrets.
    let secrets = dir.path().join("secrets.json");
    std::fs::write(
        &secrets,
        format!(
            "{{\n  \"ingest_tokens\": [\"{TOKEN}\"],\n  \"vicidial\": {{\"api_user\": \"vicibridge\" \"api_pass\": \"{API_PASS}\"}}\n}}\n"
        ),
    )
    .unwrap();
    let out = run(&[
        "urls",
        "--base-url",
        "https://bridge.example.com",
        "--config",
        config.to_str().unwrap(),
        "--secrets",
        secrets.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("secrets.json") && stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains(r#""vicidial": {"api_user": "…" "api_pass": "…"}"#), "{stderr}");
    assert!(stderr.contains("expected `,` or `}`"), "{stderr}");
    for value in [TOKEN, API_PASS, "\"vicibridge\""] {
        assert!(!stderr.contains(value), "{value} leaked: {stderr}");
    }

    // A misspelt key: its name and the valid ones, not the value.
    std::fs::write(
        &secrets,
        format!("{{\"ingest_tokens\": [\"{TOKEN}\"], \"hubspot\": {{\"acess_token\": \"{HUBSPOT_TOKEN}\"}}}}"),
    )
    .unwrap();
    let out = run(&[
        "urls",
        "--base-url",
        "https://b.example.com",
        "--config",
        config.to_str().unwrap(),
        "--secrets",
        secrets.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown field `acess_token`, expected one of `access_token`"), "{stderr}");
    assert!(stderr.contains("(in hubspot.acess_token)"), "{stderr}");
    assert!(!stderr.contains(HUBSPOT_TOKEN) && !stderr.contains(TOKEN), "{stderr}");
}

#[test]
fn check_config_lists_every_error_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vicibridge.toml");
    // An unknown key, a wrong type, an unknown value and a bad URL, in different sections.
    std::fs::write(
        &path,
        "[vicidial]\nbase_url = \"dialer.example.com\"\nserver_timezone = \"UTC\"\n\n[crm]\nkind = \"dry-run\"\n\n[queue]\nvisibility_timeout_secs = \"sixty\"\n\n[dispositions.SALE]\nstage = \"closedwon\"\n",
    )
    .unwrap();
    let out = run(&["check-config", "--config", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for expected in [
        "unknown field `server_timezone`",
        "line 3",
        "visibility_timeout_secs",
        "line 9",
        "unknown field `stage`",
        "line 12",
        "vicidial.base_url",
    ] {
        assert!(stderr.contains(expected), "{expected:?} missing from:\n{stderr}");
    }

    // Two syntax errors: both, with their lines.
    std::fs::write(&path, "[vicidial]\nbase_url = \"https://d.example.com\n[crm]\nkind = dry-run\n").unwrap();
    let out = run(&["check-config", "--config", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("line 2") && stderr.contains("line 4"), "{stderr}");
}

/// Runs the command with its stdout a pipe whose reader is already gone, as after
/// `vicibridge … | head -1` has read its line.
fn run_into_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = Command::new(bin())
        .args(args)
        .env_remove("VICIBRIDGE_CONFIG")
        .env_remove("VICIBRIDGE_SECRETS")
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn printing_into_a_closed_pipe_stops_quietly() {
    let config = example_config();
    let config = config.to_str().unwrap();
    for args in [
        &["urls", "--base-url", "https://b.example.com", "--config", config, "--redact"][..],
        &["check-config", "--config", config][..],
    ] {
        let out = run_into_closed_pipe(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
}

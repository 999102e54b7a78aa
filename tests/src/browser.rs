//! Headless Chromium for the agent-facing pages: runs a check script from `tests/browser/`
//! (Node + playwright-core driving Debian's `/usr/bin/chromium`, or `VICIBRIDGE_CHROMIUM`).
//! `scripts/test` installs both; a missing browser fails the test, it never skips it.

use std::path::{Path, PathBuf};

/// `tests/browser/` in this checkout.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Where a check should save its screenshots: `target/browser-screenshots/` (kept after the run,
/// so a failing page can be looked at).
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// Runs `node tests/browser/<script> '<input>'` and returns the JSON object it printed last.
/// Panics (failing the test) with the script's stderr when it fails or prints no JSON.
pub async fn run(script: &str, input: &serde_json::Value) -> serde_json::Value {
    let dir = dir();
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "tests/browser/node_modules is missing: run `npm ci` in tests/browser (scripts/test does)"
    );
    let output = tokio::process::Command::new("node")
        .arg(dir.join(script))
        .arg(input.to_string())
        .current_dir(&dir)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot start node for {script}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script} failed ({}):\n{stderr}\n{stdout}", output.status);
    let last = stdout.lines().rev().find(|l| l.trim_start().starts_with('{'));
    let last = last.unwrap_or_else(|| panic!("{script} printed no JSON result:\n{stdout}\n{stderr}"));
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{script} printed bad JSON ({e}): {last}"))
}

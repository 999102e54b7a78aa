//! Runs the real `vicibridge` binary as a child process.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "tok-e2e-current-3f9a1c";
pub const OLD_TOKEN: &str = "tok-e2e-previous-77b2";
pub const API_PASS: &str = "ViciApiPassw0rd";
pub const HUBSPOT_TOKEN: &str = "pat-na1-11111111-2222-3333";
pub const AGENT_PASS: &str = "AgentSecretPw9";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vicibridge")
}

pub fn example_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/vicibridge.example.toml")
}

pub fn example_secrets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/secrets.example.json")
}

/// A config for tests: the example with a short visibility timeout, so messages in flight
/// when a process dies come back quickly.
pub fn write_config(dir: &Path) -> PathBuf {
    let example = std::fs::read_to_string(example_config()).unwrap();
    let text = example
        .replace("visibility_timeout_secs = 60", "visibility_timeout_secs = 2")
        .replace("batching_window_ms = 200", "batching_window_ms = 20");
    assert_ne!(text, example, "the example config changed shape; update this test helper");
    let path = dir.join("vicibridge.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn write_secrets(dir: &Path) -> PathBuf {
    let path = dir.join("secrets.json");
    let json = format!(
        r#"{{"ingest_tokens":["{TOKEN}","{OLD_TOKEN}"],"vicidial":{{"api_user":"vicibridge","api_pass":"{API_PASS}"}},"hubspot":{{"access_token":"{HUBSPOT_TOKEN}"}}}}"#
    );
    std::fs::write(&path, json).unwrap();
    path
}

pub struct Serve {
    pub child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Serve {
    /// Starts `vicibridge serve` on 127.0.0.1 and waits until it answers.
    pub fn start(config: &Path, secrets: &Path, data_dir: &Path, log_name: &str) -> Serve {
        Serve::start_on("127.0.0.1", config, secrets, data_dir, log_name)
    }

    /// [`Serve::start`] listening on `host` (`0.0.0.0`: every interface); `base` stays on
    /// 127.0.0.1.
    pub fn start_on(host: &str, config: &Path, secrets: &Path, data_dir: &Path, log_name: &str) -> Serve {
        let port = free_port();
        let log = data_dir.parent().unwrap().join(log_name);
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = Command::new(bin())
            .args(["serve", "--log-format", "json", "--listen", &format!("{host}:{port}")])
            .arg("--config")
            .arg(config)
            .arg("--secrets")
            .arg(secrets)
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "debug")
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let serve = Serve { child, base: format!("http://127.0.0.1:{port}"), data_dir: data_dir.to_owned(), log };
        serve.wait_ready();
        serve
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(self.base.trim_start_matches("http://")).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("vicibridge serve did not start; log:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(&mut self) {
        Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "serve exited with {status}");
    }

    pub fn dry_run_records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.data_dir.join("dry-run.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until `pred` holds for the dry-run records (the worker is asynchronous).
    pub fn wait_records(&self, what: &str, pred: impl Fn(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let records = self.dry_run_records();
            if pred(&records) {
                return records;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; {} records; log:\n{}", records.len(), self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET /status.json` (from this machine: no token needed).
    pub async fn status_json(&self) -> serde_json::Value {
        let r = reqwest::get(format!("{}/status.json", self.base)).await.unwrap();
        let (code, body) = (r.status().as_u16(), r.text().await.unwrap());
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Polls `/status.json` until `done` holds.
    pub async fn wait_status(&self, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = self.status_json().await;
            if done(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}: {status:#}\nlog:\n{}", self.log_text());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Dispo Call URL query as VICIdial builds it (§10.4 of the reference).
pub fn dispo_query(token: &str, lead_id: u64, uniqueid: &str, status: &str) -> String {
    format!(
        "token={token}&lead_id={lead_id}&vendor_lead_code=&phone_code=1&phone_number=7275558888&first_name=Bob&last_name=O%27Brien&user=1000&campaign=TESTCAMP&uniqueid={uniqueid}&call_id=M1121220900000000009&epoch=1795298982&dispo={status}&dispo_name=Sale%2BMade&talk_time=63&recording_filename=20261121-220900_7275558888_1000-all&recording_id=17&callback_datetime=&call_notes=+&pass={AGENT_PASS}"
    )
}

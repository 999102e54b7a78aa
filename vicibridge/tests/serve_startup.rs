//! `vicibridge serve` as an operator starts it: a host name for `--listen`, and a second
//! serve on a data directory already in use.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn spawn_serve(dir: &std::path::Path, data_dir: &std::path::Path, listen: &str, log: &str) -> Child {
    let log = std::fs::File::create(dir.join(log)).unwrap();
    Command::new(bin())
        .args(["serve", "--listen", listen])
        .arg("--config")
        .arg(write_config(dir))
        .arg("--secrets")
        .arg(write_secrets(dir))
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET /healthz` over `addr` (any address the name resolves to), once serve answers.
fn healthz(addr: &str, serve: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut s) = TcpStream::connect(addr) {
            s.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
            let mut answer = String::new();
            s.read_to_string(&mut answer).unwrap();
            return answer;
        }
        assert!(serve.try_wait().unwrap().is_none(), "serve exited");
        assert!(Instant::now() < deadline, "serve did not answer on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn listen_accepts_a_host_name_and_a_second_serve_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let port = free_port();
    let mut first = Killed(spawn_serve(dir.path(), &data_dir, &format!("localhost:{port}"), "first.log"));
    let answer = healthz(&format!("localhost:{port}"), &mut first.0);
    assert!(answer.starts_with("HTTP/1.0 200") && answer.ends_with("ok"), "{answer}");

    // Another port, same data directory: refused at start, naming the directory and the
    // process that holds it.
    let mut second = Killed(spawn_serve(dir.path(), &data_dir, &format!("127.0.0.1:{}", free_port()), "second.log"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "a second serve kept running on a data directory in use");
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(dir.path().join("second.log")).unwrap();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("another vicibridge serve"), "{log}");
    assert!(log.contains(&format!("(process {})", first.0.id())), "{log}");
    assert!(log.contains(&data_dir.display().to_string()), "{log}");
    // The first one goes on serving.
    assert!(healthz(&format!("localhost:{port}"), &mut first.0).ends_with("ok"));

    // Once the first has stopped, the directory is free again.
    Command::new("kill").arg("-TERM").arg(first.0.id().to_string()).status().unwrap();
    assert!(first.0.wait().unwrap().success());
    let port = free_port();
    let mut third = Killed(spawn_serve(dir.path(), &data_dir, &format!("127.0.0.1:{port}"), "third.log"));
    assert!(healthz(&format!("127.0.0.1:{port}"), &mut third.0).ends_with("ok"));
}

#[test]
fn listen_says_what_it_accepts() {
    let out: Output = Command::new(bin()).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("localhost:8080") && help.contains("[::1]:8080"), "{help}");

    let out = Command::new(bin())
        .args(["serve", "--config", "x.toml", "--listen", "8080"])
        .env_remove("VICIBRIDGE_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid value '8080' for '--listen") && stderr.contains("HOST:PORT"), "{stderr}");
}

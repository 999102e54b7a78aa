//! Every HTTP client the shipped code builds comes from `vicibridge_http::client_builder()`:
//! one TLS configuration per process, whose roots a Lambda takes compiled in and `serve` reads
//! once. A client built with reqwest's own builder brings its own TLS configuration and reads
//! the system's certificates again at every cold start (click-to-call's agent API client did:
//! 5 ms of its init, BENCHMARKS.md "Lambda cold start").

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};

const OWN_BUILDERS: [&str; 3] = ["reqwest::Client::builder(", "reqwest::Client::new(", "reqwest::ClientBuilder::new("];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // Integration tests may build plain clients: they are not shipped.
            if path.file_name().is_some_and(|n| n != "tests" && n != "target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn shipped_code_builds_http_clients_only_on_the_shared_stack() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["shared", "functions", "vicibridge/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    let shared_http = root.join("shared/http");
    assert!(files.len() > 50, "the walk found only {} files", files.len());
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| !f.starts_with(&shared_http))
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.lines()
                .enumerate()
                .filter(|(_, line)| OWN_BUILDERS.iter().any(|b| line.contains(b)))
                .map(|(i, line)| format!("{}:{}: {}", f.strip_prefix(&root).unwrap_or(f).display(), i + 1, line.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(offenders.is_empty(), "use vicibridge_http::client_builder() instead:\n{}", offenders.join("\n"));
}

//! The HTTP edge of the real `vicibridge serve`, driven by raw TCP clients: header limits,
//! ambiguous framing, slow clients, shutdown while a client holds a request, and the signed URL
//! of HubSpot webhooks over plain HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

fn addr(serve: &Serve) -> String {
    serve.base.trim_start_matches("http://").to_owned()
}

/// Everything the server sends until it closes the connection (or `patience` runs out:
/// `closed` is then false).
struct Received {
    text: String,
    closed: bool,
}

fn read_until_closed(stream: &mut TcpStream, patience: Duration) -> Received {
    stream.set_read_timeout(Some(patience)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Received { text: String::from_utf8_lossy(&got).into_owned(), closed: true },
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Received { text: String::from_utf8_lossy(&got).into_owned(), closed: false };
            }
            // A reset is a close too.
            Err(_) => return Received { text: String::from_utf8_lossy(&got).into_owned(), closed: true },
        }
    }
}

fn status_of(response: &str) -> Option<u16> {
    response.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

fn queued_and_dead(data: &Path) -> (i64, i64) {
    let db = rusqlite::Connection::open(data.join("crm-events.db")).unwrap();
    let left: i64 = db.query_row("SELECT count(*) FROM messages", [], |r| r.get(0)).unwrap();
    let dead: i64 = db.query_row("SELECT count(*) FROM dead_letters", [], |r| r.get(0)).unwrap();
    (left, dead)
}

#[test]
fn oversized_headers_431_ambiguous_framing_400_unconfigured_leads_503_and_none_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut serve = Serve::start(&write_config(dir.path()), &write_secrets(dir.path()), &data, "serve.log");
    let target = format!("/vicidial/dispo?{}", dispo_query(TOKEN, 31, "1795298900.31", "SALE"));

    // 20 KB of headers in 40 lines, each of them ordinary.
    let padding: String = (0..40).map(|i| format!("X-Pad-{i}: {}\r\n", "a".repeat(500))).collect();
    let mut c = TcpStream::connect(addr(&serve)).unwrap();
    // One write: serve answers 431 and closes as soon as it has read 16 KB, and a request
    // written piecemeal would meet the closed socket (EPIPE) before reading the answer.
    c.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n{padding}\r\n").as_bytes()).unwrap();
    let r = read_until_closed(&mut c, Duration::from_secs(30));
    assert_eq!(status_of(&r.text), Some(431), "{}", r.text);

    let mut c = TcpStream::connect(addr(&serve)).unwrap();
    let other = target.replace("1795298900.31", "1795298900.32").replace("lead_id=31", "lead_id=32");
    write!(c, "GET {other} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n")
        .unwrap();
    let r = read_until_closed(&mut c, Duration::from_secs(30));
    assert_eq!(status_of(&r.text), Some(400), "{}", r.text);
    assert!(r.text.contains("Transfer-Encoding and Content-Length"), "{}", r.text);
    assert!(r.closed, "the connection is closed after an ambiguous request");

    // The example configuration has no [lead_injection]: a lead webhook is refused up front
    // (the CRM retries a 503) instead of being acknowledged and dead-lettered.
    let mut c = TcpStream::connect(addr(&serve)).unwrap();
    let body = r#"{"vid":501,"properties":{"phone":{"value":"+1 415 555 2671"}}}"#;
    write!(
        c,
        "POST /hubspot/leads HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let r = read_until_closed(&mut c, Duration::from_secs(30));
    assert_eq!(status_of(&r.text), Some(503), "{}", r.text);
    assert!(r.text.contains("lead injection is not configured"), "{}", r.text);

    // Just under the limit is fine: a good request, then only its record exists.
    let mut c = TcpStream::connect(addr(&serve)).unwrap();
    let good = target.replace("1795298900.31", "1795298900.33").replace("lead_id=31", "lead_id=33");
    let some: String = (0..20).map(|i| format!("X-Pad-{i}: {}\r\n", "a".repeat(500))).collect();
    write!(c, "GET {good} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{some}\r\n").unwrap();
    let r = read_until_closed(&mut c, Duration::from_secs(30));
    assert_eq!(status_of(&r.text), Some(200), "{}", r.text);
    let records = serve.wait_records("the good event", |r| !r.is_empty());
    serve.stop();
    let keys: Vec<&str> = records.iter().filter_map(|r| r["key"].as_str()).collect();
    assert_eq!(keys, ["vicidial:dispo:33:uniqueid:1795298900.33"]);
    assert_eq!(queued_and_dead(&data), (0, 0), "the refused requests were never queued");
}

#[test]
fn slow_and_idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut serve = Serve::start(&write_config(dir.path()), &write_secrets(dir.path()), &data, "serve.log");

    // Slowloris: a request line and one header, then nothing more.
    let mut slow = TcpStream::connect(addr(&serve)).unwrap();
    write!(slow, "GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    // Idle keep-alive: one whole request, then silence.
    let mut idle = TcpStream::connect(addr(&serve)).unwrap();
    write!(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();

    let r = read_until_closed(&mut slow, Duration::from_secs(60));
    assert!(r.closed, "a connection that never finishes its headers is closed: got {:?}", r.text);
    assert_eq!(status_of(&r.text), None, "it never got an answer");
    let r = read_until_closed(&mut idle, Duration::from_secs(60));
    assert!(r.closed, "an idle keep-alive connection is closed");
    assert_eq!(status_of(&r.text), Some(200), "{}", r.text);
    serve.stop();
}

#[test]
fn sigterm_ends_serve_while_a_client_still_holds_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut serve = Serve::start(&write_config(dir.path()), &write_secrets(dir.path()), &data, "serve.log");

    // Headers done, body trickling: a request in flight that would never finish by itself.
    let mut holder = TcpStream::connect(addr(&serve)).unwrap();
    write!(
        holder,
        "POST /hubspot/leads HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{"
    )
    .unwrap();
    std::process::Command::new("kill").arg("-TERM").arg(serve.child.id().to_string()).status().unwrap();
    // The client keeps the request open for up to a minute; serve must be gone before that.
    let give_up = Instant::now() + Duration::from_secs(60);
    let exited = loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > give_up {
            break None;
        }
        let _ = holder.write_all(b" ");
        std::thread::sleep(Duration::from_millis(200));
    };
    let status = exited.expect("serve was still running after a minute: shutdown waited for the client");
    assert!(status.success(), "serve exited with {status}");
}

#[tokio::test]
async fn hubspot_signatures_over_plain_http_use_the_scheme_serve_was_called_with() {
    const CLIENT_SECRET: &str = "hs-client-secret-e2e-41";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[lead_injection]\n[lead_injection.hubspot]\nlist_id = \"999\"\n");
    std::fs::write(&config, text).unwrap();
    let secrets = dir.path().join("secrets-hs.json");
    let json = serde_json::json!({
        "ingest_tokens": [TOKEN],
        "vicidial": {"api_user": "vicibridge", "api_pass": API_PASS},
        "hubspot": {"client_secret": CLIENT_SECRET},
    });
    std::fs::write(&secrets, json.to_string()).unwrap();
    let mut serve = Serve::start(&config, &secrets, &data, "serve.log");

    let body = r#"{"vid":501,"properties":{"phone":{"value":"+1 415 555 2671"}}}"#;
    let url = format!("{}/hubspot/leads", serve.base);
    let post = |signed_url: String, forwarded: Option<&'static str>| {
        let url = url.clone();
        async move {
            let ts = chrono_now_ms().to_string();
            let sig =
                vicibridge_hubspot::webhook::signature_v3(CLIENT_SECRET, "POST", &signed_url, body.as_bytes(), &ts);
            let mut req = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .header("x-hubspot-signature-v3", sig)
                .header("x-hubspot-request-timestamp", ts)
                .body(body);
            if let Some(proto) = forwarded {
                req = req.header("x-forwarded-proto", proto);
            }
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // HubSpot called http://…: it signed that URL.
    let (status, text) = post(url.clone(), None).await;
    assert_eq!((status, text.as_str()), (200, "OK queued 1 lead"));
    // Behind a TLS proxy, the proxy's X-Forwarded-Proto names the scheme HubSpot used.
    let https = url.replacen("http://", "https://", 1);
    let (status, text) = post(https.clone(), Some("https")).await;
    assert_eq!((status, text.as_str()), (200, "OK queued 1 lead"));
    let (status, _) = post(https, None).await;
    assert_eq!(status, 401, "a signature over a URL serve was not called with is refused");
    serve.stop();
}

fn chrono_now_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
}

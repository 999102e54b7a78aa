//! The `click-to-call` Lambda's adapter (`vicibridge_aws::click_to_call::handle`) driven by API
//! Gateway HTTP API (v2) event JSON, as API Gateway sends it: the dial with a Bearer header and a
//! JSON body (plain and base64-encoded), the call state, a page with its security headers, and a
//! sign-in start whose cookie must survive the translation. VICIdial is the simulator.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use vicibridge_core::config::{Config, CrmUserKind};
use vicibridge_core::secrets::Secret;
use vicibridge_local::secrets_file::FileSecrets;
use vicibridge_runtime::click_to_call::session::AgentSession;
use vicibridge_runtime::click_to_call::{ClickToCall, build_click_to_call};
use vicibridge_tests::runtime_api::apigw_event;
use vicibridge_tests::vicidial_sim::{SimAgentState, SimUser, VicidialSim};

const KEY: &str = "lambda-session-key-0123456789abcdef0123";

async fn setup() -> (VicidialSim, ClickToCall) {
    let vici = VicidialSim::start().await;
    vici.add_user(SimUser::api("6666", "1234"));
    vici.add_agent("1000", "Ada Agent");
    vici.log_in_agent("1000", "TESTCAMP", "8600051");
    let config = Config::from_toml(&format!(
        r#"
[vicidial]
base_url = "{}"
[crm]
kind = "dry-run"
[agents.1000]
hubspot_user_id = "424242"
[click_to_call]
public_base_url = "https://abc123defg.execute-api.us-east-1.amazonaws.com"
[click_to_call.hubspot]
client_id = "lambda-client"
"#,
        vici.base_url()
    ))
    .unwrap();
    let secrets = serde_json::json!({
        "agent_session_keys": [KEY],
        "vicidial": { "api_user": "6666", "api_pass": "1234" },
        "hubspot": { "client_secret": "lambda-client-secret" }
    });
    let secrets = Arc::new(FileSecrets::from_json(&secrets.to_string()).unwrap());
    let handler = build_click_to_call(&config, secrets).unwrap().unwrap();
    (vici, handler)
}

fn session() -> String {
    AgentSession::new(Some("1000"), None, CrmUserKind::Hubspot, "424242", Duration::from_secs(3600))
        .sign(&[Secret::new(KEY)])
        .unwrap()
}

/// One API Gateway v2 event (the same JSON the function tests send); `body` as API Gateway
/// passes it, base64 when `encoded`.
fn event(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    encoded: bool,
) -> lambda_http::Request {
    let mut json = apigw_event(method, path, "", headers, "");
    json["body"] = match body {
        Some(b) if encoded => base64::engine::general_purpose::STANDARD.encode(b).into(),
        Some(b) => b.into(),
        None => serde_json::Value::Null,
    };
    json["isBase64Encoded"] = encoded.into();
    lambda_http::request::from_str(&json.to_string()).unwrap()
}

async fn call(handler: &ClickToCall, req: lambda_http::Request) -> (u16, lambda_http::http::HeaderMap, String) {
    let response = vicibridge_aws::click_to_call::handle(handler, req).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, String::from_utf8(response.body().to_vec()).unwrap())
}

#[tokio::test]
async fn a_dial_through_api_gateway_reaches_vicidial_with_plain_and_base64_bodies() {
    let (vici, handler) = setup().await;
    let bearer = format!("Bearer {}", session());
    for (n, encoded) in [(0, false), (1, true)] {
        let body = format!(r#"{{"phone": "(727) 555-121{n}", "record_id": "51", "record_type": "contact"}}"#);
        let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
        let (status, headers, body) =
            call(&handler, event("POST", "/agent/dial", &headers, Some(&body), encoded)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers["content-type"], "application/json");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["code"], "queued", "{answer}");
    }
    let dials: Vec<(String, String, String)> =
        vici.external_dials().into_iter().map(|d| (d.agent_user, d.value, d.vendor_id)).collect();
    let dial = |phone: &str| ("1000".to_owned(), phone.to_owned(), "51".to_owned());
    assert_eq!(dials, vec![dial("7275551210"), dial("7275551211")]);

    // Without the header API Gateway passes nothing: refused before VICIdial.
    let before = vici.requests().len();
    let headers = [("content-type", "application/json")];
    let (status, _, body) =
        call(&handler, event("POST", "/agent/dial", &headers, Some(r#"{"phone": "7275551212"}"#), false)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(vici.requests().len(), before);
}

#[tokio::test]
async fn the_call_state_a_page_and_a_sign_in_cookie_survive_the_translation() {
    let (vici, handler) = setup().await;
    vici.set_agent_state("1000", SimAgentState::InCall { lead_id: 31, customer_gone: false });
    let bearer = format!("Bearer {}", session());
    let (status, _, body) =
        call(&handler, event("GET", "/agent/state", &[("authorization", &bearer)], None, false)).await;
    assert_eq!((status, body.as_str()), (200, r#"{"ok":true,"state":"on_call"}"#));

    let (status, headers, body) = call(&handler, event("GET", "/dialer/hubspot", &[], None, false)).await;
    assert_eq!(status, 200);
    assert!(body.contains("data-surface=\"hubspot\""), "{body}");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors https://app.hubspot.com"), "{csp}");

    let (status, headers, _) = call(&handler, event("GET", "/agent/oauth/hubspot/start", &[], None, false)).await;
    assert_eq!(status, 302);
    let location = headers["location"].to_str().unwrap();
    assert!(location.starts_with("https://app.hubspot.com/oauth/authorize?"), "{location}");
    assert!(
        location.contains("redirect_uri=https%3A%2F%2Fabc123defg.execute-api.us-east-1.amazonaws.com%2Fagent%2Foauth%2Fhubspot%2Fcallback"),
        "{location}"
    );
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("vicibridge_sign_in=") && cookie.contains("HttpOnly") && cookie.contains("Secure"),
        "{cookie}"
    );
}

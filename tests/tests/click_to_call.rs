//! Click-to-call through `vicibridge serve` (in-process, real port) with the VICIdial simulator
//! (agent_status + external_dial) and the CRMs' OAuth simulator: sign-in, mapped and unmapped
//! users, every agent state, forged and expired sessions, rate limit, the pages' headers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vicibridge_core::config::{Config, CrmUserKind};
use vicibridge_core::secrets::Secret;
use vicibridge_local::secrets_file::FileSecrets;
use vicibridge_local::serve::{ServeOptions, serve};
use vicibridge_runtime::click_to_call::session::AgentSession;
use vicibridge_tests::hubspot_sim::HubspotSim;
use vicibridge_tests::oauth_sim::{self, OAuthSim};
use vicibridge_tests::salesforce_sim::{self, SalesforceSim};
use vicibridge_tests::vicidial_sim::{SimAgentState, SimUser, VicidialSim};

const KEY: &str = "session-key-0123456789abcdef0123456789";
const SF_USER: &str = "005xx000001SvXYAA0";
const HS_TOKEN: &str = "pat-na1-c2c-4d3c2b1a";
const INGEST: &str = "ingest-token-0001";

struct Setup {
    pub base: String,
    pub vici: VicidialSim,
    pub crm: OAuthSim,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// serve with `[click_to_call]` for both CRMs; agent 1000 (HubSpot user 424242, Salesforce
/// user `SF_USER`) logged in and paused on TESTCAMP; agent 1001 known only by custom_three.
async fn start(extra: &str) -> Setup {
    let hubspot = "sdk_url = \"{base}/sdk/main.js\"\nsdk_integrity = \"sha384-ztFiRzNEVlkWI98os9f529Yvn2lPKLrCYTYcawYhuUuAUXUYcLKFEIL5/0h9/SXD\"";
    start_with(extra, hubspot, "[crm]\nkind = \"dry-run\"").await
}

/// `hubspot`: lines for `[click_to_call.hubspot]` (`{base}` stands for serve's URL); `crm`: the
/// `[crm]` section and what it needs.
async fn start_with(extra: &str, hubspot: &str, crm_sections: &str) -> Setup {
    let vici = VicidialSim::start().await;
    vici.add_user(SimUser::api("6666", "1234"));
    vici.add_agent("1000", "Ada Agent");
    vici.log_in_agent("1000", "TESTCAMP", "8600051");
    vici.add_agent("1001", "Alt Agent");
    vici.set_custom_three("1001", "777");
    vici.log_in_agent("1001", "TESTCAMP", "8600052");
    let crm = OAuthSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let base = format!("http://{addr}");
    let config = Config::from_toml(&format!(
        r#"
[vicidial]
base_url = "{vici}"
{crm_sections}
[agents.1000]
hubspot_user_id = "424242"
hubspot_owner_id = "77"
salesforce_user_id = "{SF_USER}"
[agents.1002]
hubspot_user_id = "500500"
[click_to_call]
public_base_url = "{base}"
{extra}
[click_to_call.hubspot]
app_id = "77"
client_id = "{client}"
{hubspot}
authorize_url = "{crm}/oauth/authorize"
api_url = "{crm}"
[click_to_call.salesforce]
org_url = "{crm}"
client_id = "{client}"
frame_ancestors = ["{crm}"]
"#,
        vici = vici.base_url(),
        crm = crm.base_url(),
        client = oauth_sim::CLIENT_ID,
        hubspot = hubspot.replace("{base}", &base),
    ))
    .unwrap();
    let secrets = serde_json::json!({
        "ingest_tokens": [INGEST],
        "agent_session_keys": [KEY],
        "vicidial": { "api_user": "6666", "api_pass": "1234" },
        "hubspot": { "client_secret": oauth_sim::CLIENT_SECRET, "access_token": HS_TOKEN },
        "salesforce": {
            "organization_id": oauth_sim::ORG_ID,
            "client_id": salesforce_sim::CLIENT_ID,
            "client_secret": salesforce_sim::CLIENT_SECRET,
            "refresh_token": salesforce_sim::REFRESH_TOKEN
        }
    });
    let options = ServeOptions {
        config,
        secrets: Arc::new(FileSecrets::from_json(&secrets.to_string()).unwrap()),
        listen: addr,
        data_dir: dir.path().join("data"),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        serve(options, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Setup { base, vici, crm, stop: Some(tx), task, _dir: dir }
}

fn session_for(user: &str, crm: CrmUserKind, crm_user: &str, key: &str, lifetime: Duration) -> String {
    AgentSession::new(Some(user), None, crm, crm_user, lifetime).sign(&[Secret::new(key)]).unwrap()
}

fn session(user: &str) -> String {
    session_for(user, CrmUserKind::Hubspot, "424242", KEY, Duration::from_secs(3600))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn dial(base: &str, bearer: Option<&str>, body: serde_json::Value) -> (u16, serde_json::Value) {
    let mut req = client().post(format!("{base}/agent/dial")).json(&body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn number() -> serde_json::Value {
    serde_json::json!({"phone": "(727) 555-1212", "record_id": "51", "record_type": "contact"})
}

#[tokio::test]
async fn a_click_dials_from_the_agents_session_with_the_record_as_vendor_id() {
    let s = start("").await;
    let (status, answer) = dial(&s.base, Some(&session("1000")), number()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["ok"], true);
    assert_eq!(answer["code"], "queued");
    assert!(answer["dial_id"].as_str().unwrap().starts_with("vb-"));
    let dials = s.vici.external_dials();
    assert_eq!(dials.len(), 1, "{dials:?}");
    let d = &dials[0];
    assert_eq!((d.agent_user.as_str(), d.value.as_str(), d.phone_code.as_str()), ("1000", "7275551212", "1"));
    assert_eq!((d.search.as_str(), d.preview.as_str(), d.focus.as_str()), ("YES", "NO", "YES"));
    assert_eq!(d.vendor_id, "51");
    // agent_status first, then external_dial; the password never in a URL.
    let vici_calls: Vec<(String, String)> =
        s.vici.requests().iter().map(|r| (r.path.clone(), r.param("function").to_owned())).collect();
    assert_eq!(
        vici_calls,
        vec![
            ("/vicidial/non_agent_api.php".to_owned(), "agent_status".to_owned()),
            ("/agc/api.php".to_owned(), "external_dial".to_owned())
        ]
    );
    assert!(s.vici.requests().iter().all(|r| !r.raw_query.contains("pass=")));
    s.stop().await;
}

#[tokio::test]
async fn every_agent_state_gets_a_sentence_and_only_a_free_agent_dials() {
    let s = start("dials_per_minute = 100").await;
    let bearer = session("1000");
    type Case = (&'static str, Box<dyn Fn(&VicidialSim)>, u16, &'static str, &'static str);
    let cases: Vec<Case> = vec![
        (
            "logged out",
            Box::new(|v| v.log_out_agent("1000")),
            409,
            "not_logged_in",
            "You are not logged in to VICIdial",
        ),
        (
            "in call",
            Box::new(|v| {
                v.log_in_agent("1000", "TESTCAMP", "8600051");
                v.set_agent_state("1000", SimAgentState::InCall { lead_id: 7, customer_gone: false });
            }),
            409,
            "not_paused",
            "Finish or pause your current call first",
        ),
        (
            "call arriving",
            Box::new(|v| v.set_agent_state("1000", SimAgentState::Queue { lead_id: 7 })),
            409,
            "not_paused",
            "Finish or pause",
        ),
        (
            "dispositioning",
            Box::new(|v| v.set_agent_state("1000", SimAgentState::Dispo { lead_id: 7 })),
            409,
            "not_paused",
            "Finish or pause",
        ),
        // READY passes the precheck; VICIdial (STANDARD mode) answers "not paused".
        (
            "ready",
            Box::new(|v| v.set_agent_state("1000", SimAgentState::Ready)),
            409,
            "not_paused",
            "paused with no lead",
        ),
        (
            "no manual dial",
            Box::new(|v| {
                v.set_agent_state("1000", SimAgentState::Paused);
                v.set_manual_dial("1000", false);
            }),
            403,
            "manual_dial_not_allowed",
            "Ask your admin to allow manual dialling",
        ),
    ];
    for (what, setup, status, code, words) in cases {
        setup(&s.vici);
        let (got, answer) = dial(&s.base, Some(&bearer), number()).await;
        assert_eq!((got, answer["code"].as_str().unwrap()), (status, code), "{what}: {answer}");
        assert_eq!(answer["ok"], false, "{what}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(words), "{what}: {message}");
        assert!(!message.contains("ERROR") && !message.contains("agent_user"), "{what}: raw VICIdial line: {message}");
    }
    assert!(s.vici.external_dials().is_empty(), "{:?}", s.vici.external_dials());
    // QUEUE mode: a READY agent's call is queued.
    s.vici.set_manual_dial("1000", true);
    s.vici.set_agent_state("1000", SimAgentState::Ready);
    s.vici.set_queue_manual_dial("TESTCAMP", true);
    let (got, answer) = dial(&s.base, Some(&bearer), number()).await;
    assert_eq!(got, 200, "{answer}");
    assert!(s.vici.external_dials()[0].queued);
    let (got, answer) = dial(&s.base, Some(&bearer), number()).await;
    assert_eq!((got, answer["code"].as_str().unwrap()), (409, "already_queued"), "{answer}");
    // A mapping to a VICIdial user that does not exist.
    let (got, answer) = dial(&s.base, Some(&session("1002")), number()).await;
    assert_eq!((got, answer["code"].as_str().unwrap()), (403, "unknown_agent"), "{answer}");
    s.stop().await;
}

#[tokio::test]
async fn forged_expired_or_missing_sessions_never_reach_vicidial() {
    let s = start("").await;
    let other_key = "another-key-0123456789abcdef0123456789";
    let expired = {
        let mut claims = AgentSession::new(Some("1000"), None, CrmUserKind::Hubspot, "424242", Duration::from_secs(60));
        claims.exp = claims.iat - 3600;
        claims.sign(&[Secret::new(KEY)]).unwrap()
    };
    let valid = session("1000");
    // Same signature, another agent in the payload.
    let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    let forged_payload = session_for("1001", CrmUserKind::Hubspot, "424242", other_key, Duration::from_secs(3600));
    parts[1] = forged_payload.split('.').nth(1).unwrap().to_owned();
    let tampered = parts.join(".");
    for (what, bearer, words) in [
        ("missing", None, "Sign in to dial"),
        (
            "another key",
            Some(session_for("1000", CrmUserKind::Hubspot, "424242", other_key, Duration::from_secs(3600))),
            "Sign in to dial",
        ),
        ("tampered", Some(tampered), "Sign in to dial"),
        ("expired", Some(expired), "expired"),
        ("garbage", Some("not-a-token".to_owned()), "Sign in to dial"),
    ] {
        let (status, answer) = dial(&s.base, bearer.as_deref(), number()).await;
        assert_eq!((status, answer["code"].as_str().unwrap()), (401, "sign_in"), "{what}: {answer}");
        assert!(answer["message"].as_str().unwrap().contains(words), "{what}: {answer}");
    }
    assert!(s.vici.requests().is_empty(), "VICIdial was called: {:?}", s.vici.requests());
    s.stop().await;
}

async fn call_state(base: &str, bearer: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = client().get(format!("{base}/agent/state"));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// `GET /agent/state` (what the HubSpot widget follows a dialled call with): the agent's VICIdial
/// state as one word, only for a valid session, and only about the session's own agent.
#[tokio::test]
async fn the_call_state_follows_the_agents_vicidial_state() {
    let s = start("").await;
    let bearer = session("1000");
    let steps: [(SimAgentState, &str); 5] = [
        (SimAgentState::Paused, "free"),
        (SimAgentState::Queue { lead_id: 31 }, "ringing"),
        (SimAgentState::InCall { lead_id: 31, customer_gone: false }, "on_call"),
        (SimAgentState::InCall { lead_id: 31, customer_gone: true }, "ended"),
        (SimAgentState::Dispo { lead_id: 31 }, "ended"),
    ];
    for (state, want) in steps {
        s.vici.set_agent_state("1000", state.clone());
        let (status, answer) = call_state(&s.base, Some(&bearer)).await;
        assert_eq!((status, answer["state"].as_str()), (200, Some(want)), "{state:?}: {answer}");
    }
    s.vici.log_out_agent("1000");
    let (_, answer) = call_state(&s.base, Some(&bearer)).await;
    assert_eq!(answer["state"], "logged_out");
    // Agent 1000's session asks about 1000 only; agent 1001 was in a call all along.
    s.vici.set_agent_state("1001", SimAgentState::InCall { lead_id: 40, customer_gone: false });
    let asked: Vec<String> = s
        .vici
        .requests()
        .iter()
        .filter(|r| r.param("function") == "agent_status")
        .map(|r| r.param("agent_user").to_owned())
        .collect();
    assert!(asked.iter().all(|u| u == "1000"), "{asked:?}");
    let before = s.vici.requests().len();
    for bearer in [
        None,
        Some("not-a-token".to_owned()),
        Some(session_for(
            "1000",
            CrmUserKind::Hubspot,
            "424242",
            "another-key-0123456789abcdef0123456789",
            Duration::from_secs(60),
        )),
    ] {
        let (status, answer) = call_state(&s.base, bearer.as_deref()).await;
        assert_eq!((status, answer["code"].as_str()), (401, Some("sign_in")), "{answer}");
    }
    assert_eq!(s.vici.requests().len(), before, "an unsigned request reached VICIdial");
    s.stop().await;
}

#[tokio::test]
async fn bad_input_and_the_per_agent_rate_limit() {
    let s = start("dials_per_minute = 2").await;
    let bearer = session("1000");
    let (status, answer) = dial(&s.base, Some(&bearer), serde_json::json!({"phone": "call me maybe"})).await;
    assert_eq!((status, answer["code"].as_str().unwrap()), (422, "invalid_number"), "{answer}");
    let (status, answer) =
        dial(&s.base, Some(&bearer), serde_json::json!({"phone": "7275551212", "record_id": "a!b"})).await;
    assert_eq!((status, answer["code"].as_str().unwrap()), (400, "bad_record"), "{answer}");
    let (status, _) = dial(&s.base, Some(&bearer), serde_json::json!({"number": "7275551212"})).await;
    assert_eq!(status, 400);
    for _ in 0..2 {
        let (status, answer) = dial(&s.base, Some(&bearer), number()).await;
        assert_eq!(status, 200, "{answer}");
        s.vici.set_agent_state("1000", SimAgentState::Paused);
    }
    let (status, answer) = dial(&s.base, Some(&bearer), number()).await;
    assert_eq!((status, answer["code"].as_str().unwrap()), (429, "rate_limited"), "{answer}");
    // Another agent is not held up.
    let (status, answer) = dial(&s.base, Some(&session("1001")), number()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(s.vici.external_dials().len(), 3);
    s.stop().await;
}

/// Follows the sign-in as a browser would: start (cookie) → CRM authorize → callback.
async fn sign_in(s: &Setup, crm: &str, keep_cookie: bool) -> (u16, String) {
    let http = client();
    let start = http.get(format!("{}/agent/oauth/{crm}/start", s.base)).send().await.unwrap();
    assert_eq!(start.status(), 302);
    let cookie = start.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let authorize = start.headers()["location"].to_str().unwrap().to_owned();
    assert!(authorize.starts_with(&s.crm.base_url()), "{authorize}");
    assert!(authorize.contains("code_challenge_method=S256") && authorize.contains("state="), "{authorize}");
    let back = http.get(&authorize).send().await.unwrap();
    assert_eq!(back.status(), 302);
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.starts_with(&format!("{}/agent/oauth/{crm}/callback?", s.base)), "{callback}");
    let mut req = http.get(&callback);
    if keep_cookie {
        req = req.header("cookie", cookie);
    }
    let page = req.send().await.unwrap();
    let status = page.status().as_u16();
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    (status, page.text().await.unwrap())
}

fn session_in(page: &str) -> String {
    let start = page.find("data-session=\"").unwrap() + "data-session=\"".len();
    page[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn hubspot_sign_in_maps_the_verified_user_and_keeps_no_crm_token() {
    let s = start("").await;
    s.crm.sign_in_as(Some("424242"));
    let (status, page) = sign_in(&s, "hubspot", true).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("VICIdial agent 1000"), "{page}");
    assert!(!page.contains("access-"), "the CRM token reached the page: {page}");
    let token = session_in(&page);
    let claims = AgentSession::verify(&[Secret::new(KEY)], &token).unwrap();
    assert_eq!((claims.sub.as_str(), claims.crm_user.as_str()), ("1000", "424242"));
    assert_eq!(claims.exp - claims.iat, 12 * 3600);
    let (status, answer) = dial(&s.base, Some(&token), number()).await;
    assert_eq!(status, 200, "{answer}");
    // Unmapped user: a page saying so, with the id to give the admin; no session.
    s.crm.sign_in_as(Some("31337"));
    let (status, page) = sign_in(&s, "hubspot", true).await;
    assert_eq!(status, 403);
    assert!(page.contains("not mapped to a VICIdial agent") && page.contains("31337"), "{page}");
    assert!(!page.contains("data-session"));
    // The callback without the browser's sign-in cookie (a link planted by someone else).
    s.crm.sign_in_as(Some("424242"));
    let (status, page) = sign_in(&s, "hubspot", false).await;
    assert_eq!(status, 400);
    assert!(page.contains("Sign-in expired"), "{page}");
    // The user denies access.
    s.crm.sign_in_as(None);
    let (status, page) = sign_in(&s, "hubspot", true).await;
    assert_eq!(status, 401);
    assert!(page.contains("Sign-in cancelled"), "{page}");
    s.stop().await;
}

#[tokio::test]
async fn salesforce_sign_in_with_pkce_and_userinfo() {
    let s = start("session_hours = 2").await;
    // userinfo gives the 18-character id; a 15-character one in [agents] matches too.
    s.crm.sign_in_as(Some(SF_USER));
    let (status, page) = sign_in(&s, "salesforce", true).await;
    assert_eq!(status, 200, "{page}");
    let claims = AgentSession::verify(&[Secret::new(KEY)], &session_in(&page)).unwrap();
    assert_eq!((claims.sub.as_str(), claims.crm), ("1000", CrmUserKind::Salesforce));
    assert_eq!(claims.exp - claims.iat, 2 * 3600);
    let paths: Vec<String> = s.crm.with(|st| st.requests.iter().map(|(_, p)| p.clone()).collect());
    assert!(
        paths.contains(&"/services/oauth2/token".to_owned()) && paths.contains(&"/services/oauth2/userinfo".to_owned()),
        "{paths:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn alt_user_mapping_lets_vicidial_find_the_agent() {
    let s = start("agent_mapping = \"alt_user\"").await;
    s.crm.sign_in_as(Some("777"));
    let (status, page) = sign_in(&s, "hubspot", true).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("alt:777"), "{page}");
    let (status, answer) = dial(&s.base, Some(&session_in(&page)), number()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(s.vici.external_dials()[0].agent_user, "1001");
    let ext = s.vici.requests().into_iter().find(|r| r.param("function") == "external_dial").unwrap();
    assert_eq!((ext.param("alt_user"), ext.param("agent_user")), ("777", ""));
    // A CRM user no VICIdial user carries in custom_three.
    s.crm.sign_in_as(Some("888"));
    let (_, page) = sign_in(&s, "hubspot", true).await;
    let (status, answer) = dial(&s.base, Some(&session_in(&page)), number()).await;
    assert_eq!((status, answer["code"].as_str().unwrap()), (403, "no_alt_user"), "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("ask your admin to map you")
            || answer["message"].as_str().unwrap().contains("Ask your admin to map you")
    );
    s.stop().await;
}

#[tokio::test]
async fn pages_limit_framing_scripts_and_referrers() {
    let s = start("frame_ancestors = [\"https://crm.example.com\"]").await;
    let get = |path: &'static str| {
        let url = format!("{}{path}", s.base);
        async move { client().get(url).send().await.unwrap() }
    };
    let r = get("/dialer/hubspot").await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("frame-ancestors https://app.hubspot.com"), "{csp}");
    assert!(csp.contains(&format!("script-src 'self' {}", s.base)), "{csp}");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    let html = r.text().await.unwrap();
    assert!(
        html.contains("integrity=\"sha384-ztFiRzNEVlkWI98os9f529Yvn2lPKLrCYTYcawYhuUuAUXUYcLKFEIL5/0h9/SXD\""),
        "{html}"
    );
    let r = get("/dialer/salesforce").await;
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.ends_with(&format!("frame-ancestors {}", s.crm.base_url())), "{csp}");
    let html = r.text().await.unwrap();
    assert!(html.contains(&format!("src=\"{}{}\"", s.crm.base_url(), oauth_sim::OPENCTI_PATH)), "{html}");
    let r = get("/dialer").await;
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.ends_with("frame-ancestors https://crm.example.com") && csp.contains("script-src 'self';"), "{csp}");
    let js = get("/dialer/widget.js").await;
    assert!(js.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    s.stop().await;
}

/// Where the widget loads the HubSpot SDK from in the browser check (the check serves the npm
/// package's file for it), and that file's Subresource Integrity value.
const SDK_URL: &str = "https://cdn.example.test/npm/@hubspot/calling-extensions-sdk@0.9.7/dist/main.js";

fn sdk_integrity() -> String {
    use base64::Engine;
    use sha2::Digest;
    let path = vicibridge_tests::browser::dir().join("node_modules/@hubspot/calling-extensions-sdk/dist/main.js");
    let bytes =
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run `npm ci` in tests/browser)", path.display()));
    format!("sha384-{}", base64::engine::general_purpose::STANDARD.encode(sha2::Sha384::digest(&bytes)))
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Headless Chromium (tests/browser/click_to_call.mjs): a host page playing HubSpot's side of
/// the calling SDK protocol with the real npm SDK, a Salesforce host page with the org's
/// `opencti_min.js` (simulator), the plain `/dialer` link and a foreign framer. Then the call
/// the HubSpot widget dialled goes through VICIdial's call URLs and ends as one HubSpot call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_real_browser_every_surface_dials_and_the_call_is_one_crm_record() {
    let hubspot = HubspotSim::start(HS_TOKEN).await;
    let contact = hubspot.add_contact(serde_json::json!({"firstname": "Ada", "phone": "+1 727 555 1212"}));
    let crm_sections = format!(
        "[crm]\nkind = \"hubspot\"\n[queue]\nbatching_window_ms = 50\n[hubspot]\nbase_url = \"{}\"",
        hubspot.base_url
    );
    let widget = format!(
        "sdk_url = \"{SDK_URL}\"\nsdk_integrity = \"{}\"\nframe_ancestors = [\"https://app.hubspot.test\"]",
        sdk_integrity()
    );
    let s = start_with("", &widget, &crm_sections).await;
    s.crm.sign_in_as(Some("424242"));
    s.crm.sign_in_salesforce_as(SF_USER);
    let input = serde_json::json!({
        "base": s.base,
        "simBase": s.crm.base_url(),
        "screenshots": vicibridge_tests::browser::screenshot_dir(),
        "hubspotContact": contact,
    });
    // VICIdial's agent screen places the HubSpot dial: the agent is in the call, then free
    // again. Each state is set before counting the widget's polls, so the next poll sees it.
    let follow_the_call = async {
        let vici = &s.vici;
        let polls = || {
            vici.requests()
                .iter()
                .filter(|r| r.param("function") == "agent_status" && r.param("agent_user") == "1000")
                .count()
        };
        wait_for("the HubSpot dial", || !vici.external_dials().is_empty()).await;
        vici.set_agent_state("1000", SimAgentState::InCall { lead_id: 31, customer_gone: false });
        let before = polls();
        wait_for("the widget asking during the call", || polls() > before).await;
        vici.set_agent_state("1000", SimAgentState::Paused);
    };
    let (r, ()) = tokio::join!(vicibridge_tests::browser::run("click_to_call.mjs", &input), follow_the_call);

    // HubSpot: handshake, sign-in, a click dials; a bad number is an error HubSpot shows.
    assert_eq!(r["hubspotQueued"]["state"], "queued", "{r:#}");
    let outgoing = &r["outgoingCall"]["data"];
    assert!(outgoing["externalCallId"].as_str().unwrap().starts_with("vb-"), "{outgoing}");
    // The VICIdial call is logged by the sync: HubSpot is not asked to create an engagement.
    assert_eq!(outgoing["createEngagement"], false, "{outgoing}");
    // HubSpot's call bar follows the VICIdial call: answered, then ended and completed, all for
    // this call id and still without an engagement of HubSpot's own.
    let id = &outgoing["externalCallId"];
    assert_eq!(r["callAnswered"]["data"]["externalCallId"], *id, "{r:#}");
    assert_eq!(r["callEnded"]["data"]["externalCallId"], *id, "{r:#}");
    assert_eq!(r["callEnded"]["data"]["callEndStatus"], "COMPLETED", "{r:#}");
    assert_eq!(r["callCompleted"]["data"]["externalCallId"], *id, "{r:#}");
    assert!(r["callCompleted"]["data"].get("engagementId").is_none(), "{r:#}");
    assert_eq!(r["hubspotError"]["state"], "error");
    assert!(r["hubspotErrorMessage"]["data"]["message"].as_str().unwrap().contains("cannot be dialled"), "{r:#}");
    // Salesforce: click-to-dial enabled, a click dials; no saveLog (the sync writes the Task).
    assert_eq!(r["salesforceQueued"]["state"], "queued", "{r:#}");
    let calls: Vec<&str> = r["salesforceCalls"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert!(calls.contains(&"enableClickToDial") && calls.contains(&"onClickToDial"), "{calls:?}");
    assert!(!calls.contains(&"saveLog"), "{calls:?}");
    // The plain link signs in, dials, says so and closes itself.
    assert_eq!(r["plainClosed"], true, "{r:#}");
    assert!(r["plainDone"]["detail"].as_str().unwrap().contains("You can close this window"), "{r:#}");
    // A page framed by a foreign origin never renders.
    assert_eq!(r["foreign"], serde_json::json!({"rendered": false, "refused": true}), "{r:#}");

    let dials: Vec<(String, String, String, String)> =
        s.vici.external_dials().into_iter().map(|d| (d.agent_user, d.phone_code, d.value, d.vendor_id)).collect();
    let dial = |phone: &str, vendor: &str| ("1000".to_owned(), "1".to_owned(), phone.to_owned(), vendor.to_owned());
    assert_eq!(
        dials,
        vec![dial("7275551212", &contact), dial("4155552671", "003xx000004TmiQAAS"), dial("7275550000", "99")]
    );

    // HubSpot's side of the SDK: an app asking for an engagement gets one created by HubSpot.
    if outgoing["createEngagement"] == true {
        hubspot.add("calls", serde_json::json!({"hs_call_status": "CONNECTING", "hs_call_to_number": "+17275551212"}));
    }
    // VICIdial places the call (lead found by vendor_lead_code = the record id) and the agent
    // dispositions it: both call URLs reach serve.
    let call = format!(
        "token={INGEST}&lead_id=31&vendor_lead_code={contact}&phone_code=1&phone_number=7275551212&user=1000&campaign=TESTCAMP&uniqueid=1795298973.77&epoch=1795298973"
    );
    for (path, query) in [("call-start", call.clone()), ("dispo", format!("{call}&dispo=SALE&talk_time=42"))] {
        let r = client().get(format!("{}/vicidial/{path}?{query}", s.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    wait_for("the dispositioned call", || {
        hubspot.call("1795298973.77").is_some_and(|(_, p)| p.get("hs_call_status").is_some_and(|v| v == "COMPLETED"))
    })
    .await;
    let (id, props) = hubspot.call("1795298973.77").unwrap();
    assert_eq!(hubspot.objects("calls").len(), 1, "one call record per call: {:#?}", hubspot.objects("calls"));
    assert_eq!(props["hs_call_duration"], "42000");
    // Its owner comes from [agents] (the one place for agent identity).
    assert_eq!(props["hubspot_owner_id"], "77");
    assert_eq!(hubspot.associated("calls", &id, "contacts"), vec![(contact.clone(), 194)]);
    s.stop().await;
}

/// Salesforce, without a browser: a click on a Contact dials with the Contact id as `vendor_id`,
/// VICIdial finds the lead by it, and the call ends as exactly one Task carrying the `uniqueid`,
/// owned by the agent's Salesforce user from `[agents]`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salesforce_click_ends_as_one_task_with_the_uniqueid() {
    let salesforce = SalesforceSim::start().await;
    let contact = salesforce.insert("Contact", serde_json::json!({"LastName": "Lovelace", "Phone": "(727) 555-1212"}));
    let crm_sections = format!(
        "[crm]\nkind = \"salesforce\"\n[salesforce]\nlogin_url = \"{}\"\n[queue]\nbatching_window_ms = 50\n[dispositions.SALE]\nlead_status = \"Closed - Converted\"",
        salesforce.base
    );
    let s = start_with("", "sdk_url = \"{base}/sdk/main.js\"\nsdk_integrity = \"sha384-ztFiRzNEVlkWI98os9f529Yvn2lPKLrCYTYcawYhuUuAUXUYcLKFEIL5/0h9/SXD\"", &crm_sections).await;
    let agent = session_for("1000", CrmUserKind::Salesforce, SF_USER, KEY, Duration::from_secs(3600));
    let click = serde_json::json!({"phone": "(727) 555-1212", "record_id": contact, "record_type": "Contact"});
    let (status, answer) = dial(&s.base, Some(&agent), click).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["ok"], true, "{answer}");
    let dials: Vec<(String, String, String)> =
        s.vici.external_dials().into_iter().map(|d| (d.agent_user, d.value, d.vendor_id)).collect();
    assert_eq!(dials, vec![("1000".to_owned(), "7275551212".to_owned(), contact.clone())]);

    // VICIdial places the call with the lead it found by vendor_lead_code, then the agent
    // dispositions it; a second Dispo URL (an agent re-dispositioning) must not add a Task.
    let call = format!(
        "token={INGEST}&lead_id=32&vendor_lead_code={contact}&phone_code=1&phone_number=7275551212&user=1000&campaign=TESTCAMP&uniqueid=1795298990.12&epoch=1795298990"
    );
    let dispo = format!("{call}&dispo=SALE&talk_time=42");
    for (path, query) in [("call-start", &call), ("dispo", &dispo), ("dispo", &dispo)] {
        let r = client().get(format!("{}/vicidial/{path}?{query}", s.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    wait_for("the dispositioned Task", || {
        salesforce.tasks_with_key("1795298990.12").first().is_some_and(|(_, t)| t["Status"] == "Completed")
    })
    .await;
    // Let the duplicate Dispo URL run before looking at the end state.
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.stop().await;
    let tasks = salesforce.tasks_with_key("1795298990.12");
    assert_eq!(salesforce.count("Task"), 1, "one Task per call: {tasks:#?}");
    let task = &tasks[0].1;
    assert_eq!(task["WhoId"], serde_json::json!(contact));
    assert_eq!(task["OwnerId"], SF_USER);
    assert_eq!(task["CallDurationInSeconds"], 42);
    assert_eq!(task["TaskSubtype"], "Call");
}

/// The shared handler with a budget (the Lambda's `VICIBRIDGE_INGEST_BUDGET_MS`), against a
/// VICIdial that answers each request after 1 s.
async fn dial_within(budget: Duration) -> (VicidialSim, u16, serde_json::Value) {
    let vici = VicidialSim::start().await;
    vici.add_user(SimUser::api("6666", "1234"));
    vici.add_agent("1000", "Ada Agent");
    vici.log_in_agent("1000", "TESTCAMP", "8600051");
    vici.set_answer_delay(Duration::from_secs(1));
    let config = Config::from_toml(&format!(
        "[vicidial]\nbase_url = \"{}\"\n[crm]\nkind = \"dry-run\"\n[agents.1000]\nhubspot_user_id = \"424242\"\n[click_to_call]\npublic_base_url = \"https://bridge.example.com\"\n",
        vici.base_url()
    ))
    .unwrap();
    let secrets =
        serde_json::json!({"agent_session_keys": [KEY], "vicidial": {"api_user": "6666", "api_pass": "1234"}});
    let secrets = Arc::new(FileSecrets::from_json(&secrets.to_string()).unwrap());
    let handler =
        vicibridge_runtime::click_to_call::build_click_to_call(&config, secrets).unwrap().unwrap().with_budget(budget);
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, format!("Bearer {}", session("1000")).parse().unwrap());
    let body = number().to_string();
    let answer = handler
        .handle(vicibridge_runtime::click_to_call::AgentRequest {
            method: "POST",
            path: "/agent/dial",
            query: None,
            headers: &headers,
            body: body.as_bytes(),
        })
        .await;
    let json: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    (vici, answer.status, json)
}

#[tokio::test]
async fn a_dial_cut_by_its_budget_says_whether_vicidial_may_be_dialling() {
    // Cut during agent_status: nothing was sent to the Agent API, clicking again is safe.
    let (vici, status, answer) = dial_within(Duration::from_millis(300)).await;
    assert_eq!((status, answer["code"].as_str().unwrap()), (503, "unavailable"), "{answer}");
    assert!(vici.requests().iter().all(|r| r.param("function") != "external_dial"), "{:?}", vici.requests());
    // Cut during external_dial: VICIdial may be dialling, so the agent looks first.
    let (_, status, answer) = dial_within(Duration::from_millis(1500)).await;
    assert_eq!((status, answer["code"].as_str().unwrap()), (504, "no_answer"), "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("Check your agent screen before you click again"), "{answer}");
}

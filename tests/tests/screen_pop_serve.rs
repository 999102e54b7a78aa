//! The screen pop through `vicibridge serve` (in-process, on a real port) with the VICIdial
//! simulator's `agent_status`: who may see which lead, the page's headers, escaping.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vicibridge_core::config::Config;
use vicibridge_local::secrets_file::FileSecrets;
use vicibridge_local::serve::{ServeOptions, serve};
use vicibridge_tests::vicidial_sim::{SimAgentState, VicidialSim};

const INGEST: &str = "pop-test-ingest-token-51";
const POP: &str = "pop-test-screen-token-77";
const XSS: &str = "<img src=x onerror=alert(1)>";

struct Running {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    async fn get(&self, query: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let r = reqwest::get(format!("{}/vicidial/screen-pop?{query}", self.base)).await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.text().await.unwrap())
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

async fn start(sim: &VicidialSim, screen_pop: &str) -> Running {
    start_with(sim, "[crm]\nkind = \"dry-run\"", screen_pop, serde_json::json!({})).await
}

/// `serve` with a CRM: its config sections (`[crm]` included) and its secret sections.
async fn start_with(sim: &VicidialSim, crm: &str, screen_pop: &str, crm_secrets: serde_json::Value) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config = Config::from_toml(&format!(
        "[vicidial]\nbase_url = \"{}\"\n{crm}\n[screen_pop]\n{screen_pop}\n",
        sim.base_url()
    ))
    .unwrap();
    let mut secrets = serde_json::json!({
        "ingest_tokens": [INGEST],
        "screen_pop_tokens": [POP, "pop-previous-token"],
        "vicidial": { "api_user": "6666", "api_pass": "1234" },
    });
    for (k, v) in crm_secrets.as_object().unwrap() {
        secrets[k] = v.clone();
    }
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
    Running { base: format!("http://{addr}"), stop: Some(tx), task, _dir: dir }
}

/// Agent 1000 in a call on a lead whose vendor_lead_code is an XSS payload; agent 2000 idle.
async fn scene() -> (VicidialSim, u64) {
    let sim = VicidialSim::start().await;
    let lead = sim.seed_lead("999", "7275550101", XSS, Duration::ZERO);
    sim.add_agent("1000", "Ann Agent");
    sim.log_in_agent("1000", "TESTCAMP", "8600051");
    sim.set_agent_state("1000", SimAgentState::InCall { lead_id: lead, customer_gone: false });
    sim.add_agent("2000", "Bob Agent");
    sim.log_in_agent("2000", "TESTCAMP", "8600052");
    (sim, lead)
}

fn pop_query(token: &str, lead: u64, user: &str) -> String {
    format!("token={token}&lead_id={lead}&user={user}&session_id=8600051&vendor_lead_code=X&phone_number=7275550101")
}

#[tokio::test]
async fn the_agent_on_the_call_sees_the_lead_with_the_security_headers() {
    let (sim, lead) = scene().await;
    let serve = start(&sim, "").await;
    let (status, headers, body) = serve.get(&pop_query(POP, lead, "1000")).await;
    assert_eq!(status, 200, "{body}");
    let h = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_owned();
    let csp = h("content-security-policy");
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(csp.ends_with(&format!("frame-ancestors {}", sim.base_url())), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("script-src"), "{csp}");
    assert_eq!(h("referrer-policy"), "no-referrer");
    assert_eq!(h("cache-control"), "no-store");
    assert_eq!(h("x-content-type-options"), "nosniff");
    assert!(h("content-type").starts_with("text/html"));
    assert!(body.contains(&format!("VICIdial lead {lead}")), "{body}");
    assert!(body.contains("Dry run") && body.contains("VICIdial's lead data only"), "{body}");
    // The lead's own vendor_lead_code (from agent_status), escaped; never the URL's value.
    assert!(body.contains("&lt;img src=x onerror=alert(1)&gt;"), "{body}");
    assert!(!body.contains(XSS), "{body}");
    assert!(!body.contains("<script"));
    assert!(!body.contains(POP), "the token must not be on the page");
    // The previous token (rotation) works too.
    let (status, _, _) = serve.get(&pop_query("pop-previous-token", lead, "1000")).await;
    assert_eq!(status, 200);
    serve.stop().await;
}

#[tokio::test]
async fn another_agent_an_idle_agent_or_another_lead_sees_nothing() {
    let (sim, lead) = scene().await;
    let serve = start(&sim, "").await;
    // Agent 2000 is logged in but paused, with no lead: a hand-edited URL.
    let (status, _, body) = serve.get(&pop_query(POP, lead, "2000")).await;
    assert_eq!(status, 403);
    assert!(body.contains("This call is no longer on your screen"), "{body}");
    assert!(!body.contains("onerror") && !body.contains("7275550101"), "{body}");
    // The right agent asking for a lead that is not on the screen.
    let (status, _, body) = serve.get(&pop_query(POP, lead + 1, "1000")).await;
    assert_eq!(status, 403, "{body}");
    // The right agent and lead, another agent's conference.
    let q = pop_query(POP, lead, "1000").replace("8600051", "8600052");
    assert_eq!(serve.get(&q).await.0, 403);
    // A user VICIdial does not know, and a logged-out one.
    assert_eq!(serve.get(&pop_query(POP, lead, "9999")).await.0, 403);
    sim.log_out_agent("2000");
    assert_eq!(serve.get(&pop_query(POP, lead, "2000")).await.0, 403);
    serve.stop().await;
}

#[tokio::test]
async fn the_pop_ends_when_the_call_leaves_the_screen() {
    let (sim, lead) = scene().await;
    let serve = start(&sim, "").await;
    assert_eq!(serve.get(&pop_query(POP, lead, "1000")).await.0, 200);
    sim.set_agent_state("1000", SimAgentState::Dispo { lead_id: lead });
    // Dispositioning the lead: still its record (a cached or a fresh answer says so).
    assert_eq!(serve.get(&pop_query(POP, lead, "1000")).await.0, 200);
    sim.set_agent_state("1000", SimAgentState::Ready);
    // The positive answer is cached a few seconds per agent; after it, VICIdial decides.
    tokio::time::sleep(vicibridge_runtime::screen_pop::AGENT_STATUS_CACHE + Duration::from_millis(200)).await;
    let (status, _, body) = serve.get(&pop_query(POP, lead, "1000")).await;
    assert_eq!(status, 403, "{body}");
    serve.stop().await;
}

#[tokio::test]
async fn ingest_tokens_and_bad_links_are_refused() {
    let (sim, lead) = scene().await;
    let serve = start(&sim, "").await;
    let (status, _, body) = serve.get(&pop_query(INGEST, lead, "1000")).await;
    assert_eq!(status, 403);
    assert!(body.contains("not valid") && !body.contains("7275550101"), "{body}");
    assert_eq!(serve.get(&pop_query("", lead, "1000")).await.0, 403);
    assert_eq!(serve.get(&format!("lead_id={lead}&user=1000")).await.0, 403);
    // The agent's password must never travel in the URL (Scripts substitute --A--pass--B--).
    assert_eq!(serve.get(&format!("{}&pass=1234", pop_query(POP, lead, "1000"))).await.0, 400);
    assert_eq!(serve.get(&format!("token={POP}&lead_id={lead}")).await.0, 400);
    assert_eq!(serve.get(&format!("token={POP}&lead_id=abc&user=1000")).await.0, 400);
    assert_eq!(serve.get(&format!("token={POP}&lead_id={lead}&user=10%2700")).await.0, 400);
    // Nothing was asked of VICIdial for any of these.
    assert!(sim.requests().iter().all(|r| r.param("function") != "agent_status"));
    serve.stop().await;
}

#[tokio::test]
async fn unverified_mode_uses_the_url_and_says_so() {
    let (sim, lead) = scene().await;
    let serve = start(&sim, "verify_agent = false\nframe_ancestors = [\"https://dialer.example.com\"]").await;
    let (status, headers, body) = serve.get(&pop_query(POP, lead, "2000")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("not verified"), "{body}");
    let csp = headers.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.ends_with("frame-ancestors https://dialer.example.com"), "{csp}");
    assert!(sim.requests().iter().all(|r| r.param("function") != "agent_status"));
    serve.stop().await;
}

#[tokio::test]
async fn vicidial_down_or_refusing_is_a_readable_error_and_pops_are_rate_limited() {
    let (sim, lead) = scene().await;
    let serve = start(&sim, "max_pops_per_minute = 3").await;
    let mut user = vicibridge_tests::vicidial_sim::SimUser::api("6666", "1234");
    user.api_allowed_functions = " add_lead lead_search ".into();
    sim.add_user(user);
    let (status, _, body) = serve.get(&pop_query(POP, lead, "1000")).await;
    assert_eq!(status, 503);
    assert!(body.contains("VICIdial could not confirm your call"), "{body}");
    sim.add_user(vicibridge_tests::vicidial_sim::SimUser::api("6666", "1234"));
    assert_eq!(serve.get(&pop_query(POP, lead, "1000")).await.0, 200);
    assert_eq!(serve.get(&pop_query(POP, lead, "1000")).await.0, 200);
    let (status, _, body) = serve.get(&pop_query(POP, lead, "1000")).await;
    assert_eq!(status, 429, "{body}");
    // Another agent has a budget of its own.
    assert_eq!(serve.get(&pop_query(POP, lead, "2000")).await.0, 403);
    serve.stop().await;
}

// ---- HubSpot and Salesforce behind the page ------------------------------------------------

use serde_json::json;
use vicibridge_tests::hubspot_sim::{FaultKind, HubspotSim, PORTAL_ID};
use vicibridge_tests::salesforce_sim::{self as sf_sim, SalesforceSim};

const HS_TOKEN: &str = "pop-hubspot-private-app-token";
const CONNECTED: &str = "f240bbac-87c9-4f6e-bf70-924b57d47db7";

/// VICIdial with agent 1000 on `lead` (vendor_lead_code = the CRM id) and agent 2000 idle.
async fn dialer_on(vendor_lead_code: &str, phone: &str) -> (VicidialSim, u64) {
    let sim = VicidialSim::start().await;
    let lead = sim.seed_lead("999", phone, vendor_lead_code, Duration::ZERO);
    sim.add_agent("1000", "Ann Agent");
    sim.log_in_agent("1000", "TESTCAMP", "8600051");
    sim.set_agent_state("1000", SimAgentState::InCall { lead_id: lead, customer_gone: false });
    sim.add_agent("2000", "Bob Agent");
    sim.log_in_agent("2000", "TESTCAMP", "8600052");
    (sim, lead)
}

/// A contact named with an XSS payload, its owner, an open and a closed deal, a call, a
/// note, an open and a completed task.
fn hubspot_caller(hs: &HubspotSim, first_name: &str) -> String {
    hs.add_owner("77", "Olivia", "Owner", "olivia@example.com");
    let contact = hs.add_contact(json!({
        "firstname": first_name, "lastname": "Lee", "email": "ann.lee@example.com", "phone": "(727) 555-0101",
        "company": "Acme & Sons", "hubspot_owner_id": "77", "hs_lead_status": "IN_PROGRESS",
        "lifecyclestage": "salesqualifiedlead", "vicibridge_do_not_call": "true",
    }));
    let open = hs.add_deal(json!({"dealname": "Acme renewal", "dealstage": "contractsent", "amount": "12500", "closedate": "2026-12-20T00:00:00Z"}));
    let closed = hs.add_deal(json!({"dealname": "Old lost deal", "dealstage": "closedlost", "amount": "10"}));
    let call = hs.add("calls", json!({"hs_timestamp": "2026-11-30T15:04:00Z", "hs_call_title": "Discovery call", "hs_call_disposition": CONNECTED, "hs_call_duration": "185000", "hs_call_recording_url": "https://recordings.example.com/1.mp3"}));
    let note = hs.add(
        "notes",
        json!({"hs_timestamp": "2026-12-01T09:00:00Z", "hs_note_body": "<p>Wants a <b>quote</b> by Friday</p>"}),
    );
    let task = hs.add("tasks", json!({"hs_timestamp": "2026-12-08T14:00:00Z", "hs_task_subject": "Send the quote", "hs_task_status": "NOT_STARTED"}));
    let done = hs.add("tasks", json!({"hs_timestamp": "2026-11-01T14:00:00Z", "hs_task_subject": "Old finished task", "hs_task_status": "COMPLETED"}));
    for d in [&open, &closed] {
        hs.associate("contacts", &contact, "deals", d, 4);
    }
    hs.associate("calls", &call, "contacts", &contact, 194);
    hs.associate("notes", &note, "contacts", &contact, 202);
    for t in [&task, &done] {
        hs.associate("tasks", t, "contacts", &contact, 204);
    }
    contact
}

async fn start_hubspot(sim: &VicidialSim, hs: &HubspotSim) -> Running {
    let crm = format!("[crm]\nkind = \"hubspot\"\n[hubspot]\nbase_url = \"{}\"", hs.base_url);
    start_with(sim, &crm, "", json!({"hubspot": {"access_token": HS_TOKEN}})).await
}

fn assert_escaped(body: &str) {
    assert!(body.contains("&lt;img src=x onerror=alert(1)&gt;"), "{body}");
    assert!(!body.contains(XSS) && !body.contains("<img") && !body.contains("<script"), "{body}");
}

#[tokio::test]
async fn hubspot_the_agent_on_the_call_sees_the_contact_deals_activity_and_tasks() {
    let hs = HubspotSim::start(HS_TOKEN).await;
    let contact = hubspot_caller(&hs, XSS);
    let (sim, lead) = dialer_on(&contact, "7275550101").await;
    let serve = start_hubspot(&sim, &hs).await;
    let (status, headers, body) = serve.get(&pop_query(POP, lead, "1000")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers.get("referrer-policy").unwrap(), "no-referrer");
    assert_escaped(&body);
    for shown in [
        "&lt;img src=x onerror=alert(1)&gt; Lee",
        "ann.lee@example.com",
        "Acme &amp; Sons",
        "Olivia Owner",
        "In progress",
        "Sales qualified lead",
        "DO NOT CALL",
        "Acme renewal",
        "Contract sent",
        "12500",
        "2026-12-20",
        "Discovery call",
        "Connected",
        "3:05",
        "https://recordings.example.com/1.mp3",
        "Wants a quote by Friday",
        "Send the quote",
        "2026-12-08 14:00",
        "Open in HubSpot",
        &format!("https://app.hubspot.com/contacts/{PORTAL_ID}/record/0-1/{contact}"),
    ] {
        assert!(body.contains(shown), "{shown:?} missing: {body}");
    }
    // Closed deals and completed tasks are not "open".
    assert!(!body.contains("Old lost deal") && !body.contains("Old finished task"), "{body}");
    // The contact was read by its id (vendor_lead_code), never searched for.
    assert!(hs.requests_to("/search").is_empty());
    assert!(!body.contains(HS_TOKEN) && !body.contains(POP));
    serve.stop().await;
}

/// Another agent, an unknown one, another lead, an ingest token: all refused, no CRM data.
async fn refused_pops(serve: &Running, lead: u64) {
    // Agent 2000 is logged in, paused, on no lead.
    let (status, _, body) = serve.get(&pop_query(POP, lead, "2000")).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("This call is no longer on your screen") && !body.contains("Lee"), "{body}");
    // An agent VICIdial does not know.
    assert_eq!(serve.get(&pop_query(POP, lead, "3000")).await.0, 403);
    // The agent on the call, another lead.
    assert_eq!(serve.get(&pop_query(POP, lead + 1, "1000")).await.0, 403);
    // The ingest token is not a screen pop token.
    let (status, _, body) = serve.get(&pop_query(INGEST, lead, "1000")).await;
    assert_eq!(status, 403);
    assert!(body.contains("not valid") && !body.contains("Lee"), "{body}");
}

#[tokio::test]
async fn hubspot_wrong_agent_idle_agent_and_ingest_token_read_nothing_from_the_crm() {
    let hs = HubspotSim::start(HS_TOKEN).await;
    let contact = hubspot_caller(&hs, XSS);
    let (sim, lead) = dialer_on(&contact, "7275550101").await;
    let serve = start_hubspot(&sim, &hs).await;
    refused_pops(&serve, lead).await;
    assert_eq!(hs.request_count(), 0, "{:?}", hs.log());
    serve.stop().await;
}

#[tokio::test]
async fn hubspot_several_matches_give_a_chooser_and_none_a_create_link() {
    let hs = HubspotSim::start(HS_TOKEN).await;
    hs.add_contact(json!({"firstname": "Ann", "lastname": "One", "phone": "+1 727 555 0199", "company": "Acme"}));
    hs.add_contact(json!({"firstname": XSS, "lastname": "Two", "mobilephone": "727-555-0199"}));
    let (sim, lead) = dialer_on("", "7275550199").await;
    let serve = start_hubspot(&sim, &hs).await;
    let (status, _, body) = serve.get(&pop_query(POP, lead, "1000")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("2 HubSpot records match this caller"), "{body}");
    assert!(body.contains("Ann One") && body.contains("Acme"), "{body}");
    assert_escaped(&body);
    // A caller no contact has.
    let nobody = sim.seed_lead("999", "7275550123", "", Duration::ZERO);
    sim.set_agent_state("1000", SimAgentState::InCall { lead_id: nobody, customer_gone: false });
    let (status, _, body) = serve.get(&pop_query(POP, nobody, "1000")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("No HubSpot record for this caller"), "{body}");
    assert!(
        body.contains(&format!("https://app.hubspot.com/contacts/{PORTAL_ID}/objects/0-1/views/all/list")),
        "{body}"
    );
    assert!(body.contains(&format!("VICIdial lead {nobody}")) || body.contains(&nobody.to_string()), "{body}");
    serve.stop().await;
}

#[tokio::test]
async fn hubspot_down_gives_a_readable_error_page() {
    let hs = HubspotSim::start(HS_TOKEN).await;
    let contact = hubspot_caller(&hs, XSS);
    let (sim, lead) = dialer_on(&contact, "7275550101").await;
    let serve = start_hubspot(&sim, &hs).await;
    hs.fault("/", FaultKind::Status(503), 1000);
    let (status, headers, body) = serve.get(&pop_query(POP, lead, "1000")).await;
    assert_eq!(status, 503, "{body}");
    assert!(headers.get("content-type").unwrap().to_str().unwrap().starts_with("text/html"));
    assert!(body.contains("HubSpot is not answering") && body.contains(&lead.to_string()), "{body}");
    assert!(!body.contains("Acme renewal"), "{body}");
    serve.stop().await;
}

/// A Contact named with an XSS payload, its Account and owner, an open and a closed
/// Opportunity, a logged call Task and an open Task.
fn salesforce_caller(sf: &SalesforceSim, first_name: &str) -> String {
    let owner = sf.insert("User", json!({"Name": "Olivia Owner"}));
    let account = sf.insert("Account", json!({"Name": "Acme & Sons"}));
    let contact = sf.insert(
        "Contact",
        json!({"FirstName": first_name, "LastName": "Lee", "Email": "ann.lee@example.com", "Phone": "(727) 555-0101",
               "Title": "CTO", "DoNotCall": true, "AccountId": account, "OwnerId": owner}),
    );
    sf.insert("Opportunity", json!({"Name": "Acme renewal", "StageName": "Negotiation/Review", "Amount": 12500, "CloseDate": "2026-12-20", "AccountId": account}));
    sf.insert("Opportunity", json!({"Name": "Old lost deal", "StageName": "Closed Lost", "Amount": 10, "CloseDate": "2026-01-01", "AccountId": account}));
    sf.insert("Task", json!({"Subject": "Call", "Status": "Completed", "CallDisposition": "Interested - send quote", "CallDurationInSeconds": 185, "ActivityDate": "2026-11-30", "CreatedDate": "2026-11-30T15:04:00.000+0000", "WhoId": contact}));
    sf.insert(
        "Task",
        json!({"Subject": "Send the quote", "Status": "Not Started", "ActivityDate": "2026-12-08", "WhoId": contact}),
    );
    contact
}

async fn start_salesforce(sim: &VicidialSim, sf: &SalesforceSim) -> Running {
    let crm = format!("[crm]\nkind = \"salesforce\"\n[salesforce]\nlogin_url = \"{}\"", sf.base);
    let secrets = json!({"salesforce": {"client_id": sf_sim::CLIENT_ID, "client_secret": sf_sim::CLIENT_SECRET, "refresh_token": sf_sim::REFRESH_TOKEN}});
    start_with(sim, &crm, "", secrets).await
}

#[tokio::test]
async fn salesforce_the_agent_on_the_call_sees_the_contact_opportunities_and_tasks() {
    let sf = SalesforceSim::start().await;
    let contact = salesforce_caller(&sf, XSS);
    let (sim, lead) = dialer_on(&contact, "7275550101").await;
    let serve = start_salesforce(&sim, &sf).await;
    let (status, _, body) = serve.get(&pop_query(POP, lead, "1000")).await;
    assert_eq!(status, 200, "{body}");
    assert_escaped(&body);
    for shown in [
        "&lt;img src=x onerror=alert(1)&gt; Lee",
        "Salesforce Contact",
        "Acme &amp; Sons",
        "CTO",
        "ann.lee@example.com",
        "Olivia Owner",
        "DO NOT CALL",
        "Acme renewal",
        "Negotiation/Review",
        "12500",
        "2026-12-20",
        "Interested - send quote",
        "3:05",
        "2026-11-30",
        "Send the quote",
        "2026-12-08",
        "Open in Salesforce",
        &format!("{}/{contact}", sf.base),
    ] {
        assert!(body.contains(shown), "{shown:?} missing: {body}");
    }
    assert!(!body.contains("Old lost deal"), "{body}");
    // One token request and two composite requests (one API call each).
    let calls: Vec<_> = sf.log().into_iter().map(|(m, p)| format!("{m} {p}")).collect();
    assert_eq!(calls.iter().filter(|c| c.ends_with("/composite")).count(), 2, "{calls:?}");
    assert_eq!(calls.len(), 3, "{calls:?}");
    serve.stop().await;
}

#[tokio::test]
async fn salesforce_wrong_agent_idle_agent_and_ingest_token_read_nothing_from_the_crm() {
    let sf = SalesforceSim::start().await;
    let contact = salesforce_caller(&sf, XSS);
    let (sim, lead) = dialer_on(&contact, "7275550101").await;
    let serve = start_salesforce(&sim, &sf).await;
    refused_pops(&serve, lead).await;
    assert!(sf.log().is_empty(), "{:?}", sf.log());
    serve.stop().await;
}

#[tokio::test]
async fn salesforce_several_matches_give_a_chooser_and_none_a_create_link() {
    let sf = SalesforceSim::start().await;
    sf.insert("Lead", json!({"FirstName": "Ann", "LastName": "One", "Company": "Acme", "Phone": "7275550199", "Status": "Open - Not Contacted"}));
    sf.insert("Lead", json!({"FirstName": XSS, "LastName": "Two", "Company": "Beta", "MobilePhone": "(727) 555-0199", "Status": "Open - Not Contacted"}));
    let (sim, lead) = dialer_on("", "7275550199").await;
    let serve = start_salesforce(&sim, &sf).await;
    let (status, _, body) = serve.get(&pop_query(POP, lead, "1000")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("2 Salesforce records match this caller"), "{body}");
    assert!(body.contains("Ann One") && body.contains("Acme") && body.contains("Beta"), "{body}");
    assert_escaped(&body);
    let nobody = sim.seed_lead("999", "7275550123", "", Duration::ZERO);
    sim.set_agent_state("1000", SimAgentState::InCall { lead_id: nobody, customer_gone: false });
    let (status, _, body) = serve.get(&pop_query(POP, nobody, "1000")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("No Salesforce record for this caller"), "{body}");
    assert!(body.contains(&format!("{}/lightning/o/Lead/new", sf.base)), "{body}");
    serve.stop().await;
}

#[tokio::test]
async fn salesforce_down_gives_a_readable_error_page() {
    let sf = SalesforceSim::start().await;
    let contact = salesforce_caller(&sf, XSS);
    let (sim, lead) = dialer_on(&contact, "7275550101").await;
    let serve = start_salesforce(&sim, &sf).await;
    for _ in 0..5 {
        sf.fault(sf_sim::Fault::Unavailable);
    }
    let (status, _, body) = serve.get(&pop_query(POP, lead, "1000")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("Salesforce is not answering") && body.contains(&lead.to_string()), "{body}");
    assert!(!body.contains("Acme renewal"), "{body}");
    serve.stop().await;
}

// ---- In a real browser -------------------------------------------------------------------

/// The Script tab's `<iframe>` on VICIdial's origin (`frame_ancestors` defaults to it), the
/// same page on another origin, through headless Chromium: the pop renders in the first and
/// is refused in the second. The screenshot is `target/browser-screenshots/{name}.png`.
async fn in_chromium(sim: &VicidialSim, serve: &Running, lead: u64, name: &str) -> serde_json::Value {
    let src = format!("{}/vicidial/screen-pop?{}", serve.base, pop_query(POP, lead, "1000"));
    // What an admin pastes into the campaign's Script (README "Screen pop").
    let page = format!(
        "<!doctype html><html><body style=\"margin:0\"><iframe id=\"pop\" src=\"{}\" width=\"600\" height=\"760\" style=\"border:1px solid #ccc\"></iframe></body></html>",
        src.replace('&', "&amp;")
    );
    sim.serve_page("/agc/script.html", &page);
    let elsewhere = VicidialSim::start().await;
    elsewhere.serve_page("/agc/script.html", &page);
    let shot = vicibridge_tests::browser::screenshot_dir().join(format!("{name}.png"));
    let input = json!({
        "allowed": format!("{}/agc/script.html", sim.base_url()),
        "other": format!("{}/agc/script.html", elsewhere.base_url()),
        "screenshot": shot,
    });
    let out = vicibridge_tests::browser::run("screen-pop.mjs", &input).await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 0);
    // Another origin gets Chromium's refusal, never the page.
    let refused = out["other_console"].as_array().unwrap().iter().any(|m| {
        let m = m.as_str().unwrap_or("");
        m.contains("frame-ancestors") && m.contains(&serve.base)
    });
    assert!(refused, "{out}");
    assert!(!out["other_text"].as_str().unwrap().contains("Lee"), "{out}");
    assert_eq!(out["images"], 0, "{out}");
    assert_eq!(out["dialogs"], json!([]), "{out}");
    out
}

#[tokio::test]
async fn hubspot_pop_in_chromium_framed_by_vicidial_and_refused_elsewhere() {
    let hs = HubspotSim::start(HS_TOKEN).await;
    let contact = hubspot_caller(&hs, "Ann");
    let (sim, lead) = dialer_on(&contact, "7275550101").await;
    let serve = start_hubspot(&sim, &hs).await;
    let out = in_chromium(&sim, &serve, lead, "screen-pop-hubspot").await;
    let text = out["text"].as_str().unwrap();
    for shown in [
        "Ann Lee",
        "DO NOT CALL",
        "Acme & Sons",
        "Olivia Owner",
        "Acme renewal",
        "Contract sent",
        "Discovery call",
        "Send the quote",
        "Open in HubSpot",
    ] {
        assert!(text.contains(shown), "{shown:?} missing: {text}");
    }
    serve.stop().await;
}

#[tokio::test]
async fn salesforce_pop_in_chromium_framed_by_vicidial_and_refused_elsewhere() {
    let sf = SalesforceSim::start().await;
    let contact = salesforce_caller(&sf, "Ann");
    let (sim, lead) = dialer_on(&contact, "7275550101").await;
    let serve = start_salesforce(&sim, &sf).await;
    let out = in_chromium(&sim, &serve, lead, "screen-pop-salesforce").await;
    let text = out["text"].as_str().unwrap();
    for shown in [
        "Ann Lee",
        "DO NOT CALL",
        "Acme & Sons",
        "Olivia Owner",
        "Acme renewal",
        "Negotiation/Review",
        "Interested - send quote",
        "Send the quote",
        "Open in Salesforce",
    ] {
        assert!(text.contains(shown), "{shown:?} missing: {text}");
    }
    serve.stop().await;
}

//! `NonAgentApi` (the lead-injection `Dialer`) against the VICIdial simulator, which answers
//! with the exact strings of `shared/reference/vicidial.md`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vicibridge_core::lead::{AddLeadOutcome, AddLeadRequest, Dialer, DialerError};
use vicibridge_core::ports::{SecretStore, SecretsError};
use vicibridge_core::secrets::SecretDoc;
use vicibridge_tests::vicidial_sim::{Fault, SimList, SimUser, VicidialSim};
use vicibridge_vicidial::non_agent_api::{NonAgentApi, NonAgentApiOptions};

/// A secret store whose cache (`current`) and source (`refresh`) can differ, like a cached
/// Secrets Manager value after someone fixed the secret.
struct TestSecrets {
    cached: Mutex<Arc<SecretDoc>>,
    source: Mutex<Arc<SecretDoc>>,
    refreshes: AtomicUsize,
}

fn doc(user: &str, pass: &str) -> Arc<SecretDoc> {
    let json = serde_json::json!({"vicidial": {"api_user": user, "api_pass": pass}}).to_string();
    Arc::new(SecretDoc::from_json(&json).unwrap())
}

impl TestSecrets {
    fn new(user: &str, pass: &str) -> Arc<TestSecrets> {
        Arc::new(TestSecrets {
            cached: Mutex::new(doc(user, pass)),
            source: Mutex::new(doc(user, pass)),
            refreshes: AtomicUsize::new(0),
        })
    }
    /// Changes the secret everywhere.
    fn set(&self, user: &str, pass: &str) {
        *self.cached.lock().unwrap() = doc(user, pass);
        *self.source.lock().unwrap() = doc(user, pass);
    }
    /// Changes the secret at its source only: seen after a refresh.
    fn set_source(&self, user: &str, pass: &str) {
        *self.source.lock().unwrap() = doc(user, pass);
    }
}

#[async_trait::async_trait]
impl SecretStore for TestSecrets {
    async fn current(&self) -> Result<Arc<SecretDoc>, SecretsError> {
        Ok(self.cached.lock().unwrap().clone())
    }
    async fn refresh(&self) -> Result<Arc<SecretDoc>, SecretsError> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        let fresh = self.source.lock().unwrap().clone();
        *self.cached.lock().unwrap() = fresh.clone();
        Ok(fresh)
    }
}

fn options() -> NonAgentApiOptions {
    NonAgentApiOptions { requests_per_second: 50, timeout: Duration::from_secs(10), ..NonAgentApiOptions::default() }
}

fn client(base_url: &str, secrets: Arc<TestSecrets>, options: NonAgentApiOptions) -> NonAgentApi {
    NonAgentApi::new(base_url, secrets, options).unwrap()
}

/// The simulator and a client logged in as its API user (6666 / 1234).
async fn setup() -> (VicidialSim, NonAgentApi, Arc<TestSecrets>) {
    let sim = VicidialSim::start().await;
    let secrets = TestSecrets::new("6666", "1234");
    let api = client(&sim.base_url(), secrets.clone(), options());
    (sim, api, secrets)
}

fn lead(phone: &str, vlc: &str) -> AddLeadRequest {
    AddLeadRequest {
        phone_code: "1".into(),
        phone_number: phone.into(),
        list_id: "999".into(),
        vendor_lead_code: vlc.into(),
        source: "vicibridge".into(),
        duplicate_check: None,
        fields: BTreeMap::new(),
    }
}

fn with(mut r: AddLeadRequest, fields: &[(&str, &str)]) -> AddLeadRequest {
    for (k, v) in fields {
        r.fields.insert(k.to_string(), v.to_string());
    }
    r
}

fn dup(mut r: AddLeadRequest, check: &str) -> AddLeadRequest {
    r.duplicate_check = Some(check.into());
    r
}

fn id(outcome: &AddLeadOutcome) -> u64 {
    outcome.lead_id().get()
}

fn expect_added(result: Result<AddLeadOutcome, DialerError>) -> (u64, Vec<String>) {
    match result {
        Ok(AddLeadOutcome::Added { lead_id, notices }) => (lead_id.get(), notices),
        other => panic!("expected Added, got {other:?}"),
    }
}

fn expect_permanent<T: std::fmt::Debug>(result: Result<T, DialerError>) -> (String, bool) {
    match result {
        Err(DialerError::Permanent { reason, alert }) => (reason, alert),
        // A refused login: the operator must act, and until then the integration is paused.
        Err(DialerError::Integration { reason }) => (reason, true),
        other => panic!("expected Permanent, got {other:?}"),
    }
}

fn expect_login_refused<T: std::fmt::Debug>(result: Result<T, DialerError>) -> String {
    match result {
        Err(DialerError::Integration { reason }) => reason,
        other => panic!("expected a refused login (Integration), got {other:?}"),
    }
}

#[tokio::test]
async fn success_with_notice_lines_and_normalised_values() {
    let (sim, api, _) = setup().await;
    let request = with(
        lead("7275558888", "0031U00001abcdEFGH"),
        &[
            ("first_name", "José María"),
            ("last_name", "O'Brien"),
            ("email", "ann+crm@example.com"),
            ("comments", "call after 5\\"),
            ("add_to_hopper", "Y"),
            ("nanpa_ac_prefix_check", "Y"),
            ("multi_alt_phones", "7275552001_1_work!7275552002_1_home"),
            ("custom_fields", "Y"),
        ],
    );
    let (lead_id, notices) = expect_added(api.add_lead(&request).await);
    assert_eq!(
        notices,
        [
            "NOTICE: add_lead NANPA options disabled, NANPA prefix data not loaded - 0|6666".to_owned(),
            format!("NOTICE: add_lead MULTI-ALT-PHONE NUMBERS LOADED - 2|{lead_id}|6666"),
            format!("NOTICE: add_lead CUSTOM FIELDS NOT ADDED, CUSTOM FIELDS DISABLED - 7275558888|{lead_id}|Y|0"),
            format!("NOTICE: add_lead ADDED TO HOPPER - 7275558888|{lead_id}|1|6666"),
        ]
    );
    let stored = sim.lead(lead_id).unwrap();
    assert_eq!(stored.get("vendor_lead_code"), "0031U00001abcdEFGH");
    assert_eq!(stored.get("first_name"), "Jose Maria");
    assert_eq!(stored.get("last_name"), "O'Brien");
    assert_eq!(stored.get("email"), "ann@example.com");
    assert_eq!(stored.get("comments"), "call after 5");
    assert_eq!(stored.get("user"), "6666");
    assert_eq!(stored.get("source_id"), "");

    // One form POST, nothing in the query string (the password stays out of access logs).
    let requests = sim.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!((r.method.as_str(), r.raw_query.as_str()), ("POST", ""));
    assert!(r.headers.iter().any(|(k, v)| k == "content-type" && v == "application/x-www-form-urlencoded"));
    assert!(r.raw_body.contains("last_name=O%27Brien"), "{}", r.raw_body);
    assert_eq!((r.param("function"), r.param("user"), r.param("pass")), ("add_lead", "6666", "1234"));
}

#[tokio::test]
async fn empty_gmt_offset_still_gives_the_lead_id() {
    let (sim, api, _) = setup().await;
    // 999 is not an area code the simulator knows: `…|{lead_id}||6666`.
    let (lead_id, notices) = expect_added(api.add_lead(&lead("9995550000", "CRM-1")).await);
    assert!(notices.is_empty());
    assert_eq!(sim.lead(lead_id).unwrap().get("gmt_offset_now"), "");
}

/// The first lead: list 999 (campaign TESTCAMP), Bob Wilson, title MR, alt phone 7275550000.
async fn first_lead(api: &NonAgentApi) -> u64 {
    let r = with(
        lead("7275558888", "CRM-A"),
        &[("first_name", "Bob"), ("last_name", "Wilson"), ("title", "MR"), ("alt_phone", "7275550000")],
    );
    expect_added(api.add_lead(&r).await).0
}

#[tokio::test]
async fn every_duplicate_form_is_already_exists_with_the_existing_lead_id() {
    let (sim, api, _) = setup().await;
    let a = first_lead(&api).await;
    let same_phone = |list: &str| {
        let mut r = lead("7275558888", "CRM-B");
        r.list_id = list.into();
        r
    };
    let named = |list: &str, first: &str| with(same_phone(list), &[("first_name", first), ("last_name", "wilson")]);
    let cases: Vec<(AddLeadRequest, &str)> = vec![
        (dup(same_phone("999"), "DUPLIST"), "DUPLICATE PHONE NUMBER IN LIST"),
        (dup(same_phone("5000"), "DUPCAMP"), "DUPLICATE PHONE NUMBER IN CAMPAIGN LISTS"),
        (dup(same_phone("7000"), "DUPSYS"), "DUPLICATE PHONE NUMBER IN SYSTEM"),
        // Matches the first lead's alt_phone.
        (dup(lead("7275550000", "CRM-B"), "DUPPHONEALTLIST"), "DUPLICATE PHONE NUMBER IN LIST"),
        (dup(same_phone("5000"), "DUPPHONEALTCAMP"), "DUPLICATE PHONE NUMBER IN CAMPAIGN LISTS"),
        (dup(same_phone("7000"), "dupphonealtsys"), "DUPLICATE PHONE NUMBER IN SYSTEM"),
        (
            dup(
                with(lead("3125550000", "CRM-B"), &[("title", "MR"), ("alt_phone", "7275550000")]),
                "DUPTITLEALTPHONELIST",
            ),
            "DUPLICATE TITLE ALT_PHONE IN LIST",
        ),
        (
            dup(
                with(lead("3125550000", "CRM-B"), &[("title", "MR"), ("alt_phone", "7275550000")]).tap_list("5000"),
                "DUPTITLEALTPHONECAMP",
            ),
            "DUPLICATE TITLE ALT_PHONE IN CAMPAIGN LISTS",
        ),
        (
            dup(
                with(lead("3125550000", "CRM-B"), &[("title", "MR"), ("alt_phone", "7275550000")]).tap_list("7000"),
                "DUPTITLEALTPHONESYS",
            ),
            "DUPLICATE TITLE ALT_PHONE IN SYSTEM",
        ),
        (dup(named("999", "BOB"), "DUPNAMEPHONELIST"), "DUPLICATE NAME PHONE IN LIST"),
        (dup(named("5000", "Bob"), "DUPNAMEPHONECAMP"), "DUPLICATE NAME PHONE IN CAMPAIGN LISTS"),
        (dup(named("7000", "Bob"), "DUPNAMEPHONESYS"), "DUPLICATE NAME PHONE IN SYSTEM"),
        // Combined options and an age window (the first lead is seconds old).
        (dup(same_phone("999"), "DUPLIST-DUPNAMEPHONESYS90DAY"), "DUPLICATE PHONE NUMBER IN LIST"),
    ];
    for (request, how) in cases {
        let check = request.duplicate_check.clone().unwrap();
        match api.add_lead(&request).await {
            Ok(AddLeadOutcome::AlreadyExists { lead_id, how: got }) => {
                assert_eq!((lead_id.get(), got.as_str()), (a, how), "{check}");
            }
            other => panic!("{check}: {other:?}"),
        }
    }
    assert_eq!(sim.leads().len(), 1, "a duplicate never inserts");
    // A name check that does not match lets the lead in.
    let (_, _) = expect_added(api.add_lead(&dup(named("999", "Alice"), "DUPNAMEPHONELIST")).await);
}

trait TapList {
    fn tap_list(self, list: &str) -> Self;
}

impl TapList for AddLeadRequest {
    fn tap_list(mut self, list: &str) -> Self {
        self.list_id = list.into();
        self
    }
}

#[tokio::test]
async fn the_age_window_limits_the_duplicate_check() {
    let (sim, api, _) = setup().await;
    let old = sim.seed_lead("999", "3125551111", "OLD", Duration::from_secs(100 * 86_400));
    let outcome = api.add_lead(&dup(lead("3125551111", "NEW-1"), "DUPSYS180DAY")).await.unwrap();
    assert_eq!(
        outcome,
        AddLeadOutcome::AlreadyExists {
            lead_id: old.to_string().parse().unwrap(),
            how: "DUPLICATE PHONE NUMBER IN SYSTEM".into()
        }
    );
    expect_added(api.add_lead(&dup(lead("3125551111", "NEW-2"), "DUPSYS90DAY")).await);
}

#[tokio::test]
async fn an_apostrophe_never_breaks_a_name_duplicate_check() {
    // VICIdial answers 500 (nothing inserted, every retry alike) for O'Brien under
    // DUPNAMEPHONE* (§13.2): the client sends OBrien there.
    let (sim, api, _) = setup().await;
    let r = dup(with(lead("7275558888", "CRM-Q"), &[("last_name", "O'Brien")]), "DUPNAMEPHONELIST");
    let (lead_id, _) = expect_added(api.add_lead(&r).await);
    assert_eq!(sim.lead(lead_id).unwrap().get("last_name"), "OBrien");
}

#[tokio::test]
async fn an_apostrophe_in_the_last_field_is_added_once_and_answered_200() {
    // VICIdial writes the last POSTed value unescaped into its API log: a `'` there is an SQL
    // error after the insert (HTTP 500, hopper and API New Lead URL skipped). `last_name` is
    // the last lead field of this request; the client ends every request with a fixed field.
    let (sim, api, _) = setup().await;
    let r = with(lead("7275558888", "CRM-APOS"), &[("last_name", "O'Brien")]);
    let (lead_id, _) = expect_added(api.add_lead(&r).await);
    assert_eq!(sim.lead(lead_id).unwrap().get("last_name"), "O'Brien");
    let last = sim.requests().last().unwrap().raw_body.rsplit('&').next().unwrap().to_owned();
    assert!(!last.starts_with("last_name="), "{last}");
}

#[tokio::test]
async fn permission_errors_are_permanent_alerts() {
    let (sim, api, _) = setup().await;
    let mut user = SimUser::api("6666", "1234");
    user.modify_leads = 0;
    sim.add_user(user);
    let (reason, alert) = expect_permanent(api.add_lead(&lead("7275558888", "CRM-1")).await);
    assert!(alert);
    assert!(
        reason.contains("ERROR: add_lead USER DOES NOT HAVE PERMISSION TO ADD LEADS TO THE SYSTEM: |6666|0|"),
        "{reason}"
    );

    let mut user = SimUser::api("6666", "1234");
    user.api_allowed_functions = " lead_search ".into();
    sim.add_user(user);
    let (reason, alert) = expect_permanent(api.add_lead(&lead("7275558888", "CRM-1")).await);
    assert!(alert && reason.contains("|6666|add_lead|") && reason.contains("api_allowed_functions"), "{reason}");

    let mut user = SimUser::api("6666", "1234");
    user.modify_leads = 6;
    sim.add_user(user);
    let (reason, alert) = expect_permanent(api.find_by_vendor_lead_code("CRM-1").await);
    assert!(alert && reason.contains("USER DOES NOT HAVE PERMISSION TO SEARCH FOR LEADS: |6666|6|"), "{reason}");

    let mut user = SimUser::api("6666", "1234");
    user.allowed_lists = Some(vec!["5000".into()]);
    sim.add_user(user);
    let (reason, alert) = expect_permanent(api.add_lead(&lead("7275558888", "CRM-1")).await);
    assert!(alert && reason.contains("ERROR: add_lead NOT AN ALLOWED LIST ID - 7275558888|999"), "{reason}");

    sim.add_user(SimUser::api("6666", "1234"));
    let mut r = with(lead("7275558888", "CRM-1"), &[("list_exists_check", "Y")]);
    r.list_id = "4242".into();
    let (reason, alert) = expect_permanent(api.add_lead(&r).await);
    assert!(alert && reason.contains("NOT A DEFINED LIST ID, LIST EXISTS CHECK ENABLED - 7275558888|4242"), "{reason}");
    assert!(sim.leads().is_empty());
    // Permission errors are not login failures: nothing is held.
    expect_added(api.add_lead(&lead("7275558888", "CRM-1")).await);
}

#[tokio::test]
async fn bad_login_never_shows_the_password_and_is_not_repeated() {
    let sim = VicidialSim::start().await;
    let secrets = TestSecrets::new("6666", "wrongPass99");
    let api = client(&sim.base_url(), secrets.clone(), options());
    let reason = expect_login_refused(api.add_lead(&lead("7275558888", "CRM-1")).await);
    assert!(!reason.contains("wrongPass99"), "{reason}");
    assert!(reason.contains("|6666|[redacted]|BAD|"), "{reason}");
    assert!(!format!("{api:?}").contains("wrongPass99"));
    // The secret was re-read once; it had not changed, so no second attempt.
    assert_eq!(secrets.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(sim.requests().len(), 1);

    // Further calls with the same credentials are refused without reaching VICIdial: a queue of
    // leads must not lock the user out (10 failures, §13.8).
    for _ in 0..5 {
        let reason = expect_login_refused(api.add_lead(&lead("7275558888", "CRM-1")).await);
        assert!(!reason.contains("wrongPass99"), "{reason}");
        expect_login_refused(api.find_by_vendor_lead_code("CRM-1").await);
    }
    assert_eq!(sim.requests().len(), 1);
    assert_eq!(sim.failed_logins("6666"), 1);

    // Fixing the secret is picked up at once.
    secrets.set("6666", "1234");
    expect_added(api.add_lead(&lead("7275558888", "CRM-1")).await);
}

#[tokio::test]
async fn concurrent_calls_with_a_wrong_password_fail_the_login_once() {
    let sim = VicidialSim::start().await;
    let api = Arc::new(client(&sim.base_url(), TestSecrets::new("6666", "wrong"), options()));
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move { api.add_lead(&lead("7275558888", &format!("CRM-{i}"))).await })
        })
        .collect();
    for t in tasks {
        let (_, alert) = expect_permanent(t.await.unwrap());
        assert!(alert);
    }
    assert_eq!(sim.failed_logins("6666"), 1);
    assert_eq!(sim.requests().len(), 1);
}

#[tokio::test]
async fn a_fixed_secret_is_picked_up_by_the_one_refresh_after_a_bad_login() {
    let sim = VicidialSim::start().await;
    let secrets = TestSecrets::new("6666", "stale");
    secrets.set_source("6666", "1234");
    let api = client(&sim.base_url(), secrets.clone(), options());
    expect_added(api.add_lead(&lead("7275558888", "CRM-1")).await);
    assert_eq!(secrets.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(sim.requests().len(), 2);
}

#[tokio::test]
async fn a_locked_user_is_not_retried() {
    let sim = VicidialSim::start().await;
    let http = reqwest::Client::new();
    let url = format!("{}/vicidial/non_agent_api.php", sim.base_url());
    for _ in 0..10 {
        let body = http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("function=add_lead&user=6666&pass=guess&source=test&phone_number=7275558888")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "ERROR: Login incorrect, please try again: |6666|guess|BAD|\n");
    }
    // Even the right password is locked now.
    let secrets = TestSecrets::new("6666", "1234");
    let api = client(&sim.base_url(), secrets.clone(), options());
    let (reason, alert) = expect_permanent(api.add_lead(&lead("7275558888", "CRM-1")).await);
    assert!(
        alert && reason.contains("ERROR: Too many login attempts, try again in 15 minutes: |6666|LOCK|"),
        "{reason}"
    );
    let before = sim.requests().len();
    // Held for the user whatever the password: each attempt would keep the lock going.
    secrets.set("6666", "another");
    expect_permanent(api.add_lead(&lead("7275558888", "CRM-1")).await);
    assert_eq!(sim.requests().len(), before);
}

#[tokio::test]
async fn invalid_phone_and_dnc_are_permanent_without_alert() {
    let (sim, api, _) = setup().await;
    // Checked before sending: VICIdial would refuse it the same way.
    let (reason, alert) = expect_permanent(api.add_lead(&lead("12345", "CRM-1")).await);
    assert!(!alert && reason.contains("6 to 16"), "{reason}");
    assert!(sim.requests().is_empty());

    sim.add_dnc("7275558888");
    let (reason, alert) =
        expect_permanent(api.add_lead(&with(lead("7275558888", "CRM-1"), &[("dnc_check", "Y")])).await);
    assert!(!alert && reason.contains("ERROR: add_lead PHONE NUMBER IN DNC - 7275558888|6666"), "{reason}");
}

#[tokio::test]
async fn simulator_answers_the_documented_strings() {
    let sim = VicidialSim::start().await;
    let http = reqwest::Client::new();
    let url = format!("{}/vicidial/non_agent_api.php", sim.base_url());
    let get = |query: &str| {
        let http = http.clone();
        let url = format!("{url}?{query}");
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let base = "user=6666&pass=1234&source=test";
    assert_eq!(
        get(&format!("function=add_lead&{base}&phone_number=12345")).await,
        (200, "ERROR: add_lead INVALID PHONE NUMBER LENGTH - 12345|6666\n".into())
    );
    assert_eq!(
        get("function=add_lead&user=6666&pass=1234&source=x&phone_number=7275558888").await,
        (200, "ERROR: Invalid Source - x\nERROR: Invalid Source: |x|\n".into())
    );
    // The login comes first, for every function; then the source.
    assert_eq!(
        get("function=add_lead&user=6666&pass=nope&source=x").await,
        (200, "ERROR: Login incorrect, please try again: |6666|nope|BAD|\n".into())
    );
    assert_eq!(
        get("function=lead_search&user=6666&pass=1234&search_method=VENDOR_LEAD_CODE&vendor_lead_code=A").await,
        (200, "ERROR: Invalid Source - \nERROR: Invalid Source: ||\n".into())
    );
    assert_eq!(get("function=nothing").await, (200, "ERROR: NO FUNCTION SPECIFIED\n".into()));
    assert_eq!(get("function=coffee").await.0, 418);
    // §13.1: a raw `'` in a GET inserts the lead and answers 500 with the SUCCESS line only.
    // (reqwest would percent-encode the quote: write the request by hand.)
    let mut socket = tokio::net::TcpStream::connect(sim.base_url().trim_start_matches("http://")).await.unwrap();
    let raw = format!(
        "GET /vicidial/non_agent_api.php?function=add_lead&{base}&phone_number=7275558888&last_name=O'Brien HTTP/1.1\r\n\
         Host: x\r\n\r\n"
    );
    socket.write_all(raw.as_bytes()).await.unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 500 "), "{response}");
    assert!(
        response.ends_with("\r\n\r\nSUCCESS: add_lead LEAD HAS BEEN ADDED - 7275558888|999|1|-5.00|6666\n"),
        "{response}"
    );
    assert_eq!(sim.leads().len(), 1);
    // A trailing backslash: 500, empty, nothing inserted (§13.3).
    let (status, body) = get(&format!("function=add_lead&{base}&phone_number=7275558889&comments=x%5C")).await;
    assert_eq!((status, body.as_str()), (500, ""));
    assert_eq!(sim.leads().len(), 1);
    // A *CAMP check on a list without a campaign: 500 (§2.2).
    let (status, _) =
        get(&format!("function=add_lead&{base}&phone_number=7275558889&list_id=7000&duplicate_check=DUPCAMP")).await;
    assert_eq!(status, 500);
    assert_eq!(
        get(&format!("function=lead_search&{base}&phone_number=7275558888,3125550000")).await,
        (200, "7275558888|1|1\n3125550000|0|\n".into())
    );
    assert_eq!(
        get(&format!("function=lead_search&{base}&search_method=VENDOR_LEAD_CODE&vendor_lead_code=NOPE")).await,
        (200, "ERROR: lead_search NO MATCHES FOUND IN THE SYSTEM: |6666||NOPE|\n".into())
    );
}

#[tokio::test]
async fn http_500_with_an_empty_body_is_unknown_and_nothing_was_inserted() {
    let (sim, api, _) = setup().await;
    sim.fail_next("add_lead", Fault::Http500Empty);
    let request = lead("7275558888", "CRM-500");
    assert!(matches!(api.add_lead(&request).await, Err(DialerError::Unknown { .. })));
    assert!(sim.leads().is_empty());
    assert_eq!(api.find_by_vendor_lead_code("CRM-500").await, Ok(None));
    expect_added(api.add_lead(&request).await);
}

/// What the worker does after an unknown outcome: look the lead up before adding it again.
async fn retry_after_unknown(api: &NonAgentApi, request: &AddLeadRequest) -> u64 {
    match api.find_by_vendor_lead_code(&request.vendor_lead_code).await {
        Ok(Some(found)) => found.get(),
        Ok(None) => id(&api.add_lead(request).await.unwrap()),
        Err(e) => panic!("lookup failed: {e}"),
    }
}

#[tokio::test]
async fn http_500_after_the_insert_then_the_lookup_finds_it() {
    let (sim, api, _) = setup().await;
    sim.fail_next("add_lead", Fault::Http500AfterInsert);
    let request = lead("7275558888", "CRM-13-1");
    let Err(DialerError::Unknown { reason }) = api.add_lead(&request).await else { panic!("expected Unknown") };
    assert!(reason.contains("HTTP 500"), "{reason}");
    assert_eq!(sim.leads().len(), 1);
    let lead_id = retry_after_unknown(&api, &request).await;
    assert_eq!(sim.leads().len(), 1, "the retry created no second lead");
    assert_eq!(sim.leads()[0].lead_id, lead_id);
}

#[tokio::test]
async fn a_connection_dropped_after_the_insert_is_unknown() {
    let (sim, api, _) = setup().await;
    sim.fail_next("add_lead", Fault::DropAfterInsert);
    let request = lead("7275558888", "CRM-DROP");
    assert!(matches!(api.add_lead(&request).await, Err(DialerError::Unknown { .. })));
    assert_eq!(retry_after_unknown(&api, &request).await, sim.leads()[0].lead_id);
    assert_eq!(sim.leads().len(), 1);
}

#[tokio::test]
async fn a_reply_slower_than_the_timeout_is_unknown() {
    let sim = VicidialSim::start().await;
    let api = client(
        &sim.base_url(),
        TestSecrets::new("6666", "1234"),
        NonAgentApiOptions { timeout: Duration::from_millis(500), ..options() },
    );
    sim.fail_next("add_lead", Fault::Delay(Duration::from_secs(5)));
    let request = lead("7275558888", "CRM-SLOW");
    let Err(DialerError::Unknown { reason }) = api.add_lead(&request).await else { panic!("expected Unknown") };
    assert!(reason.contains("did not answer"), "{reason}");
    assert_eq!(retry_after_unknown(&api, &request).await, sim.leads()[0].lead_id);
    assert_eq!(sim.leads().len(), 1);
    // A slow lead_search is retryable: a read changes nothing.
    sim.fail_next("lead_search", Fault::Delay(Duration::from_secs(5)));
    assert!(matches!(api.find_by_vendor_lead_code("CRM-SLOW").await, Err(DialerError::Retryable { .. })));
}

#[tokio::test]
async fn connection_refused_is_retryable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let api = client(&format!("http://127.0.0.1:{port}"), TestSecrets::new("6666", "1234"), options());
    assert!(matches!(api.add_lead(&lead("7275558888", "CRM-1")).await, Err(DialerError::Retryable { .. })));
    assert!(matches!(api.find_by_vendor_lead_code("CRM-1").await, Err(DialerError::Retryable { .. })));
}

#[tokio::test]
async fn a_wrong_base_url_is_a_permanent_alert() {
    let sim = VicidialSim::start().await;
    let api = client(&format!("{}/admin", sim.base_url()), TestSecrets::new("6666", "1234"), options());
    let (reason, alert) = expect_permanent(api.add_lead(&lead("7275558888", "CRM-1")).await);
    assert!(alert && reason.contains("HTTP 404"), "{reason}");
}

#[tokio::test]
async fn the_rate_limit_is_shared_by_all_callers() {
    const PER_SECOND: u32 = 3;
    let sim = VicidialSim::start().await;
    let api = Arc::new(client(
        &sim.base_url(),
        TestSecrets::new("6666", "1234"),
        NonAgentApiOptions { requests_per_second: PER_SECOND, ..options() },
    ));
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move { api.add_lead(&lead(&format!("72755500{i:02}"), &format!("CRM-R{i}"))).await })
        })
        .collect();
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Ok(AddLeadOutcome::Added { .. })));
    }
    let times: Vec<_> = sim.requests().iter().map(|r| r.at).collect();
    assert_eq!(times.len(), 10);
    for start in &times {
        let in_window =
            times.iter().filter(|t| **t >= *start && t.duration_since(*start) < Duration::from_secs(1)).count();
        assert!(in_window <= PER_SECOND as usize + 1, "{in_window} requests within one second");
    }
}

#[tokio::test]
async fn lead_search_none_one_many() {
    let (sim, api, _) = setup().await;
    assert_eq!(api.find_by_vendor_lead_code("CRM-X").await, Ok(None));
    let one = sim.seed_lead("999", "7275558888", "CRM-X", Duration::ZERO);
    assert_eq!(api.find_by_vendor_lead_code("CRM-X").await.unwrap().map(|l| l.get()), Some(one));
    sim.seed_lead("5000", "7275558889", "CRM-X", Duration::ZERO);
    let newest = sim.seed_lead("999", "7275558890", "CRM-X", Duration::ZERO);
    assert_eq!(api.find_by_vendor_lead_code("CRM-X").await.unwrap().map(|l| l.get()), Some(newest));
    let last = sim.requests().pop().unwrap();
    assert_eq!((last.method.as_str(), last.raw_query.as_str()), ("POST", ""));
    assert_eq!(
        (last.param("function"), last.param("search_method"), last.param("source")),
        ("lead_search", "VENDOR_LEAD_CODE", "vicibridge")
    );
    // A code lead_search cannot look for is refused before sending.
    let (_, alert) = expect_permanent(api.find_by_vendor_lead_code("A,B").await);
    assert!(!alert);
}

#[tokio::test]
async fn api_new_lead_url_is_requested_before_add_lead_answers() {
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_addr = receiver.local_addr().unwrap();
    let captured = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = captured.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = receiver.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            sink.lock().unwrap().push(String::from_utf8_lossy(&buf).into_owned());
            s.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nqueued").await.unwrap();
        }
    });
    let (sim, api, _) = setup().await;
    sim.set_api_new_lead_url(Some(&format!(
        "VARhttp://{receiver_addr}/newlead?lead_id=--A--lead_id--B--&vlc=--A--vendor_lead_code--B--&fn=--A--first_name--B--\
         &ln=--A--LAST_NAME--B--&list=--A--list_id--B--&ln2=--A--list_name--B--&camp=--A--campaign--B--&user=--A--user--B--\
         &status=--A--status--B--&sqldate=--A--SQLdate--B--&epoch=--A--epoch--B--&email=--A--email--B--\
         &cmt=--A--comments--B--&gmt=--A--gmt_offset_now--B--&color=--A--favorite_color--B--"
    )));
    let request = with(
        lead("7275558888", "CRM-123/abc"),
        &[
            ("first_name", "José María"),
            ("last_name", "O'Brien"),
            ("email", "a@x.com"),
            ("comments", "hello world & more"),
        ],
    );
    let (lead_id, _) = expect_added(api.add_lead(&request).await);
    // Synchronous: already done when add_lead answered.
    let calls = sim.new_lead_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].status, Some(200));
    let got = captured.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0],
        format!(
            "GET /newlead?lead_id={lead_id}&vlc=CRM-123%2Fabc&fn=Jose+Maria&ln=O%27Brien&list=999\
             &ln2=Default+inbound+list&camp=TESTCAMP&user=6666&status=NEW&sqldate=&epoch=&email=a%40x.com\
             &cmt=hello+world+%26+more&gmt=-5.00&color=--A--favorite_color--B-- HTTP/1.0\r\n\
             Host: {receiver_addr}\r\nConnection: close\r\n\r\n"
        )
    );

    // A list set to ---DISABLED--- sends nothing; a list's own URL wins over the system one.
    let list = |url: &str| SimList {
        list_name: "L".into(),
        list_description: String::new(),
        campaign_id: Some("TESTCAMP".into()),
        api_new_lead_url: url.into(),
    };
    sim.add_list("5001", list("---DISABLED---"));
    sim.add_list("5002", list(&format!("http://{receiver_addr}/list5002?id=--a--LEAD_ID--b--")));
    let (_, _) = expect_added(api.add_lead(&lead("7275558889", "CRM-124").tap_list("5001")).await);
    assert_eq!(sim.new_lead_calls().len(), 1);
    let (second, _) = expect_added(api.add_lead(&lead("7275558890", "CRM-125").tap_list("5002")).await);
    assert_eq!(sim.new_lead_calls().len(), 2);
    assert!(captured.lock().unwrap()[1].starts_with(&format!("GET /list5002?id={second} HTTP/1.0\r\n")));
}

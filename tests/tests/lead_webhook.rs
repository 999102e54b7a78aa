//! `POST /hubspot/leads` and `POST /salesforce/leads`: authentication, parsing, and nothing
//! acknowledged before every record is durably queued.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use vicibridge_core::Envelope;
use vicibridge_core::event::{Event, LeadSource};
use vicibridge_hubspot::webhook::{signature_v1, signature_v3};
use vicibridge_local::queue::{QueueOptions, SqliteQueue};
use vicibridge_local::secrets_file::FileSecrets;
use vicibridge_runtime::{LeadWebhook, WebhookRequest, WebhookResponse};

const CLIENT_SECRET: &str = "hs-client-secret-7f3e";
const HS_TOKEN: &str = "hs-webhook-token-19ac";
const SF_TOKEN: &str = "sf-flow-token-55e0";
const ORG: &str = "00D5g000004ABCDEAA";
const PUBLIC: &str = "https://hooks.example.com/hubspot/leads";

/// The acknowledgement Salesforce waits for, as the reference gives it.
const EXPECTED_ACK: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
  <soapenv:Body>
    <notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">
      <Ack>true</Ack>
    </notificationsResponse>
  </soapenv:Body>
</soapenv:Envelope>
"#;

struct Setup {
    _dir: tempfile::TempDir,
    queue: Arc<SqliteQueue>,
    webhook: LeadWebhook,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(SqliteQueue::open(&dir.path().join("lead-injections.db"), QueueOptions::default()).unwrap());
    let secrets = serde_json::json!({
        "ingest_tokens": ["x"],
        "hubspot": { "client_secret": CLIENT_SECRET, "webhook_token": HS_TOKEN },
        "salesforce": { "organization_id": ORG, "webhook_token": SF_TOKEN }
    });
    let secrets = Arc::new(FileSecrets::from_json(&secrets.to_string()).unwrap());
    let webhook = LeadWebhook::new(queue.clone(), secrets, None);
    Setup { _dir: dir, queue, webhook }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    h
}

async fn hubspot(s: &Setup, h: &HeaderMap, body: &[u8]) -> WebhookResponse {
    s.webhook.hubspot(WebhookRequest { method: "POST", path: "/hubspot/leads", query: None, headers: h, body }).await
}

async fn salesforce(s: &Setup, h: &HeaderMap, body: &[u8]) -> WebhookResponse {
    s.webhook
        .salesforce(WebhookRequest { method: "POST", path: "/salesforce/leads", query: None, headers: h, body })
        .await
}

async fn queued(s: &Setup) -> Vec<Envelope> {
    let got = s.queue.receive(1000).await.unwrap();
    got.iter().map(|m| Envelope::from_json(&m.body).unwrap()).collect()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

const LEGACY_CONTACT: &[u8] = br#"{"vid":501,"canonical-vid":501,"portal-id":62515,"is-contact":true,"properties":{"phone":{"value":"+1 415 555 2671","versions":[]},"firstname":{"value":"Ada","versions":[]}}}"#;

#[tokio::test]
async fn hubspot_v3_signed_contact_is_queued_once() {
    let s = setup();
    let ts = now_ms().to_string();
    let sig = signature_v3(CLIENT_SECRET, "POST", PUBLIC, LEGACY_CONTACT, &ts);
    let h = headers(&[
        ("host", "hooks.example.com"),
        ("x-forwarded-proto", "https"),
        ("content-type", "application/json"),
        ("x-hubspot-signature-v3", &sig),
        ("x-hubspot-request-timestamp", &ts),
    ]);
    let r = hubspot(&s, &h, LEGACY_CONTACT).await;
    assert_eq!((r.status, r.body.as_str()), (200, "OK queued 1 lead"));
    let r = hubspot(&s, &h, LEGACY_CONTACT).await;
    assert_eq!((r.status, r.body.as_str()), (401, "rejected: signature already seen: a replay"));

    let all = queued(&s).await;
    assert_eq!(all.len(), 1);
    let Event::LeadInjection(i) = &all[0].event else { panic!() };
    assert_eq!((i.source, i.crm_ref.as_str()), (LeadSource::Hubspot, "501"));
    assert_eq!(i.properties["phone"], "+1 415 555 2671");
    assert_eq!(all[0].key.as_str(), "hubspot:lead-injection:501:workflow");
}

#[tokio::test]
async fn hubspot_forged_stale_and_unsigned_requests_queue_nothing() {
    let s = setup();
    let stale = (now_ms() - 6 * 60 * 1000).to_string();
    let fresh = now_ms().to_string();
    let cases = [
        (
            headers(&[
                ("host", "hooks.example.com"),
                ("x-hubspot-signature-v3", &signature_v3(CLIENT_SECRET, "POST", PUBLIC, LEGACY_CONTACT, &stale)),
                ("x-hubspot-request-timestamp", &stale),
            ]),
            401,
            "more than 5 minutes",
        ),
        (
            headers(&[
                ("host", "hooks.example.com"),
                ("x-hubspot-signature-v3", &signature_v3("wrong", "POST", PUBLIC, LEGACY_CONTACT, &fresh)),
                ("x-hubspot-request-timestamp", &fresh),
            ]),
            401,
            "signature does not match",
        ),
        (
            // Signed for another host: the URI is part of v3.
            headers(&[
                ("host", "evil.example.com"),
                ("x-hubspot-signature-v3", &signature_v3(CLIENT_SECRET, "POST", PUBLIC, LEGACY_CONTACT, &fresh)),
                ("x-hubspot-request-timestamp", &fresh),
            ]),
            401,
            "signature does not match",
        ),
        (
            headers(&[("x-hubspot-signature", "00"), ("x-hubspot-signature-version", "v1")]),
            401,
            "signature does not match",
        ),
        (headers(&[("x-vicibridge-token", "guess")]), 401, "token does not match"),
        (headers(&[]), 401, "no signature and no token header"),
    ];
    for (h, status, reason) in cases {
        let r = hubspot(&s, &h, LEGACY_CONTACT).await;
        assert_eq!(r.status, status, "{}", r.body);
        assert!(r.body.contains(reason), "{:?} should contain {reason:?}", r.body);
    }
    let h = headers(&[("x-vicibridge-token", HS_TOKEN)]);
    assert_eq!(hubspot(&s, &h, b"{not json").await.status, 400);
    assert_eq!(hubspot(&s, &h, br#"{"phone":"1"}"#).await.status, 400);
    assert_eq!(hubspot(&s, &h, &vec![b' '; 2 * 1024 * 1024]).await.status, 413);
    assert!(queued(&s).await.is_empty());

    let v1 = headers(&[
        ("x-hubspot-signature", &signature_v1(CLIENT_SECRET, LEGACY_CONTACT)),
        ("x-hubspot-signature-version", "v1"),
    ]);
    assert_eq!(hubspot(&s, &v1, LEGACY_CONTACT).await.status, 200);
    assert_eq!(hubspot(&s, &h, br#"{"hs_object_id":"9","phone":"4155552671"}"#).await.status, 200);
    assert_eq!(queued(&s).await.len(), 2);
}

fn soap(n: usize, org: &str) -> String {
    let notes: String = (0..n)
        .map(|i| {
            format!(
                "<Notification><Id>04l5g00000ABC{i:03}AAA</Id><sObject xsi:type=\"sf:Lead\" xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\"><sf:Id>00Q5g00000XYZ{i:03}AAA</sf:Id><sf:FirstName>Lead {i}</sf:FirstName><sf:Phone>+1 415 555 {:04}</sf:Phone></sObject></Notification>",
                2000 + i
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body><notifications xmlns=\"http://soap.sforce.com/2005/09/outbound\"><OrganizationId>{org}</OrganizationId><ActionId>04k5g000000XYZAAA</ActionId><SessionId xsi:nil=\"true\"/><EnterpriseUrl>https://x.my.salesforce.com/services/Soap/c/62.0</EnterpriseUrl><PartnerUrl>https://x.my.salesforce.com/services/Soap/u/62.0</PartnerUrl>{notes}</notifications></soapenv:Body></soapenv:Envelope>"
    )
}

#[tokio::test]
async fn salesforce_outbound_messages_are_acknowledged_byte_exact_after_queueing() {
    let s = setup();
    let h = headers(&[("content-type", "text/xml; charset=utf-8"), ("soapaction", "\"\"")]);
    let r = salesforce(&s, &h, soap(1, ORG).as_bytes()).await;
    assert_eq!((r.status, r.content_type, r.body.as_str()), (200, "text/xml; charset=UTF-8", EXPECTED_ACK));
    let r = salesforce(&s, &h, soap(100, "00D5g000004ABCD").as_bytes()).await;
    assert_eq!((r.status, r.body.as_str()), (200, EXPECTED_ACK), "a 15-character org id matches too");
    let all = queued(&s).await;
    assert_eq!(all.len(), 101);
    let keys: std::collections::HashSet<_> = all.iter().map(|e| e.key.to_string()).collect();
    assert!(keys.contains("salesforce:lead-injection:00Q5g00000XYZ099AAA:notification:04l5g00000ABC099AAA"));

    let r = salesforce(&s, &h, soap(1, "00D000000000001AAA").as_bytes()).await;
    assert_eq!(r.status, 403);
    let xxe = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;\">]><notifications><OrganizationId>&lol2;</OrganizationId></notifications>";
    let r = salesforce(&s, &h, xxe.as_bytes()).await;
    assert_eq!((r.status, r.body.as_str()), (400, "rejected: XML carries a DTD or entity declaration: refused"));
    assert_eq!(salesforce(&s, &h, b"<notifications><Org").await.status, 400);
    assert!(queued(&s).await.is_empty(), "refused messages queue nothing");
}

#[tokio::test]
async fn salesforce_bodies_that_are_not_a_whole_outbound_message_are_never_acknowledged() {
    // An ACK makes Salesforce delete the message: only a complete envelope in its namespaces,
    // with at least one notification, may get one.
    let s = setup();
    let h = headers(&[("content-type", "text/xml; charset=utf-8")]);
    let whole = soap(2, ORG);
    let bare = whole.split_once("<soapenv:Body>").unwrap().1.split_once("</soapenv:Body>").unwrap().0.to_owned();
    let cases = [
        ("truncated", whole[..whole.len() - 40].to_owned(), "truncated"),
        ("cut inside a notification", whole[..whole.find("</Notification>").unwrap()].to_owned(), ""),
        ("no envelope", bare, "not a SOAP 1.1 envelope"),
        ("plain text", "hello".to_owned(), "not a SOAP 1.1 envelope"),
        (
            "another namespace",
            whole.replace("http://soap.sforce.com/2005/09/outbound", "urn:example:outbound"),
            "namespace",
        ),
        ("zero notifications", soap(0, ORG), "no notification"),
    ];
    for (what, body, reason) in cases {
        let r = salesforce(&s, &h, body.as_bytes()).await;
        assert!((400..500).contains(&r.status), "{what}: {} {}", r.status, r.body);
        assert!(!r.body.contains("<Ack>"), "{what}: {}", r.body);
        assert!(r.body.contains(reason), "{what}: {:?} should say {reason:?}", r.body);
    }
    assert!(queued(&s).await.is_empty(), "refused messages queue nothing");
}

async fn send(webhook: &LeadWebhook, source: LeadSource, headers: &HeaderMap, body: &[u8]) -> WebhookResponse {
    let path = if source == LeadSource::Hubspot { "/hubspot/leads" } else { "/salesforce/leads" };
    let request = WebhookRequest { method: "POST", path, query: None, headers, body };
    match source {
        LeadSource::Hubspot => webhook.hubspot(request).await,
        LeadSource::Salesforce => webhook.salesforce(request).await,
    }
}

#[tokio::test]
async fn leads_for_a_crm_without_lead_injection_config_are_refused_503_before_queueing() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(SqliteQueue::open(&dir.path().join("lead-injections.db"), QueueOptions::default()).unwrap());
    let secrets = serde_json::json!({
        "hubspot": { "webhook_token": HS_TOKEN },
        "salesforce": { "organization_id": ORG }
    });
    let secrets: Arc<FileSecrets> = Arc::new(FileSecrets::from_json(&secrets.to_string()).unwrap());
    let base = "[vicidial]\nbase_url = \"http://127.0.0.1:9\"\n[crm]\nkind = \"dry-run\"\n";
    let hs = headers(&[("content-type", "application/json"), ("x-vicibridge-token", HS_TOKEN)]);
    let sf = headers(&[("content-type", "text/xml")]);
    let sf_body = soap(1, ORG);

    let none = vicibridge_core::config::Config::from_toml(base).unwrap();
    let webhook = LeadWebhook::from_config(queue.clone(), secrets.clone(), &none);
    let r = send(&webhook, LeadSource::Hubspot, &hs, LEGACY_CONTACT).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("[lead_injection]"), "{}", r.body);
    let r = send(&webhook, LeadSource::Salesforce, &sf, sf_body.as_bytes()).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(!r.body.contains("<Ack>"));

    let salesforce_only = vicibridge_core::config::Config::from_toml(&format!(
        "{base}[lead_injection]\n[lead_injection.salesforce]\nlist_id = \"5000\"\n"
    ))
    .unwrap();
    let webhook = LeadWebhook::from_config(queue.clone(), secrets, &salesforce_only);
    let r = send(&webhook, LeadSource::Hubspot, &hs, LEGACY_CONTACT).await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("[lead_injection.hubspot]"), "{}", r.body);
    let r = send(&webhook, LeadSource::Salesforce, &sf, sf_body.as_bytes()).await;
    assert_eq!((r.status, r.body.as_str()), (200, EXPECTED_ACK));
    let got = queue.receive(10).await.unwrap();
    assert_eq!(got.len(), 1, "only the configured CRM's lead was queued");
}

#[tokio::test]
async fn salesforce_flow_callouts_need_the_token() {
    let s = setup();
    let body = br#"[{"Id":"00Q5g00000XYZ001AAA","Phone":"4155552671","attributes":{"type":"Lead"}},{"Id":"0035g00000XYZ002AAA","Phone":"4155552672"}]"#;
    let h = headers(&[("content-type", "application/json"), ("x-vicibridge-token", SF_TOKEN)]);
    let r = salesforce(&s, &h, body).await;
    assert_eq!((r.status, r.body.as_str()), (200, "OK queued 2 lead(s)"));
    let wrong = headers(&[("content-type", "application/json"), ("x-vicibridge-token", "nope")]);
    assert_eq!(salesforce(&s, &wrong, body).await.status, 401);
    assert_eq!(salesforce(&s, &headers(&[("content-type", "application/json")]), body).await.status, 401);
    assert_eq!(queued(&s).await.len(), 2);
}

#[tokio::test]
async fn nothing_is_acknowledged_when_the_queue_is_down() {
    let moto = vicibridge_tests::moto::Moto::start().await;
    let missing = format!("{}/123456789012/no-such-queue", moto.endpoint());
    let queue = Arc::new(vicibridge_aws::sqs::SqsQueue::new(moto.sqs(), missing));
    let secrets = serde_json::json!({ "salesforce": { "organization_id": ORG } });
    let webhook = LeadWebhook::new(queue, Arc::new(FileSecrets::from_json(&secrets.to_string()).unwrap()), None);
    let h = headers(&[("content-type", "text/xml")]);
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        webhook.salesforce(WebhookRequest {
            method: "POST",
            path: "/salesforce/leads",
            query: None,
            headers: &h,
            body: soap(3, ORG).as_bytes(),
        }),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 503);
    assert!(!r.body.contains("<Ack>"), "never an ACK for what was not stored");
}

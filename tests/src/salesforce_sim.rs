//! A Salesforce simulator: a real HTTP server (axum on 127.0.0.1:0) answering as
//! `shared/reference/salesforce.md` documents — the OAuth token endpoint (refresh token with
//! optional rotation, JWT bearer verified against a public key, `invalid_grant`), REST with
//! bearer auth (401 INVALID_SESSION_ID), `Sforce-Limit-Info` on every answer, 403
//! REQUEST_LIMIT_EXCEEDED, SOQL for the queries the adapter sends, sObject single-record
//! create / update / upsert by external id, sObject Collections (≤ 200, per-record
//! SaveResults, allOrNone false), Composite (≤ 25 subrequests, ≤ 5 collections or queries,
//! one API call), describe, and a Task schema where TaskSubtype is not updateable and the
//! call-key field is unique. Fault injection and counters for assertions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helper: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

pub const CLIENT_ID: &str = "sim-consumer-key-3MVG9";
pub const CLIENT_SECRET: &str = "sim-consumer-secret-8811";
pub const REFRESH_TOKEN: &str = "sim-refresh-token-5Aep861";
pub const USERNAME: &str = "integration@example.com";
pub const CALL_KEY_FIELD: &str = "VICIdial_Call_Key__c";
pub const LEAD_KEY_FIELD: &str = "VICIdial_Lead_Id__c";

pub const LEAD_STATUSES: [&str; 4] =
    ["Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted"];
pub const STAGES: [&str; 10] = [
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
];
pub const TASK_STATUSES: [&str; 5] = ["Completed", "Deferred", "In Progress", "Not Started", "Waiting on someone else"];

/// A 2048-bit RSA key pair for the JWT bearer flow (made for these tests only).
pub const TEST_PRIVATE_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCjY5A9UUu9l6GO\no2IvxTzqnygLjxge2mfK7XhMCNA0wkdm/dN+saWlIeGjRODhKhzGL7/uheJlEDt5\ntTUGSBnUzCs6eJlgaTaOBk7cFiSIfm75wf564+eKaRTzr1IxZRk6ezEGRG7JWr4u\nI17y9ywTtg1Z0dD9g0ChZ8URMoo19jVO8SWYDOdD2LXlPOGxUPCUdQ1Pt2Sw8vNa\n0YCM0mKUYXdmIYQHJ6S+eAuyMBJvGSOW58do3lYKW2Y7OsgIFnTiB3mR0gjMmI7l\nZp0fKAP/GeXNeP2+ynLPl4fVNILhcEv0HqWCFp5zHOEKg4x8KMRdTvGoR3WuD/U7\nM/elUjppAgMBAAECggEAFB+J9y1dMFh9rL9Nc1/93tEzmcnZ0Qn5/NWmymmO+CKB\n8Aq8ysa3JamQvF66Oi0pPlUI9Of/ME6Rnq2tXkzQxqNPQywxirzmm9Ml0Qg2n2uA\nAEmO7cSGQscqrhEmpMAEfY4I5ZJV2T2QfQb89Zxw7KwQRKLZdDG/SunIjRPODzNl\nYQbXtBA4LhV29c7T4Tu2e2bYfx4myy+I+s7Odbhsw8EaLxZ1LT7/54xHm8Jc3jqh\n5G7tbb6TawstTetWqocXta0/Xjt3uEfo8zmVX9IvrmG8cvgyuJhcc8P4EnL9H7OJ\ngcqpbXhp6inltAhgdU1kqIrVcyX4ExVvVh4vGJdtoQKBgQDWu2bJ/LA6FUxcvvpA\ntx++uPgNddKYG9xOl9CY+tgZim7ZIlwvv19Flc4rYo5akSL3LxXqfwuytvuiX/Zz\nBpSLREO1tyR3tbgDJ+hDjIyvuUwvW9y03XK/vmeqlveu9x/o862uJXeqeMAf6jni\nLHtfcDwrdVmq3kKdg67OKXykSQKBgQDCyiHx/tV6qRMZsmNy74JEGjRMLlExCEE8\nqatQdlY7B9Gs1hCC+tJ05Ag6/nGKnwZrjNODOQ6ozws3BLQPnYzUykSD0PJF7SWH\nYwnQZ2E8urIW4sC3Zr7dxdH8ZhdCAOodntFiTdmou7GECg5lbiImcYwq6OsIpwHO\ntrsHZ26lIQKBgFWGyNcUvUA1MXgTXOufxJYbaDk8P4f0ONhY4W29I4twttvnMp6V\n86VsmHRxSc/K1QltCKaguZESDsHKxQdljI63vtxGuNCxYTxojbsx5Ossu6p1RUAI\nn+a9ON8aSEa5CU2omPmu1K3icGuFyE5Md0s5Ec4hbHiBFDlWtK5Kmel5AoGAGwCk\nVgSqmVdo024cRSmYmFI9n7XoAXEQghVPL1dIOuSpl1kRbubQV+3oii0NllbXL/+U\nrqMxOguBlX3sbCG+DR2BA/jqLPFj+3GqQZ6jJyUGXQ/QAVyX5uxuYJvSa47u5W5H\nvmXmX3KteA1g04TB7SxebvBc7JUiNgK0yKD5AKECgYEAiom40W//9Acu5ooKyStL\nFMc+g7oDqt4VbjMWF7VPKpE9kZSXglaDbpdc0fZiyD9AmyZC/505gFp0eyOooYhd\nlZgSFD3OuxglM9W4I1phRM65vnC9lduH0kfiE5Ma6lLWX7YT4I8PDN2CihiedLz7\nKTsvtbY9tROwM4tE3kB9+uw=\n-----END PRIVATE KEY-----\n";
pub const TEST_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAo2OQPVFLvZehjqNiL8U8\n6p8oC48YHtpnyu14TAjQNMJHZv3TfrGlpSHho0Tg4Socxi+/7oXiZRA7ebU1BkgZ\n1MwrOniZYGk2jgZO3BYkiH5u+cH+euPnimkU869SMWUZOnsxBkRuyVq+LiNe8vcs\nE7YNWdHQ/YNAoWfFETKKNfY1TvElmAznQ9i15TzhsVDwlHUNT7dksPLzWtGAjNJi\nlGF3ZiGEByekvngLsjASbxkjlufHaN5WCltmOzrICBZ04gd5kdIIzJiO5WadHygD\n/xnlzXj9vspyz5eH1TSC4XBL9B6lghaecxzhCoOMfCjEXU7xqEd1rg/1OzP3pVI6\naQIDAQAB\n-----END PUBLIC KEY-----\n";

/// A failure the next matching request meets.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 401 INVALID_SESSION_ID (the access token expired).
    InvalidSession,
    /// 403 REQUEST_LIMIT_EXCEEDED.
    RequestLimit,
    /// 503 SERVER_UNAVAILABLE.
    Unavailable,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub rotate_refresh_tokens: bool,
    pub api_limit: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options { rotate_refresh_tokens: false, api_limit: 100_000 }
    }
}

#[derive(Debug, Clone)]
pub struct Record {
    pub object: String,
    pub fields: Map<String, Value>,
}

#[derive(Debug, Default)]
pub struct SimState {
    pub base: String,
    pub options: Options,
    pub refresh_tokens: HashSet<String>,
    pub access_tokens: HashSet<String>,
    next: u64,
    pub records: BTreeMap<String, Record>,
    /// REST calls (what counts toward the daily limit): one per top-level request.
    pub api_calls: u64,
    pub token_calls: u64,
    pub api_used_start: u64,
    /// method and path of every request, in order.
    pub log: Vec<(String, String)>,
    /// Raw request bodies (for leak checks).
    pub bodies: Vec<String>,
    pub faults: VecDeque<Fault>,
    /// Record id → errorCode every write to it meets.
    pub poisoned: BTreeMap<String, String>,
    /// Refresh tokens issued by rotation, newest last.
    pub issued_refresh_tokens: Vec<String>,
    /// When each record was created (for lag measurements).
    pub created_at: BTreeMap<String, std::time::Instant>,
    /// `LastModifiedDate` of each record, as an ever-increasing sequence number.
    pub modified: BTreeMap<String, u64>,
    /// How long every answer takes (a distant org, for benchmarks).
    pub delay: std::time::Duration,
}

#[derive(Debug, Clone)]
pub struct SalesforceSim {
    pub base: String,
    state: Arc<Mutex<SimState>>,
}

type Shared = Arc<Mutex<SimState>>;

impl SalesforceSim {
    pub async fn start() -> SalesforceSim {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> SalesforceSim {
        let mut state = SimState { options, ..SimState::default() };
        state.refresh_tokens.insert(REFRESH_TOKEN.to_owned());
        let state = Arc::new(Mutex::new(state));
        let app = Router::new().fallback(handle).with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let addr = listener.local_addr().unwrap();
        state.lock().unwrap().base = format!("http://{addr}");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        SalesforceSim { base: format!("http://{addr}"), state }
    }

    pub fn state(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Inserts a record as if it existed in the org; returns its id.
    pub fn insert(&self, object: &str, fields: Value) -> String {
        let mut s = self.state();
        let id = s.new_id(object);
        let Value::Object(fields) = fields else { panic!("fields must be an object") };
        s.records.insert(id.clone(), Record { object: object.to_owned(), fields });
        s.touch(&id);
        id
    }

    pub fn record(&self, id: &str) -> Option<Map<String, Value>> {
        self.state().records.get(id).map(|r| r.fields.clone())
    }

    /// Tasks whose call-key field equals `key`.
    pub fn tasks_with_key(&self, key: &str) -> Vec<(String, Map<String, Value>)> {
        self.state()
            .records
            .iter()
            .filter(|(_, r)| r.object == "Task" && r.fields.get(CALL_KEY_FIELD).and_then(Value::as_str) == Some(key))
            .map(|(id, r)| (id.clone(), r.fields.clone()))
            .collect()
    }

    pub fn count(&self, object: &str) -> usize {
        self.state().records.values().filter(|r| r.object == object).count()
    }

    pub fn api_calls(&self) -> u64 {
        self.state().api_calls
    }

    pub fn token_calls(&self) -> u64 {
        self.state().token_calls
    }

    pub fn fault(&self, f: Fault) {
        self.state().faults.push_back(f);
    }

    pub fn poison(&self, id: &str, code: &str) {
        self.state().poisoned.insert(id.to_owned(), code.to_owned());
    }

    /// Every access token stops working (session timeout).
    pub fn expire_sessions(&self) {
        self.state().access_tokens.clear();
    }

    /// Revokes every refresh token (the user revoked the app).
    pub fn revoke_refresh_tokens(&self) {
        self.state().refresh_tokens.clear();
    }

    /// Every answer after `delay`.
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.state().delay = delay;
    }

    /// Accepts `token` as a refresh token (an operator authorised the app again).
    pub fn grant_refresh_token(&self, token: &str) {
        self.state().refresh_tokens.insert(token.to_owned());
    }

    pub fn set_api_used(&self, used: u64) {
        let mut s = self.state();
        s.api_used_start = used.saturating_sub(s.api_calls);
    }

    pub fn log(&self) -> Vec<(String, String)> {
        self.state().log.clone()
    }
}

impl SimState {
    fn new_id(&mut self, object: &str) -> String {
        self.next += 1;
        let prefix = match object {
            "Lead" => "00Q",
            "Contact" => "003",
            "Opportunity" => "006",
            "Account" => "001",
            "Task" => "00T",
            "OpportunityContactRole" => "00K",
            "User" => "005",
            _ => "a0X",
        };
        format!("{prefix}{:012}AAA", self.next)
    }

    fn touch(&mut self, id: &str) {
        self.next += 1;
        let at = self.next;
        self.modified.insert(id.to_owned(), at);
    }

    /// `LastModifiedDate` as Salesforce writes it.
    fn last_modified(&self, id: &str) -> Value {
        let base = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z").unwrap();
        let at = base + chrono::Duration::seconds(self.modified.get(id).copied().unwrap_or(0) as i64);
        json!(at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string())
    }

    /// An Opportunity is closed in a closed stage (the standard picklist's Closed Won / Lost).
    fn is_closed(&self, id: &str) -> bool {
        self.records
            .get(id)
            .and_then(|r| r.fields.get("StageName"))
            .and_then(Value::as_str)
            .is_some_and(|s| s.starts_with("Closed"))
    }

    fn limit_header(&self) -> String {
        format!("api-usage={}/{}", self.api_used_start + self.api_calls, self.options.api_limit)
    }
}

fn errors(code: &str, message: &str) -> Value {
    json!([{ "message": message, "errorCode": code }])
}

async fn handle(State(state): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or("").to_owned();
    let text = String::from_utf8_lossy(&body).into_owned();
    let delay = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    s.log.push((method.to_string(), path.clone()));
    s.bodies.push(text.clone());
    if path == "/services/oauth2/token" && method == Method::POST {
        s.token_calls += 1;
        let (status, v) = token(&mut s, &text);
        return (status, [("content-type", "application/json")], v.to_string()).into_response();
    }
    if !path.starts_with("/services/data/v") {
        return (StatusCode::NOT_FOUND, errors("NOT_FOUND", "The requested resource does not exist").to_string())
            .into_response();
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    let fault = s.faults.pop_front();
    if fault == Some(Fault::InvalidSession) || !s.access_tokens.contains(&bearer) {
        return (StatusCode::UNAUTHORIZED, errors("INVALID_SESSION_ID", "Session expired or invalid").to_string())
            .into_response();
    }
    s.api_calls += 1;
    let limit = s.limit_header();
    let (status, v) = match fault {
        Some(Fault::RequestLimit) => (403, errors("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")),
        Some(Fault::Unavailable) => (503, errors("SERVER_UNAVAILABLE", "Server unavailable")),
        _ => {
            let json: Value =
                if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::Null) };
            dispatch(&mut s, method.as_str(), &path, &query, json, true)
        }
    };
    let status = StatusCode::from_u16(status).unwrap();
    let body = if status == StatusCode::NO_CONTENT { String::new() } else { v.to_string() };
    (status, [("content-type", "application/json;charset=UTF-8"), ("sforce-limit-info", limit.as_str())], body)
        .into_response()
}

fn form(text: &str) -> BTreeMap<String, String> {
    form_urlencoded::parse(text.as_bytes()).into_owned().collect()
}

fn token(s: &mut SimState, text: &str) -> (StatusCode, Value) {
    let f = form(text);
    let bad = |e: &str, d: &str| (StatusCode::BAD_REQUEST, json!({ "error": e, "error_description": d }));
    let grant = f.get("grant_type").map(String::as_str).unwrap_or("");
    let mut refresh = None;
    match grant {
        "refresh_token" => {
            if f.get("client_id").map(String::as_str) != Some(CLIENT_ID)
                || f.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
            {
                return bad("invalid_client", "invalid client credentials");
            }
            let rt = f.get("refresh_token").cloned().unwrap_or_default();
            if !s.refresh_tokens.contains(&rt) {
                return bad("invalid_grant", "expired access/refresh token");
            }
            if s.options.rotate_refresh_tokens {
                // The previous refresh token is automatically invalidated.
                s.refresh_tokens.remove(&rt);
                s.next += 1;
                let new = format!("sim-rotated-refresh-{:06}", s.next);
                s.refresh_tokens.insert(new.clone());
                s.issued_refresh_tokens.push(new.clone());
                refresh = Some(new);
            }
        }
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
            let assertion = f.get("assertion").cloned().unwrap_or_default();
            let key = jsonwebtoken::DecodingKey::from_rsa_pem(TEST_PUBLIC_KEY.as_bytes()).unwrap();
            let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            v.set_audience(&["https://login.salesforce.com"]);
            v.set_issuer(&[CLIENT_ID]);
            v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
            match jsonwebtoken::decode::<Value>(&assertion, &key, &v) {
                Ok(data) if data.claims["sub"] == USERNAME => {}
                Ok(_) => return bad("invalid_grant", "user hasn't approved this consumer"),
                Err(_) => return bad("invalid_grant", "invalid assertion"),
            }
        }
        _ => return bad("unsupported_grant_type", "grant type not supported"),
    }
    s.next += 1;
    let access = format!("00Dsim!access-{:08}", s.next);
    s.access_tokens.insert(access.clone());
    let mut answer = json!({
        "access_token": access,
        "signature": "c2lnbmF0dXJl",
        "scope": "api refresh_token",
        "instance_url": s.base,
        "id": "https://login.salesforce.com/id/00Dsim000000001AAA/005sim000000001AAA",
        "token_type": "Bearer",
        "issued_at": "1708058728442"
    });
    if let Some(r) = refresh {
        answer["refresh_token"] = json!(r);
    }
    (StatusCode::OK, answer)
}

/// Routes one REST request (top-level or composite subrequest).
fn dispatch(s: &mut SimState, method: &str, path: &str, query: &str, body: Value, top: bool) -> (u16, Value) {
    let rest = path.splitn(5, '/').nth(4).unwrap_or(""); // after /services/data/vXX.X/
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    match (method, parts.as_slice()) {
        ("GET", ["query"]) => {
            let q = form(query).get("q").cloned().unwrap_or_default();
            soql(s, &q)
        }
        ("POST", ["composite"]) if top => composite(s, &body),
        ("POST", ["composite", "sobjects"]) => collection(s, &body, create),
        ("PATCH", ["composite", "sobjects"]) => collection(s, &body, |s, r| update(s, r, None)),
        ("PATCH", ["composite", "sobjects", object, field]) => {
            let (object, field) = (object.to_string(), field.to_string());
            collection(s, &body, move |s, r| upsert(s, &object, &field, r))
        }
        ("POST", ["sobjects", object]) => {
            let mut r = body;
            r["attributes"] = json!({ "type": object });
            match create(s, r) {
                Ok(v) => (201, v),
                Err(e) => (400, json!([e])),
            }
        }
        ("PATCH", ["sobjects", object, id]) => {
            let mut r = body;
            r["attributes"] = json!({ "type": object });
            r["Id"] = json!(id);
            match update(s, r, None) {
                Ok(_) => (204, Value::Null),
                Err(e) => (if e["statusCode"] == "ENTITY_IS_DELETED" { 404 } else { 400 }, json!([e])),
            }
        }
        ("PATCH", ["sobjects", object, field, value]) => {
            let mut r = body;
            r["attributes"] = json!({ "type": object });
            r[*field] = json!(percent_decode(value));
            let matches =
                s.records.values().filter(|x| x.object == *object && x.fields.get(*field) == Some(&r[*field])).count();
            if matches > 1 {
                return (300, json!([format!("/services/data/v67.0/sobjects/{object}/...")]));
            }
            match upsert(s, object, field, r) {
                Ok(v) if v["created"] == true => {
                    (201, json!({ "id": v["id"], "success": true, "errors": [], "created": true }))
                }
                Ok(v) => (200, json!({ "id": v["id"], "success": true, "errors": [], "created": false })),
                Err(e) => (400, json!([e])),
            }
        }
        // sObject Collections delete: `?ids=a,b&allOrNone=false`, one result per id.
        ("DELETE", ["composite", "sobjects"]) => {
            let ids = form(query).get("ids").cloned().unwrap_or_default();
            let results: Vec<Value> = ids
                .split(',')
                .filter(|i| !i.is_empty())
                .map(|id| match s.records.remove(id) {
                    Some(_) => json!({ "id": id, "success": true, "errors": [] }),
                    None => json!({ "id": id, "success": false, "errors": [record_error("ENTITY_IS_DELETED", "entity is deleted", &[])] }),
                })
                .collect();
            (200, Value::Array(results))
        }
        ("GET", ["sobjects", object, "describe"]) => (200, describe(object)),
        ("GET", ["limits"]) => (
            200,
            json!({ "DailyApiRequests": { "Max": s.options.api_limit, "Remaining": s.options.api_limit.saturating_sub(s.api_used_start + s.api_calls) } }),
        ),
        _ => (404, errors("NOT_FOUND", "The requested resource does not exist")),
    }
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("v={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

fn composite(s: &mut SimState, body: &Value) -> (u16, Value) {
    let subs = body["compositeRequest"].as_array().cloned().unwrap_or_default();
    if subs.len() > 25 {
        return (400, errors("INVALID_BATCH_REQUEST", "Composite request may contain at most 25 subrequests"));
    }
    let heavy = subs
        .iter()
        .filter(|r| {
            let url = r["url"].as_str().unwrap_or("");
            url.contains("/composite/sobjects") || url.contains("/query")
        })
        .count();
    if heavy > 5 {
        return (400, errors("INVALID_BATCH_REQUEST", "at most 5 sObject Collections or query subrequests"));
    }
    let mut out = Vec::new();
    for r in subs {
        let url = r["url"].as_str().unwrap_or("");
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let (status, body) = dispatch(s, r["method"].as_str().unwrap_or(""), path, query, r["body"].clone(), false);
        out.push(json!({ "body": body, "httpHeaders": {}, "httpStatusCode": status, "referenceId": r["referenceId"] }));
    }
    (200, json!({ "compositeResponse": out }))
}

fn collection(
    s: &mut SimState,
    body: &Value,
    mut each: impl FnMut(&mut SimState, Value) -> Result<Value, Value>,
) -> (u16, Value) {
    let records = body["records"].as_array().cloned().unwrap_or_default();
    if records.len() > 200 {
        return (
            400,
            errors("EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call"),
        );
    }
    if body["allOrNone"] == true {
        return (400, errors("INVALID_FIELD", "the simulator only implements allOrNone false"));
    }
    let out: Vec<Value> = records
        .into_iter()
        .map(|r| match each(s, r) {
            Ok(v) => v,
            Err(e) => json!({ "success": false, "errors": [e] }),
        })
        .collect();
    (200, Value::Array(out))
}

fn record_error(code: &str, message: &str, fields: &[&str]) -> Value {
    json!({ "statusCode": code, "message": message, "fields": fields })
}

/// Field → (createable, updateable) per object.
fn schema(object: &str) -> Option<&'static [(&'static str, bool, bool)]> {
    Some(match object {
        "Task" => &[
            (CALL_KEY_FIELD, true, true),
            ("TaskSubtype", true, false),
            ("Type", true, true),
            ("Subject", true, true),
            ("Status", true, true),
            ("Priority", true, true),
            ("CallType", true, true),
            ("CallDisposition", true, true),
            ("CallDurationInSeconds", true, true),
            ("ActivityDate", true, true),
            ("Description", true, true),
            ("WhoId", true, true),
            ("WhatId", true, true),
            ("IsReminderSet", true, true),
            ("ReminderDateTime", true, true),
            ("OwnerId", true, true),
        ],
        "Lead" => &[
            (LEAD_KEY_FIELD, true, true),
            ("LastName", true, true),
            ("FirstName", true, true),
            ("Salutation", true, true),
            ("Company", true, true),
            ("Status", true, true),
            ("Phone", true, true),
            ("MobilePhone", true, true),
            ("Email", true, true),
            ("Street", true, true),
            ("City", true, true),
            ("State", true, true),
            ("PostalCode", true, true),
            ("Country", true, true),
            ("Description", true, true),
            ("LeadSource", true, true),
            ("DoNotCall", true, true),
            ("IsConverted", false, false),
        ],
        "Contact" => &[
            ("LastName", true, true),
            ("FirstName", true, true),
            ("Phone", true, true),
            ("MobilePhone", true, true),
            ("DoNotCall", true, true),
            ("AccountId", true, true),
        ],
        "Opportunity" => {
            &[("Name", true, true), ("StageName", true, true), ("CloseDate", true, true), ("AccountId", true, true)]
        }
        "Account" => &[("Name", true, true)],
        _ => return None,
    })
}

fn describe(object: &str) -> Value {
    let fields: Vec<Value> = schema(object)
        .unwrap_or(&[])
        .iter()
        .map(|(name, c, u)| {
            let key = *name == CALL_KEY_FIELD || *name == LEAD_KEY_FIELD;
            json!({ "name": name, "createable": c, "updateable": u, "externalId": key, "unique": key })
        })
        .collect();
    json!({ "name": object, "fields": fields })
}

/// Field-level validation shared by create and update.
fn validate(s: &SimState, object: &str, fields: &Map<String, Value>, creating: bool) -> Result<(), Value> {
    let Some(schema) = schema(object) else {
        return Err(record_error("INVALID_TYPE", &format!("sObject type '{object}' is not supported."), &[]));
    };
    for (name, value) in fields {
        if name == "attributes" || name.eq_ignore_ascii_case("id") {
            continue;
        }
        let Some((_, c, u)) = schema.iter().find(|(n, ..)| n == name) else {
            return Err(record_error(
                "INVALID_FIELD",
                &format!("No such column '{name}' on sobject of type {object}"),
                &[name],
            ));
        };
        if (creating && !c) || (!creating && !u) {
            return Err(record_error(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                &format!("Unable to create/update fields: {name}. Please check the security settings of this field."),
                &[name],
            ));
        }
        let s_val = value.as_str().unwrap_or("");
        let bad_pick = |allowed: &[&str]| !value.is_null() && !allowed.contains(&s_val);
        let pick_err = |field: &str| {
            Err(record_error(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                &format!("{field}: bad value for restricted picklist field: {s_val}"),
                &[field],
            ))
        };
        match (object, name.as_str()) {
            ("Lead", "Status") if bad_pick(&LEAD_STATUSES) => return pick_err("Status"),
            ("Opportunity", "StageName") if bad_pick(&STAGES) => return pick_err("StageName"),
            ("Task", "Status") if bad_pick(&TASK_STATUSES) => return pick_err("Status"),
            ("Task", "CallType") if bad_pick(&["Inbound", "Outbound", "Internal"]) => return pick_err("CallType"),
            ("Task", "TaskSubtype") if bad_pick(&["Task", "Email", "LinkedIn", "List Email", "Cadence", "Call"]) => {
                return pick_err("TaskSubtype");
            }
            ("Task", "WhoId") => match s.records.get(s_val) {
                Some(r) if r.object == "Lead" || r.object == "Contact" => {}
                _ => {
                    return Err(record_error(
                        "INVALID_CROSS_REFERENCE_KEY",
                        "Name ID: id value of incorrect type",
                        &["WhoId"],
                    ));
                }
            },
            ("Task", "WhatId") if !s.records.contains_key(s_val) => {
                return Err(record_error(
                    "INVALID_CROSS_REFERENCE_KEY",
                    "Related To ID: id value of incorrect type",
                    &["WhatId"],
                ));
            }
            ("Task", "Subject" | "CallDisposition") if s_val.chars().count() > 255 => {
                return Err(record_error("STRING_TOO_LONG", &format!("{name}: data value too large"), &[name]));
            }
            _ => {}
        }
    }
    Ok(())
}

fn object_of(r: &Value) -> String {
    r["attributes"]["type"].as_str().unwrap_or("").to_owned()
}

fn create(s: &mut SimState, r: Value) -> Result<Value, Value> {
    let object = object_of(&r);
    let Value::Object(mut fields) = r else { return Err(record_error("JSON_PARSER_ERROR", "not an object", &[])) };
    fields.remove("attributes");
    validate(s, &object, &fields, true)?;
    match object.as_str() {
        "Lead" if !fields.contains_key("LastName") || !fields.contains_key("Company") => {
            return Err(record_error(
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [LastName, Company]",
                &["LastName", "Company"],
            ));
        }
        "Task" => {
            fields.entry("Status").or_insert(json!("Not Started"));
            if let Some(key) = fields.get(CALL_KEY_FIELD)
                && let Some((id, _)) =
                    s.records.iter().find(|(_, x)| x.object == "Task" && x.fields.get(CALL_KEY_FIELD) == Some(key))
            {
                return Err(record_error(
                    "DUPLICATE_VALUE",
                    &format!("duplicate value found: {CALL_KEY_FIELD} duplicates value on record with id: {id}"),
                    &[CALL_KEY_FIELD],
                ));
            }
        }
        _ => {}
    }
    if object == "Lead" {
        fields.entry("Status").or_insert(json!("Open - Not Contacted"));
        fields.entry("IsConverted").or_insert(json!(false));
    }
    let id = s.new_id(&object);
    s.records.insert(id.clone(), Record { object, fields });
    s.touch(&id);
    s.created_at.insert(id.clone(), std::time::Instant::now());
    Ok(json!({ "id": id, "success": true, "errors": [] }))
}

fn update(s: &mut SimState, r: Value, known_id: Option<String>) -> Result<Value, Value> {
    let object = object_of(&r);
    let Value::Object(mut fields) = r else { return Err(record_error("JSON_PARSER_ERROR", "not an object", &[])) };
    fields.remove("attributes");
    let id = known_id
        .or_else(|| fields.remove("Id").or_else(|| fields.remove("id")).and_then(|v| v.as_str().map(str::to_owned)))
        .unwrap_or_default();
    if let Some(code) = s.poisoned.get(&id) {
        return Err(record_error(code, "simulated failure for this record", &[]));
    }
    match s.records.get(&id) {
        Some(x) if x.object == object => {}
        Some(_) | None => return Err(record_error("ENTITY_IS_DELETED", "entity is deleted", &[])),
    }
    validate(s, &object, &fields, false)?;
    let rec = s.records.get_mut(&id).unwrap();
    for (k, v) in fields {
        rec.fields.insert(k, v);
    }
    s.touch(&id);
    Ok(json!({ "id": id, "success": true, "errors": [] }))
}

fn upsert(s: &mut SimState, object: &str, field: &str, mut r: Value) -> Result<Value, Value> {
    r["attributes"] = json!({ "type": object });
    let value = r[field].clone();
    if value.is_null() {
        return Err(record_error("MISSING_ARGUMENT", &format!("{field} not specified"), &[field]));
    }
    let existing: Vec<String> = s
        .records
        .iter()
        .filter(|(_, x)| x.object == object && x.fields.get(field) == Some(&value))
        .map(|(id, _)| id.clone())
        .collect();
    match existing.as_slice() {
        [] => create(s, r).map(|mut v| {
            v["created"] = json!(true);
            v
        }),
        [id] => update(s, r, Some(id.clone())).map(|mut v| {
            v["created"] = json!(false);
            v
        }),
        _ => Err(record_error("DUPLICATE_EXTERNAL_ID", "more than one record found for external id field", &[field])),
    }
}

/// The SOQL the adapter and the checks send: `SELECT f, ... FROM Object WHERE ...` with
/// `IN ('..')` lists, `!= null` and `IsConverted = false`.
fn soql(s: &SimState, q: &str) -> (u16, Value) {
    let Some((select, rest)) = q.strip_prefix("SELECT ").and_then(|x| x.split_once(" FROM ")) else {
        return (400, errors("MALFORMED_QUERY", "unexpected token"));
    };
    let fields: Vec<&str> = select.split(',').map(str::trim).collect();
    let object = rest.split_whitespace().next().unwrap_or("");
    let where_ = rest.split_once(" WHERE ").map(|(_, w)| w).unwrap_or("");
    let lists = in_lists(where_);
    let picklist = |values: &[&str]| -> Vec<Value> {
        values.iter().map(|v| json!({ "attributes": { "type": object }, "ApiName": v, "MasterLabel": v })).collect()
    };
    let records: Vec<Value> = match object {
        "LeadStatus" => picklist(&LEAD_STATUSES),
        "OpportunityStage" => picklist(&STAGES),
        "TaskStatus" => picklist(&TASK_STATUSES),
        "Task" if where_.contains("WhoId IN") => {
            let ids: BTreeSet<&str> = lists.iter().flatten().map(String::as_str).collect();
            select_fields(s, "Task", &fields, |f| {
                f.get(CALL_KEY_FIELD).is_some_and(|v| !v.is_null())
                    && f.get("CallDisposition").and_then(Value::as_str).is_some_and(|d| !d.is_empty())
                    && ["WhoId", "WhatId"]
                        .iter()
                        .any(|k| f.get(*k).and_then(Value::as_str).is_some_and(|v| ids.contains(v)))
            })
        }
        // The screen pop's: `WHERE WhoId = '…' AND IsClosed = true|false ORDER BY … LIMIT n`.
        "Task" if where_.starts_with("WhoId = ") => {
            let who = where_.trim_start_matches("WhoId = '").split('\'').next().unwrap_or("").to_owned();
            let closed = where_.contains("IsClosed = true");
            let limit: usize =
                where_.rsplit_once(" LIMIT ").and_then(|(_, n)| n.trim().parse().ok()).unwrap_or(usize::MAX);
            let mut rows: Vec<(String, Value)> = s
                .records
                .iter()
                .filter(|(_, r)| {
                    r.object == "Task" && r.fields.get("WhoId").and_then(Value::as_str) == Some(who.as_str())
                })
                .filter(|(_, r)| (r.fields.get("Status").and_then(Value::as_str) == Some("Completed")) == closed)
                .map(|(id, r)| {
                    let key = if closed { "CreatedDate" } else { "ActivityDate" };
                    let sort = r.fields.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
                    let row = select_by_id(s, "Task", &fields, &BTreeSet::from([id.as_str()]));
                    (sort, row.into_iter().next().unwrap_or(Value::Null))
                })
                .collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            if closed {
                rows.reverse();
            }
            rows.into_iter().take(limit).map(|(_, r)| r).collect()
        }
        "Task" => {
            let keys: BTreeSet<&str> = lists.first().into_iter().flatten().map(String::as_str).collect();
            let field = where_.split_whitespace().next().unwrap_or("");
            select_fields(s, "Task", &fields, |f| {
                f.get(field).and_then(Value::as_str).is_some_and(|v| keys.contains(v))
            })
        }
        "Lead" | "Contact" | "Opportunity" if where_.starts_with("Id IN") => {
            let ids: BTreeSet<&str> = lists.iter().flatten().map(String::as_str).collect();
            select_by_id(s, object, &fields, &ids)
        }
        "OpportunityContactRole" => {
            // ... WHERE Opportunity.IsClosed = false AND ContactId IN (...)
            let contacts: BTreeSet<&str> = lists.iter().flatten().map(String::as_str).collect();
            let open_only = where_.contains("Opportunity.IsClosed = false");
            s.records
                .iter()
                .filter(|(_, r)| r.object == "OpportunityContactRole")
                .filter(|(_, r)| r.fields.get("ContactId").and_then(Value::as_str).is_some_and(|c| contacts.contains(c)))
                .filter(|(_, r)| {
                    let opp = r.fields.get("OpportunityId").and_then(Value::as_str).unwrap_or("");
                    !open_only || !s.is_closed(opp)
                })
                .map(|(id, r)| {
                    let opp = r.fields.get("OpportunityId").and_then(Value::as_str).unwrap_or("").to_owned();
                    let mut out = Map::new();
                    out.insert("attributes".into(), json!({ "type": "OpportunityContactRole" }));
                    for f in &fields {
                        let v = match *f {
                            "Id" => json!(id),
                            "Opportunity.LastModifiedDate" => {
                                out.insert(
                                    "Opportunity".into(),
                                    json!({ "attributes": { "type": "Opportunity" }, "LastModifiedDate": s.last_modified(&opp) }),
                                );
                                continue;
                            }
                            other => r.fields.get(other).cloned().unwrap_or(Value::Null),
                        };
                        out.insert((*f).to_owned(), v);
                    }
                    Value::Object(out)
                })
                .collect()
        }
        "Opportunity" => {
            // ... WHERE IsClosed = false AND AccountId IN (SELECT AccountId FROM Contact WHERE Id IN (...))
            let contacts: BTreeSet<&str> = lists.iter().flatten().map(String::as_str).collect();
            let accounts: BTreeSet<String> = s
                .records
                .iter()
                .filter(|(id, r)| r.object == "Contact" && contacts.contains(id.as_str()))
                .filter_map(|(_, r)| r.fields.get("AccountId").and_then(Value::as_str).map(str::to_owned))
                .collect();
            let open_only = where_.contains("IsClosed = false");
            let mut rows: Vec<(Value, Value)> = s
                .records
                .iter()
                .filter(|(id, r)| r.object == "Opportunity" && (!open_only || !s.is_closed(id)))
                .filter(|(_, r)| {
                    r.fields.get("AccountId").and_then(Value::as_str).is_some_and(|a| accounts.contains(a))
                })
                .map(|(id, _)| {
                    let row = select_by_id(s, "Opportunity", &fields, &BTreeSet::from([id.as_str()]));
                    (s.last_modified(id), row.into_iter().next().unwrap_or(Value::Null))
                })
                .collect();
            // ORDER BY LastModifiedDate DESC
            rows.sort_by(|a, b| b.0.as_str().cmp(&a.0.as_str()));
            rows.into_iter().map(|(_, r)| r).collect()
        }
        "Lead" | "Contact" => {
            let phones: BTreeSet<&str> = lists.iter().flatten().map(String::as_str).collect();
            let unconverted = where_.contains("IsConverted = false");
            let mut rows = select_fields(s, object, &fields, |f| {
                (!unconverted || f.get("IsConverted") != Some(&json!(true)))
                    && ["Phone", "MobilePhone"]
                        .iter()
                        .any(|k| f.get(*k).and_then(Value::as_str).is_some_and(|v| phones.contains(v)))
            });
            // ORDER BY LastModifiedDate DESC: newest (highest id here) first.
            rows.reverse();
            rows
        }
        _ => return (400, errors("INVALID_TYPE", &format!("sObject type '{object}' is not supported."))),
    };
    (200, json!({ "totalSize": records.len(), "done": true, "records": records }))
}

fn select_by_id(s: &SimState, object: &str, fields: &[&str], ids: &BTreeSet<&str>) -> Vec<Value> {
    let wanted: BTreeSet<String> = ids.iter().map(|i| (*i).to_owned()).collect();
    let mut rows = Vec::new();
    for (id, r) in s.records.iter().filter(|(id, r)| r.object == object && wanted.contains(*id)) {
        let mut out = Map::new();
        out.insert("attributes".into(), json!({ "type": object }));
        for f in fields {
            let v = match *f {
                "Id" => json!(id),
                "LastModifiedDate" => s.last_modified(id),
                other => {
                    insert_field(s, &r.fields, other, &mut out);
                    continue;
                }
            };
            out.insert((*f).to_owned(), v);
        }
        rows.push(Value::Object(out));
    }
    rows
}

fn select_fields(
    s: &SimState,
    object: &str,
    fields: &[&str],
    keep: impl Fn(&Map<String, Value>) -> bool,
) -> Vec<Value> {
    s.records
        .iter()
        .filter(|(_, r)| r.object == object && keep(&r.fields))
        .map(|(id, r)| {
            let mut out = Map::new();
            out.insert(
                "attributes".into(),
                json!({ "type": object, "url": format!("/services/data/v67.0/sobjects/{object}/{id}") }),
            );
            for f in fields {
                if *f == "Id" {
                    out.insert("Id".to_owned(), json!(id));
                } else {
                    insert_field(s, &r.fields, f, &mut out);
                }
            }
            Value::Object(out)
        })
        .collect()
}

/// One selected field as Salesforce answers it: `Name` composed from FirstName/LastName when
/// the record has none, and `Owner.Name` / `Account.Name` as nested objects (null without a
/// related record).
fn insert_field(s: &SimState, fields: &Map<String, Value>, name: &str, out: &mut Map<String, Value>) {
    if let Some((relation, field)) = name.split_once('.') {
        let related =
            fields.get(&format!("{relation}Id")).and_then(Value::as_str).and_then(|rid| s.records.get(rid)).map(
                |rel| {
                    let mut nested = Map::new();
                    nested.insert("attributes".into(), json!({ "type": rel.object }));
                    insert_field(s, &rel.fields, field, &mut nested);
                    Value::Object(nested)
                },
            );
        out.insert(relation.to_owned(), related.unwrap_or(Value::Null));
        return;
    }
    let v = match (name, fields.get(name)) {
        (_, Some(v)) => v.clone(),
        ("Name", None) => {
            let parts: Vec<&str> =
                ["FirstName", "LastName"].iter().filter_map(|k| fields.get(*k).and_then(Value::as_str)).collect();
            if parts.is_empty() { Value::Null } else { json!(parts.join(" ")) }
        }
        _ => Value::Null,
    };
    out.insert(name.to_owned(), v);
}

/// Every `IN (...)` list of quoted literals, unescaped.
fn in_lists(where_: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = where_;
    while let Some(at) = rest.find("IN (") {
        rest = &rest[at + 4..];
        let mut values = Vec::new();
        let mut chars = rest.char_indices();
        let mut end = rest.len();
        let mut current: Option<String> = None;
        while let Some((i, c)) = chars.next() {
            match (&mut current, c) {
                (Some(v), '\\') => {
                    if let Some((_, n)) = chars.next() {
                        v.push(match n {
                            'n' => '\n',
                            'r' => '\r',
                            o => o,
                        });
                    }
                }
                (Some(_), '\'') => values.push(current.take().unwrap_or_default()),
                (Some(v), c) => v.push(c),
                (None, '\'') => current = Some(String::new()),
                (None, ')') => {
                    end = i;
                    break;
                }
                (None, _) => {}
            }
        }
        out.push(values);
        rest = &rest[end..];
    }
    out
}

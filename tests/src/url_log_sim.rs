//! VICIdial's URL log and its URL Log Report (`vicidial/AST_url_log_report.php`), as a real
//! HTTP server (axum on 127.0.0.1:0) answering exactly what the PHP answers (read from
//! `www/vicidial/AST_url_log_report.php`):
//! - HTTP Basic auth; a wrong login is a 401 whose body echoes the password; a user without
//!   `user_level > 6` and `view_reports` gets HTTP 200 "You are not allowed to view reports";
//!   a user group without the report in `allowed_reports` a 401;
//! - `query_date` (one day), `query_date_D`/`query_date_T`, `url_type[]` (only as an array),
//!   `SUBMIT`, `file_download=1`;
//! - the CSV: header line, every field in `"` without escaping, spaces next to a `"` removed,
//!   rows ordered by `url_date`; an empty body (no header) when no row matches or `SUBMIT` or
//!   `url_type[]` is missing.
//!
//! [`UrlLogSim::fire`] plays VICIdial's `RUNurls`: logs the URL, requests it like PHP's
//! `file()` and stores the answer as `<date('r')>|<body>` (`;` removed, `addslashes`) or
//! `<date('r')>|PHP ERROR: …`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use chrono::{NaiveDateTime, Timelike, Utc};
use tokio::task::JoinHandle;

pub const PATH: &str = "/vicidial/AST_url_log_report.php";

/// A `vicidial_url_log` row.
#[derive(Clone, Debug)]
pub struct LoggedUrl {
    pub uniqueid: String,
    pub url_date: NaiveDateTime,
    pub url_type: String,
    pub response_sec: u32,
    pub url: String,
    pub url_response: String,
}

/// A `vicidial_users` row as far as the report looks at it, with its group's `allowed_reports`.
#[derive(Clone, Debug)]
pub struct ReportsUser {
    pub user: String,
    pub pass: String,
    pub user_level: u8,
    pub view_reports: bool,
    pub allowed_reports: String,
}

impl ReportsUser {
    /// Level 7, view_reports, the report allowed: what the README tells operators to set.
    pub fn allowed(user: &str, pass: &str) -> ReportsUser {
        ReportsUser {
            user: user.into(),
            pass: pass.into(),
            user_level: 7,
            view_reports: true,
            allowed_reports: "URL Log Report, Agent Time Detail".into(),
        }
    }
}

#[derive(Debug, Default)]
struct SimState {
    users: Vec<ReportsUser>,
    rows: Vec<LoggedUrl>,
    /// Raw query strings of the report requests.
    requests: Vec<String>,
}

#[derive(Debug)]
pub struct UrlLogSim {
    addr: SocketAddr,
    state: Arc<Mutex<SimState>>,
    task: JoinHandle<()>,
}

impl Drop for UrlLogSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl UrlLogSim {
    pub async fn start() -> UrlLogSim {
        let state = Arc::new(Mutex::new(SimState::default()));
        let app = Router::new().route(PATH, get(report)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        UrlLogSim { addr, state, task }
    }

    /// The `[vicidial] base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add_user(&self, user: ReportsUser) {
        self.state.lock().unwrap().users.push(user);
    }

    pub fn push(&self, row: LoggedUrl) {
        self.state.lock().unwrap().rows.push(row);
    }

    pub fn rows(&self) -> Vec<LoggedUrl> {
        self.state.lock().unwrap().rows.clone()
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// VICIdial's `RUNurls` for one URL: log it (server time is UTC here), request it, store
    /// the answer. Returns the stored response.
    pub async fn fire(&self, uniqueid: &str, url_type: &str, url: &str) -> String {
        // A MySQL DATETIME: whole seconds.
        let url_date = Utc::now().naive_utc().with_nanosecond(0).unwrap();
        let started = std::time::Instant::now();
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        let date = Utc::now().to_rfc2822();
        let stored = match client.get(url).send().await {
            Ok(r) if r.status().is_success() => {
                let body = r.text().await.unwrap_or_default();
                format!("{date}|{}", addslashes(&body.replace(';', "")))
            }
            Ok(r) => format!(
                "{date}|PHP ERROR: Type=2 - Message=file({url}): Failed to open stream: HTTP request failed! HTTP/1.1 {} - Line=17131 - File=/srv/www/agc/vdc_db_query.php",
                r.status()
            ),
            Err(_) => format!(
                "{date}|PHP ERROR: Type=2 - Message=file({url}): Failed to open stream: Connection refused - Line=17131 - File=/srv/www/agc/vdc_db_query.php"
            ),
        };
        self.push(LoggedUrl {
            uniqueid: uniqueid.into(),
            url_date,
            url_type: url_type.into(),
            response_sec: started.elapsed().as_secs() as u32,
            url: url.into(),
            url_response: stored.clone(),
        });
        stored
    }
}

fn addslashes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\'' | '"' | '\\') {
            out.push('\\');
        }
        if c == '\0' {
            out.push_str("\\0");
        } else {
            out.push(c);
        }
    }
    out
}

/// `preg_replace('/[^-_0-9a-zA-Z]/', '', …)` on the Basic auth user and password.
fn php_filter(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

fn text(status: StatusCode, body: String) -> Response {
    let mut r = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic realm=\"CONTACT-CENTER-ADMIN\""));
    }
    r
}

async fn report(State(state): State<Arc<Mutex<SimState>>>, headers: HeaderMap, uri: Uri) -> Response {
    let raw = uri.query().unwrap_or("").to_owned();
    let (user, pass) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(u, p)| (php_filter(u), php_filter(p))))
        .unwrap_or_default();
    let mut st = state.lock().unwrap();
    st.requests.push(raw.clone());
    let Some(u) = st.users.iter().find(|u| u.user == user && u.pass == pass && !user.is_empty()).cloned() else {
        return text(StatusCode::UNAUTHORIZED, format!("Login incorrect, please try again: |{user}|{pass}|BAD|\n"));
    };
    if !(u.user_level > 6 && u.view_reports) {
        return text(StatusCode::OK, format!("You are not allowed to view reports: |{user}|GOOD|\n"));
    }
    if !u.allowed_reports.contains("URL Log Report") && !u.allowed_reports.contains("ALL REPORTS") {
        return text(
            StatusCode::UNAUTHORIZED,
            format!("You are not allowed to view this report: |{user}|URL Log Report|\n"),
        );
    }
    let mut query_date = Utc::now().format("%Y-%m-%d").to_string();
    let (mut from, mut to) = (String::new(), String::new());
    let (mut submit, mut file_download) = (String::new(), String::new());
    let mut types: Vec<String> = Vec::new();
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        match k.as_ref() {
            "query_date" => query_date = v.into_owned(),
            "query_date_D" => from = v.into_owned(),
            "query_date_T" => to = v.into_owned(),
            "url_type[]" => types.push(v.into_owned()),
            "SUBMIT" => submit = v.into_owned(),
            "file_download" => file_download = v.into_owned(),
            _ => {}
        }
    }
    if from.len() < 6 {
        from = "00:00:00".into();
    }
    if to.len() < 6 {
        to = "23:59:59".into();
    }
    let at = |t: &str| NaiveDateTime::parse_from_str(&format!("{query_date} {t}"), "%Y-%m-%d %H:%M:%S").ok();
    let mut csv = String::new();
    if !submit.is_empty() && !types.is_empty() {
        let all = types.iter().any(|t| t == "--ALL--");
        let mut rows: Vec<&LoggedUrl> = st
            .rows
            .iter()
            .filter(|r| at(&from).is_some_and(|f| r.url_date >= f) && at(&to).is_some_and(|t| r.url_date <= t))
            .filter(|r| all || types.contains(&r.url_type))
            .collect();
        rows.sort_by_key(|r| r.url_date);
        if !rows.is_empty() {
            csv.push_str("\"UNIQUE ID\",\"URL DATE\",\"URL TYPE\",\"RESP SEC\",\"URL\",\"URL RESPONSE\"\n");
            for r in rows {
                csv.push_str(&format!(
                    "\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",\"{}\"\n",
                    r.uniqueid,
                    r.url_date.format("%Y-%m-%d %H:%M:%S"),
                    r.url_type,
                    r.response_sec,
                    r.url,
                    r.url_response
                ));
            }
        }
    }
    if file_download.is_empty() || file_download == "0" {
        return text(StatusCode::OK, "<HTML>\n<HEAD>\n<TITLE>URL Log Report</TITLE></HEAD><BODY>\n".into());
    }
    // `preg_replace('/ +\"/', '"')` and `preg_replace('/\" +/', '"')`.
    let mut cleaned = String::with_capacity(csv.len());
    for c in csv.chars() {
        if c == '"' {
            while cleaned.ends_with(' ') {
                cleaned.pop();
            }
        }
        if c == ' ' && cleaned.ends_with('"') {
            continue;
        }
        cleaned.push(c);
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/octet-stream")], cleaned).into_response()
}

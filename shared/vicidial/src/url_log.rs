//! VICIdial's URL log, read through its URL Log Report (`vicidial/AST_url_log_report.php`)
//! as CSV: every Start Call / Dispo Call / API New Lead URL VICIdial fired, fully substituted,
//! with the answer it got. Facts: `shared/reference/crm-ui-and-backfill.md` §C; checked
//! against the report's PHP:
//! - HTTP Basic auth; the user needs `user_level > 6` and `view_reports = 1`, and its user
//!   group's `allowed_reports` must hold "URL Log Report" or "ALL REPORTS";
//! - one request covers one day (`query_date`), from `query_date_D` to `query_date_T`
//!   (server-local `HH:MM:SS`); `url_type[]` must be an array, `SUBMIT` must be set and
//!   `file_download=1` answers CSV;
//! - the CSV has a header line, every field in `"` but nothing escaped, and no row limit; a
//!   day without rows (or a request without `SUBMIT`/`url_type[]`) answers an empty body
//!   without the header;
//! - refusals are text, not CSV: "You are not allowed to view reports" (HTTP 200),
//!   "Login incorrect" (401; it echoes the password, so a reply body is never shown),
//!   "Too many login attempts" (200), "not allowed to view this report" (401).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use vicibridge_core::ports::{SecretStore, SecretsError};
use vicibridge_core::secrets::Secret;

/// Path of the report under `[vicidial] base_url`.
pub const REPORT_PATH: &str = "/vicidial/AST_url_log_report.php";

/// A day's report can be large (every URL of every call); this is only a guard.
const MAX_REPORT_BYTES: usize = 256 * 1024 * 1024;

/// `vicidial_url_log.url_type` values vicibridge reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UrlType {
    /// Start Call URL.
    Start,
    /// Dispo Call URL.
    Dispo,
    /// API New Lead URL.
    ApiNewLead,
}

impl UrlType {
    pub const ALL: [UrlType; 3] = [UrlType::Start, UrlType::Dispo, UrlType::ApiNewLead];

    pub fn as_str(self) -> &'static str {
        match self {
            UrlType::Start => "start",
            UrlType::Dispo => "dispo",
            UrlType::ApiNewLead => "apinewlead",
        }
    }
}

/// One logged URL. `url` carries the ingest token: never log it, nor the row.
#[derive(Clone, PartialEq, Eq)]
pub struct UrlLogRow {
    pub uniqueid: String,
    /// Server-local time VICIdial logged the URL (before fetching it).
    pub url_date: NaiveDateTime,
    pub url_type: String,
    pub url: String,
    /// As stored: empty, `[<date>|]PHP ERROR: …`, or `<RFC 2822 date>|<body>` (semicolons
    /// removed, `addslashes` applied).
    pub response: String,
}

impl fmt::Debug for UrlLogRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UrlLogRow")
            .field("uniqueid", &self.uniqueid)
            .field("url_date", &self.url_date)
            .field("url_type", &self.url_type)
            .finish_non_exhaustive()
    }
}

/// What VICIdial recorded as the answer to a logged URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoggedAnswer<'a> {
    /// Never fetched: the agent's browser did not get to `RUNurls`, or is fetching it now.
    Empty,
    /// The fetch failed: connection refused, timeout, or an HTTP error status.
    PhpError,
    /// A 2xx answer, with the body VICIdial stored.
    Answered(&'a str),
}

impl UrlLogRow {
    pub fn answer(&self) -> LoggedAnswer<'_> {
        let response = self.response.trim();
        // `date('r')` has no `|`: the body starts after the first one. The Dispo URL's
        // `RUNurls` writes `<date>|PHP ERROR: …`, the Start URL's `PHP ERROR: …` alone.
        let body = response.split_once('|').map_or(response, |(_, body)| body);
        if response.is_empty() {
            LoggedAnswer::Empty
        } else if response.starts_with("PHP ERROR") || body.starts_with("PHP ERROR") {
            LoggedAnswer::PhpError
        } else {
            LoggedAnswer::Answered(body)
        }
    }
}

/// A CSV record that could not be read, by its first line number in the reply (never its
/// content: it may carry the token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GarbledRow {
    pub line: usize,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UrlLogReport {
    pub rows: Vec<UrlLogRow>,
    pub garbled: Vec<GarbledRow>,
}

/// Why a report reply is not a report.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RefusedReport {
    #[error(
        "VICIdial refused the login of the reports user (Login incorrect): check vicidial.reports_user / reports_pass"
    )]
    BadLogin,
    #[error("VICIdial locked the reports user after too many failed logins; it unlocks after 15 minutes")]
    Locked,
    #[error("VICIdial refused the reports user's IP address (IP list of its user group)")]
    IpBlocked,
    #[error("the reports user may not view reports: set User Level 7 or more and \"View Reports\" = 1 on the user")]
    NoViewReports,
    #[error(
        "the reports user's user group may not run the URL Log Report: add \"URL Log Report\" (or ALL REPORTS) to its Allowed Reports"
    )]
    ReportNotAllowed,
    #[error("VICIdial answered something that is not the URL Log Report CSV (HTTP {status}); is base_url right?")]
    NotCsv { status: u16 },
}

#[derive(Debug, thiserror::Error)]
pub enum UrlLogError {
    #[error("[vicidial] base_url '{0}' must start with http:// or https://")]
    InvalidBaseUrl(String),
    #[error("the secret has no vicidial.reports_user / vicidial.reports_pass: add the VICIdial reports user")]
    NoCredentials,
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("cannot build the HTTP client for VICIdial: {0}")]
    Client(String),
    /// Network, timeout or a 5xx: try again later.
    #[error("cannot read the URL Log Report: {0}")]
    Unavailable(String),
    #[error("the URL Log Report is larger than {MAX_REPORT_BYTES} bytes for one day")]
    TooLarge,
    #[error(transparent)]
    Refused(#[from] RefusedReport),
}

impl UrlLogError {
    /// Whether a later run may succeed without an operator changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(self, UrlLogError::Unavailable(_) | UrlLogError::Secrets(SecretsError::Unavailable(_)))
    }
}

/// One request: part of one server-local day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayWindow {
    pub day: NaiveDate,
    pub from: NaiveTime,
    pub to: NaiveTime,
}

impl DayWindow {
    /// The day-sized requests covering `from..=to` (server-local times), in order.
    pub fn covering(from: NaiveDateTime, to: NaiveDateTime) -> Vec<DayWindow> {
        let mut out = Vec::new();
        let last = NaiveTime::from_hms_opt(23, 59, 59).unwrap_or(NaiveTime::MIN);
        let mut day = from.date();
        while day <= to.date() {
            let start = if day == from.date() { from.time() } else { NaiveTime::MIN };
            let end = if day == to.date() { to.time() } else { last };
            if start <= end {
                out.push(DayWindow { day, from: start, to: end });
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlLogOptions {
    /// A whole day's report, connect to last byte.
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for UrlLogOptions {
    fn default() -> Self {
        UrlLogOptions { timeout: Duration::from_secs(120), connect_timeout: Duration::from_secs(5) }
    }
}

/// The URL Log Report client.
pub struct UrlLogClient {
    endpoint: String,
    http: reqwest::Client,
    secrets: Arc<dyn SecretStore>,
    timeout: Duration,
}

impl fmt::Debug for UrlLogClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UrlLogClient").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl UrlLogClient {
    pub fn new(base_url: &str, secrets: Arc<dyn SecretStore>, options: UrlLogOptions) -> Result<Self, UrlLogError> {
        let base = base_url.trim().trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() <= "https://".len() {
            return Err(UrlLogError::InvalidBaseUrl(base_url.to_owned()));
        }
        let http = vicibridge_http::client_builder()
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .build()
            .map_err(|e| UrlLogError::Client(e.to_string()))?;
        Ok(UrlLogClient { endpoint: format!("{base}{REPORT_PATH}"), http, secrets, timeout: options.timeout })
    }

    /// The longest one day's download may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The rows of one window, oldest first.
    pub async fn fetch(&self, window: DayWindow, types: &[UrlType]) -> Result<UrlLogReport, UrlLogError> {
        let (user, pass) = self.credentials().await?;
        // Dates and types are ASCII without reserved characters; `:` is allowed in a query.
        let mut url = format!(
            "{}?query_date={}&query_date_D={}&query_date_T={}",
            self.endpoint,
            window.day.format("%Y-%m-%d"),
            window.from.format("%H:%M:%S"),
            window.to.format("%H:%M:%S")
        );
        // PHP makes an array of `url_type[]` only; a plain `url_type` is ignored (empty reply).
        for t in types {
            url.push_str("&url_type%5B%5D=");
            url.push_str(t.as_str());
        }
        url.push_str("&SUBMIT=SUBMIT&file_download=1");
        let response = self
            .http
            .get(&url)
            .basic_auth(&user, Some(pass.expose()))
            .send()
            .await
            .map_err(|e| UrlLogError::Unavailable(without_url(&e)))?;
        let status = response.status().as_u16();
        if response.status().is_server_error() {
            return Err(UrlLogError::Unavailable(format!("HTTP {status}")));
        }
        let body = read_capped(response).await?;
        Ok(parse_reply(status, &body)?)
    }

    async fn credentials(&self) -> Result<(String, Secret), UrlLogError> {
        let doc = self.secrets.current().await?;
        let v = doc.vicidial.as_ref().ok_or(UrlLogError::NoCredentials)?;
        match (&v.reports_user, &v.reports_pass) {
            (Some(user), Some(pass)) if !user.is_empty() => Ok((user.clone(), pass.clone())),
            _ => Err(UrlLogError::NoCredentials),
        }
    }
}

/// reqwest's message without the URL (the query is harmless, but keep errors short).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    std::error::Error::source(e).map_or_else(|| kind.to_owned(), |s| format!("{kind}: {s}"))
}

async fn read_capped(mut response: reqwest::Response) -> Result<String, UrlLogError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| UrlLogError::Unavailable(without_url(&e)))? {
        if body.len() + chunk.len() > MAX_REPORT_BYTES {
            return Err(UrlLogError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// A reply of the report: the CSV, an empty body (no rows), or a refusal.
pub fn parse_reply(status: u16, body: &str) -> Result<UrlLogReport, RefusedReport> {
    if body.trim().is_empty() && status == 200 {
        return Ok(UrlLogReport::default());
    }
    if let Some(refusal) = refusal(body) {
        return Err(refusal);
    }
    if status != 200 || !body.starts_with('"') {
        return Err(RefusedReport::NotCsv { status });
    }
    Ok(parse_csv(body))
}

fn refusal(body: &str) -> Option<RefusedReport> {
    let head = body.get(..body.len().min(300)).unwrap_or(body);
    [
        ("You are not allowed to view reports", RefusedReport::NoViewReports),
        ("not allowed to view this report", RefusedReport::ReportNotAllowed),
        ("Login incorrect", RefusedReport::BadLogin),
        ("Too many login attempts", RefusedReport::Locked),
        ("IP Address is not allowed", RefusedReport::IpBlocked),
    ]
    .into_iter()
    .find_map(|(text, refusal)| head.contains(text).then_some(refusal))
}

/// The first four fields of a record line: `"uniqueid","url_date","url_type","response_sec",`
/// then the rest (`"url","response"` and any continuation lines).
struct Prefix<'a> {
    uniqueid: &'a str,
    url_date: NaiveDateTime,
    url_type: &'a str,
    rest: &'a str,
}

fn prefix(line: &str) -> Option<Prefix<'_>> {
    let mut rest = line.strip_prefix('"')?;
    let mut fields = [""; 4];
    for field in &mut fields {
        let (value, after) = rest.split_once("\",\"")?;
        if value.contains(['"', '\n']) {
            return None;
        }
        *field = value;
        rest = after;
    }
    let [uniqueid, date, url_type, sec] = fields;
    let url_date = NaiveDateTime::parse_from_str(date, "%Y-%m-%d %H:%M:%S").ok()?;
    if !sec.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Prefix { uniqueid, url_date, url_type, rest })
}

/// The CSV as the PHP writes it: `"` around each field, nothing escaped. The first four
/// fields never hold a `"`, nor does the URL (VICIdial URL-encodes what it substitutes), so a
/// record is a line starting with a valid prefix, the URL runs to the next `","` and the
/// response to the `"` that ends the record — which may be on a later line, since a response
/// body can hold newlines and quotes.
pub fn parse_csv(text: &str) -> UrlLogReport {
    let mut report = UrlLogReport::default();
    // (first line number, record text)
    let mut records: Vec<(usize, String)> = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let number = i + 1;
        if number == 1 {
            // The header: `"UNIQUE ID","URL DATE",…` (translated for other languages).
            continue;
        }
        if prefix(line).is_some() {
            records.push((number, line.to_owned()));
        } else if let Some((_, record)) = records.last_mut() {
            record.push('\n');
            record.push_str(line);
        } else if !line.trim().is_empty() {
            report.garbled.push(GarbledRow { line: number, reason: "not a URL log record" });
        }
    }
    for (line, record) in records {
        let record = record.trim_end_matches(['\n', '\r']);
        match row(record) {
            Ok(row) => report.rows.push(row),
            Err(reason) => report.garbled.push(GarbledRow { line, reason }),
        }
    }
    report
}

fn row(record: &str) -> Result<UrlLogRow, &'static str> {
    let p = prefix(record).ok_or("not a URL log record")?;
    let (url, response) = p.rest.split_once("\",\"").ok_or("no URL RESPONSE field")?;
    let response = response.strip_suffix('"').ok_or("the URL RESPONSE field is not closed")?;
    if url.is_empty() || url.contains(['"', '\n']) {
        return Err("the URL field is not a URL");
    }
    Ok(UrlLogRow {
        uniqueid: p.uniqueid.to_owned(),
        url_date: p.url_date,
        url_type: p.url_type.to_owned(),
        url: url.to_owned(),
        response: response.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "\"UNIQUE ID\",\"URL DATE\",\"URL TYPE\",\"RESP SEC\",\"URL\",\"URL RESPONSE\"\n";

    #[test]
    fn reads_rows_with_quotes_and_newlines_in_the_response() {
        let csv = format!(
            "{HEADER}\"1795298900.1\",\"2026-12-06 10:00:01\",\"dispo\",\"0\",\"http://b/vicidial/dispo?token=t&lead_id=1\",\"Sun, 06 Dec 2026 10:00:01 -0500|OK dispo queued lead=1\"\n\
             \"1795298900.2\",\"2026-12-06 10:00:02\",\"dispo\",\"5\",\"http://b/vicidial/dispo?lead_id=2\",\"Sun, 06 Dec 2026 10:00:07 -0500|PHP ERROR: Type=2 Message=file(http://b): Failed to open stream\"\n\
             \"1795298900.3\",\"2026-12-06 10:00:03\",\"start\",\"0\",\"http://b/vicidial/call-start?lead_id=3\",\"\"\n\
             \"1795298900.4\",\"2026-12-06 10:00:04\",\"dispo\",\"0\",\"http://b/x\",\"Sun, 06 Dec 2026 10:00:04 -0500|<html>\n<p class=\\\"x\\\">\",\"\n</html>\"\n"
        );
        let r = parse_csv(&csv);
        assert_eq!(r.garbled, []);
        assert_eq!(r.rows.len(), 4);
        assert_eq!(r.rows[0].answer(), LoggedAnswer::Answered("OK dispo queued lead=1"));
        assert_eq!(r.rows[1].answer(), LoggedAnswer::PhpError);
        assert_eq!(r.rows[2].answer(), LoggedAnswer::Empty);
        assert_eq!(r.rows[2].url_type, "start");
        assert!(r.rows[3].response.ends_with("\",\"\n</html>"), "{:?}", r.rows[3].response);
    }

    #[test]
    fn garbled_records_are_counted_by_line_never_shown() {
        let csv = format!(
            "{HEADER}\"1.1\",\"2026-12-06 10:00:01\",\"dispo\",\"0\",\"http://b/vicidial/dispo?token=secret\"\n\
             \"1.2\",\"2026-12-06 10:00:02\",\"dispo\",\"0\",\"http://b/vicidial/dispo?lead_id=2\",\"\"\n"
        );
        let r = parse_csv(&csv);
        assert_eq!(r.rows.len(), 1);
        assert_eq!(r.garbled, [GarbledRow { line: 2, reason: "no URL RESPONSE field" }]);
        assert!(!format!("{r:?}").contains("secret"));
    }

    #[test]
    fn refusals_are_recognised_and_empty_means_no_rows() {
        assert_eq!(parse_reply(200, ""), Ok(UrlLogReport::default()));
        assert_eq!(
            parse_reply(200, "You are not allowed to view reports: |rep|GOOD|\n"),
            Err(RefusedReport::NoViewReports)
        );
        assert_eq!(parse_reply(401, "Login incorrect, please try again: |rep|pw|BAD|\n"), Err(RefusedReport::BadLogin));
        assert_eq!(parse_reply(200, "<HTML><HEAD>"), Err(RefusedReport::NotCsv { status: 200 }));
    }

    #[test]
    fn windows_are_one_day_each() {
        let at = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap_or_default();
        let w = DayWindow::covering(at("2026-12-05 22:00:00"), at("2026-12-07 01:30:00"));
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].from.to_string(), "22:00:00");
        assert_eq!(w[0].to.to_string(), "23:59:59");
        assert_eq!(w[1].from, NaiveTime::MIN);
        assert_eq!(w[2].to.to_string(), "01:30:00");
    }
}

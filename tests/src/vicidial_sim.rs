//! A VICIdial non-agent API simulator: a real HTTP server at `/vicidial/non_agent_api.php`
//! answering `add_lead` and `lead_search` with the exact strings of
//! `shared/reference/vicidial.md` (§1, §2, §3, §5, §13), plus fault injection.
//!
//! Written on plain tokio sockets rather than a web framework: the faults need control of the
//! wire (close the connection after the insert without a byte of reply, 500 with a 0-byte
//! body), and the API New Lead URL request must carry only `Host` and `Connection: close`,
//! like PHP's `file()` (§3), which an HTTP client library would not send.
//!
//! Simulated: `add_lead`, `lead_search`, `agent_status` (agents logged out, paused, ready, in a
//! call on a lead, dispositioning: see [`SimAgentState`]) and `coffee`'s 418; any other function answers
//! `ERROR: NO FUNCTION SPECIFIED`. Parameters are read like PHP: the query string first, then a form body (GET wins, §1).
//! Every response carries `Connection: close`, so each request is its own connection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

mod agent_api;

pub use agent_api::{AGENT_API_PATH, ExternalDialCall};

pub const PATH: &str = "/vicidial/non_agent_api.php";

/// A `vicidial_users` row, reduced to what the API checks (§1.1).
#[derive(Clone, Debug)]
pub struct SimUser {
    pub user: String,
    pub pass: String,
    pub user_level: u8,
    pub active: bool,
    pub modify_leads: u8,
    pub vdc_agent_api_access: bool,
    pub view_reports: bool,
    /// Space-delimited, matched as ` {function} ` (§1.1).
    pub api_allowed_functions: String,
    /// `api_list_restrict=1`: the lists the user group may use.
    pub allowed_lists: Option<Vec<String>>,
}

impl SimUser {
    /// A user allowed to add and search leads.
    pub fn api(user: &str, pass: &str) -> SimUser {
        SimUser {
            user: user.to_owned(),
            pass: pass.to_owned(),
            user_level: 8,
            active: true,
            modify_leads: 1,
            vdc_agent_api_access: true,
            view_reports: true,
            api_allowed_functions: " ALL_FUNCTIONS ".to_owned(),
            allowed_lists: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct SimList {
    pub list_name: String,
    pub list_description: String,
    /// `*CAMP` duplicate checks on a list without a campaign are an SQL error (§2.2).
    pub campaign_id: Option<String>,
    /// List "API New Lead URL": non-empty wins over the system one, `---DISABLED---` turns it
    /// off for the list, empty falls back to the system one (§3).
    pub api_new_lead_url: String,
}

/// A stored lead: every column as VICIdial stored it (after its filters).
#[derive(Clone, Debug)]
pub struct SimLead {
    pub lead_id: u64,
    pub entry: SystemTime,
    pub columns: BTreeMap<String, String>,
}

impl SimLead {
    /// A column, `""` when unset.
    pub fn get(&self, column: &str) -> &str {
        self.columns.get(column).map_or("", String::as_str)
    }
}

/// An agent (a `vicidial_users` row of level 1) and, when logged in, its
/// `vicidial_live_agents` row.
#[derive(Clone, Debug)]
pub struct SimAgent {
    pub full_name: String,
    pub user_group: String,
    pub user_level: u8,
    pub calls_today: u32,
    /// `None`: not logged in to the agent screen.
    pub live: Option<SimLive>,
}

#[derive(Clone, Debug)]
pub struct SimLive {
    pub campaign_id: String,
    /// `conf_exten`, the Web Form/Script `session_id`.
    pub session_id: String,
    pub state: SimAgentState,
    /// The pause code of the agent's current `vicidial_agent_log` row; VICIdial keeps
    /// printing it after the agent goes READY, until the next log row.
    pub pause_code: String,
}

/// What the agent is doing, as `vicidial_live_agents` (+ the live call) records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimAgentState {
    Paused,
    Ready,
    /// A call is being sent to the agent.
    Queue {
        lead_id: u64,
    },
    /// In a call; `customer_gone`: the customer's channel is gone (sub-status DEAD).
    InCall {
        lead_id: u64,
        customer_gone: bool,
    },
    /// Paused after the call, dispositioning the lead (sub-status DISPO).
    Dispo {
        lead_id: u64,
    },
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct SimRequest {
    /// When the request was completely read.
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub raw_query: String,
    pub raw_body: String,
    pub headers: Vec<(String, String)>,
    /// Decoded, query string first then form body (PHP's `$_GET` before `$_POST`).
    pub params: HashMap<String, String>,
}

impl SimRequest {
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map_or("", String::as_str)
    }
}

/// A fault for the next request of one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 500, empty body, nothing inserted (a PHP fatal before the insert, §1).
    Http500Empty,
    /// The lead is inserted, then HTTP 500 whose body is only the SUCCESS line (§13.1).
    Http500AfterInsert,
    /// Process normally, then wait this long before answering.
    Delay(Duration),
    /// Process normally (the lead is inserted), then close the connection without a reply.
    DropAfterInsert,
}

/// One API New Lead URL request the simulator made (§3).
#[derive(Clone, Debug)]
pub struct NewLeadCall {
    /// The URL after tag substitution.
    pub url: String,
    /// The request exactly as written to the socket.
    pub request: String,
    /// The receiver's status, `None` if it could not be reached or read.
    pub status: Option<u16>,
    pub body: String,
}

#[derive(Debug)]
struct State {
    users: Vec<SimUser>,
    lists: HashMap<String, SimList>,
    leads: Vec<SimLead>,
    next_lead_id: u64,
    next_hopper_id: u64,
    dnc: HashSet<String>,
    agents: BTreeMap<String, SimAgent>,
    agent_api: agent_api::AgentApiState,
    /// Every answer waits this long (a VICIdial under load).
    answer_delay: Duration,
    failed_logins: HashMap<String, Vec<Instant>>,
    requests: Vec<SimRequest>,
    faults: VecDeque<(String, Fault)>,
    api_new_lead_url: Option<String>,
    new_lead_calls: Vec<NewLeadCall>,
    new_lead_timeout: Duration,
    /// Static pages of VICIdial's web server (the agent screen's Script tab), by path.
    pages: HashMap<String, String>,
}

/// The running simulator; the server stops when this is dropped.
#[derive(Debug)]
pub struct VicidialSim {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for VicidialSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Failed logins that lock a user, and for how long (§1.1, §13.8).
const LOCK_AFTER: usize = 10;
const LOCK_WINDOW: Duration = Duration::from_secs(15 * 60);

impl VicidialSim {
    /// Listens on 127.0.0.1:0 with one API user `6666` / `1234`, list 999 ("Default inbound
    /// list", campaign TESTCAMP), list 5000 (campaign TESTCAMP) and list 7000 (no campaign).
    pub async fn start() -> VicidialSim {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the VICIdial simulator");
        let addr = listener.local_addr().expect("simulator address");
        let mut lists = HashMap::new();
        let list = |name: &str, campaign: Option<&str>| SimList {
            list_name: name.to_owned(),
            list_description: String::new(),
            campaign_id: campaign.map(str::to_owned),
            api_new_lead_url: String::new(),
        };
        lists.insert("999".to_owned(), list("Default inbound list", Some("TESTCAMP")));
        lists.insert("5000".to_owned(), list("Outbound A", Some("TESTCAMP")));
        lists.insert("7000".to_owned(), list("Orphan list", None));
        let state = Arc::new(Mutex::new(State {
            users: vec![SimUser::api("6666", "1234")],
            lists,
            leads: Vec::new(),
            next_lead_id: 1,
            next_hopper_id: 1,
            dnc: HashSet::new(),
            agents: BTreeMap::new(),
            agent_api: agent_api::AgentApiState::default(),
            answer_delay: Duration::ZERO,
            failed_logins: HashMap::new(),
            requests: Vec::new(),
            faults: VecDeque::new(),
            api_new_lead_url: None,
            new_lead_calls: Vec::new(),
            new_lead_timeout: Duration::from_secs(10),
            pages: HashMap::new(),
        }));
        let server_state = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { continue };
                let state = server_state.clone();
                tokio::spawn(async move {
                    serve_connection(socket, state).await;
                });
            }
        });
        VicidialSim { addr, state, task }
    }

    /// `http://127.0.0.1:{port}`: the `[vicidial] base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Serves `html` at `path` from VICIdial's origin, as the agent screen's Script tab would
    /// (a page that frames the screen pop).
    pub fn serve_page(&self, path: &str, html: &str) {
        self.state().pages.insert(path.to_owned(), html.to_owned());
    }

    pub fn add_user(&self, user: SimUser) {
        let mut s = self.state();
        s.users.retain(|u| !u.user.eq_ignore_ascii_case(&user.user));
        s.users.push(user);
    }

    pub fn add_list(&self, list_id: &str, list: SimList) {
        self.state().lists.insert(list_id.to_owned(), list);
    }

    /// A level-1 agent user in group ADMIN, logged out.
    pub fn add_agent(&self, user: &str, full_name: &str) {
        let agent = SimAgent {
            full_name: full_name.to_owned(),
            user_group: "ADMIN".to_owned(),
            user_level: 1,
            calls_today: 0,
            live: None,
        };
        self.state().agents.insert(user.to_owned(), agent);
    }

    /// The agent logs in to `campaign` on conference `session_id`, paused.
    pub fn log_in_agent(&self, user: &str, campaign: &str, session_id: &str) {
        let mut s = self.state();
        let agent = s.agents.get_mut(user).expect("add_agent first");
        agent.live = Some(SimLive {
            campaign_id: campaign.to_owned(),
            session_id: session_id.to_owned(),
            state: SimAgentState::Paused,
            pause_code: String::new(),
        });
    }

    pub fn log_out_agent(&self, user: &str) {
        self.state().agents.get_mut(user).expect("add_agent first").live = None;
    }

    /// Moves a logged-in agent to `state`; a call (QUEUE/INCALL) counts in `calls_today`.
    pub fn set_agent_state(&self, user: &str, state: SimAgentState) {
        let mut s = self.state();
        let agent = s.agents.get_mut(user).expect("add_agent first");
        if matches!(state, SimAgentState::Queue { .. }) {
            agent.calls_today += 1;
        }
        agent.live.as_mut().expect("log_in_agent first").state = state;
    }

    pub fn set_pause_code(&self, user: &str, code: &str) {
        let mut s = self.state();
        let agent = s.agents.get_mut(user).expect("add_agent first");
        agent.live.as_mut().expect("log_in_agent first").pause_code = code.to_owned();
    }

    /// Every answer (both APIs) waits `delay` before it is sent, e.g. for latency benchmarks.
    pub fn set_answer_delay(&self, delay: Duration) {
        self.state().answer_delay = delay;
    }

    pub fn add_dnc(&self, phone: &str) {
        self.state().dnc.insert(phone.to_owned());
    }

    /// The next request for `function` gets `fault`; faults are used in order.
    pub fn fail_next(&self, function: &str, fault: Fault) {
        self.state().faults.push_back((function.to_owned(), fault));
    }

    /// System API New Lead URL (§3); `None` disables it.
    pub fn set_api_new_lead_url(&self, url: Option<&str>) {
        self.state().api_new_lead_url = url.map(str::to_owned);
    }

    /// Stores a lead as if added earlier (`age` before now), e.g. for duplicate windows.
    pub fn seed_lead(&self, list_id: &str, phone: &str, vendor_lead_code: &str, age: Duration) -> u64 {
        let mut s = self.state();
        let id = s.next_lead_id;
        s.next_lead_id += 1;
        let mut columns = BTreeMap::new();
        for (k, v) in [
            ("list_id", list_id),
            ("phone_number", phone),
            ("phone_code", "1"),
            ("vendor_lead_code", vendor_lead_code),
            ("status", "NEW"),
            ("user", "seed"),
        ] {
            columns.insert(k.to_owned(), v.to_owned());
        }
        s.leads.push(SimLead { lead_id: id, entry: SystemTime::now() - age, columns });
        id
    }

    pub fn leads(&self) -> Vec<SimLead> {
        self.state().leads.clone()
    }

    pub fn lead(&self, lead_id: u64) -> Option<SimLead> {
        self.state().leads.iter().find(|l| l.lead_id == lead_id).cloned()
    }

    pub fn requests(&self) -> Vec<SimRequest> {
        self.state().requests.clone()
    }

    pub fn new_lead_calls(&self) -> Vec<NewLeadCall> {
        self.state().new_lead_calls.clone()
    }

    /// Failed logins recorded for `user` in the lockout window.
    pub fn failed_logins(&self, user: &str) -> usize {
        self.state().failed_logins.get(&user.to_ascii_lowercase()).map_or(0, Vec::len)
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

struct Incoming {
    method: String,
    path: String,
    raw_query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn read_request(socket: &mut TcpStream) -> Option<Incoming> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize =
        headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    let (path, raw_query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target, String::new()),
    };
    Some(Incoming { method, path, raw_query, headers, body })
}

/// What to send back.
struct Reply {
    status: u16,
    body: String,
    delay: Option<Duration>,
    drop_connection: bool,
    /// API New Lead URL to request before answering (§3: synchronous, after the output).
    new_lead_url: Option<String>,
}

impl Reply {
    fn ok(body: String) -> Reply {
        Reply { status: 200, body, delay: None, drop_connection: false, new_lead_url: None }
    }
    fn status(status: u16, body: &str) -> Reply {
        Reply { status, ..Reply::ok(body.to_owned()) }
    }
}

async fn serve_connection(mut socket: TcpStream, state: Arc<Mutex<State>>) {
    let Some(incoming) = read_request(&mut socket).await else { return };
    let reply = handle(&state, incoming);
    if let Some(url) = &reply.new_lead_url {
        let timeout = state.lock().unwrap().new_lead_timeout;
        let call = php_file_get(url, timeout).await;
        state.lock().unwrap().new_lead_calls.push(call);
    }
    let answer_delay = state.lock().unwrap().answer_delay;
    if let Some(d) = reply.delay.or((!answer_delay.is_zero()).then_some(answer_delay)) {
        tokio::time::sleep(d).await;
    }
    if reply.drop_connection {
        return;
    }
    let reason = match reply.status {
        200 => "OK",
        404 => "Not Found",
        418 => "I'm a teapot",
        500 => "Internal Server Error",
        _ => "Status",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.status,
        reply.body.len()
    );
    let _ = socket.write_all(head.as_bytes()).await;
    let _ = socket.write_all(reply.body.as_bytes()).await;
    let _ = socket.shutdown().await;
}

/// PHP's `file()` on an http URL: HTTP/1.0, `Host` and `Connection: close` only (§3).
async fn php_file_get(url: &str, timeout: Duration) -> NewLeadCall {
    let failed = |request: String| NewLeadCall { url: url.to_owned(), request, status: None, body: String::new() };
    let Some(rest) = url.strip_prefix("http://") else { return failed(String::new()) };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let exchange = async {
        let mut s = TcpStream::connect(host).await.ok()?;
        s.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        s.read_to_end(&mut response).await.ok()?;
        Some(String::from_utf8_lossy(&response).into_owned())
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Some(response)) => {
            let status = response.split(' ').nth(1).and_then(|s| s.parse().ok());
            let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
            NewLeadCall { url: url.to_owned(), request, status, body }
        }
        _ => failed(request),
    }
}

// ---------------------------------------------------------------------------------------------
// PHP-like decoding and encoding

/// `urldecode`: `+` is a space, `%XX` a byte.
pub fn php_urldecode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() && bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit() => {
                let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(bytes[i + 1]) * 16 + hex(bytes[i + 2]));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `urlencode`: letters, digits and `-_.` kept, space → `+`, the rest `%XX`.
pub fn php_urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn parse_pairs(raw: &str, into: &mut HashMap<String, String>, overwrite: bool) {
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = php_urldecode(k);
        if overwrite || !into.contains_key(&key) {
            into.insert(key, php_urldecode(v));
        }
    }
}

// VICIdial's input filters (§1, use_non_latin=0).
fn keep(s: &str, ok: impl Fn(char) -> bool) -> String {
    s.chars().filter(|c| ok(*c)).collect()
}
fn filter_login(s: &str) -> String {
    keep(s, |c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
fn filter_name(s: &str) -> String {
    keep(s, |c| c.is_ascii_alphanumeric() || " -'+_.".contains(c)).replace('+', " ")
}
fn filter_email(s: &str) -> String {
    keep(s, |c| c.is_ascii_alphanumeric() || " -'+.:/@%_".contains(c)).replace('+', " ")
}
fn filter_text(s: &str) -> String {
    keep(s, |c| !";#\"".contains(c)).replace('+', " ")
}

const NAME_COLUMNS: &[&str] = &[
    "title",
    "first_name",
    "middle_initial",
    "last_name",
    "address1",
    "address2",
    "address3",
    "city",
    "state",
    "province",
    "postal_code",
    "country_code",
];
const TEXT_COLUMNS: &[&str] = &["comments", "vendor_lead_code", "source_id"];
const OTHER_COLUMNS: &[&str] = &["gender", "date_of_birth", "security_phrase", "rank", "owner"];

/// Area code → GMT offset, for the SUCCESS line; unknown codes give an empty offset (§2.3).
fn gmt_offset(phone_code: &str, phone: &str) -> &'static str {
    if phone_code != "1" || phone.len() < 3 {
        return "";
    }
    match &phone[..3] {
        "727" | "305" | "212" => "-5.00",
        "312" | "214" => "-6.00",
        "415" | "206" => "-8.00",
        _ => "",
    }
}

// ---------------------------------------------------------------------------------------------
// The API

fn handle(state: &Arc<Mutex<State>>, incoming: Incoming) -> Reply {
    let mut params = HashMap::new();
    parse_pairs(&incoming.raw_query, &mut params, true);
    let form =
        incoming.headers.iter().any(|(k, v)| k == "content-type" && v.starts_with("application/x-www-form-urlencoded"));
    let raw_body = String::from_utf8_lossy(&incoming.body).into_owned();
    if form {
        parse_pairs(&raw_body, &mut params, false);
    }
    // The API log's INSERT takes the raw query string and the last POSTed value unescaped
    // (`$value`, left over from the loop over `$_POST`): a `'` in either, or a trailing `\` in
    // the value, is an SQL error after the lead was inserted (§13.1).
    let last_post_value = if form {
        raw_body.rsplit('&').find(|p| !p.is_empty()).map(|p| php_urldecode(p.split_once('=').map_or("", |(_, v)| v)))
    } else {
        None
    };
    let api_log_fatal = (incoming.method == "GET" && incoming.raw_query.contains('\''))
        || last_post_value.is_some_and(|v| v.contains('\'') || v.ends_with('\\'));
    let mut s = state.lock().unwrap();
    s.requests.push(SimRequest {
        at: Instant::now(),
        method: incoming.method.clone(),
        path: incoming.path.clone(),
        raw_query: incoming.raw_query.clone(),
        raw_body,
        headers: incoming.headers.clone(),
        params: params.clone(),
    });
    if let Some(page) = s.pages.get(&incoming.path) {
        return Reply::ok(page.clone());
    }
    if incoming.path == AGENT_API_PATH {
        return agent_api::handle(&mut s, &params);
    }
    if incoming.path != PATH {
        return Reply::status(404, "<html><body><h1>Not Found</h1></body></html>\n");
    }
    let p = |k: &str| params.get(k).cloned().unwrap_or_default();
    let function = p("function");
    let fault = s.faults.iter().position(|(f, _)| *f == function).and_then(|i| s.faults.remove(i)).map(|(_, f)| f);
    if fault == Some(Fault::Http500Empty) {
        return Reply::status(500, "");
    }
    let mut reply = match function.as_str() {
        "add_lead" => add_lead(&mut s, &params, api_log_fatal, &fault),
        "lead_search" => lead_search(&mut s, &params),
        "update_lead" => update_lead(&mut s, &params),
        "agent_status" => agent_status(&mut s, &params),
        "version" => {
            Reply::ok("VERSION: 2.14-202|BUILD: 250720-1841|DATE: 2026-11-21 22:00:00|EPOCH: 1795298400\n".into())
        }
        "coffee" => Reply::status(418, "I'm a teapot\n"),
        _ => Reply::ok("ERROR: NO FUNCTION SPECIFIED\n".to_owned()),
    };
    match fault {
        Some(Fault::Delay(d)) => reply.delay = Some(d),
        Some(Fault::DropAfterInsert) => reply.drop_connection = true,
        _ => {}
    }
    reply
}

/// The login every function starts with (§1.1): `Ok(user)` or the error reply.
fn authenticate(s: &mut State, params: &HashMap<String, String>) -> Result<SimUser, Reply> {
    let user = filter_login(params.get("user").map_or("", String::as_str));
    let pass = filter_login(params.get("pass").map_or("", String::as_str));
    let key = user.to_ascii_lowercase();
    let now = Instant::now();
    let failures = s.failed_logins.entry(key.clone()).or_default();
    failures.retain(|t| now.duration_since(*t) < LOCK_WINDOW);
    if failures.len() >= LOCK_AFTER {
        return Err(Reply::ok(format!("ERROR: Too many login attempts, try again in 15 minutes: |{user}|LOCK|\n")));
    }
    // Case-insensitive comparison (§13.5).
    let found = s
        .users
        .iter()
        .find(|u| {
            u.user.eq_ignore_ascii_case(&user) && u.pass.eq_ignore_ascii_case(&pass) && u.active && u.user_level > 6
        })
        .cloned();
    let Some(found) = found else {
        s.failed_logins.entry(key).or_default().push(now);
        // The password is echoed (§1.1).
        return Err(Reply::ok(format!("ERROR: Login incorrect, please try again: |{user}|{pass}|BAD|\n")));
    };
    s.failed_logins.remove(&key);
    Ok(found)
}

/// Inside each function's block, after the login (which comes first, for all functions):
/// `source`, then `api_allowed_functions`.
fn source_and_function(user: &SimUser, params: &HashMap<String, String>, function: &str) -> Result<(), Reply> {
    let source = keep(params.get("source").map_or("", String::as_str), |c| c.is_ascii_alphanumeric());
    if source.len() < 2 {
        return Err(Reply::ok(format!("ERROR: Invalid Source - {source}\nERROR: Invalid Source: |{source}|\n")));
    }
    let allowed = &user.api_allowed_functions;
    if !(allowed.contains(" ALL_FUNCTIONS ") || allowed.contains(&format!(" {function} "))) {
        let name = filter_login(params.get("user").map_or("", String::as_str));
        return Err(Reply::ok(format!(
            "ERROR: auth USER DOES NOT HAVE PERMISSION TO USE THIS FUNCTION: |{name}|{function}|\n"
        )));
    }
    Ok(())
}

fn add_lead(s: &mut State, params: &HashMap<String, String>, api_log_fatal: bool, fault: &Option<Fault>) -> Reply {
    let p = |k: &str| params.get(k).cloned().unwrap_or_default();
    let user = match authenticate(s, params).and_then(|u| source_and_function(&u, params, "add_lead").map(|()| u)) {
        Ok(u) => u,
        Err(reply) => return reply,
    };
    let api_user = filter_login(&p("user"));
    if !(user.vdc_agent_api_access && (1..=4).contains(&user.modify_leads) && user.user_level > 7) {
        return Reply::ok(format!(
            "ERROR: add_lead USER DOES NOT HAVE PERMISSION TO ADD LEADS TO THE SYSTEM: |{api_user}|{}|\n",
            user.modify_leads
        ));
    }
    let phone = keep(&p("phone_number"), |c| c.is_ascii_digit() || c == ',');
    if !(6..=16).contains(&phone.len()) {
        return Reply::ok(format!("ERROR: add_lead INVALID PHONE NUMBER LENGTH - {phone}|{api_user}\n"));
    }
    let mut phone_code = keep(&p("phone_code"), |c| c.is_ascii_digit());
    if phone_code.is_empty() {
        phone_code = "1".to_owned();
    }
    let mut list_id = keep(&p("list_id"), |c| c.is_ascii_digit());
    if list_id.len() < 3 {
        list_id = "999".to_owned();
    }
    if let Some(allowed) = &user.allowed_lists
        && !allowed.contains(&list_id)
    {
        return Reply::ok(format!("ERROR: add_lead NOT AN ALLOWED LIST ID - {phone}|{list_id}\n"));
    }
    if p("list_exists_check") == "Y" && !s.lists.contains_key(&list_id) {
        return Reply::ok(format!(
            "ERROR: add_lead NOT A DEFINED LIST ID, LIST EXISTS CHECK ENABLED - {phone}|{list_id}\n"
        ));
    }
    if p("dnc_check") == "Y" && s.dnc.contains(&phone) {
        return Reply::ok(format!("ERROR: add_lead PHONE NUMBER IN DNC - {phone}|{api_user}\n"));
    }

    let mut columns = BTreeMap::new();
    for c in NAME_COLUMNS {
        columns.insert(c.to_string(), filter_name(&p(c)));
    }
    for c in TEXT_COLUMNS {
        columns.insert(c.to_string(), filter_text(&p(c)));
    }
    for c in OTHER_COLUMNS {
        columns.insert(c.to_string(), p(c));
    }
    columns.insert("email".into(), filter_email(&p("email")));
    columns.insert("alt_phone".into(), keep(&p("alt_phone"), |c| c.is_ascii_digit()));
    // The raw (unescaped) values reach the SQL of the duplicate checks and the insert.
    let raw_quote = |k: &str| p(k).contains('\'');

    let check = p("duplicate_check").to_ascii_uppercase();
    if !check.is_empty() {
        match duplicate(s, &check, &list_id, &phone, &columns, &raw_quote) {
            Ok(Some(line)) => return Reply::ok(line),
            Ok(None) => {}
            Err(fatal) => return fatal,
        }
    }
    // A trailing backslash escapes the closing quote of the INSERT: SQL error, 500 (§13.3).
    if TEXT_COLUMNS.iter().any(|c| p(c).ends_with('\\')) {
        return Reply::status(500, "");
    }

    let lead_id = s.next_lead_id;
    s.next_lead_id += 1;
    let gmt = gmt_offset(&phone_code, &phone);
    for (k, v) in [
        ("list_id", list_id.as_str()),
        ("phone_number", phone.as_str()),
        ("phone_code", phone_code.as_str()),
        ("gmt_offset_now", gmt),
        ("status", "NEW"),
        ("user", api_user.as_str()),
        ("entry_list_id", "0"),
        ("called_count", "0"),
    ] {
        columns.insert(k.to_owned(), v.to_owned());
    }
    if columns.get("gender").is_none_or(String::is_empty) {
        columns.insert("gender".into(), "U".into());
    }
    if columns.get("rank").is_none_or(String::is_empty) {
        columns.insert("rank".into(), "0".into());
    }
    s.leads.push(SimLead { lead_id, entry: SystemTime::now(), columns });

    let success = format!("SUCCESS: add_lead LEAD HAS BEEN ADDED - {phone}|{list_id}|{lead_id}|{gmt}|{api_user}\n");
    // §13.1: inserted, then a fatal error; only the SUCCESS line was printed.
    if api_log_fatal || *fault == Some(Fault::Http500AfterInsert) {
        return Reply::status(500, &success);
    }
    let mut out = String::new();
    if p("nanpa_ac_prefix_check") == "Y" {
        out.push_str(&format!(
            "NOTICE: add_lead NANPA options disabled, NANPA prefix data not loaded - 0|{api_user}\n"
        ));
    }
    out.push_str(&success);
    let multi = p("multi_alt_phones");
    if !multi.is_empty() {
        let entries: Vec<&str> = multi.split('!').filter(|e| !e.is_empty()).collect();
        // The stray debug text, then the NOTICE on the same line (§2.3).
        for e in &entries {
            let mut parts = e.splitn(3, '_');
            let number = parts.next().unwrap_or("");
            let code = parts.next().unwrap_or("1");
            let note = parts.next().unwrap_or("");
            out.push_str(&format!("{number}|{code}|{note}"));
        }
        out.push_str(&format!(
            "NOTICE: add_lead MULTI-ALT-PHONE NUMBERS LOADED - {}|{lead_id}|{api_user}\n",
            entries.len()
        ));
    }
    if p("custom_fields") == "Y" {
        out.push_str(&format!(
            "NOTICE: add_lead CUSTOM FIELDS NOT ADDED, CUSTOM FIELDS DISABLED - {phone}|{lead_id}|Y|0\n"
        ));
    }
    if p("add_to_hopper") == "Y" {
        let hopper_id = s.next_hopper_id;
        s.next_hopper_id += 1;
        out.push_str(&format!("NOTICE: add_lead ADDED TO HOPPER - {phone}|{lead_id}|{hopper_id}|{api_user}\n"));
    }
    let mut reply = Reply::ok(out);
    let list_url = s.lists.get(&list_id).map(|l| l.api_new_lead_url.clone()).unwrap_or_default();
    let url = match list_url.as_str() {
        "---DISABLED---" => None,
        "" => s.api_new_lead_url.clone(),
        _ => Some(list_url),
    };
    // Sent only when longer than 10 characters (§3).
    if let Some(template) = url.filter(|u| u.len() > 10)
        && let Some(lead) = s.leads.iter().find(|l| l.lead_id == lead_id)
    {
        reply.new_lead_url = Some(substitute_new_lead_url(&template, lead, s));
    }
    reply
}

/// `duplicate_check` (§2.2): the first matching option, in the table's order.
fn duplicate(
    s: &State,
    check: &str,
    list_id: &str,
    phone: &str,
    new: &BTreeMap<String, String>,
    raw_quote: &dyn Fn(&str) -> bool,
) -> Result<Option<String>, Reply> {
    const WINDOWS: &[&str] = &[
        "1DAY", "2DAY", "3DAY", "7DAY", "14DAY", "15DAY", "21DAY", "28DAY", "30DAY", "60DAY", "90DAY", "180DAY",
        "360DAY",
    ];
    let window = WINDOWS.iter().filter(|w| check.contains(**w)).max_by_key(|w| w.len());
    let max_age = window.map(|w| Duration::from_secs(w.trim_end_matches("DAY").parse::<u64>().unwrap_or(0) * 86_400));
    let campaign = s.lists.get(list_id).and_then(|l| l.campaign_id.clone());
    let in_scope = |lead: &SimLead, scope: &str| -> bool {
        let recent = max_age.is_none_or(|age| lead.entry.elapsed().unwrap_or_default() <= age);
        let list = lead.get("list_id");
        recent
            && match scope {
                "LIST" => list == list_id,
                "CAMP" => s.lists.get(list).and_then(|l| l.campaign_id.as_ref()) == campaign.as_ref(),
                _ => true,
            }
    };
    let scope_name = |scope: &str| match scope {
        "LIST" => "IN LIST",
        "CAMP" => "IN CAMPAIGN LISTS",
        _ => "IN SYSTEM",
    };
    let get = |k: &str| new.get(k).map_or("", String::as_str);
    for scope in ["LIST", "CAMP", "SYS"] {
        // A `*CAMP` check on a list without a campaign: malformed SQL, 500 (§2.2).
        let camp_fatal = scope == "CAMP" && campaign.is_none();
        if check.contains(&format!("DUP{scope}")) {
            if camp_fatal {
                return Err(Reply::status(500, ""));
            }
            if let Some(d) = s.leads.iter().find(|l| in_scope(l, scope) && l.get("phone_number") == phone) {
                let tail = if scope == "LIST" { String::new() } else { format!("|{}", d.get("list_id")) };
                return Ok(Some(format!(
                    "ERROR: add_lead DUPLICATE PHONE NUMBER {} - {phone}|{list_id}|{}{tail}\n",
                    scope_name(scope),
                    d.lead_id
                )));
            }
        }
    }
    for scope in ["LIST", "CAMP", "SYS"] {
        if check.contains(&format!("DUPPHONEALT{scope}")) {
            if scope == "CAMP" && campaign.is_none() {
                return Err(Reply::status(500, ""));
            }
            let hit = s.leads.iter().find_map(|l| {
                if !in_scope(l, scope) {
                    None
                } else if l.get("phone_number") == phone {
                    Some((l, "PHONE"))
                } else if l.get("alt_phone") == phone {
                    Some((l, "ALT"))
                } else {
                    None
                }
            });
            if let Some((d, which)) = hit {
                let mid = if scope == "LIST" { String::new() } else { format!("|{}", d.get("list_id")) };
                return Ok(Some(format!(
                    "ERROR: add_lead DUPLICATE PHONE NUMBER {} - {phone}|{list_id}|{}{mid}|{which}\n",
                    scope_name(scope),
                    d.lead_id
                )));
            }
        }
    }
    for scope in ["LIST", "CAMP", "SYS"] {
        if check.contains(&format!("DUPTITLEALTPHONE{scope}")) {
            // An unescaped `'` in the title breaks the SQL (§13.2).
            if raw_quote("title") || (scope == "CAMP" && campaign.is_none()) {
                return Err(Reply::status(500, ""));
            }
            let (title, alt) = (get("title"), get("alt_phone"));
            if let Some(d) = s
                .leads
                .iter()
                .find(|l| in_scope(l, scope) && l.get("title").eq_ignore_ascii_case(title) && l.get("alt_phone") == alt)
            {
                let tail = if scope == "LIST" { String::new() } else { format!("|{}", d.get("list_id")) };
                return Ok(Some(format!(
                    "ERROR: add_lead DUPLICATE TITLE ALT_PHONE {} - {title}|{alt}|{list_id}|{}{tail}\n",
                    scope_name(scope),
                    d.lead_id
                )));
            }
        }
    }
    for scope in ["LIST", "CAMP", "SYS"] {
        if check.contains(&format!("DUPNAMEPHONE{scope}")) {
            if raw_quote("first_name") || raw_quote("last_name") || (scope == "CAMP" && campaign.is_none()) {
                return Err(Reply::status(500, ""));
            }
            let (first, last) = (get("first_name"), get("last_name"));
            if let Some(d) = s.leads.iter().find(|l| {
                in_scope(l, scope)
                    && l.get("phone_number") == phone
                    && l.get("first_name").eq_ignore_ascii_case(first)
                    && l.get("last_name").eq_ignore_ascii_case(last)
            }) {
                let tail = if scope == "LIST" { String::new() } else { format!("|{}", d.get("list_id")) };
                return Ok(Some(format!(
                    "ERROR: add_lead DUPLICATE NAME PHONE {} - {first}|{last}|{phone}|{list_id}|{}{tail}\n",
                    scope_name(scope),
                    d.lead_id
                )));
            }
        }
    }
    Ok(None)
}

/// `--A--name--B--` tags (case-insensitive, leading `VAR` stripped), values re-read from the
/// stored lead, trimmed and PHP-urlencoded; `SQLdate` and `epoch` empty; unknown tags left
/// as they are (§3).
fn substitute_new_lead_url(template: &str, lead: &SimLead, s: &State) -> String {
    let template = template.strip_prefix("VAR").unwrap_or(template);
    let list = s.lists.get(lead.get("list_id"));
    let entry_date = chrono::DateTime::<chrono::Local>::from(lead.entry).format("%Y-%m-%d %H:%M:%S").to_string();
    let value = |name: &str| -> Option<String> {
        let v = match name.to_ascii_lowercase().as_str() {
            "lead_id" => lead.lead_id.to_string(),
            "vendor_id" => lead.get("vendor_lead_code").to_owned(),
            "phone" => lead.get("phone_number").to_owned(),
            "list_name" => list.map_or(String::new(), |l| l.list_name.clone()),
            "list_description" => list.map_or(String::new(), |l| l.list_description.clone()),
            "campaign" => list.and_then(|l| l.campaign_id.clone()).unwrap_or_default(),
            "sqldate" | "epoch" => String::new(),
            "entry_date" => entry_date.clone(),
            n @ ("vendor_lead_code" | "list_id" | "gmt_offset_now" | "phone_code" | "phone_number" | "title"
            | "first_name" | "middle_initial" | "last_name" | "address1" | "address2" | "address3" | "city"
            | "state" | "province" | "postal_code" | "country_code" | "gender" | "date_of_birth" | "alt_phone"
            | "email" | "security_phrase" | "comments" | "user" | "source_id" | "status" | "rank" | "owner"
            | "entry_list_id" | "called_count") => lead.get(n).to_owned(),
            _ => return None,
        };
        Some(php_urlencode(v.trim()))
    };
    let mut out = String::new();
    let mut rest = template;
    loop {
        let lower = rest.to_ascii_lowercase();
        let Some(start) = lower.find("--a--") else { break };
        let Some(end) = lower[start + 5..].find("--b--").map(|e| start + 5 + e) else { break };
        let name = &rest[start + 5..end];
        out.push_str(&rest[..start]);
        match value(name) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..end + 5]),
        }
        rest = &rest[end + 5..];
    }
    out.push_str(rest);
    out
}

/// `update_lead` by `lead_id` with `delete_lead=Y` only (§4; `non_agent_api.php`, the
/// update_lead block): the lead is deleted; anything else is not simulated.
fn update_lead(s: &mut State, params: &HashMap<String, String>) -> Reply {
    let p = |k: &str| params.get(k).cloned().unwrap_or_default();
    let user = match authenticate(s, params).and_then(|u| source_and_function(&u, params, "update_lead").map(|()| u)) {
        Ok(u) => u,
        Err(reply) => return reply,
    };
    let api_user = filter_login(&p("user"));
    if !(user.vdc_agent_api_access && (1..=4).contains(&user.modify_leads) && user.user_level > 7) {
        return Reply::ok(format!(
            "ERROR: update_lead USER DOES NOT HAVE PERMISSION TO UPDATE LEADS IN THE SYSTEM: |{api_user}|{}|\n",
            user.modify_leads
        ));
    }
    let lead_id = keep(&p("lead_id"), |c| c.is_ascii_digit());
    assert!(p("search_method") == "LEAD_ID" && p("delete_lead") == "Y", "the simulator only deletes by lead_id");
    let Some(at) = s.leads.iter().position(|l| l.lead_id.to_string() == lead_id) else {
        return Reply::ok(format!("ERROR: update_lead NO MATCHES FOUND IN THE SYSTEM: |{api_user}|{lead_id}|||\n"));
    };
    s.leads.remove(at);
    Reply::ok(format!("SUCCESS: update_lead LEAD HAS BEEN DELETED 0|0 - {api_user}|{lead_id}|1|0|0|\n"))
}

fn lead_search(s: &mut State, params: &HashMap<String, String>) -> Reply {
    let p = |k: &str| params.get(k).cloned().unwrap_or_default();
    let user = match authenticate(s, params).and_then(|u| source_and_function(&u, params, "lead_search").map(|()| u)) {
        Ok(u) => u,
        Err(reply) => return reply,
    };
    let api_user = filter_login(&p("user"));
    if !(user.vdc_agent_api_access && (1..=5).contains(&user.modify_leads) && user.user_level > 7) {
        return Reply::ok(format!(
            "ERROR: lead_search USER DOES NOT HAVE PERMISSION TO SEARCH FOR LEADS: |{api_user}|{}|\n",
            user.modify_leads
        ));
    }
    let method = match p("search_method") {
        m if m.is_empty() => "PHONE_NUMBER".to_owned(),
        m => m,
    };
    let vlc = filter_text(&p("vendor_lead_code"));
    let phone = keep(&p("phone_number"), |c| c.is_ascii_digit() || c == ',');
    let (column, keys): (&str, Vec<String>) = match method.as_str() {
        "VENDOR_LEAD_CODE" => {
            ("vendor_lead_code", vlc.split(',').filter(|k| !k.is_empty()).map(str::to_owned).collect())
        }
        "PHONE_NUMBER" => {
            ("phone_number", phone.split(',').filter(|k| (6..=18).contains(&k.len())).map(str::to_owned).collect())
        }
        // §5: LEAD_ID is a 500.
        "LEAD_ID" => return Reply::status(500, ""),
        _ => {
            return Reply::ok(format!(
                "ERROR: lead_search NO VALID SEARCH METHOD - {api_user}|{method}|{}|{vlc}|{phone}\n",
                p("lead_id")
            ));
        }
    };
    let mut out = String::new();
    let mut any = false;
    for key in &keys {
        let mut ids: Vec<u64> = s.leads.iter().filter(|l| l.get(column) == key).map(|l| l.lead_id).collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        any |= !ids.is_empty();
        let joined: Vec<String> = ids.iter().map(u64::to_string).collect();
        out.push_str(&format!("{key}|{}|{}\n", ids.len(), joined.join("-")));
    }
    if !any {
        return Reply::ok(format!(
            "ERROR: lead_search NO MATCHES FOUND IN THE SYSTEM: |{api_user}|{}|{vlc}|{phone}\n",
            p("lead_id")
        ));
    }
    Reply::ok(out)
}

/// `agent_status` as `non_agent_api.php` answers it ("agent_status" block): one row, fields
/// joined by the `stage` delimiter (pipe by default), values unescaped.
fn agent_status(s: &mut State, params: &HashMap<String, String>) -> Reply {
    let p = |k: &str| params.get(k).cloned().unwrap_or_default();
    let user = match authenticate(s, params).and_then(|u| source_and_function(&u, params, "agent_status").map(|()| u)) {
        Ok(u) => u,
        Err(reply) => return reply,
    };
    let api_user = filter_login(&p("user"));
    if !(user.vdc_agent_api_access && user.view_reports && user.user_level > 6) {
        let allowed = 0;
        return Reply::ok(format!(
            "ERROR: agent_status USER DOES NOT HAVE PERMISSION TO GET AGENT INFO: |{api_user}|{allowed}|\n"
        ));
    }
    let agent_user = filter_login(&p("agent_user"));
    if agent_user.is_empty() || agent_user.len() >= 100 {
        return Reply::ok(format!("ERROR: agent_status INVALID SEARCH PARAMETERS: {api_user}|{agent_user}\n"));
    }
    let dl = match p("stage").as_str() {
        "csv" => ",",
        "tab" => "\t",
        _ => "|",
    };
    let mut out = String::new();
    if p("header") == "YES" {
        let names = [
            "status",
            "callerid",
            "lead_id",
            "campaign_id",
            "calls_today",
            "full_name",
            "user_group",
            "user_level",
            "pause_code",
            "real_time_sub_status",
            "phone_number",
            "vendor_lead_code",
            "session_id",
        ];
        out.push_str(&names.join(dl));
        out.push('\n');
    }
    // MySQL compares user names case-insensitively (§13.5).
    let Some(agent) = s.agents.iter().find(|(u, _)| u.eq_ignore_ascii_case(&agent_user)).map(|(_, a)| a.clone()) else {
        return Reply::ok(format!("ERROR: agent_status AGENT NOT FOUND: {api_user}|{agent_user}\n"));
    };
    let Some(live) = &agent.live else {
        return Reply::ok(format!("ERROR: agent_status AGENT NOT LOGGED IN: {api_user}|{agent_user}\n"));
    };
    let (status, lead_id, sub) = match live.state {
        SimAgentState::Paused => ("PAUSED", 0, ""),
        SimAgentState::Ready => ("READY", 0, ""),
        SimAgentState::Queue { lead_id } => ("QUEUE", lead_id, ""),
        SimAgentState::InCall { lead_id, customer_gone } => {
            ("INCALL", lead_id, if customer_gone { "DEAD" } else { "" })
        }
        SimAgentState::Dispo { lead_id } => ("PAUSED", lead_id, "DISPO"),
    };
    // The auto-dial caller code VICIdial gives the call: V + MMDDHHMMSS + 9-digit lead_id.
    let callerid = if lead_id > 0 { format!("V1206230000{lead_id:09}") } else { String::new() };
    let (phone, vendor_lead_code) =
        s.leads.iter().find(|l| l.lead_id == lead_id).map_or((String::new(), String::new()), |l| {
            (l.get("phone_number").to_owned(), l.get("vendor_lead_code").to_owned())
        });
    let fields = [
        status.to_owned(),
        callerid,
        lead_id.to_string(),
        live.campaign_id.clone(),
        agent.calls_today.to_string(),
        agent.full_name.clone(),
        agent.user_group.clone(),
        agent.user_level.to_string(),
        live.pause_code.clone(),
        sub.to_owned(),
        phone,
        vendor_lead_code,
        live.session_id.clone(),
    ];
    out.push_str(&fields.join(dl));
    out.push('\n');
    Reply::ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_encoding() {
        assert_eq!(php_urlencode("Jos Mara"), "Jos+Mara");
        assert_eq!(php_urlencode("O'Brien CRM-123/abc a@b & :"), "O%27Brien+CRM-123%2Fabc+a%40b+%26+%3A");
        assert_eq!(php_urldecode("a+b%2Bc%27%zz%+1%4"), "a b+c'%zz% 1%4");
    }
}

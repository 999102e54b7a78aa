//! The CRMs' side of agent sign-in and the softphone: a real HTTP server (axum on 127.0.0.1:0)
//! playing HubSpot's OAuth (`/oauth/authorize` → redirect with a code, `/oauth/v3/token`,
//! `/oauth/v3/token/introspect`) and calling settings (`/crm/v3/extensions/calling/{appId}/settings`
//! with `hapikey`), and a Salesforce org's OAuth (`/services/oauth2/authorize|token|userinfo`,
//! PKCE S256 checked) and a minimal `opencti_min.js` at the org path. The user "signed in" at
//! the authorize step is set by the test ([`OAuthSim::sign_in_as`]).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helper: a panic is the failure report

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "sim-client-id";
pub const CLIENT_SECRET: &str = "sim-client-secret-123";
pub const HUB_ID: &str = "9000001";
pub const ORG_ID: &str = "00Dxx0000001gPFEAY";
pub const DEVELOPER_API_KEY: &str = "sim-dev-api-key";
pub const OPENCTI_PATH: &str = "/support/api/65.0/lightning/opencti_min.js";

#[derive(Debug, Clone)]
struct Grant {
    user_id: String,
    redirect_uri: String,
    challenge: String,
}

#[derive(Debug, Default)]
pub struct OAuthState {
    /// The CRM user the next authorize step signs in (`None`: the user denies access).
    pub user: Option<String>,
    /// Salesforce's authorize step signs in this user instead, when set.
    pub salesforce_user: Option<String>,
    codes: HashMap<String, Grant>,
    tokens: HashMap<String, String>,
    next: u64,
    /// Calling settings by app id.
    pub calling_settings: HashMap<String, Value>,
    /// Every request: method and path (never bodies: they carry secrets).
    pub requests: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct OAuthSim {
    addr: SocketAddr,
    state: Arc<Mutex<OAuthState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OAuthSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Shared = Arc<Mutex<OAuthState>>;

/// A JSON answer (the workspace's axum has no `json` feature).
struct Json(Value);

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, "application/json")], self.0.to_string()).into_response()
    }
}

fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({"error": error, "error_description": description}))).into_response()
}

fn authorize(s: &Shared, query: Option<String>, salesforce: bool) -> Response {
    let q = form(query.unwrap_or_default().as_bytes());
    let p = |k: &str| q.get(k).cloned().unwrap_or_default();
    if p("client_id") != CLIENT_ID {
        return (StatusCode::BAD_REQUEST, "unknown client_id").into_response();
    }
    if p("code_challenge_method") != "S256" || p("code_challenge").len() < 43 {
        return (StatusCode::BAD_REQUEST, "PKCE S256 required").into_response();
    }
    let redirect = p("redirect_uri");
    let mut st = s.lock().unwrap();
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let state = form_urlencoded::byte_serialize(p("state").as_bytes()).collect::<String>();
    let user = if salesforce && st.salesforce_user.is_some() { st.salesforce_user.clone() } else { st.user.clone() };
    let location = match user {
        Some(user_id) => {
            st.next += 1;
            let code = format!("code-{}", st.next);
            st.codes.insert(
                code.clone(),
                Grant { user_id, redirect_uri: redirect.clone(), challenge: p("code_challenge") },
            );
            format!("{redirect}{sep}code={code}&state={state}")
        }
        None => format!("{redirect}{sep}error=access_denied&state={state}"),
    };
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// Exchanges a code; `needs_secret`: HubSpot always, Salesforce only if sent.
fn token(s: &Shared, body: &[u8], needs_secret: bool) -> Response {
    let f = form(body);
    let p = |k: &str| f.get(k).cloned().unwrap_or_default();
    if p("grant_type") != "authorization_code" || p("client_id") != CLIENT_ID {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client", "bad grant_type or client_id");
    }
    if (needs_secret || f.contains_key("client_secret")) && p("client_secret") != CLIENT_SECRET {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client", "invalid client credentials");
    }
    let mut st = s.lock().unwrap();
    let Some(grant) = st.codes.remove(&p("code")) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "expired authorization code");
    };
    if grant.redirect_uri != p("redirect_uri") {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "redirect_uri mismatch");
    }
    if URL_SAFE_NO_PAD.encode(Sha256::digest(p("code_verifier").as_bytes())) != grant.challenge {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "invalid code verifier");
    }
    st.next += 1;
    let access = format!("access-{}", st.next);
    st.tokens.insert(access.clone(), grant.user_id);
    Json(json!({"access_token": access, "refresh_token": "refresh-x", "expires_in": 1800, "token_type": "bearer"}))
        .into_response()
}

async fn handle(
    State(s): State<Shared>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    s.lock().unwrap().requests.push((method.to_string(), path.clone()));
    let query = uri.query().map(str::to_owned);
    match (method.as_str(), path.as_str()) {
        ("GET", "/oauth/authorize") => authorize(&s, query, false),
        ("GET", "/services/oauth2/authorize") => authorize(&s, query, true),
        ("POST", "/oauth/v3/token") => token(&s, &body, true),
        ("POST", "/services/oauth2/token") => token(&s, &body, false),
        ("POST", "/oauth/v3/token/introspect") => {
            let f = form(&body);
            if f.get("client_id").map(String::as_str) != Some(CLIENT_ID)
                || f.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
            {
                return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "invalid client credentials");
            }
            let st = s.lock().unwrap();
            match f.get("token").and_then(|t| st.tokens.get(t)) {
                Some(user) => Json(json!({
                    "active": true, "token_type": "access", "user_id": user.parse::<u64>().map_or(json!(user), |n| json!(n)),
                    "hub_id": HUB_ID.parse::<u64>().unwrap(), "app_id": 77, "user": format!("{user}@example.com"),
                    "scopes": ["oauth"], "expires_in": 1790
                }))
                .into_response(),
                None => Json(json!({"active": false})).into_response(),
            }
        }
        ("GET", "/services/oauth2/userinfo") => {
            let bearer = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            let st = s.lock().unwrap();
            match st.tokens.get(bearer) {
                Some(user) => Json(json!({
                    "sub": format!("https://login.salesforce.com/id/{ORG_ID}/{user}"),
                    "user_id": user, "organization_id": ORG_ID, "preferred_username": "agent@example.com"
                }))
                .into_response(),
                None => (StatusCode::FORBIDDEN, "Bad_OAuth_Token").into_response(),
            }
        }
        ("GET", OPENCTI_PATH) => {
            ([(header::CONTENT_TYPE, "text/javascript"), (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], OPENCTI_JS)
                .into_response()
        }
        _ => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

async fn calling_settings(
    State(s): State<Shared>,
    Path(app_id): Path<String>,
    method: axum::http::Method,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    s.lock().unwrap().requests.push((method.to_string(), format!("/crm/v3/extensions/calling/{app_id}/settings")));
    if form(query.unwrap_or_default().as_bytes()).get("hapikey").map(String::as_str) != Some(DEVELOPER_API_KEY) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"status": "error", "message": "bad hapikey"}))).into_response();
    }
    let mut st = s.lock().unwrap();
    let new: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match method.as_str() {
        "GET" => match st.calling_settings.get(&app_id) {
            Some(v) => Json(v.clone()).into_response(),
            None => (StatusCode::NOT_FOUND, Json(json!({"status": "error", "message": "not found"}))).into_response(),
        },
        "POST" if st.calling_settings.contains_key(&app_id) => {
            (StatusCode::CONFLICT, Json(json!({"status": "error", "message": "exists"}))).into_response()
        }
        "POST" => {
            st.calling_settings.insert(app_id, new.clone());
            (StatusCode::OK, Json(new)).into_response()
        }
        "PATCH" => match st.calling_settings.get_mut(&app_id) {
            Some(v) => {
                for (k, val) in new.as_object().cloned().unwrap_or_default() {
                    v[k] = val;
                }
                Json(v.clone()).into_response()
            }
            None => (StatusCode::NOT_FOUND, "not found").into_response(),
        },
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

/// Enough of Salesforce's Open CTI for the softphone page: the page's calls are posted to the
/// parent (the Lightning host), and the host's `{"event":"onClickToDial", "payload":…}` reaches
/// the registered listener.
const OPENCTI_JS: &str = r#"(function () {
  var listeners = {};
  function send(method, args) { window.parent.postMessage({ opencti: method, args: args || {} }, '*'); }
  window.addEventListener('message', function (ev) {
    var d = ev.data || {};
    if (ev.source === window.parent && d.event && listeners[d.event]) listeners[d.event](d.payload);
  });
  window.sforce = window.sforce || {};
  window.sforce.opencti = {
    enableClickToDial: function (o) { send('enableClickToDial'); if (o && o.callback) o.callback({ success: true }); },
    disableClickToDial: function (o) { send('disableClickToDial'); if (o && o.callback) o.callback({ success: true }); },
    onClickToDial: function (o) { listeners.onClickToDial = o.listener; send('onClickToDial'); },
    setSoftphonePanelVisibility: function (o) { send('setSoftphonePanelVisibility', { visible: o.visible }); if (o.callback) o.callback({ success: true }); },
    // Salesforce creates or updates a Task from it: the host records it.
    saveLog: function (o) { send('saveLog', { value: o && o.value }); if (o && o.callback) o.callback({ success: true, returnValue: { recordId: '00Tsim' } }); }
  };
})();
"#;

impl OAuthSim {
    pub async fn start() -> OAuthSim {
        let state: Shared = Arc::new(Mutex::new(OAuthState::default()));
        let app = Router::new()
            .route(
                "/crm/v3/extensions/calling/{app_id}/settings",
                get(calling_settings).post(calling_settings).patch(calling_settings),
            )
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        OAuthSim { addr, state, task }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The CRM user that the next authorize step signs in; `None`: the user clicks "Deny".
    pub fn sign_in_as(&self, user: Option<&str>) {
        self.state.lock().unwrap().user = user.map(str::to_owned);
    }

    /// The Salesforce user of the next Salesforce authorize step (HubSpot's stays [`Self::sign_in_as`]).
    pub fn sign_in_salesforce_as(&self, user: &str) {
        self.state.lock().unwrap().salesforce_user = Some(user.to_owned());
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut OAuthState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
}

//! Agent sign-in with the CRM's OAuth (authorization code, `state`, PKCE): the callback learns
//! the verified CRM user id, then forgets the CRM token. HubSpot: `/oauth/v3/token` and
//! `/oauth/v3/token/introspect` (`user_id`, `hub_id`). Salesforce: the org's
//! `/services/oauth2/token` and `/services/oauth2/userinfo` (`user_id`, `organization_id`).

use std::time::Duration;

use serde::Deserialize;
use vicibridge_core::config::agents::{ClickToCallHubspot, ClickToCallSalesforce};
use vicibridge_core::secrets::SecretDoc;

/// The CRM answered, or did not; `Display` never carries a token or secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    Setup(String),
    #[error("the CRM refused the sign-in: {0}")]
    Refused(String),
    #[error("the CRM did not answer: {0}")]
    Unavailable(String),
}

/// Who signed in, as the CRM says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmUser {
    pub user_id: String,
    /// HubSpot `hub_id` / Salesforce `organization_id`.
    pub account: String,
}

/// Each call to the CRM; the request as a whole is bounded by `budget::AGENT_REQUEST`.
pub const TIMEOUT: Duration = Duration::from_secs(5);

fn q(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn hubspot_authorize_url(h: &ClickToCallHubspot, redirect_uri: &str, state: &str, challenge: &str) -> String {
    format!(
        "{}?client_id={}&redirect_uri={}&scope={}&state={}&code_challenge={}&code_challenge_method=S256",
        h.authorize_url,
        q(&h.client_id),
        q(redirect_uri),
        q(&h.scopes),
        q(state),
        q(challenge)
    )
}

pub fn salesforce_authorize_url(s: &ClickToCallSalesforce, redirect_uri: &str, state: &str, challenge: &str) -> String {
    format!(
        "{}/services/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope={}&state={}&code_challenge={}&code_challenge_method=S256",
        s.org_url,
        q(&s.client_id),
        q(redirect_uri),
        q("openid id"),
        q(state),
        q(challenge)
    )
}

async fn post_form(http: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> Result<serde_json::Value, OAuthError> {
    let body: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let r = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .timeout(TIMEOUT)
        .send()
        .await
        .map_err(|e| OAuthError::Unavailable(format!("{url}: {}", vicibridge_core::error_chain(&e))))?;
    read_json(url, r).await
}

async fn read_json(url: &str, r: reqwest::Response) -> Result<serde_json::Value, OAuthError> {
    let status = r.status();
    let value: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
    if status.is_server_error() {
        return Err(OAuthError::Unavailable(format!("{url}: HTTP {status}")));
    }
    if !status.is_success() {
        // OAuth error bodies carry `error`/`error_description` or `message`: no token.
        let why = ["error_description", "error", "message"]
            .iter()
            .find_map(|k| value.get(*k).and_then(|v| v.as_str()))
            .unwrap_or("no reason given");
        return Err(OAuthError::Refused(format!("{url}: HTTP {status}: {why:.200}")));
    }
    Ok(value)
}

fn id_field(v: &serde_json::Value, key: &str) -> Option<String> {
    match v.get(key)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

fn access_token(v: serde_json::Value) -> Result<String, OAuthError> {
    serde_json::from_value::<TokenAnswer>(v)
        .map(|t| t.access_token)
        .map_err(|_| OAuthError::Refused("the token answer has no access_token".into()))
}

pub async fn hubspot_user(
    http: &reqwest::Client,
    h: &ClickToCallHubspot,
    doc: &SecretDoc,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<CrmUser, OAuthError> {
    let secret = doc.hubspot.as_ref().and_then(|s| s.client_secret.as_ref()).ok_or_else(|| {
        OAuthError::Setup("the secret has no hubspot.client_secret (the calling app's client secret)".into())
    })?;
    let token_url = format!("{}/oauth/v3/token", h.api_url);
    let token = access_token(
        post_form(
            http,
            &token_url,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &h.client_id),
                ("client_secret", secret.expose()),
                ("redirect_uri", redirect_uri),
                ("code", code),
                ("code_verifier", verifier),
            ],
        )
        .await?,
    )?;
    let introspect_url = format!("{}/oauth/v3/token/introspect", h.api_url);
    let meta = post_form(
        http,
        &introspect_url,
        &[
            ("client_id", &h.client_id),
            ("client_secret", secret.expose()),
            ("token", &token),
            ("token_type_hint", "access_token"),
        ],
    )
    .await?;
    // The token is dropped here: vicibridge keeps none.
    if meta.get("active").and_then(serde_json::Value::as_bool) == Some(false) {
        return Err(OAuthError::Refused("HubSpot says the new token is not active".into()));
    }
    let user_id =
        id_field(&meta, "user_id").ok_or_else(|| OAuthError::Refused("token metadata without user_id".into()))?;
    let account = id_field(&meta, "hub_id").unwrap_or_default();
    Ok(CrmUser { user_id, account })
}

pub async fn salesforce_user(
    http: &reqwest::Client,
    s: &ClickToCallSalesforce,
    doc: &SecretDoc,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<CrmUser, OAuthError> {
    // The client secret only when the secret's app is this one (an External Client App can
    // also sign agents in with PKCE alone).
    let sf = doc.salesforce.as_ref();
    let secret = sf
        .filter(|x| x.client_id.as_ref().is_some_and(|id| id.expose() == s.client_id))
        .and_then(|x| x.client_secret.as_ref());
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", s.client_id.as_str()),
        ("redirect_uri", redirect_uri),
        ("code", code),
        ("code_verifier", verifier),
    ];
    if let Some(secret) = secret {
        form.push(("client_secret", secret.expose()));
    }
    let token = access_token(post_form(http, &format!("{}/services/oauth2/token", s.org_url), &form).await?)?;
    let url = format!("{}/services/oauth2/userinfo", s.org_url);
    let r = http
        .get(&url)
        .bearer_auth(&token)
        .timeout(TIMEOUT)
        .send()
        .await
        .map_err(|e| OAuthError::Unavailable(format!("{url}: {}", vicibridge_core::error_chain(&e))))?;
    let info = read_json(&url, r).await?;
    let user_id = id_field(&info, "user_id").ok_or_else(|| OAuthError::Refused("userinfo without user_id".into()))?;
    let account = id_field(&info, "organization_id").unwrap_or_default();
    if let Some(org) = sf.and_then(|x| x.organization_id.as_deref())
        && !org.is_empty()
        && org.get(..15) != account.get(..15)
    {
        return Err(OAuthError::Refused(format!("the user belongs to org {account}, not {org}")));
    }
    Ok(CrmUser { user_id, account })
}

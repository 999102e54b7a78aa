//! `[agents]` — who each VICIdial agent is in the CRMs, one place for agent identity — and
//! `[click_to_call]`, the dialer pages and the dial API.
//!
//! `[agents.USER]` (USER = the VICIdial user) gives the agent's HubSpot user id (verified at
//! sign-in), HubSpot owner id (calls and tasks the sync writes) and Salesforce user id (sign-in
//! and the `OwnerId` of the Tasks it writes). The older `[hubspot.owners]` map still works; both
//! feed the same lookup and may not disagree.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Problem, Severity};
use crate::phone::parse_region;

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AgentIdentity {
    /// HubSpot user id (`user_id` of the OAuth token metadata), numeric.
    #[serde(default)]
    pub hubspot_user_id: Option<String>,
    /// HubSpot owner id: `hubspot_owner_id` of the calls and callback tasks of this agent.
    #[serde(default)]
    pub hubspot_owner_id: Option<String>,
    /// Salesforce user id (15 or 18 characters), from `/services/oauth2/userinfo`.
    #[serde(default)]
    pub salesforce_user_id: Option<String>,
}

/// The map from VICIdial users to CRM identities, read both ways.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct Agents(pub BTreeMap<String, AgentIdentity>);

/// Which CRM an agent signed in with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrmUserKind {
    Hubspot,
    Salesforce,
}

impl CrmUserKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CrmUserKind::Hubspot => "hubspot",
            CrmUserKind::Salesforce => "salesforce",
        }
    }
}

impl Agents {
    /// The VICIdial user mapped to a verified CRM user. Salesforce ids compare on their
    /// 15-character case-sensitive prefix, so a 15- and an 18-character id match.
    pub fn vicidial_user(&self, crm: CrmUserKind, crm_user_id: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(_, a)| match crm {
                CrmUserKind::Hubspot => a.hubspot_user_id.as_deref() == Some(crm_user_id),
                CrmUserKind::Salesforce => {
                    a.salesforce_user_id.as_deref().is_some_and(|id| salesforce_ids_match(id, crm_user_id))
                }
            })
            .map(|(user, _)| user.as_str())
    }

    pub fn hubspot_owner(&self, vicidial_user: &str) -> Option<&str> {
        self.0.get(vicidial_user).and_then(|a| a.hubspot_owner_id.as_deref())
    }

    pub fn salesforce_user(&self, vicidial_user: &str) -> Option<&str> {
        self.0.get(vicidial_user).and_then(|a| a.salesforce_user_id.as_deref())
    }

    pub(super) fn problems(&self, out: &mut Vec<Problem>) {
        let mut error = |key: String, message: String| out.push(Problem { key, message, severity: Severity::Error });
        let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
        for (user, a) in &self.0 {
            if user.len() < 2
                || user.len() > 20
                || !user.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                error(format!("agents.{user}"), "a VICIdial user is 2 to 20 letters, digits, '-' or '_'".into());
            }
            for (field, value, ok) in [
                ("hubspot_user_id", &a.hubspot_user_id, a.hubspot_user_id.as_deref().is_none_or(is_digits)),
                ("hubspot_owner_id", &a.hubspot_owner_id, a.hubspot_owner_id.as_deref().is_none_or(is_digits)),
                (
                    "salesforce_user_id",
                    &a.salesforce_user_id,
                    a.salesforce_user_id.as_deref().is_none_or(is_salesforce_user_id),
                ),
            ] {
                if !ok {
                    let what = if field.starts_with("salesforce") {
                        "a Salesforce user id: 15 or 18 letters and digits starting with 005"
                    } else {
                        "a HubSpot id: digits only"
                    };
                    error(format!("agents.{user}.{field}"), format!("must be {what}"));
                }
                if field != "hubspot_owner_id"
                    && let Some(v) = value
                {
                    let key =
                        if field == "salesforce_user_id" { v.get(..15).unwrap_or(v).to_owned() } else { v.clone() };
                    if let Some(other) = seen.insert((field.to_owned(), key), user.clone()) {
                        error(
                            format!("agents.{user}.{field}"),
                            format!("{v} is also agents.{other}.{field}: one CRM user signs in as one agent"),
                        );
                    }
                }
            }
        }
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

pub fn is_salesforce_user_id(s: &str) -> bool {
    (s.len() == 15 || s.len() == 18) && s.starts_with("005") && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn salesforce_ids_match(a: &str, b: &str) -> bool {
    a.len() >= 15 && b.len() >= 15 && a.get(..15) == b.get(..15)
}

/// How a signed-in CRM user becomes a VICIdial agent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentMapping {
    /// `[agents]` in this file.
    #[default]
    Config,
    /// VICIdial's own: `alt_user` = the CRM user id, looked up in `vicidial_users.custom_three`;
    /// `[agents]` entries still win.
    AltUser,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickToCallConfig {
    /// Where vicibridge is reached from agents' browsers, e.g. `https://bridge.example.com`:
    /// the OAuth redirect URIs are `{public_base_url}/agent/oauth/{hubspot,salesforce}/callback`.
    pub public_base_url: String,
    #[serde(default)]
    pub agent_mapping: AgentMapping,
    /// Lifetime of an agent session (the widget signs in again after it).
    #[serde(default = "default_session_hours")]
    pub session_hours: u32,
    /// Dial attempts per agent per minute.
    #[serde(default = "default_dials_per_minute")]
    pub dials_per_minute: u32,
    /// Region for numbers written without a country code.
    #[serde(default = "default_country")]
    pub default_country: String,
    /// Who may frame `/dialer` (the plain page for custom CRM links); empty: nobody.
    #[serde(default)]
    pub frame_ancestors: Vec<String>,
    #[serde(default)]
    pub hubspot: Option<ClickToCallHubspot>,
    #[serde(default)]
    pub salesforce: Option<ClickToCallSalesforce>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickToCallHubspot {
    /// The calling app (public app) id, for `vicibridge hubspot calling-setup`.
    #[serde(default)]
    pub app_id: Option<String>,
    /// The app's OAuth client id (not secret; the client secret is `hubspot.client_secret`).
    pub client_id: String,
    /// Calling extensions SDK, loaded by the widget with Subresource Integrity.
    #[serde(default = "default_sdk_url")]
    pub sdk_url: String,
    #[serde(default = "default_sdk_integrity")]
    pub sdk_integrity: String,
    #[serde(default = "default_hubspot_frame_ancestors")]
    pub frame_ancestors: Vec<String>,
    /// `https://app.hubspot.com/oauth/authorize` (EU accounts: `https://app-eu1.hubspot.com/…`).
    #[serde(default = "default_hubspot_authorize_url")]
    pub authorize_url: String,
    /// Token and token-metadata endpoints: `https://api.hubapi.com`.
    #[serde(default = "default_hubspot_api_url")]
    pub api_url: String,
    /// Scopes asked at sign-in; `oauth` is the least HubSpot allows.
    #[serde(default = "default_hubspot_scopes")]
    pub scopes: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickToCallSalesforce {
    /// The org's My Domain, e.g. `https://acme.my.salesforce.com`: OAuth endpoints and userinfo.
    pub org_url: String,
    /// The External Client App's consumer key (not secret).
    pub client_id: String,
    /// `opencti_min.js` on the org's domain; default `{org_url}/support/api/65.0/lightning/opencti_min.js`.
    #[serde(default)]
    pub opencti_url: Option<String>,
    /// Default: the org's Lightning and My Domain hosts derived from `org_url`.
    #[serde(default)]
    pub frame_ancestors: Vec<String>,
}

/// The SDK version the widget is written and tested against (tests/browser/package.json).
pub const HUBSPOT_SDK_VERSION: &str = "0.9.7";

fn default_session_hours() -> u32 {
    12
}
fn default_dials_per_minute() -> u32 {
    6
}
fn default_country() -> String {
    "US".into()
}
fn default_sdk_url() -> String {
    format!("https://cdn.jsdelivr.net/npm/@hubspot/calling-extensions-sdk@{HUBSPOT_SDK_VERSION}/dist/main.js")
}
/// sha384 of `dist/main.js` of the npm package 0.9.7 (the CDN serves the package's bytes).
fn default_sdk_integrity() -> String {
    "sha384-ztFiRzNEVlkWI98os9f529Yvn2lPKLrCYTYcawYhuUuAUXUYcLKFEIL5/0h9/SXD".into()
}
fn default_hubspot_frame_ancestors() -> Vec<String> {
    vec!["https://app.hubspot.com".into(), "https://app-eu1.hubspot.com".into(), "https://*.hubspot.com".into()]
}
fn default_hubspot_authorize_url() -> String {
    "https://app.hubspot.com/oauth/authorize".into()
}
fn default_hubspot_api_url() -> String {
    "https://api.hubapi.com".into()
}
fn default_hubspot_scopes() -> String {
    "oauth".into()
}

fn is_http_url(u: &str) -> bool {
    (u.starts_with("https://") || u.starts_with("http://"))
        && u.len() > "http://x".len()
        && !u.contains(['?', '#', ' '])
}

/// A CSP source: `https://host[:port]` or `https://*.domain`, nothing that could end the header.
fn is_csp_origin(s: &str) -> bool {
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| {
        !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'*'))
    })
}

impl ClickToCallSalesforce {
    pub fn opencti_url(&self) -> String {
        self.opencti_url
            .clone()
            .unwrap_or_else(|| format!("{}/support/api/65.0/lightning/opencti_min.js", self.org_url))
    }

    /// Lightning (`*.lightning.force.com`) and My Domain hosts of the org, unless configured.
    pub fn frame_ancestors(&self) -> Vec<String> {
        if !self.frame_ancestors.is_empty() {
            return self.frame_ancestors.clone();
        }
        let mut out = vec![self.org_url.clone()];
        if let Some(name) = self.org_url.strip_prefix("https://").and_then(|h| h.strip_suffix(".my.salesforce.com")) {
            out.push(format!("https://{name}.lightning.force.com"));
            out.push(format!("https://{name}--c.vf.force.com"));
        }
        out
    }
}

impl ClickToCallConfig {
    pub(super) fn problems(&self, out: &mut Vec<Problem>) {
        let mut error = |key: &str, message: String| {
            out.push(Problem { key: format!("click_to_call.{key}"), message, severity: Severity::Error })
        };
        if !is_http_url(&self.public_base_url) || self.public_base_url.ends_with('/') {
            error(
                "public_base_url",
                format!("{:?} is not an http(s) URL without a trailing slash", self.public_base_url),
            );
        }
        if self.session_hours == 0 || self.session_hours > 24 * 7 {
            error("session_hours", "must be between 1 and 168".into());
        }
        if self.dials_per_minute == 0 {
            error("dials_per_minute", "must be at least 1".into());
        }
        if let Err(e) = parse_region(&self.default_country) {
            error("default_country", e.to_string());
        }
        let mut origins: Vec<(String, &String)> =
            self.frame_ancestors.iter().map(|o| ("frame_ancestors".to_owned(), o)).collect();
        if let Some(h) = &self.hubspot {
            origins.extend(h.frame_ancestors.iter().map(|o| ("hubspot.frame_ancestors".to_owned(), o)));
            for (key, url) in [
                ("hubspot.sdk_url", &h.sdk_url),
                ("hubspot.authorize_url", &h.authorize_url),
                ("hubspot.api_url", &h.api_url),
            ] {
                if !is_http_url(url) {
                    error(key, format!("{url:?} is not an http(s) URL"));
                }
            }
            if !h.sdk_integrity.starts_with("sha384-") && !h.sdk_integrity.starts_with("sha512-") {
                error("hubspot.sdk_integrity", "must be a Subresource Integrity value such as \"sha384-…\"".into());
            }
            if h.client_id.is_empty() {
                error("hubspot.client_id", "the calling app's OAuth client id is required".into());
            }
        }
        if let Some(s) = &self.salesforce {
            origins.extend(s.frame_ancestors.iter().map(|o| ("salesforce.frame_ancestors".to_owned(), o)));
            if !is_http_url(&s.org_url) || s.org_url.ends_with('/') {
                error(
                    "salesforce.org_url",
                    format!("{:?}: use the org's My Domain URL, e.g. \"https://acme.my.salesforce.com\"", s.org_url),
                );
            }
            if s.client_id.is_empty() {
                error("salesforce.client_id", "the External Client App's consumer key is required".into());
            }
        }
        for (key, origin) in origins {
            if !is_csp_origin(origin) {
                error(
                    &key,
                    format!(
                        "{origin:?} is not an origin such as \"https://app.hubspot.com\" or \"https://*.example.com\""
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agents() -> Agents {
        let mut m = BTreeMap::new();
        m.insert(
            "1000".to_owned(),
            AgentIdentity {
                hubspot_user_id: Some("424242".into()),
                hubspot_owner_id: Some("77".into()),
                salesforce_user_id: Some("005xx000001SvXYAA0".into()),
            },
        );
        Agents(m)
    }

    #[test]
    fn finds_the_agent_by_either_crm_id() {
        let a = agents();
        assert_eq!(a.vicidial_user(CrmUserKind::Hubspot, "424242"), Some("1000"));
        assert_eq!(a.vicidial_user(CrmUserKind::Hubspot, "42424"), None);
        assert_eq!(a.vicidial_user(CrmUserKind::Salesforce, "005xx000001SvXY"), Some("1000"));
        assert_eq!(a.vicidial_user(CrmUserKind::Salesforce, "005xx000001SvXy"), None);
        assert_eq!(a.hubspot_owner("1000"), Some("77"));
        assert_eq!(a.salesforce_user("1000"), Some("005xx000001SvXYAA0"));
    }

    #[test]
    fn one_crm_user_is_one_agent() {
        let mut a = agents();
        a.0.insert("1001".into(), AgentIdentity { hubspot_user_id: Some("424242".into()), ..Default::default() });
        let mut out = Vec::new();
        a.problems(&mut out);
        assert!(out.iter().any(|p| p.key == "agents.1001.hubspot_user_id"), "{out:?}");
    }
}

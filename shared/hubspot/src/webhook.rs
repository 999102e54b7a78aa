//! Inbound: HubSpot workflow "Send a webhook" requests (reference §2, §3).
//!
//! Authentication: signature v3 (HMAC-SHA256 over method + URI + body + timestamp, 5-minute
//! window), v2 / v1 (SHA-256 hex), or a shared secret in a header. The signed URI is the
//! public URL HubSpot called, which behind API Gateway must be rebuilt (or configured).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Mutex;

use base64::Engine;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use vicibridge_core::secrets::HubspotSecrets;

/// v3 timestamps older than this are refused (HubSpot's rule).
pub const MAX_AGE_MS: i64 = 5 * 60 * 1000;
/// Header for the shared-secret option (HubSpot's "API key" in the workflow action).
pub const TOKEN_HEADER: &str = "x-vicibridge-token";

/// What arrived, framework-neutral.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The full public URI HubSpot called: `https://host/path?query`.
    pub uri: &'a str,
    pub body: &'a [u8],
    pub headers: &'a HeaderMap,
}

impl SignedRequest<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    SignatureV3,
    SignatureV2,
    SignatureV1,
    SharedSecret,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookAuthError {
    #[error("no signature and no token header")]
    Missing,
    #[error("the secret has no hubspot.client_secret to check signatures with")]
    NoClientSecret,
    #[error("the secret has no hubspot.webhook_token to check the token header with")]
    NoWebhookToken,
    #[error("signature does not match")]
    BadSignature,
    #[error("token does not match")]
    BadToken,
    #[error("X-HubSpot-Request-Timestamp is missing or not a number")]
    BadTimestamp,
    #[error("request timestamp is {age_secs} s away from now (more than 5 minutes)")]
    Stale { age_secs: i64 },
    #[error("signature already seen: a replay")]
    Replayed,
    #[error("unknown X-HubSpot-Signature-Version {0:?}")]
    UnknownVersion(String),
}

/// v3 decodes these escapes in the URI before signing (reference §3, v3 details).
fn v3_uri(uri: &str) -> String {
    const DECODE: &[(&str, char)] = &[
        ("%3A", ':'),
        ("%2F", '/'),
        ("%3F", '?'),
        ("%40", '@'),
        ("%21", '!'),
        ("%24", '$'),
        ("%27", '\''),
        ("%28", '('),
        ("%29", ')'),
        ("%2A", '*'),
        ("%2C", ','),
        ("%3B", ';'),
    ];
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        match DECODE.iter().find(|(enc, _)| tail.len() >= 3 && tail[..3].eq_ignore_ascii_case(enc)) {
            Some((_, c)) => {
                out.push(*c);
                rest = &tail[3..];
            }
            None => {
                out.push('%');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

pub fn signature_v3(secret: &str, method: &str, uri: &str, body: &[u8], timestamp: &str) -> String {
    // HMAC accepts keys of any length: new_from_slice cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(method.as_bytes());
    mac.update(v3_uri(uri).as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub fn signature_v2(secret: &str, method: &str, uri: &str, body: &[u8]) -> String {
    hex(Sha256::new()
        .chain_update(secret)
        .chain_update(method)
        .chain_update(uri)
        .chain_update(body)
        .finalize()
        .as_slice())
}

pub fn signature_v1(secret: &str, body: &[u8]) -> String {
    hex(Sha256::new().chain_update(secret).chain_update(body).finalize().as_slice())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Remembers v3 signatures for the 5-minute window, so a captured request cannot be replayed
/// within it (after it, the timestamp check refuses it).
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: Mutex<SeenSignatures>,
}

#[derive(Debug, Default)]
struct SeenSignatures {
    signatures: HashSet<String>,
    /// (first seen at, signature), oldest first: what to forget once the window has passed.
    order: VecDeque<(i64, String)>,
}

impl ReplayGuard {
    /// True the first time a signature is seen within the window.
    fn first_time(&self, signature: &str, now_ms: i64) -> bool {
        let Ok(mut seen) = self.seen.lock() else { return false };
        while seen.order.front().is_some_and(|(t, _)| now_ms - *t > MAX_AGE_MS) {
            if let Some((_, old)) = seen.order.pop_front() {
                seen.signatures.remove(&old);
            }
        }
        if !seen.signatures.insert(signature.to_owned()) {
            return false;
        }
        seen.order.push_back((now_ms, signature.to_owned()));
        true
    }
}

/// Checks a request against the secret's `hubspot.client_secret` / `webhook_token`.
pub fn verify(
    req: &SignedRequest<'_>,
    secrets: Option<&HubspotSecrets>,
    now_ms: i64,
    replay: &ReplayGuard,
) -> Result<Verified, WebhookAuthError> {
    let client_secret = secrets.and_then(|s| s.client_secret.as_ref()).map(|s| s.expose());
    if let Some(sig) = req.header("x-hubspot-signature-v3") {
        let secret = client_secret.ok_or(WebhookAuthError::NoClientSecret)?;
        let ts = req.header("x-hubspot-request-timestamp").ok_or(WebhookAuthError::BadTimestamp)?;
        let ts_ms: i64 = ts.trim().parse().map_err(|_| WebhookAuthError::BadTimestamp)?;
        if (now_ms - ts_ms).abs() > MAX_AGE_MS {
            return Err(WebhookAuthError::Stale { age_secs: (now_ms - ts_ms) / 1000 });
        }
        if !same(sig, &signature_v3(secret, req.method, req.uri, req.body, ts.trim())) {
            return Err(WebhookAuthError::BadSignature);
        }
        if !replay.first_time(sig, now_ms) {
            return Err(WebhookAuthError::Replayed);
        }
        return Ok(Verified::SignatureV3);
    }
    if let Some(sig) = req.header("x-hubspot-signature") {
        let secret = client_secret.ok_or(WebhookAuthError::NoClientSecret)?;
        let version = req.header("x-hubspot-signature-version").unwrap_or("v1");
        let (expected, verified) = match version {
            "v2" => (signature_v2(secret, req.method, req.uri, req.body), Verified::SignatureV2),
            "v1" => (signature_v1(secret, req.body), Verified::SignatureV1),
            other => return Err(WebhookAuthError::UnknownVersion(other.chars().take(10).collect())),
        };
        return if same(&sig.to_ascii_lowercase(), &expected) {
            Ok(verified)
        } else {
            Err(WebhookAuthError::BadSignature)
        };
    }
    if let Some(token) = req.header(TOKEN_HEADER) {
        let expected = secrets.and_then(|s| s.webhook_token.as_ref()).ok_or(WebhookAuthError::NoWebhookToken)?;
        return if !expected.expose().is_empty() && same(token, expected.expose()) {
            Ok(Verified::SharedSecret)
        } else {
            Err(WebhookAuthError::BadToken)
        };
    }
    Err(WebhookAuthError::Missing)
}

/// A contact as the workflow sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookContact {
    pub id: String,
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is not a JSON object")]
    NotAnObject,
    #[error("no contact id: expected canonical-vid / vid (legacy contact), id, hs_object_id or objectId")]
    NoId,
}

fn scalar(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Three shapes: the legacy v1 contact (`vid`, `properties: {name: {value, versions}}`), a
/// CRM v3 object (`id`, `properties: {name: value}`), or a customized flat body.
pub fn parse_contact(body: &[u8]) -> Result<WebhookContact, PayloadError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let obj = value.as_object().ok_or(PayloadError::NotAnObject)?;
    let mut properties = BTreeMap::new();
    match obj.get("properties").and_then(|p| p.as_object()) {
        Some(props) => {
            for (name, v) in props {
                // v1: {"value": ..., "versions": [...]}: the latest value only.
                let value = v.get("value").map_or_else(|| scalar(v), scalar);
                if let Some(value) = value {
                    properties.insert(name.clone(), value);
                }
            }
        }
        None => {
            for (name, v) in obj {
                if let Some(value) = scalar(v) {
                    properties.insert(name.clone(), value);
                }
            }
        }
    }
    let id = ["canonical-vid", "vid", "id", "hs_object_id", "objectId"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(scalar))
        .or_else(|| properties.get("hs_object_id").cloned())
        .filter(|id| !id.trim().is_empty())
        .ok_or(PayloadError::NoId)?;
    Ok(WebhookContact { id: id.trim().to_owned(), properties })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vicibridge_core::secrets::Secret;

    const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const URI: &str = "https://www.example.com/webhook_uri";

    /// HubSpot's published vectors (reference §3.1).
    #[test]
    fn published_test_vectors() {
        let v1_body = br#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;
        assert_eq!(signature_v1(SECRET, v1_body), "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de");
        assert_eq!(
            signature_v2(SECRET, "GET", URI, b""),
            "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
        );
        assert_eq!(
            signature_v2(SECRET, "POST", URI, br#"{"example_field":"example_value"}"#),
            "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900"
        );
        assert_eq!(
            signature_v3(SECRET, "POST", URI, br#"{"example_field":"example_value"}"#, "1700000000000"),
            "rQEKkaNUiu+1qGF//O/pw4BCzstSqO1PyUnGICmf+7o="
        );
        assert_eq!(
            signature_v3(SECRET, "GET", "https://www.example.com/webhook_uri?a=1", b"", "1700000000000"),
            "9IbM9QwHNvmYY/wf1UQ2odDUb0gbVdB2B0xe2ZT1IZg="
        );
        assert_eq!(v3_uri("https://x.com/a%3Ab%2Fc?q=%40me%20x"), "https://x.com/a:b/c?q=@me%20x");
    }

    fn secrets() -> HubspotSecrets {
        HubspotSecrets {
            access_token: None,
            client_secret: Some(Secret::new(SECRET)),
            webhook_token: Some(Secret::new("shared-token-1234")),
        }
    }

    fn check(
        headers: &[(&str, String)],
        body: &[u8],
        now: i64,
        guard: &ReplayGuard,
    ) -> Result<Verified, WebhookAuthError> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        let req = SignedRequest { method: "POST", uri: URI, body, headers: &map };
        verify(&req, Some(&secrets()), now, guard)
    }

    #[test]
    fn v3_window_forgery_and_replay() {
        let body = br#"{"vid":1}"#;
        let ts = 1_700_000_000_000i64;
        let sig = signature_v3(SECRET, "POST", URI, body, &ts.to_string());
        let headers = vec![("X-HubSpot-Signature-v3", sig.clone()), ("X-HubSpot-Request-Timestamp", ts.to_string())];
        let guard = ReplayGuard::default();
        assert_eq!(check(&headers, body, ts + 1000, &guard), Ok(Verified::SignatureV3));
        assert_eq!(check(&headers, body, ts + 2000, &guard), Err(WebhookAuthError::Replayed));
        assert_eq!(
            check(&headers, body, ts + MAX_AGE_MS + 1, &ReplayGuard::default()),
            Err(WebhookAuthError::Stale { age_secs: 300 })
        );
        assert_eq!(check(&headers, br#"{"vid":2}"#, ts, &ReplayGuard::default()), Err(WebhookAuthError::BadSignature));
        let forged = vec![("X-HubSpot-Signature-V3", sig), ("X-HubSpot-Request-Timestamp", (ts + 1).to_string())];
        assert_eq!(check(&forged, body, ts, &ReplayGuard::default()), Err(WebhookAuthError::BadSignature));
    }

    #[test]
    fn v2_v1_and_shared_token() {
        let body = br#"{"example_field":"example_value"}"#;
        let g = ReplayGuard::default();
        let v2 = vec![
            ("X-HubSpot-Signature", signature_v2(SECRET, "POST", URI, body)),
            ("X-HubSpot-Signature-Version", "v2".into()),
        ];
        assert_eq!(check(&v2, body, 0, &g), Ok(Verified::SignatureV2));
        let v1 =
            vec![("X-HubSpot-Signature", signature_v1(SECRET, body)), ("X-HubSpot-Signature-Version", "v1".into())];
        assert_eq!(check(&v1, body, 0, &g), Ok(Verified::SignatureV1));
        assert_eq!(check(&v1, b"{}", 0, &g), Err(WebhookAuthError::BadSignature));
        assert_eq!(
            check(&[("X-Vicibridge-Token", "shared-token-1234".into())], body, 0, &g),
            Ok(Verified::SharedSecret)
        );
        assert_eq!(check(&[("X-Vicibridge-Token", "nope".into())], body, 0, &g), Err(WebhookAuthError::BadToken));
        assert_eq!(check(&[], body, 0, &g), Err(WebhookAuthError::Missing));
    }

    #[test]
    fn contact_shapes() {
        let legacy = br#"{"vid":501,"canonical-vid":501,"merged-vids":[],"portal-id":62515,"is-contact":true,
            "properties":{"phone":{"value":"+1 415 555 2671","versions":[{"value":"+1 415 555 2671"}]},
                          "firstname":{"value":"Ada","versions":[]}},"form-submissions":[],"identity-profiles":[]}"#;
        let c = parse_contact(legacy).unwrap();
        assert_eq!(c.id, "501");
        assert_eq!(c.properties["phone"], "+1 415 555 2671");
        assert_eq!(c.properties["firstname"], "Ada");
        let v3 = br#"{"id":"777","properties":{"phone":"4155552671","hs_object_id":"777"}}"#;
        assert_eq!(parse_contact(v3).unwrap().id, "777");
        let flat = br#"{"hs_object_id":888,"phone":"4155552671","firstname":"Grace"}"#;
        let c = parse_contact(flat).unwrap();
        assert_eq!((c.id.as_str(), c.properties["firstname"].as_str()), ("888", "Grace"));
        assert_eq!(parse_contact(br#"{"phone":"1"}"#), Err(PayloadError::NoId));
        assert_eq!(parse_contact(b"[1]"), Err(PayloadError::NotAnObject));
        assert!(matches!(parse_contact(b"{"), Err(PayloadError::NotJson(_))));
    }
}

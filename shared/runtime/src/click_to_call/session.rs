//! Signed agent sessions and OAuth `state`: HS256 JWTs keyed by the secret's
//! `agent_session_keys` (the first signs, each verifies). Nothing is stored server-side, so the
//! same code serves Lambda and `serve`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vicibridge_core::config::CrmUserKind;
use vicibridge_core::secrets::Secret;

const SESSION_AUDIENCE: &str = "vicibridge-agent";
const STATE_AUDIENCE: &str = "vicibridge-oauth-state";
/// A sign-in has this long between the click and the CRM's redirect back.
pub const STATE_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Shorter keys are refused: HS256 with a guessable key is no signature.
pub const MIN_KEY_LEN: usize = 32;

/// Who the bearer of a session is: verified at sign-in, then trusted until `exp`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSession {
    /// The VICIdial user; empty with `alt_user` mapping (VICIdial resolves it).
    pub sub: String,
    /// `alt_user` for VICIdial (`vicidial_users.custom_three`), with that mapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt_user: Option<String>,
    pub crm: CrmUserKind,
    pub crm_user: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct OAuthState {
    crm: CrmUserKind,
    /// Also in the sign-in cookie: the callback must come back to the browser that started it.
    nonce: String,
    aud: String,
    exp: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("no agent_session_keys in the secret (at least one key of {MIN_KEY_LEN}+ characters)")]
    NoKey,
    #[error("session missing")]
    Missing,
    #[error("session expired")]
    Expired,
    #[error("session invalid")]
    Invalid,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn usable(keys: &[Secret]) -> impl Iterator<Item = &Secret> {
    keys.iter().filter(|k| k.expose().len() >= MIN_KEY_LEN)
}

fn sign<T: Serialize>(keys: &[Secret], claims: &T) -> Result<String, SessionError> {
    let key = usable(keys).next().ok_or(SessionError::NoKey)?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(key.expose().as_bytes()))
        .map_err(|_| SessionError::NoKey)
}

fn verify<T: for<'de> Deserialize<'de>>(keys: &[Secret], token: &str, audience: &str) -> Result<T, SessionError> {
    if token.is_empty() {
        return Err(SessionError::Missing);
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "aud"]);
    validation.leeway = 5;
    let mut outcome = Err(SessionError::Invalid);
    for key in usable(keys) {
        match jsonwebtoken::decode::<T>(token, &DecodingKey::from_secret(key.expose().as_bytes()), &validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                outcome = Err(SessionError::Expired);
            }
            Err(_) => {}
        }
    }
    if usable(keys).next().is_none() {
        return Err(SessionError::NoKey);
    }
    outcome
}

impl AgentSession {
    pub fn new(
        vicidial_user: Option<&str>,
        alt_user: Option<String>,
        crm: CrmUserKind,
        crm_user: &str,
        lifetime: Duration,
    ) -> Self {
        let iat = now();
        AgentSession {
            sub: vicidial_user.unwrap_or_default().to_owned(),
            alt_user,
            crm,
            crm_user: crm_user.to_owned(),
            aud: SESSION_AUDIENCE.to_owned(),
            iat,
            exp: iat + lifetime.as_secs(),
        }
    }

    pub fn sign(&self, keys: &[Secret]) -> Result<String, SessionError> {
        sign(keys, self)
    }

    pub fn verify(keys: &[Secret], token: &str) -> Result<AgentSession, SessionError> {
        verify(keys, token, SESSION_AUDIENCE)
    }

    /// The VICIdial user for logs: the user, or `alt:<id>`.
    pub fn agent_label(&self) -> String {
        match &self.alt_user {
            Some(a) if self.sub.is_empty() => format!("alt:{a}"),
            _ => self.sub.clone(),
        }
    }
}

/// A new sign-in: the signed `state` and the nonce for the cookie.
pub fn new_state(keys: &[Secret], crm: CrmUserKind) -> Result<(String, String), SessionError> {
    let nonce = URL_SAFE_NO_PAD.encode(fastrand_bytes());
    let state =
        OAuthState { crm, nonce: nonce.clone(), aud: STATE_AUDIENCE.to_owned(), exp: now() + STATE_LIFETIME.as_secs() };
    Ok((sign(keys, &state)?, nonce))
}

/// Checks a callback's `state` against the CRM and the browser's sign-in cookie.
pub fn check_state(
    keys: &[Secret],
    state: &str,
    crm: CrmUserKind,
    cookie_nonce: Option<&str>,
) -> Result<String, SessionError> {
    let s: OAuthState = verify(keys, state, STATE_AUDIENCE)?;
    if s.crm != crm || cookie_nonce != Some(s.nonce.as_str()) {
        return Err(SessionError::Invalid);
    }
    Ok(s.nonce)
}

/// PKCE `code_verifier` for a sign-in, derived from its nonce with the session key: the
/// callback recomputes it, and someone who sees the code and the state cannot.
pub fn pkce_verifier(keys: &[Secret], nonce: &str) -> Result<String, SessionError> {
    let key = usable(keys).next().ok_or(SessionError::NoKey)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()).map_err(|_| SessionError::NoKey)?;
    mac.update(b"pkce:");
    mac.update(nonce.as_bytes());
    Ok(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// `code_challenge` for S256.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn fastrand_bytes() -> [u8; 24] {
    let mut b = [0u8; 24];
    // fastrand seeds from the OS per thread; the nonce only has to be unguessable before the
    // callback, and it is also signed into the state.
    b.iter_mut().for_each(|x| *x = fastrand::u8(..));
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> Vec<Secret> {
        k.iter().map(|s| Secret::new(*s)).collect()
    }

    const K1: &str = "k1-0123456789abcdef0123456789abcdef";
    const K2: &str = "k2-0123456789abcdef0123456789abcdef";

    #[test]
    fn sessions_verify_with_any_current_key_and_not_after_expiry() {
        let s = AgentSession::new(Some("1000"), None, CrmUserKind::Hubspot, "424242", Duration::from_secs(60));
        let token = s.sign(&keys(&[K1])).unwrap();
        assert_eq!(AgentSession::verify(&keys(&[K2, K1]), &token).unwrap(), s);
        assert_eq!(AgentSession::verify(&keys(&[K2]), &token), Err(SessionError::Invalid));
        let mut old = s.clone();
        old.exp = now() - 60;
        let token = old.sign(&keys(&[K1])).unwrap();
        assert_eq!(AgentSession::verify(&keys(&[K1]), &token), Err(SessionError::Expired));
        assert_eq!(AgentSession::verify(&keys(&["short"]), "x"), Err(SessionError::NoKey));
    }

    #[test]
    fn a_state_is_not_a_session_and_needs_its_cookie() {
        let k = keys(&[K1]);
        let (state, nonce) = new_state(&k, CrmUserKind::Salesforce).unwrap();
        assert!(AgentSession::verify(&k, &state).is_err());
        assert_eq!(check_state(&k, &state, CrmUserKind::Salesforce, Some(&nonce)).unwrap(), nonce);
        assert!(check_state(&k, &state, CrmUserKind::Salesforce, None).is_err());
        assert!(check_state(&k, &state, CrmUserKind::Hubspot, Some(&nonce)).is_err());
        let v = pkce_verifier(&k, &nonce).unwrap();
        assert!(v.len() >= 43 && pkce_challenge(&v) != v);
    }
}

//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "{webhook-id}.{webhook-timestamp}.{body}">`, keyed with the base64-decoded secret
//! (`whsec_` + base64). During a rotation the current and the previous secret both sign,
//! space-separated, so a receiver holding either one verifies.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use vicibridge_core::secrets::{Secret, WebhookSecrets};

const PREFIX: &str = "whsec_";
/// The spec's range for secret keys.
const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Names the secret's key, never its value.
    #[error(
        "webhook.{0} is not a Standard Webhooks secret: \"whsec_\" followed by the base64 of 24 to 64 random bytes (e.g. `echo whsec_$(openssl rand -base64 32)`)"
    )]
    Invalid(&'static str),
    #[error("the secret has no webhook.signing_secret: add it (\"whsec_\" + base64 of 32 random bytes)")]
    Missing,
}

/// The decoded keys, current first. No `Debug` of the bytes.
#[derive(Clone)]
pub struct SigningKeys(Vec<Vec<u8>>);

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKeys({} key(s), redacted)", self.0.len())
    }
}

fn decode(secret: &Secret, key: &'static str) -> Result<Vec<u8>, KeyError> {
    let text = secret.expose().trim();
    let b64 = text.strip_prefix(PREFIX).ok_or(KeyError::Invalid(key))?;
    let bytes = STANDARD.decode(b64).map_err(|_| KeyError::Invalid(key))?;
    if !KEY_BYTES.contains(&bytes.len()) {
        return Err(KeyError::Invalid(key));
    }
    Ok(bytes)
}

impl SigningKeys {
    pub fn from_secrets(secrets: Option<&WebhookSecrets>) -> Result<Self, KeyError> {
        let s = secrets.ok_or(KeyError::Missing)?;
        let mut keys = vec![decode(&s.signing_secret, "signing_secret")?];
        if let Some(prev) = &s.previous_signing_secret {
            keys.push(decode(prev, "previous_signing_secret")?);
        }
        Ok(SigningKeys(keys))
    }

    /// The `webhook-signature` header value.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let signatures: Vec<String> = self
            .0
            .iter()
            .map(|key| {
                // HMAC takes keys of any length: new_from_slice cannot fail for Sha256.
                let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
                    Ok(m) => m,
                    Err(_) => return String::new(),
                };
                mac.update(id.as_bytes());
                mac.update(b".");
                mac.update(timestamp.to_string().as_bytes());
                mac.update(b".");
                mac.update(body);
                format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
            })
            .collect();
        signatures.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(current: &str, previous: Option<&str>) -> WebhookSecrets {
        WebhookSecrets { signing_secret: Secret::new(current), previous_signing_secret: previous.map(Secret::new) }
    }

    /// The example of the Standard Webhooks specification (and of its reference libraries).
    #[test]
    fn matches_the_specification_example() {
        let keys = SigningKeys::from_secrets(Some(&secrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", None))).unwrap();
        let sig = keys.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, br#"{"test": 2432232314}"#);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn both_secrets_sign_during_a_rotation_and_bad_secrets_are_named_not_shown() {
        let cur = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let prev = "whsec_c2VjcmV0LWtleS1vZi10d2VudHktZm91ci1ieXRlcw==";
        let keys = SigningKeys::from_secrets(Some(&secrets(cur, Some(prev)))).unwrap();
        let sig = keys.sign("id", 1, b"{}");
        let parts: Vec<&str> = sig.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_eq!(parts[0], SigningKeys::from_secrets(Some(&secrets(cur, None))).unwrap().sign("id", 1, b"{}"));

        for bad in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!", "whsec_c2hvcnQ="] {
            let e = SigningKeys::from_secrets(Some(&secrets(bad, None))).unwrap_err();
            assert_eq!(e, KeyError::Invalid("signing_secret"));
            assert!(!e.to_string().contains(bad));
        }
        let e = SigningKeys::from_secrets(Some(&secrets(cur, Some("whsec_")))).unwrap_err();
        assert_eq!(e, KeyError::Invalid("previous_signing_secret"));
        assert_eq!(SigningKeys::from_secrets(None).unwrap_err(), KeyError::Missing);
    }
}

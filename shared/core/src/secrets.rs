//! The secret JSON (one Secrets Manager secret; locally the `--secrets` file).
//!
//! Values are wrapped in [`Secret`], whose `Debug` is redacted and which has no `Display` or
//! `Serialize`: a secret cannot reach a log line, an error message or a queue by accident.

use std::fmt;

use serde::Deserialize;

#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The only way to read the value: greppable on purpose.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// `{"ingest_tokens": ["current", "previous"], "vicidial": {...}, "hubspot": {...},
/// "salesforce": {...}}`, every section optional.
/// `PartialEq` lets a paused worker see that the secret changed since its credential was
/// refused, and try again at once.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretDoc {
    /// Accepted `token=` values for the VICIdial URLs: the current one first, then the
    /// previous one while a rotation is under way.
    #[serde(default)]
    pub ingest_tokens: Vec<Secret>,
    /// Accepted `token=` values of the screen pop page (current first, then previous). Never
    /// an ingest token: agents see the page URL, and an ingest token would let them forge
    /// dispositions.
    #[serde(default)]
    pub screen_pop_tokens: Vec<Secret>,
    /// Accepted tokens of `serve`'s `/status` page (`Authorization: Bearer` or `token=`),
    /// current first. Without one the page answers only on this machine (loopback).
    #[serde(default)]
    pub status_tokens: Vec<Secret>,
    /// Keys that sign agent sessions (click-to-call): the current one signs, every one
    /// verifies, so a rotation does not sign every agent out. At least 32 characters.
    #[serde(default)]
    pub agent_session_keys: Vec<Secret>,
    #[serde(default)]
    pub vicidial: Option<VicidialSecrets>,
    #[serde(default)]
    pub hubspot: Option<HubspotSecrets>,
    #[serde(default)]
    pub salesforce: Option<SalesforceSecrets>,
    #[serde(default)]
    pub webhook: Option<WebhookSecrets>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VicidialSecrets {
    pub api_user: String,
    pub api_pass: Secret,
    /// The user `vicibridge reconcile` reads the URL Log Report as (user level above 6,
    /// "view reports", the report allowed for its user group).
    #[serde(default)]
    pub reports_user: Option<String>,
    #[serde(default)]
    pub reports_pass: Option<Secret>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HubspotSecrets {
    pub access_token: Option<Secret>,
    pub client_secret: Option<Secret>,
    pub webhook_token: Option<Secret>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SalesforceSecrets {
    pub client_id: Option<Secret>,
    pub client_secret: Option<Secret>,
    pub refresh_token: Option<Secret>,
    pub organization_id: Option<String>,
    pub webhook_token: Option<Secret>,
    /// JWT bearer flow (`[salesforce] auth = "jwt-bearer"`): the integration user's username.
    #[serde(default)]
    pub username: Option<Secret>,
    /// JWT bearer flow: the PEM private key whose certificate is on the connected app.
    #[serde(default)]
    pub private_key: Option<Secret>,
}

/// The webhook destination's signing secrets (`whsec_` + base64, as Standard Webhooks defines).
/// During a rotation both sign every request: the receiver switches to the new one, then
/// `previous_signing_secret` is removed.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebhookSecrets {
    pub signing_secret: Secret,
    #[serde(default)]
    pub previous_signing_secret: Option<Secret>,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretDocError {
    /// serde_json's message (field names and position) and the line, values blanked.
    #[error("secret JSON is invalid: {0}")]
    Invalid(String),
}

impl SecretDoc {
    pub fn from_json(text: &str) -> Result<Self, SecretDocError> {
        serde_json::from_str(text).map_err(|e| SecretDocError::Invalid(redacted_serde_error(text, &e)))
    }

    /// Every secret value in the document, for redaction checks and log scrubbing.
    pub fn all_values(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .ingest_tokens
            .iter()
            .chain(&self.screen_pop_tokens)
            .chain(&self.status_tokens)
            .chain(&self.agent_session_keys)
            .map(Secret::expose)
            .collect();
        if let Some(v) = &self.vicidial {
            out.push(v.api_pass.expose());
            out.extend(v.reports_pass.as_ref().map(Secret::expose));
        }
        if let Some(h) = &self.hubspot {
            out.extend([&h.access_token, &h.client_secret, &h.webhook_token].into_iter().flatten().map(Secret::expose));
        }
        if let Some(s) = &self.salesforce {
            out.extend(
                [&s.client_id, &s.client_secret, &s.refresh_token, &s.webhook_token, &s.username, &s.private_key]
                    .into_iter()
                    .flatten()
                    .map(Secret::expose),
            );
        }
        if let Some(w) = &self.webhook {
            out.extend(std::iter::once(&w.signing_secret).chain(&w.previous_signing_secret).map(Secret::expose));
        }
        out
    }
}

/// serde_json's message, with every value blanked and every key name kept, so the operator
/// sees which key is wrong: serde quotes values after their kind (`invalid type: string
/// "abc"`, ``integer `123` ``) and names in backticks (``unknown field `acess_token` ``). A
/// syntax error has no value in its message; the keys that lead to it and the line it is on
/// (values blanked) are added, since serde_json names neither.
fn redacted_serde_error(text: &str, e: &serde_json::Error) -> String {
    let mut out = blank_values(&e.to_string());
    let place = ErrorPlace::find(text, e.line(), e.column());
    if !place.path.is_empty() {
        out.push_str(&format!(" (in {})", place.path));
    }
    if !place.line.trim().is_empty() {
        out.push_str(&format!("; line {}: {}", e.line(), place.line.trim()));
    }
    out
}

/// How serde's `Unexpected` shows a value: its kind, then the value up to the delimiter.
/// Strings are `Debug`-escaped, so a `"` inside one is `\"`.
const VALUE_KINDS: [(&str, char); 5] =
    [("string \"", '"'), ("integer `", '`'), ("floating point `", '`'), ("boolean `", '`'), ("character `", '`')];

fn blank_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some((at, kind, close)) = VALUE_KINDS
        .iter()
        .filter_map(|(kind, close)| rest.find(kind).map(|at| (at, *kind, *close)))
        .min_by_key(|(at, ..)| *at)
    {
        let value_start = at + kind.len();
        out.push_str(&rest[..value_start]);
        out.push('…');
        let mut escaped = false;
        let end = rest[value_start..].char_indices().find(|&(_, c)| {
            let closes = c == close && !escaped;
            escaped = !escaped && c == '\\';
            closes
        });
        rest = end.map_or("", |(i, _)| &rest[value_start + i..]);
    }
    out.push_str(rest);
    out
}

/// Where in the document an error is: the keys leading to it (`hubspot.access_token`,
/// `ingest_tokens[1]`) and its line with every value blanked to `…`. Read leniently: the
/// document may be broken right there.
#[derive(Debug, Default)]
struct ErrorPlace {
    path: String,
    line: String,
}

#[derive(Debug)]
enum Container {
    Object { key: Option<String>, state: ObjectState },
    Array { index: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ObjectState {
    ExpectKey,
    AfterKey,
    ExpectValue,
    AfterValue,
}

impl ErrorPlace {
    /// `line` and `column` are serde_json's (1-based; the column counts bytes).
    fn find(text: &str, line: usize, column: usize) -> ErrorPlace {
        let mut stack: Vec<Container> = Vec::new();
        let mut place = ErrorPlace::default();
        let mut path_taken = false;
        for (n, src) in text.lines().enumerate() {
            let n = n + 1;
            if n > line {
                break;
            }
            let bytes = src.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                if n == line && i + 1 >= column && !path_taken {
                    place.path = render_path(&stack);
                    path_taken = true;
                }
                let c = bytes[i];
                let start = i;
                i += 1;
                let mut shown: Option<&str> = None;
                match c {
                    b'{' => {
                        stack.push(Container::Object { key: None, state: ObjectState::ExpectKey });
                    }
                    b'[' => stack.push(Container::Array { index: 0 }),
                    b'}' | b']' => {
                        stack.pop();
                        value_done(&mut stack);
                    }
                    b':' => {
                        if let Some(Container::Object { state, .. }) = stack.last_mut() {
                            *state = ObjectState::ExpectValue;
                        }
                    }
                    b',' => match stack.last_mut() {
                        Some(Container::Object { key, state }) => {
                            *key = None;
                            *state = ObjectState::ExpectKey;
                        }
                        Some(Container::Array { index }) => *index += 1,
                        None => {}
                    },
                    b'"' => {
                        let mut escaped = false;
                        while i < bytes.len() {
                            let b = bytes[i];
                            i += 1;
                            if b == b'"' && !escaped {
                                break;
                            }
                            escaped = !escaped && b == b'\\';
                        }
                        let followed_by_colon = src[i..].trim_start().starts_with(':');
                        let is_key = match stack.last() {
                            Some(Container::Object { state: ObjectState::ExpectKey, .. }) => true,
                            // A missing comma: `"a": "x" "b": …`.
                            Some(Container::Object { state: ObjectState::AfterValue, .. }) => followed_by_colon,
                            _ => false,
                        };
                        if is_key {
                            let name = src[start + 1..i].trim_end_matches('"').to_owned();
                            if let Some(Container::Object { key, state }) = stack.last_mut() {
                                *key = Some(name);
                                *state = ObjectState::AfterKey;
                            }
                        } else {
                            shown = Some("\"…\"");
                            value_done(&mut stack);
                        }
                    }
                    c if c.is_ascii_whitespace() => {}
                    _ => {
                        // A number, `true`, or an unquoted word that may well be a secret.
                        while i < bytes.len() && !b" \t\r{}[]:,\"".contains(&bytes[i]) {
                            i += 1;
                        }
                        shown = Some("…");
                        value_done(&mut stack);
                    }
                }
                if n == line {
                    place.line.push_str(shown.unwrap_or(&src[start..i]));
                }
            }
            if n == line && !path_taken {
                place.path = render_path(&stack);
                path_taken = true;
            }
        }
        const MAX_LINE: usize = 200;
        if place.line.chars().count() > MAX_LINE {
            place.line = place.line.chars().take(MAX_LINE).chain(['…']).collect();
        }
        place
    }
}

fn value_done(stack: &mut [Container]) {
    if let Some(Container::Object { state, .. }) = stack.last_mut() {
        *state = ObjectState::AfterValue;
    }
}

fn render_path(stack: &[Container]) -> String {
    let mut out = String::new();
    for c in stack {
        match c {
            // A key whose value is complete is behind the error, not around it.
            Container::Object { key: Some(key), state: ObjectState::AfterKey | ObjectState::ExpectValue } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Container::Object { .. } => {}
            Container::Array { index } => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape_and_redacts() {
        let doc = SecretDoc::from_json(
            r#"{"ingest_tokens":["cur-token-123456","old-token-654321"],
                "vicidial":{"api_user":"apiuser","api_pass":"p4ss"},
                "hubspot":{"access_token":"pat-na1-xyz"},
                "webhook":{"signing_secret":"whsec_c2VjcmV0","previous_signing_secret":"whsec_b2xk"}}"#,
        )
        .unwrap();
        assert_eq!(doc.ingest_tokens.len(), 2);
        let debug = format!("{doc:?}");
        for v in doc.all_values() {
            assert!(!debug.contains(v), "{v} leaked into {debug}");
        }
        assert!(doc.all_values().contains(&"p4ss"));
        assert!(doc.all_values().contains(&"whsec_b2xk"));
    }

    #[test]
    fn errors_never_quote_values() {
        let err = SecretDoc::from_json(r#"{"ingest_tokens":"supersecretvalue"}"#).unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains("supersecretvalue"), "{msg}");
        assert!(msg.contains("line 1"), "{msg}");
        let err = SecretDoc::from_json(r#"{"vicidial":{"api_user":"u","api_pass":12345678}}"#).unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains("12345678") && msg.contains("invalid type: integer"), "{msg}");
    }

    #[test]
    fn a_typo_shows_the_key_names_and_no_value() {
        // A missing comma between two keys: the keys around it are shown, the values never.
        let text = "{\n  \"ingest_tokens\": [\"tok-aaa-111\"],\n  \"hubspot\": {\"access_token\": \"pat-na1-secret\" \"client_secret\": \"cs-secret\"}\n}";
        let msg = SecretDoc::from_json(text).unwrap_err().to_string();
        for value in ["tok-aaa-111", "pat-na1-secret", "cs-secret"] {
            assert!(!msg.contains(value), "{value} in {msg}");
        }
        assert!(msg.contains("expected `,` or `}`"), "{msg}");
        assert!(msg.contains("(in hubspot)"), "{msg}");
        assert!(msg.contains(r#"line 3: "hubspot": {"access_token": "…" "client_secret": "…"}"#), "{msg}");

        let msg = SecretDoc::from_json(r#"{"hubspot": {"acess_token": "pat-na1-secret"}}"#).unwrap_err().to_string();
        assert!(msg.contains("unknown field `acess_token`, expected one of `access_token`"), "{msg}");
        assert!(!msg.contains("pat-na1-secret"), "{msg}");

        // An unquoted value, a colon for a comma in a list, an escaped quote: still blank.
        for (text, value) in [
            (r#"{"vicidial": {"api_user": "api", "api_pass": hunter2}}"#, "hunter2"),
            (r#"{"ingest_tokens": ["tok-one": "tok-two"]}"#, "tok-"),
            (r#"{"hubspot": "pat-\"quoted\"-secret"}"#, "quoted"),
            (r#"{"vicidial": {"api_user": "api": "api_pass"}}"#, "\"api\""),
        ] {
            let msg = SecretDoc::from_json(text).unwrap_err().to_string();
            assert!(!msg.contains(value), "{value} in {msg}");
        }
    }
}

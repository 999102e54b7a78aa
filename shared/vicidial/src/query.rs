//! The query string exactly as VICIdial builds it.
//!
//! VICIdial mixes encodings in one URL (§10.4): most values are PHP-`urlencode`d (space → `+`),
//! some are sent raw (uniqueid, recording filenames, user, campaign), `dispo_name` is encoded
//! twice. API Gateway's pre-parsed parameters join repeated keys with commas and hide the
//! difference, so we always parse the raw query ourselves.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use percent_encoding::percent_decode;

/// Longest query we accept; VICIdial's longest URL with every tag is far below this.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;

/// Variables that carry secrets. Dropped while parsing: never stored, queued or logged.
/// `pass`/`phone_pass` are the agent's passwords (§12: never put them in a URL).
// Built once: every value of every request is searched for a tag.
static TAG_START: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("--A--"));
static TAG_END: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("--B--"));

const SECRET_KEYS: &[&str] = &["pass", "phone_pass", "token"];

#[derive(Debug, Default)]
pub struct VicidialQuery {
    /// foldhash, not SipHash: hashing the keys was a visible part of ingest's CPU. Still
    /// seeded per process, so keys chosen by a caller cannot force collisions.
    values: foldhash::HashMap<String, String>,
    token: Option<String>,
    token_conflict: bool,
    /// First key seen twice with different values.
    conflict: Option<String>,
    dropped_secret: Vec<&'static str>,
}

/// `+` is a space, then percent-decoding; a `%` not followed by two hex digits is kept as is
/// (raw values such as recording filenames may contain one).
///
/// Bytes that are not UTF-8 come from a dialer whose database or PHP runs in Latin-1 (`%E9`
/// for `é`): they are read as Windows-1252, a superset of Latin-1 that maps every byte to its
/// own character. Nothing is replaced, so two different values never decode alike
/// (identifiers are then checked strictly by the event builder).
pub fn form_decode(raw: &str) -> String {
    if !raw.contains(['+', '%']) {
        return raw.to_owned();
    }
    let bytes: Vec<u8> = raw.bytes().map(|b| if b == b'+' { b' ' } else { b }).collect();
    let decoded: Vec<u8> = percent_decode(&bytes).collect();
    match String::from_utf8(decoded) {
        Ok(text) => text,
        Err(e) => encoding_rs::WINDOWS_1252.decode_without_bom_handling(e.as_bytes()).0.into_owned(),
    }
}

impl VicidialQuery {
    /// Never fails: problems (conflicting repeats) are reported by the event builder, after
    /// the request has been authenticated.
    pub fn parse(raw: &str) -> Self {
        let mut q = VicidialQuery::default();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = form_decode(k);
            let value = form_decode(v);
            if let Some(&secret) = SECRET_KEYS.iter().find(|s| **s == key) {
                if secret == "token" {
                    match &q.token {
                        Some(t) if *t != value => q.token_conflict = true,
                        _ => q.token = Some(value),
                    }
                } else if !q.dropped_secret.contains(&secret) {
                    q.dropped_secret.push(secret);
                }
                continue;
            }
            match q.values.get(&key) {
                Some(existing) if *existing != value => {
                    if q.conflict.is_none() {
                        q.conflict = Some(key);
                    }
                }
                Some(_) => {}
                None => {
                    q.values.insert(key, value);
                }
            }
        }
        q
    }

    /// The `token=` value, unless it was repeated with different values.
    pub fn token(&self) -> Option<&str> {
        if self.token_conflict { None } else { self.token.as_deref() }
    }

    /// Secret variables that were present and dropped (`pass`, `phone_pass`), for a warning.
    pub fn dropped_secrets(&self) -> &[&'static str] {
        &self.dropped_secret
    }

    pub fn conflict(&self) -> Option<&str> {
        self.conflict.as_deref()
    }

    /// The trimmed value, `None` when absent or empty (VICIdial sends empty notes as `+`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// A `--A--name--B--` tag VICIdial could not substitute arrives literally (§10.3).
    /// Returns the query key and the variable name of the first one found.
    pub fn unsubstituted(&self) -> Option<(&str, String)> {
        let mut found: Vec<(&str, String)> = self
            .values
            .iter()
            .filter_map(|(k, v)| {
                let start = TAG_START.find(v.as_bytes())? + 5;
                let len = TAG_END.find(&v.as_bytes()[start..])?;
                Some((k.as_str(), v[start..start + len].to_owned()))
            })
            .collect();
        found.sort();
        found.into_iter().next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_percent_and_keeps_raw_values() {
        let q = VicidialQuery::parse(
            "first_name=Jos%C3%A9+Mar%C3%ADa&last_name=O%27Brien&recording_filename=20261121-101010_7275551212_1000-all&uniqueid=1795298900.123&campaign=TEST CAMP&bad=100%&empty=&call_notes=+",
        );
        assert_eq!(q.get("first_name"), Some("José María"));
        assert_eq!(q.get("last_name"), Some("O'Brien"));
        assert_eq!(q.get("recording_filename"), Some("20261121-101010_7275551212_1000-all"));
        assert_eq!(q.get("uniqueid"), Some("1795298900.123"));
        assert_eq!(q.get("campaign"), Some("TEST CAMP"));
        assert_eq!(q.get("bad"), Some("100%"));
        assert_eq!(q.get("empty"), None);
        assert_eq!(q.get("call_notes"), None);
    }

    #[test]
    fn latin1_bytes_are_windows_1252_and_never_collapse() {
        let q = VicidialQuery::parse("first_name=Jos%E9&city=K%F6ln&notes=%93quoted%94+%80&a=%FF1.1&b=%FE1.1");
        assert_eq!(q.get("first_name"), Some("José"));
        assert_eq!(q.get("city"), Some("Köln"));
        assert_eq!(q.get("notes"), Some("\u{201c}quoted\u{201d} €"));
        assert_ne!(q.get("a"), q.get("b"), "different bytes stay different values");
        assert!(!q.get("a").unwrap_or_default().contains('\u{fffd}'));
    }

    #[test]
    fn secrets_are_dropped_and_token_kept_apart() {
        let q = VicidialQuery::parse("token=abc&pass=agentpw&phone_pass=sip&lead_id=1");
        assert_eq!(q.token(), Some("abc"));
        assert_eq!(q.get("pass"), None);
        assert_eq!(q.get("phone_pass"), None);
        assert_eq!(q.dropped_secrets(), ["pass", "phone_pass"]);
        assert!(!format!("{q:?}").contains("agentpw"));
    }

    #[test]
    fn repeats_with_different_values_are_conflicts() {
        assert_eq!(VicidialQuery::parse("a=1&a=1").conflict(), None);
        assert_eq!(VicidialQuery::parse("a=1&b=2&a=3").conflict(), Some("a"));
        assert_eq!(VicidialQuery::parse("token=x&token=y").token(), None);
        assert_eq!(VicidialQuery::parse("token=x&token=x").token(), Some("x"));
    }

    #[test]
    fn finds_unsubstituted_tags() {
        let q = VicidialQuery::parse("lead_id=1&color=--A--favorite_color--B--");
        assert_eq!(q.unsubstituted(), Some(("color", "favorite_color".to_owned())));
        assert_eq!(VicidialQuery::parse("a=--A--&b=x--B--").unsubstituted(), None);
    }
}

//! The URLs to paste into VICIdial (`vicibridge urls`), with the tags each URL may use.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Tags of the Start Call URL. Not `recording_*`, `dispo_name`, `callback_*`, `talk_time_ms`
/// or `term_reason`: VICIdial does not fill them there and they would arrive literally (§10.2).
const START_CALL_TAGS: &[&str] = &[
    "lead_id",
    "vendor_lead_code",
    "list_id",
    "phone_code",
    "phone_number",
    "title",
    "first_name",
    "last_name",
    "address1",
    "city",
    "state",
    "postal_code",
    "country_code",
    "email",
    "user",
    "campaign",
    "group",
    "uniqueid",
    "call_id",
    "dialed_number",
    "epoch",
];

/// Tags of the Dispo Call URL: the call's outcome on top of the Start Call tags.
const DISPO_EXTRA_TAGS: &[&str] =
    &["dispo", "dispo_name", "talk_time", "recording_filename", "recording_id", "callback_datetime"];

/// Tags of the API New Lead URL. No `SQLdate`/`epoch`: always empty on that path (§3).
const NEW_LEAD_TAGS: &[&str] = &[
    "lead_id",
    "vendor_lead_code",
    "source_id",
    "list_id",
    "phone_code",
    "phone_number",
    "alt_phone",
    "title",
    "first_name",
    "last_name",
    "address1",
    "city",
    "state",
    "postal_code",
    "country_code",
    "email",
    "comments",
    "user",
    "campaign",
    "status",
    "entry_date",
];

/// Query keys of the screen pop page: VICIdial's own variable names (Scripts fill all of
/// them; a Web Form fills `user` only when `$user_pass_webform` allows it).
const SCREEN_POP_TAGS: &[&str] =
    &["lead_id", "vendor_lead_code", "phone_number", "phone_code", "user", "campaign", "session_id", "uniqueid"];

const TOKEN_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallUrls {
    pub start_call_url: String,
    pub dispo_call_url: String,
    pub api_new_lead_url: String,
}

fn build(base: &str, path: &str, token: &str, tags: &[&[&str]]) -> String {
    let mut url = format!("{}{path}?token={}", base.trim_end_matches('/'), utf8_percent_encode(token, TOKEN_SET));
    for tag in tags.iter().flat_map(|t| t.iter()) {
        url.push_str(&format!("&{tag}=--A--{tag}--B--"));
    }
    url
}

/// `base` is the public base URL of vicibridge (API Gateway's or `serve`'s).
pub fn call_urls(base: &str, token: &str) -> CallUrls {
    CallUrls {
        start_call_url: build(base, "/vicidial/call-start", token, &[START_CALL_TAGS]),
        dispo_call_url: build(base, "/vicidial/dispo", token, &[START_CALL_TAGS, DISPO_EXTRA_TAGS]),
        api_new_lead_url: build(base, "/vicidial/new-lead", token, &[NEW_LEAD_TAGS]),
    }
}

/// The screen pop page URL for a Web Form, or the `src` of a Script `<iframe>`; `token` is a
/// `screen_pop_tokens` value, never an ingest token.
pub fn screen_pop_url(base: &str, token: &str) -> String {
    build(base, "/vicidial/screen-pop", token, &[SCREEN_POP_TAGS])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screen_pop_url_carries_the_pop_token_and_no_password_tag() {
        let url = screen_pop_url("https://pop.example.com/", "p o+p");
        assert!(
            url.starts_with("https://pop.example.com/vicidial/screen-pop?token=p%20o%2Bp&lead_id=--A--lead_id--B--")
        );
        assert!(url.contains("&user=--A--user--B--") && url.contains("&session_id=--A--session_id--B--"));
        assert!(!url.contains("pass"));
    }
}

//! What `non_agent_api.php` answered, classified. Pure: HTTP status + body in, outcome out.
//!
//! Facts (reference §1, §2.2, §2.3, §5, §13): errors come with HTTP 200; PHP fatals (every SQL
//! error on PHP ≥ 8.1) are HTTP 500, usually with an empty body but sometimes after the insert
//! (§13.1); one reply has several lines; the MULTI-ALT-PHONE NOTICE is glued to stray text;
//! the bad-login error echoes the password.

use vicibridge_core::LeadId;
use vicibridge_core::lead::{AddLeadOutcome, DialerError};

/// A classified reply: the result for the caller, a fixed code for metrics and logs (never
/// carries data), and what went wrong with the login, if anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classified<T> {
    pub result: Result<T, DialerError>,
    pub code: &'static str,
    pub auth: Option<AuthFailure>,
}

/// Login and permission problems (§1.1): each needs an operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// `Login incorrect`: wrong password, user level ≤ 6, inactive user or 2FA. Counts toward
    /// the lockout (§13.8).
    BadLogin,
    /// `Too many login attempts`: locked for 15 minutes, even with the right password.
    Locked,
    /// IP list block, function not allowed, missing user group, missing lead permissions.
    NotPermitted,
}

impl AuthFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::BadLogin => "bad_login",
            AuthFailure::Locked => "locked",
            AuthFailure::NotPermitted => "not_permitted",
        }
    }
}

impl<T> Classified<T> {
    pub(super) fn ok(value: T, code: &'static str) -> Self {
        Classified { result: Ok(value), code, auth: None }
    }
    fn err(error: DialerError, code: &'static str) -> Self {
        Classified { result: Err(error), code, auth: None }
    }
    pub(super) fn permanent(reason: String, alert: bool, code: &'static str) -> Self {
        Self::err(DialerError::Permanent { reason, alert }, code)
    }
    fn unknown(reason: String, code: &'static str) -> Self {
        Self::err(DialerError::Unknown { reason }, code)
    }
    pub(super) fn retryable(reason: String, code: &'static str) -> Self {
        Self::err(DialerError::Retryable { reason }, code)
    }
}

/// Removes secrets from text VICIdial sent back before it reaches a reason, a log or a metric.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.secrets.len())
    }
}

pub const REDACTED: &str = "[redacted]";

impl Redactor {
    /// `pass` as sent and as VICIdial echoes it: it deletes every character outside
    /// `[A-Za-z0-9_-]` before echoing (§1), so both spellings must go.
    pub fn for_password(pass: &str) -> Self {
        let mut secrets = Vec::new();
        let filtered: String = pass.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
        for s in [pass.to_owned(), filtered] {
            if !s.is_empty() && !secrets.contains(&s) {
                secrets.push(s);
            }
        }
        // Longest first, so a value containing the other is removed whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    pub fn none() -> Self {
        Redactor::default()
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = redact_bad_login(text);
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
    }
}

/// `Login incorrect, please try again: |{user}|{pass}|BAD|`: the field before `BAD` is the
/// password whatever it is, so it goes even when the redactor does not know the value (a
/// secret that changed between the request and the log line).
fn redact_bad_login(text: &str) -> String {
    const MARK: &str = "Login incorrect, please try again: |";
    let Some(start) = text.find(MARK) else { return text.to_owned() };
    let after = start + MARK.len();
    let rest = &text[after..];
    let Some(user_end) = rest.find('|') else { return text.to_owned() };
    let pass_start = after + user_end + 1;
    let Some(bad) = text[pass_start..].find("|BAD|") else { return text.to_owned() };
    format!("{}{}{}", &text[..pass_start], REDACTED, &text[pass_start + bad..])
}

/// One line of a reply, by its leading word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Success,
    Notice,
    Error,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Line<'a> {
    kind: Kind,
    /// From the word on, e.g. `ERROR: add_lead INVALID PHONE NUMBER LENGTH - 123|6666`.
    pub(super) text: &'a str,
}

impl<'a> Line<'a> {
    /// After `KIND: `.
    pub(super) fn message(&self) -> &'a str {
        self.text.split_once(':').map_or("", |(_, m)| m.trim_start())
    }

    /// The `|`-separated data after ` - ` (shape 1) or `: |` (shape 2), §1 "Body".
    fn data(&self) -> Vec<&'a str> {
        let m = self.message();
        let tail = match (m.find(" - "), m.find(": |")) {
            (Some(a), Some(b)) if b < a => &m[b + 3..],
            (Some(a), _) => &m[a + 3..],
            (None, Some(b)) => &m[b + 3..],
            (None, None) => return Vec::new(),
        };
        tail.split('|').collect()
    }
}

/// Splits a reply into its lines. `SUCCESS:`/`ERROR:` start a line (PHP warnings printed by
/// `display_errors` end with a line break); `NOTICE:` is looked for anywhere, because the
/// MULTI-ALT-PHONE notice follows stray debug text without one (§2.3).
pub(super) fn scan(body: &str) -> (Vec<Line<'_>>, Vec<&str>) {
    let mut lines = Vec::new();
    let mut other = Vec::new();
    for raw in body.split('\n') {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        if raw.starts_with("SUCCESS:") {
            lines.push(Line { kind: Kind::Success, text: raw });
        } else if raw.starts_with("ERROR:") {
            lines.push(Line { kind: Kind::Error, text: raw });
        } else if let Some(at) = raw.find("NOTICE:") {
            lines.push(Line { kind: Kind::Notice, text: &raw[at..] });
        } else if let Some(at) = raw.find(ADDED) {
            // A SUCCESS glued to a warning without a line break: specific enough to trust.
            lines.push(Line { kind: Kind::Success, text: &raw[at..] });
        } else {
            other.push(raw);
        }
    }
    (lines, other)
}

const ADDED: &str = "SUCCESS: add_lead LEAD HAS BEEN ADDED";

/// At most this many characters of an unrecognised reply go into a reason.
const SNIPPET_CHARS: usize = 160;

pub(super) fn snippet(text: &str, redactor: &Redactor) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut s: String = redactor.redact(&one_line).chars().take(SNIPPET_CHARS).collect();
    if one_line.chars().count() > SNIPPET_CHARS {
        s.push('…');
    }
    s
}

/// Statuses other than 200: 5xx may follow an insert (§1 "HTTP status", §13.1).
pub(super) fn classify_status<T>(
    function: &str,
    status: u16,
    body: &str,
    mutating: bool,
    redactor: &Redactor,
) -> Option<Classified<T>> {
    match status {
        200 => None,
        500..=599 => {
            let hint = if body.trim().is_empty() {
                " with an empty body (a PHP fatal error, usually SQL: see VICIdial's web server error log)".to_owned()
            } else {
                format!(": {}", snippet(body, redactor))
            };
            let reason = format!("VICIdial {function} answered HTTP {status}{hint}");
            Some(if mutating {
                Classified::unknown(reason, "http_5xx")
            } else {
                Classified::retryable(reason, "http_5xx")
            })
        }
        300..=399 => Some(Classified::permanent(
            format!(
                "VICIdial {function} answered HTTP {status} (a redirect): [vicidial] base_url must be the final \
                 address (scheme, host and path), a redirected POST loses its body"
            ),
            true,
            "http_redirect",
        )),
        408 | 429 => {
            Some(Classified::retryable(format!("VICIdial {function} answered HTTP {status}"), "http_throttled"))
        }
        400..=499 => Some(Classified::permanent(
            format!(
                "VICIdial {function} answered HTTP {status}: check [vicidial] base_url (the API is at \
                 /vicidial/non_agent_api.php under it) and any proxy or web-server authentication in front of it"
            ),
            true,
            "http_4xx",
        )),
        // 1xx/2xx other than 200: read the body like a 200.
        _ => None,
    }
}

/// The errors every function shares (§1.1, §1 "Body").
pub(super) fn classify_common_error<T>(line: &Line<'_>, redactor: &Redactor) -> Option<Classified<T>> {
    let m = line.message();
    let shown = redactor.redact(line.text);
    let data = line.data();
    // Shape `reason: |{user}|…|`: the leading pipe is part of the separator.
    let user = data.first().copied().unwrap_or("");
    let auth = |c: Classified<T>, a: AuthFailure| Classified { auth: Some(a), ..c };
    if m.starts_with("Login incorrect") {
        return Some(auth(
            Classified::permanent(
                format!(
                    "VICIdial refused the API login of user '{user}' (wrong password, user level 7 or lower, \
                     inactive user, or two-factor auth): fix vicidial.api_user / vicidial.api_pass in the secret or \
                     the user in VICIdial; not retried, 10 failures lock the user for 15 minutes [{shown}]"
                ),
                true,
                "login_incorrect",
            ),
            AuthFailure::BadLogin,
        ));
    }
    if m.starts_with("Too many login attempts") {
        // Retrying keeps the lock going (§13.8): permanent, and the client holds further calls.
        return Some(auth(
            Classified::permanent(
                format!(
                    "VICIdial locked the API user '{user}' after 10 failed logins; it unlocks 15 minutes after the \
                     last attempt: fix the password first [{shown}]"
                ),
                true,
                "login_locked",
            ),
            AuthFailure::Locked,
        ));
    }
    if m.starts_with("Your IP Address is not allowed") {
        return Some(auth(
            Classified::permanent(
                format!("VICIdial refused this bridge's IP address: add it to the API user's IP list [{shown}]"),
                true,
                "ip_blocked",
            ),
            AuthFailure::NotPermitted,
        ));
    }
    if m.starts_with("auth USER DOES NOT HAVE PERMISSION TO USE THIS FUNCTION") {
        let function = data.get(1).copied().unwrap_or("");
        return Some(auth(
            Classified::permanent(
                format!(
                    "VICIdial API user '{user}' may not use {function}: add ' {function} ' to the user's \
                     api_allowed_functions [{shown}]"
                ),
                true,
                "function_not_allowed",
            ),
            AuthFailure::NotPermitted,
        ));
    }
    if m.starts_with("user_group DOES NOT EXIST") {
        return Some(auth(
            Classified::permanent(
                format!(
                    "VICIdial API user '{user}' has a user group that does not exist (api_list_restrict) [{shown}]"
                ),
                true,
                "user_group_missing",
            ),
            AuthFailure::NotPermitted,
        ));
    }
    if m.starts_with("NO FUNCTION SPECIFIED") {
        return Some(Classified::permanent(
            format!("VICIdial saw no function: the form body did not arrive (a proxy or redirect?) [{shown}]"),
            true,
            "no_function",
        ));
    }
    if m.starts_with("Invalid Source") {
        return Some(Classified::permanent(
            format!("VICIdial refused the add_lead source: it needs at least 2 letters or digits [{shown}]"),
            true,
            "invalid_source",
        ));
    }
    None
}

/// Position (0-based) of the existing lead_id in a DUPLICATE error's data (§2.2 "Dup at").
fn duplicate_position(message: &str) -> Option<usize> {
    let reason = message.strip_prefix("add_lead DUPLICATE ")?;
    if reason.starts_with("PHONE NUMBER IN ") {
        Some(2)
    } else if reason.starts_with("TITLE ALT_PHONE IN ") {
        Some(3)
    } else if reason.starts_with("NAME PHONE IN ") {
        Some(4)
    } else {
        None
    }
}

/// `(prefix after "add_lead ", code, operator must act)`: data problems are not alerts,
/// configuration problems are.
const ADD_LEAD_ERRORS: &[(&str, &str, bool)] = &[
    ("USER DOES NOT HAVE PERMISSION TO ADD LEADS", "no_permission", true),
    ("NOT AN ALLOWED LIST ID", "list_not_allowed", true),
    ("NOT A DEFINED LIST ID", "list_not_defined", true),
    ("INVALID PHONE NUMBER LENGTH", "invalid_phone_length", false),
    ("INVALID PHONE NUMBER PREFIX", "invalid_phone_prefix", false),
    ("INVALID PHONE NUMBER AREACODE", "invalid_phone_areacode", false),
    ("INVALID PHONE NUMBER NANPA AREACODE PREFIX", "invalid_phone_nanpa", false),
    ("PHONE NUMBER IN DNC", "dnc", false),
    ("PHONE NUMBER IN CAMPAIGN DNC", "campaign_dnc", false),
];

/// Classifies an `add_lead` reply (§2.3). `Added` needs a SUCCESS line with a lead_id.
pub fn classify_add_lead(status: u16, body: &str, redactor: &Redactor) -> Classified<AddLeadOutcome> {
    scrub(classify_add_lead_inner(status, body, redactor), redactor)
}

/// Every reason goes through the redactor once more, whatever part of the reply it quotes.
pub(super) fn scrub<T>(mut c: Classified<T>, redactor: &Redactor) -> Classified<T> {
    if let Err(
        DialerError::Retryable { reason }
        | DialerError::Unknown { reason }
        | DialerError::Permanent { reason, .. }
        | DialerError::Integration { reason },
    ) = &mut c.result
    {
        *reason = redactor.redact(reason);
    }
    c
}

fn classify_add_lead_inner(status: u16, body: &str, redactor: &Redactor) -> Classified<AddLeadOutcome> {
    if let Some(c) = classify_status("add_lead", status, body, true, redactor) {
        return c;
    }
    let (lines, other) = scan(body);
    if let Some(success) = lines.iter().find(|l| l.kind == Kind::Success && l.text.starts_with(ADDED)) {
        // {phone}|{list_id}|{lead_id}|{gmt}|{user}: lead_id is field 3 (§2.3, §12).
        let data = success.data();
        return match data.get(2).and_then(|id| id.trim().parse::<LeadId>().ok()) {
            Some(lead_id) => {
                let notices =
                    lines.iter().filter(|l| l.kind == Kind::Notice).map(|l| redactor.redact(l.text)).collect();
                Classified::ok(AddLeadOutcome::Added { lead_id, notices }, "added")
            }
            None => Classified::unknown(
                format!(
                    "VICIdial add_lead reported success without a readable lead_id: look the lead up [{}]",
                    redactor.redact(success.text)
                ),
                "success_without_lead_id",
            ),
        };
    }
    if let Some(error) = lines.iter().find(|l| l.kind == Kind::Error) {
        return classify_add_lead_error(error, redactor);
    }
    if body.trim().is_empty() {
        return Classified::unknown(
            "VICIdial add_lead answered HTTP 200 with an empty body: the lead may or may not exist".to_owned(),
            "empty_reply",
        );
    }
    let text = if other.is_empty() { body } else { &other.join(" ") };
    Classified::unknown(
        format!(
            "VICIdial add_lead answered something that is not a VICIdial reply (check [vicidial] base_url): {}",
            snippet(text, redactor)
        ),
        "unrecognised_reply",
    )
}

fn classify_add_lead_error(line: &Line<'_>, redactor: &Redactor) -> Classified<AddLeadOutcome> {
    if let Some(c) = classify_common_error(line, redactor) {
        return c;
    }
    let m = line.message();
    let shown = redactor.redact(line.text);
    if let Some(position) = duplicate_position(m) {
        let reason = m.strip_prefix("add_lead ").unwrap_or(m);
        let reason = reason.split(" - ").next().unwrap_or(reason);
        return match line.data().get(position).and_then(|id| id.trim().parse::<LeadId>().ok()) {
            Some(lead_id) => {
                Classified::ok(AddLeadOutcome::AlreadyExists { lead_id, how: reason.to_owned() }, "duplicate")
            }
            None => Classified::permanent(
                format!("VICIdial add_lead reported a duplicate without a readable lead_id [{shown}]"),
                true,
                "duplicate_without_lead_id",
            ),
        };
    }
    if let Some(rest) = m.strip_prefix("add_lead ") {
        // No prefix in the table starts another one, so the first hit is the only one.
        if let Some((_, code, alert)) = ADD_LEAD_ERRORS.iter().find(|e| rest.starts_with(e.0)) {
            return Classified::permanent(format!("VICIdial add_lead refused the lead: {shown}"), *alert, code);
        }
        if rest.starts_with("LEAD HAS NOT BEEN ADDED") {
            // The data holds the INSERT statement (lead data): keep phone and list only.
            let data = line.data();
            let phone = data.first().copied().unwrap_or("");
            let list = data.get(1).copied().unwrap_or("");
            return Classified::permanent(
                format!(
                    "VICIdial add_lead could not insert the lead (SQL error; see VICIdial's logs): phone {phone}, \
                     list {list}"
                ),
                true,
                "not_added_sql",
            );
        }
    }
    // An ERROR stops add_lead before its insert (§2.3): nothing to look up, nothing to retry.
    Classified::permanent(format!("VICIdial add_lead answered an unknown error: {shown}"), true, "error_unrecognised")
}

/// Classifies a `lead_search` reply (§5) for one vendor_lead_code: the newest lead_id or none.
/// A read: every uncertain outcome is retryable.
pub fn classify_lead_search(status: u16, body: &str, key: &str, redactor: &Redactor) -> Classified<Option<LeadId>> {
    scrub(classify_lead_search_inner(status, body, key, redactor), redactor)
}

fn classify_lead_search_inner(status: u16, body: &str, key: &str, redactor: &Redactor) -> Classified<Option<LeadId>> {
    if let Some(c) = classify_status("lead_search", status, body, false, redactor) {
        return c;
    }
    let (lines, other) = scan(body);
    if let Some(error) = lines.iter().find(|l| l.kind == Kind::Error) {
        if let Some(c) = classify_common_error(error, redactor) {
            return c;
        }
        let m = error.message();
        let shown = redactor.redact(error.text);
        if m.starts_with("lead_search NO MATCHES FOUND") {
            return Classified::ok(None, "not_found");
        }
        if m.starts_with("lead_search USER DOES NOT HAVE PERMISSION") {
            return Classified {
                auth: Some(AuthFailure::NotPermitted),
                ..Classified::permanent(
                    format!(
                        "VICIdial API user may not search leads: it needs modify_leads 1-5, user level 8 or more and \
                         agent API access [{shown}]"
                    ),
                    true,
                    "no_permission",
                )
            };
        }
        let code = if m.starts_with("lead_search NOT AN ALLOWED LIST ID") {
            "list_not_allowed"
        } else if m.starts_with("lead_search NO VALID SEARCH METHOD") {
            "no_valid_search_method"
        } else {
            "error_unrecognised"
        };
        return Classified::permanent(format!("VICIdial lead_search refused the search: {shown}"), true, code);
    }
    // `{key}|{count}|{ids newest first, joined by -}` per key.
    let mut rows = Vec::new();
    for raw in &other {
        let mut parts = raw.rsplitn(3, '|');
        let (Some(ids), Some(count), Some(row_key)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let Ok(count) = count.trim().parse::<u64>() else { continue };
        rows.push((row_key, count, ids.trim()));
    }
    let row = match rows.iter().find(|r| r.0 == key) {
        Some(r) => Some(r),
        // VICIdial echoes the key after its own filtering: one row is ours whatever it says.
        None if rows.len() == 1 => rows.first(),
        None => None,
    };
    let Some(&(_, count, ids)) = row else {
        return Classified::retryable(
            if body.trim().is_empty() {
                "VICIdial lead_search answered an empty body".to_owned()
            } else {
                format!("VICIdial lead_search answered something unexpected: {}", snippet(body, redactor))
            },
            if body.trim().is_empty() { "empty_reply" } else { "unrecognised_reply" },
        );
    };
    if count == 0 {
        return Classified::ok(None, "not_found");
    }
    match ids.split('-').next().and_then(|id| id.trim().parse::<LeadId>().ok()) {
        Some(id) => Classified::ok(Some(id), "found"),
        None => Classified::retryable(
            format!("VICIdial lead_search counted {count} leads but listed no readable lead_id"),
            "unrecognised_reply",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: &str) -> LeadId {
        n.parse().unwrap()
    }

    fn add(body: &str) -> Classified<AddLeadOutcome> {
        classify_add_lead(200, body, &Redactor::for_password("s3cr3t"))
    }

    fn permanent(c: &Classified<AddLeadOutcome>) -> (String, bool) {
        match &c.result {
            Err(DialerError::Permanent { reason, alert }) => (reason.clone(), *alert),
            other => panic!("expected permanent, got {other:?}"),
        }
    }

    #[test]
    fn success_observed_line() {
        let c = add("SUCCESS: add_lead LEAD HAS BEEN ADDED - 7275558888|999|9|-5.00|6666\n");
        assert_eq!(c.result, Ok(AddLeadOutcome::Added { lead_id: id("9"), notices: vec![] }));
        assert_eq!(c.code, "added");
    }

    #[test]
    fn success_with_empty_gmt_and_no_final_newline() {
        let c = add("SUCCESS: add_lead LEAD HAS BEEN ADDED - 7275559999|999|8||6666");
        assert_eq!(c.result.unwrap().lead_id(), id("8"));
    }

    #[test]
    fn success_with_dst_gmt_without_decimals() {
        let c = add("SUCCESS: add_lead LEAD HAS BEEN ADDED - 7275559999|999|81|-4|6666\n");
        assert_eq!(c.result.unwrap().lead_id(), id("81"));
    }

    #[test]
    fn nanpa_notice_before_success_and_hopper_after() {
        let body = "NOTICE: add_lead NANPA options disabled, NANPA prefix data not loaded - 0|6666\n\
                    SUCCESS: add_lead LEAD HAS BEEN ADDED - 7275558888|999|12|-5.00|6666\n\
                    NOTICE: add_lead ADDED TO HOPPER - 7275558888|12|1|6666\n";
        let c = add(body);
        assert_eq!(
            c.result,
            Ok(AddLeadOutcome::Added {
                lead_id: id("12"),
                notices: vec![
                    "NOTICE: add_lead NANPA options disabled, NANPA prefix data not loaded - 0|6666".to_owned(),
                    "NOTICE: add_lead ADDED TO HOPPER - 7275558888|12|1|6666".to_owned(),
                ]
            })
        );
    }

    #[test]
    fn multi_alt_phone_notice_glued_to_stray_text() {
        let body = "SUCCESS: add_lead LEAD HAS BEEN ADDED - 7275558888|999|19|-5.00|6666\n\
                    7275552001|1|work7275552002|1|homeNOTICE: add_lead MULTI-ALT-PHONE NUMBERS LOADED - 2|19|6666\n";
        match add(body).result {
            Ok(AddLeadOutcome::Added { lead_id, notices }) => {
                assert_eq!(lead_id, id("19"));
                assert_eq!(notices, vec!["NOTICE: add_lead MULTI-ALT-PHONE NUMBERS LOADED - 2|19|6666".to_owned()]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_documented_notice_is_kept() {
        let notices = [
            "NOTICE: add_lead CUSTOM FIELDS VALUES ADDED - 7275558888|18|999|3",
            "NOTICE: add_lead CUSTOM FIELDS NOT ADDED, NO FIELDS TO UPDATE DEFINED - 7275558888|18|999",
            "NOTICE: add_lead CUSTOM FIELDS NOT ADDED, NO FIELDS DEFINED - 7275558888|18|999",
            "NOTICE: add_lead CUSTOM FIELDS NOT ADDED, NO CUSTOM FIELDS DEFINED FOR THIS LIST - 7275558888|18|999",
            "NOTICE: add_lead CUSTOM FIELDS NOT ADDED, CUSTOM FIELDS DISABLED - 7275558888|18|Y|0",
            "NOTICE: add_lead ADDED TO HOPPER - 7275558888|18|44|6666",
            "NOTICE: add_lead NOT ADDED TO HOPPER - 7275558888|18|INSERT INTO vicidial_hopper SET x - y|6666",
            "NOTICE: add_lead NOT ADDED TO HOPPER, OUTSIDE OF LOCAL TIME - 7275558888|18|-5.00|N|6666",
            "NOTICE: add_lead SCHEDULED CALLBACK ADDED - 18|TESTCAMP|2026-12-01 10:30:00|USERONLY|6666|CALLBK",
            "NOTICE: add_lead SCHEDULED CALLBACK NOT ADDED, USER NOT VALID - 18|TESTCAMP|nobody|USERONLY",
            "NOTICE: add_lead SCHEDULED CALLBACK NOT ADDED, CAMPAIGN NOT VALID - 18|NOCAMP",
        ];
        let body =
            format!("SUCCESS: add_lead LEAD HAS BEEN ADDED - 7275558888|999|18|-5.00|6666\n{}\n", notices.join("\n"));
        match add(&body).result {
            Ok(AddLeadOutcome::Added { lead_id, notices: got }) => {
                assert_eq!(lead_id, id("18"));
                assert_eq!(got, notices.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn success_after_a_php_warning_is_still_success() {
        let body = "<br />\n<b>Warning</b>:  Undefined variable $x in <b>/srv/www/vicidial/non_agent_api.php</b> on \
                    line <b>12</b><br />\nSUCCESS: add_lead LEAD HAS BEEN ADDED - 7275558888|999|5|-5.00|6666\n";
        assert_eq!(add(body).result.unwrap().lead_id(), id("5"));
        let glued =
            "Deprecated: something in x.php on line 3SUCCESS: add_lead LEAD HAS BEEN ADDED - 7275558888|999|6||6666";
        assert_eq!(add(glued).result.unwrap().lead_id(), id("6"));
    }

    #[test]
    fn success_without_lead_id_is_never_added() {
        for body in [
            "SUCCESS: add_lead LEAD HAS BEEN ADDED - 7275558888|999||-5.00|6666\n",
            "SUCCESS: add_lead LEAD HAS BEEN ADDED - 7275558888|999\n",
            "SUCCESS: add_lead LEAD HAS BEEN ADDED\n",
            "SUCCESS: add_lead LEAD HAS BEEN ADDED - 7275558888|999|abc|-5.00|6666\n",
        ] {
            let c = add(body);
            assert!(matches!(c.result, Err(DialerError::Unknown { .. })), "{body}: {c:?}");
            assert_eq!(c.code, "success_without_lead_id");
        }
    }

    #[test]
    fn every_duplicate_form_gives_the_existing_lead_id() {
        let cases = [
            (
                "ERROR: add_lead DUPLICATE PHONE NUMBER IN LIST - 7275558888|999|9",
                "9",
                "DUPLICATE PHONE NUMBER IN LIST",
            ),
            (
                "ERROR: add_lead DUPLICATE PHONE NUMBER IN CAMPAIGN LISTS - 7275558888|5000|31|999",
                "31",
                "DUPLICATE PHONE NUMBER IN CAMPAIGN LISTS",
            ),
            (
                "ERROR: add_lead DUPLICATE PHONE NUMBER IN SYSTEM - 7275558888|5000|32|999",
                "32",
                "DUPLICATE PHONE NUMBER IN SYSTEM",
            ),
            // DUPPHONEALT*: one more field, PHONE or ALT.
            (
                "ERROR: add_lead DUPLICATE PHONE NUMBER IN LIST - 7275558888|999|33|ALT",
                "33",
                "DUPLICATE PHONE NUMBER IN LIST",
            ),
            (
                "ERROR: add_lead DUPLICATE PHONE NUMBER IN CAMPAIGN LISTS - 7275558888|5000|34|999|PHONE",
                "34",
                "DUPLICATE PHONE NUMBER IN CAMPAIGN LISTS",
            ),
            (
                "ERROR: add_lead DUPLICATE PHONE NUMBER IN SYSTEM - 7275558888|5000|9|999|PHONE",
                "9",
                "DUPLICATE PHONE NUMBER IN SYSTEM",
            ),
            (
                "ERROR: add_lead DUPLICATE TITLE ALT_PHONE IN LIST - MR|7275550000|999|35",
                "35",
                "DUPLICATE TITLE ALT_PHONE IN LIST",
            ),
            (
                "ERROR: add_lead DUPLICATE TITLE ALT_PHONE IN CAMPAIGN LISTS - MR|7275550000|5000|36|999",
                "36",
                "DUPLICATE TITLE ALT_PHONE IN CAMPAIGN LISTS",
            ),
            (
                "ERROR: add_lead DUPLICATE TITLE ALT_PHONE IN SYSTEM - |7275550000|5000|37|999",
                "37",
                "DUPLICATE TITLE ALT_PHONE IN SYSTEM",
            ),
            (
                "ERROR: add_lead DUPLICATE NAME PHONE IN LIST - Bob|Wilson|7275558888|999|9",
                "9",
                "DUPLICATE NAME PHONE IN LIST",
            ),
            (
                "ERROR: add_lead DUPLICATE NAME PHONE IN CAMPAIGN LISTS - Bob|Wilson|7275558888|5000|38|999",
                "38",
                "DUPLICATE NAME PHONE IN CAMPAIGN LISTS",
            ),
            (
                "ERROR: add_lead DUPLICATE NAME PHONE IN SYSTEM - |Wilson|7275558888|5000|39|999",
                "39",
                "DUPLICATE NAME PHONE IN SYSTEM",
            ),
        ];
        for (body, lead, how) in cases {
            let c = add(&format!("{body}\n"));
            assert_eq!(
                c.result,
                Ok(AddLeadOutcome::AlreadyExists { lead_id: id(lead), how: how.to_owned() }),
                "{body}"
            );
            assert_eq!(c.code, "duplicate");
        }
    }

    #[test]
    fn a_duplicate_without_a_lead_id_is_not_success() {
        let (_, alert) = permanent(&add("ERROR: add_lead DUPLICATE PHONE NUMBER IN LIST - 7275558888|999|\n"));
        assert!(alert);
    }

    #[test]
    fn data_errors_are_permanent_without_alert() {
        for (body, code) in [
            ("ERROR: add_lead INVALID PHONE NUMBER LENGTH - 12345|6666", "invalid_phone_length"),
            ("ERROR: add_lead INVALID PHONE NUMBER PREFIX - 7271115555|6666", "invalid_phone_prefix"),
            ("ERROR: add_lead INVALID PHONE NUMBER AREACODE - 1115558888|6666", "invalid_phone_areacode"),
            ("ERROR: add_lead INVALID PHONE NUMBER NANPA AREACODE PREFIX - 7275558888|6666", "invalid_phone_nanpa"),
            ("ERROR: add_lead PHONE NUMBER IN DNC - 7275558888|6666", "dnc"),
            ("ERROR: add_lead PHONE NUMBER IN CAMPAIGN DNC - 7275558888|TESTCAMP|6666", "campaign_dnc"),
        ] {
            let c = add(body);
            let (reason, alert) = permanent(&c);
            assert!(!alert, "{body}");
            assert_eq!(c.code, code, "{body}");
            assert!(reason.contains(body), "{reason}");
        }
    }

    #[test]
    fn configuration_errors_are_permanent_alerts() {
        for (body, code) in [
            ("ERROR: Invalid Source - x\nERROR: Invalid Source: |x|\n", "invalid_source"),
            ("ERROR: add_lead USER DOES NOT HAVE PERMISSION TO ADD LEADS TO THE SYSTEM: |6666|0|\n", "no_permission"),
            ("ERROR: add_lead NOT AN ALLOWED LIST ID - 7275558888|5000\n", "list_not_allowed"),
            (
                "ERROR: add_lead NOT A DEFINED LIST ID, LIST EXISTS CHECK ENABLED - 7275558888|5001\n",
                "list_not_defined",
            ),
            ("ERROR: NO FUNCTION SPECIFIED\n", "no_function"),
            ("ERROR: add_lead SOMETHING NEW - 1|2\n", "error_unrecognised"),
        ] {
            let c = add(body);
            let (_, alert) = permanent(&c);
            assert!(alert, "{body}");
            assert_eq!(c.code, code);
            assert_eq!(c.auth, None);
        }
    }

    #[test]
    fn sql_error_line_drops_the_insert_statement() {
        let c = add(
            "ERROR: add_lead LEAD HAS NOT BEEN ADDED - 7275558888|999|INSERT INTO vicidial_list SET first_name='Ann', \
             email='ann@x.com'|6666\n",
        );
        let (reason, alert) = permanent(&c);
        assert!(alert);
        assert!(!reason.contains("INSERT") && !reason.contains("ann@x.com"), "{reason}");
        assert!(reason.contains("7275558888") && reason.contains("999"), "{reason}");
    }

    #[test]
    fn login_and_permission_errors_are_alerts_with_their_auth_kind() {
        for (body, code, auth) in [
            ("ERROR: Login incorrect, please try again: |6666|s3cr3t|BAD|\n", "login_incorrect", AuthFailure::BadLogin),
            (
                "ERROR: Too many login attempts, try again in 15 minutes: |6666|LOCK|\n",
                "login_locked",
                AuthFailure::Locked,
            ),
            ("ERROR: Your IP Address is not allowed: 10.1.2.3: ||IPBLOCK|\n", "ip_blocked", AuthFailure::NotPermitted),
            (
                "ERROR: auth USER DOES NOT HAVE PERMISSION TO USE THIS FUNCTION: |6666|add_lead|\n",
                "function_not_allowed",
                AuthFailure::NotPermitted,
            ),
            ("ERROR: user_group DOES NOT EXIST: |6666|NOGROUP|\n", "user_group_missing", AuthFailure::NotPermitted),
        ] {
            let c = add(body);
            let (reason, alert) = permanent(&c);
            assert!(alert, "{body}");
            assert_eq!((c.code, c.auth), (code, Some(auth)), "{body}");
            assert!(!reason.contains("s3cr3t"), "{reason}");
        }
    }

    #[test]
    fn the_echoed_password_never_reaches_the_reason() {
        // As sent, as VICIdial filters it (`12&34` is echoed `1234`), and one the redactor does not know.
        for (pass, echoed) in [("s3cr3t", "s3cr3t"), ("pa$$-w_rd!", "pa-w_rd"), ("x", "unknownpass99")] {
            let body = format!("ERROR: Login incorrect, please try again: |6666|{echoed}|BAD|\n");
            let c = classify_add_lead(200, &body, &Redactor::for_password(pass));
            let (reason, _) = permanent(&c);
            assert!(!reason.contains(echoed), "{reason}");
            assert!(reason.contains("|6666|[redacted]|BAD|"), "{reason}");
            let s = classify_lead_search(200, &body, "CRM1", &Redactor::for_password(pass));
            assert!(!format!("{s:?}").contains(echoed));
        }
        // Anywhere else in a reply too (an HTML page quoting the request).
        let c = classify_add_lead(500, "<html>pass=s3cr3t</html>", &Redactor::for_password("s3cr3t"));
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn http_500_is_unknown_empty_or_not() {
        for body in ["", "SUCCESS: add_lead LEAD HAS BEEN ADDED - 7275558888|999|9||6666\n", "oops"] {
            let c = classify_add_lead(500, body, &Redactor::none());
            assert!(matches!(c.result, Err(DialerError::Unknown { .. })), "{body}: {c:?}");
            assert_eq!(c.code, "http_5xx");
        }
        assert!(matches!(classify_add_lead(502, "", &Redactor::none()).result, Err(DialerError::Unknown { .. })));
    }

    #[test]
    fn other_statuses() {
        let r = |s| classify_add_lead(s, "", &Redactor::none());
        assert!(matches!(r(301).result, Err(DialerError::Permanent { alert: true, .. })));
        assert!(matches!(r(404).result, Err(DialerError::Permanent { alert: true, .. })));
        assert!(matches!(r(401).result, Err(DialerError::Permanent { alert: true, .. })));
        assert!(matches!(r(429).result, Err(DialerError::Retryable { .. })));
        assert!(matches!(r(418).result, Err(DialerError::Permanent { alert: true, .. })));
    }

    #[test]
    fn empty_html_and_unknown_bodies_are_unknown_never_added() {
        for (body, code) in [
            ("", "empty_reply"),
            ("  \n", "empty_reply"),
            ("<html><head><title>Welcome</title></head><body>It works!</body></html>", "unrecognised_reply"),
            ("LEAD HAS BEEN ADDED 12", "unrecognised_reply"),
        ] {
            let c = add(body);
            assert!(matches!(c.result, Err(DialerError::Unknown { .. })), "{body}: {c:?}");
            assert_eq!(c.code, code);
        }
        let long = "x".repeat(10_000);
        let Err(DialerError::Unknown { reason }) = add(&long).result else { panic!() };
        assert!(reason.len() < 400, "{}", reason.len());
    }

    fn search(body: &str) -> Classified<Option<LeadId>> {
        classify_lead_search(200, body, "CRM-1", &Redactor::for_password("s3cr3t"))
    }

    #[test]
    fn lead_search_rows() {
        assert_eq!(search("CRM-1|1|9\n").result, Ok(Some(id("9"))));
        assert_eq!(search("CRM-1|7|7-6-5-4-3-2-1\n").result, Ok(Some(id("7"))));
        assert_eq!(search("CRM-1|0|\n").result, Ok(None));
        assert_eq!(search("OTHER|2|4-3\nCRM-1|1|12\n").result, Ok(Some(id("12"))));
        // The key VICIdial echoes may differ after its filtering: a single row is ours.
        assert_eq!(search("CRM 1|1|13\n").result, Ok(Some(id("13"))));
        // header=YES prints a header without delimiters.
        assert_eq!(search("search_keyrecords_foundlead_ids\nCRM-1|1|14\n").result, Ok(Some(id("14"))));
    }

    #[test]
    fn lead_search_errors() {
        let none = search("ERROR: lead_search NO MATCHES FOUND IN THE SYSTEM: |6666||CRM-1|\n");
        assert_eq!((none.result, none.code), (Ok(None), "not_found"));
        let perm = search("ERROR: lead_search USER DOES NOT HAVE PERMISSION TO SEARCH FOR LEADS: |6666|0|\n");
        assert!(matches!(perm.result, Err(DialerError::Permanent { alert: true, .. })));
        assert_eq!(perm.auth, Some(AuthFailure::NotPermitted));
        for body in [
            "ERROR: lead_search NO VALID SEARCH METHOD - 6666|X||CRM-1|\n",
            "ERROR: lead_search NOT AN ALLOWED LIST ID - |5000\n",
            "ERROR: auth USER DOES NOT HAVE PERMISSION TO USE THIS FUNCTION: |6666|lead_search|\n",
        ] {
            assert!(matches!(search(body).result, Err(DialerError::Permanent { alert: true, .. })), "{body}");
        }
        let bad = search("ERROR: Login incorrect, please try again: |6666|s3cr3t|BAD|\n");
        assert_eq!(bad.auth, Some(AuthFailure::BadLogin));
        for (status, body) in [(200, ""), (200, "<html>hi</html>"), (500, ""), (200, "CRM-1|2|\n")] {
            let c = classify_lead_search(status, body, "CRM-1", &Redactor::none());
            assert!(matches!(c.result, Err(DialerError::Retryable { .. })), "{status} {body}: {c:?}");
        }
    }
}

//! `function=agent_status` replies (`non_agent_api.php`, "agent_status" block), classified.
//!
//! Asked with `stage=tab`, VICIdial prints one row
//! `status callerid lead_id campaign_id calls_today full_name user_group user_level pause_code
//! real_time_sub_status phone_number vendor_lead_code session_id`, tab-separated, values
//! unescaped. `full_name` and `vendor_lead_code` are free text (a real agent "Pop | Agent" breaks
//! the default pipe format), so a row with more fields than 13 is split where the constrained
//! fields between them fit; a row that fits in more than one way is refused, never guessed.
//! Errors: `agent_status AGENT NOT LOGGED IN`, `AGENT NOT FOUND` (also a user outside the API
//! user's viewable groups), `USER DOES NOT HAVE PERMISSION TO GET AGENT INFO` (user level ≤ 6,
//! no view_reports, no vdc_agent_api_access), `INVALID SEARCH PARAMETERS` (no agent_user).

use vicibridge_core::LeadId;
use vicibridge_core::agent::{AgentPresence, AgentState, AgentStatus, SubStatus};

use super::reply::{AuthFailure, Classified, Redactor, classify_common_error, classify_status, scan, scrub, snippet};

/// Fields of a row whose free-text values hold no tab.
const FIELDS: usize = 13;

/// Classifies an `agent_status` reply (asked with `stage=tab`, no `header`, no `include_ip`).
/// A read: anything unexpected is retryable.
pub fn classify_agent_status(status: u16, body: &str, redactor: &Redactor) -> Classified<AgentPresence> {
    scrub(classify_inner(status, body, redactor), redactor)
}

fn classify_inner(status: u16, body: &str, redactor: &Redactor) -> Classified<AgentPresence> {
    if let Some(c) = classify_status("agent_status", status, body, false, redactor) {
        return c;
    }
    let (lines, _) = scan(body);
    if let Some(error) = lines.iter().find(|l| l.text.starts_with("ERROR:")) {
        if let Some(c) = classify_common_error(error, redactor) {
            return c;
        }
        let m = error.message();
        let shown = redactor.redact(error.text);
        if m.starts_with("agent_status AGENT NOT LOGGED IN") {
            return Classified::ok(AgentPresence::LoggedOut, "logged_out");
        }
        if m.starts_with("agent_status AGENT NOT FOUND") {
            return Classified::ok(AgentPresence::UnknownUser, "unknown_user");
        }
        if m.starts_with("agent_status USER DOES NOT HAVE PERMISSION TO GET AGENT INFO") {
            return Classified {
                auth: Some(AuthFailure::NotPermitted),
                ..Classified::permanent(
                    format!(
                        "VICIdial API user may not read agent status: it needs user level 7 or more, view_reports \
                         and agent API access (vdc_agent_api_access) [{shown}]"
                    ),
                    true,
                    "no_permission",
                )
            };
        }
        let code = if m.starts_with("agent_status INVALID SEARCH PARAMETERS") {
            "invalid_search"
        } else {
            "error_unrecognised"
        };
        return Classified::permanent(format!("VICIdial agent_status refused the request: {shown}"), true, code);
    }
    // Rows keep their empty edge fields: split the raw lines, not the trimmed ones.
    let row = body.split('\n').map(|l| l.trim_end_matches('\r')).find(|l| l.split('\t').count() >= FIELDS);
    let Some(row) = row else {
        let code = if body.trim().is_empty() { "empty_reply" } else { "unrecognised_reply" };
        return Classified::retryable(
            format!("VICIdial agent_status answered something unexpected: {}", snippet(body, redactor)),
            code,
        );
    };
    match parse_row(row) {
        Ok(status) => Classified::ok(AgentPresence::LoggedIn(Box::new(status)), "logged_in"),
        Err(RowError::Ambiguous) => Classified::permanent(
            "VICIdial agent_status printed a row that splits more than one way (a tab in the agent's full name and \
             in the lead's vendor_lead_code): not guessed"
                .to_owned(),
            false,
            "ambiguous_row",
        ),
        Err(RowError::Invalid(what)) => Classified::retryable(
            format!("VICIdial agent_status printed a row with an unreadable {what}: {}", snippet(row, redactor)),
            "unrecognised_reply",
        ),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum RowError {
    Ambiguous,
    Invalid(&'static str),
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// Where `user_group` may sit: after a full name of at least one field, before a
/// vendor_lead_code of at least one field, with the fields between them well-formed.
fn group_positions(f: &[&str]) -> Vec<usize> {
    let n = f.len();
    (6..=n.saturating_sub(7))
        .filter(|&k| {
            let level = f[k + 1];
            !f[k].contains(char::is_whitespace)
                && (1..=2).contains(&level.len())
                && level.bytes().all(|b| b.is_ascii_digit())
                && f[k + 2].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && SubStatus::parse(f[k + 3]).is_ok()
                && f[k + 4].bytes().all(|b| b.is_ascii_digit())
        })
        .collect()
}

fn parse_row(row: &str) -> Result<AgentStatus, RowError> {
    let f: Vec<&str> = row.split('\t').collect();
    let n = f.len();
    let k = if n == FIELDS {
        6
    } else {
        match group_positions(&f).as_slice() {
            [k] => *k,
            [] => return Err(RowError::Invalid("layout")),
            _ => return Err(RowError::Ambiguous),
        }
    };
    let lead_id = match f[2] {
        "" | "0" => None,
        id => Some(id.parse::<LeadId>().map_err(|_| RowError::Invalid("lead_id"))?),
    };
    let calls_today = match f[4] {
        "" => 0,
        c => c.parse().map_err(|_| RowError::Invalid("calls_today"))?,
    };
    Ok(AgentStatus {
        state: AgentState::parse(f[0]),
        sub_status: SubStatus::parse(f[k + 3]).map_err(|_| RowError::Invalid("real_time_sub_status"))?,
        call_id: opt(f[1]),
        lead_id,
        campaign_id: opt(f[3]),
        calls_today,
        full_name: f[5..k].join("\t"),
        user_group: opt(f[k]),
        user_level: f[k + 1].parse().map_err(|_| RowError::Invalid("user_level"))?,
        pause_code: opt(f[k + 2]),
        phone_number: opt(f[k + 4]),
        vendor_lead_code: opt(&f[k + 5..n - 1].join("\t")),
        session_id: opt(f[n - 1]),
    })
}

#[cfg(test)]
mod tests {
    use vicibridge_core::lead::DialerError;

    use super::*;

    fn classify(body: &str) -> Classified<AgentPresence> {
        classify_agent_status(200, body, &Redactor::for_password("s3cr3t"))
    }

    fn logged_in(body: &str) -> AgentStatus {
        match classify(body).result {
            Ok(AgentPresence::LoggedIn(s)) => *s,
            other => panic!("{body:?}: {other:?}"),
        }
    }

    /// Rows as the real non_agent_api.php (2.14-202) printed them for an agent in each state.
    #[test]
    fn rows_observed_on_the_real_api() {
        let s = logged_in(
            "INCALL\tV1206230000000000010\t10\tTESTCAMP\t3\tPop | Agent\tADMIN\t1\t\t\t7275550101\tHS-901\t8600052\n",
        );
        assert_eq!(s.state, AgentState::InCall);
        assert_eq!(s.sub_status, None);
        assert_eq!(s.call_id.as_deref(), Some("V1206230000000000010"));
        assert_eq!(s.lead_id, Some("10".parse().unwrap()));
        assert_eq!(s.campaign_id.as_deref(), Some("TESTCAMP"));
        assert_eq!(s.calls_today, 3);
        assert_eq!(s.full_name, "Pop | Agent");
        assert_eq!(s.user_group.as_deref(), Some("ADMIN"));
        assert_eq!(s.user_level, 1);
        assert_eq!(s.pause_code, None);
        assert_eq!(s.phone_number.as_deref(), Some("7275550101"));
        assert_eq!(s.vendor_lead_code.as_deref(), Some("HS-901"));
        assert_eq!(s.session_id.as_deref(), Some("8600052"));

        let dead = logged_in(
            "INCALL\tV1206230000000000010\t10\tTESTCAMP\t3\tPop | Agent\tADMIN\t1\t\tDEAD\t7275550101\tHS-901\t8600052\n",
        );
        assert_eq!(dead.sub_status, Some(SubStatus::Dead));
        let dispo = logged_in(
            "PAUSED\tV1206230000000000010\t10\tTESTCAMP\t3\tPop | Agent\tADMIN\t1\t\tDISPO\t7275550101\tHS-901\t8600052\n",
        );
        assert_eq!((dispo.state, dispo.sub_status), (AgentState::Paused, Some(SubStatus::Dispo)));
        let paused = logged_in("PAUSED\t\t0\tTESTCAMP\t3\tPop | Agent\tADMIN\t1\tLUNCH\t\t\t\t8600052\n");
        assert_eq!((paused.lead_id, paused.pause_code.as_deref()), (None, Some("LUNCH")));
        assert_eq!((paused.phone_number, paused.vendor_lead_code), (None, None));
        let ready = logged_in("READY\t\t0\tTESTCAMP\t3\tPop | Agent\tADMIN\t1\tLUNCH\t\t\t\t8600052\n");
        assert_eq!(ready.state, AgentState::Ready);
        let queue = logged_in(
            "QUEUE\tV1206230000000000010\t10\tTESTCAMP\t3\tPop | Agent\tADMIN\t1\tLUNCH\t\t7275550101\tHS-901\t8600052\n",
        );
        assert!(queue.on_lead("10".parse().unwrap(), Some("8600052")));
    }

    #[test]
    fn errors_observed_on_the_real_api() {
        let c = classify("ERROR: agent_status AGENT NOT LOGGED IN: vbpop|1000\n");
        assert_eq!((c.result, c.code), (Ok(AgentPresence::LoggedOut), "logged_out"));
        let c = classify("ERROR: agent_status AGENT NOT FOUND: vbpop|nobody\n");
        assert_eq!((c.result, c.code), (Ok(AgentPresence::UnknownUser), "unknown_user"));
        let c = classify("ERROR: auth USER DOES NOT HAVE PERMISSION TO USE THIS FUNCTION: |vicibridge|agent_status|\n");
        assert_eq!((c.code, c.auth), ("function_not_allowed", Some(AuthFailure::NotPermitted)));
        let Err(DialerError::Permanent { reason, alert: true }) = c.result else { panic!() };
        assert!(reason.contains("' agent_status '"), "{reason}");
        let c = classify("ERROR: Login incorrect, please try again: |vicibridge|s3cr3t|BAD|\n");
        assert_eq!(c.auth, Some(AuthFailure::BadLogin));
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let c = classify("ERROR: agent_status USER DOES NOT HAVE PERMISSION TO GET AGENT INFO: |vbpop|0|\n");
        assert_eq!((c.code, c.auth), ("no_permission", Some(AuthFailure::NotPermitted)));
        let c = classify("ERROR: agent_status INVALID SEARCH PARAMETERS: vbpop|\n");
        assert!(matches!(c.result, Err(DialerError::Permanent { alert: true, .. })));
        let c = classify("ERROR: Invalid Source - \nERROR: Invalid Source: ||\n");
        assert_eq!(c.code, "invalid_source");
    }

    #[test]
    fn free_text_with_tabs_is_split_where_the_fixed_fields_fit() {
        // A tab in the full name.
        let s = logged_in("INCALL\tV1\t10\tC\t0\tAnn\tMarie\tADMIN\t1\t\t\t7275550101\tHS-1\t8600051");
        assert_eq!((s.full_name.as_str(), s.vendor_lead_code.as_deref()), ("Ann\tMarie", Some("HS-1")));
        // A tab in the vendor_lead_code.
        let s = logged_in("INCALL\tV1\t10\tC\t0\tAnn\tADMIN\t1\t\t\t7275550101\tHS\t1\t8600051");
        assert_eq!((s.full_name.as_str(), s.vendor_lead_code.as_deref()), ("Ann", Some("HS\t1")));
        // Both readings fit: refused.
        let c = classify("INCALL\tV1\t10\tC\t0\tA\tG\t1\t\t\t7\tX\tG\t1\t\t\t7\tY\t8600051");
        assert_eq!(c.code, "ambiguous_row");
    }

    #[test]
    fn unexpected_replies_are_retryable() {
        for (status, body) in [
            (200, ""),
            (200, "<html>It works!</html>"),
            (500, ""),
            (200, "INCALL\tV1\tabc\tC\t0\tAnn\tADMIN\t1\t\t\t7275550101\tHS-1\t8600051"),
            (200, "INCALL\tV1\t10\tC\t0\tAnn\tADMIN\tx\t\t\t7275550101\tHS-1\t8600051"),
        ] {
            let c = classify_agent_status(status, body, &Redactor::none());
            assert!(matches!(c.result, Err(DialerError::Retryable { .. })), "{status} {body:?}: {c:?}");
        }
    }

    #[test]
    fn a_php_warning_before_the_row_is_skipped() {
        let s = logged_in(
            "<br />\n<b>Warning</b>: x\nINCALL\tV1\t10\tC\t0\tAnn\tADMIN\t1\t\t\t7275550101\tHS-1\t8600051\n",
        );
        assert_eq!(s.lead_id, Some("10".parse().unwrap()));
    }
}

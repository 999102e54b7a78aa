//! Harmless permission probes for `vicibridge preflight`: each asks one non-agent function
//! something that changes nothing, and reads only how far VICIdial let it get. VICIdial checks,
//! in order, the login, `api_allowed_functions`, then the function's own user settings
//! (`non_agent_api.php`, each function's block): any other answer, even an error about the
//! request, proves all three passed.

use vicibridge_core::lead::DialerError;

use super::reply::{AuthFailure, Classified, Redactor, classify_common_error, classify_status, scan, scrub};
use super::{Call, LEAD_SEARCH_SOURCE, NonAgentApi};

/// A non-agent function vicibridge uses, with the request that probes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeFunction {
    /// `add_lead` into a list that does not exist, with `list_exists_check=Y` and a phone number
    /// too short to insert: refused after the permission checks, before any insert.
    AddLead,
    /// `lead_search` for a vendor_lead_code no lead has.
    LeadSearch,
    /// `agent_status` of a user that is not logged in.
    AgentStatus,
}

impl ProbeFunction {
    pub fn name(self) -> &'static str {
        match self {
            ProbeFunction::AddLead => "add_lead",
            ProbeFunction::LeadSearch => "lead_search",
            ProbeFunction::AgentStatus => "agent_status",
        }
    }

    fn params(self) -> Vec<(String, String)> {
        let p = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        match self {
            ProbeFunction::AddLead => p(&[
                ("source", LEAD_SEARCH_SOURCE),
                ("list_id", PROBE_LIST_ID),
                ("list_exists_check", "Y"),
                ("phone_number", "1"),
                ("phone_code", "1"),
            ]),
            ProbeFunction::LeadSearch => p(&[
                ("source", LEAD_SEARCH_SOURCE),
                ("search_method", "VENDOR_LEAD_CODE"),
                ("vendor_lead_code", PROBE_CODE),
            ]),
            ProbeFunction::AgentStatus => {
                p(&[("source", LEAD_SEARCH_SOURCE), ("agent_user", PROBE_CODE), ("stage", "tab")])
            }
        }
    }
}

/// A list id no install uses (list ids are numbers; this one is out of any sane range).
pub const PROBE_LIST_ID: &str = "987654321987";
/// A vendor_lead_code / agent user no record has.
pub const PROBE_CODE: &str = "vicibridgepreflight";

/// How far VICIdial let a probe get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeAnswer {
    /// Past the login and every permission check; `reply` is VICIdial's first line (redacted).
    Allowed { reply: String },
    /// The login itself was refused (password, user level, lock, IP list).
    LoginRefused { reason: String },
    /// Logged in, but this function is not allowed for the user.
    NotPermitted { reason: String },
    /// No usable answer (network, HTTP status, a reply VICIdial's code does not produce).
    Failed { reason: String },
}

fn classify_probe(function: &'static str, status: u16, body: &str, redactor: &Redactor) -> Classified<String> {
    if let Some(c) = classify_status(function, status, body, false, redactor) {
        return c;
    }
    let (lines, other) = scan(body);
    let first = lines.first().map(|l| l.text).or(other.first().copied()).unwrap_or("");
    let shown = redactor.redact(first);
    let Some(error) = lines.iter().find(|l| l.text.starts_with("ERROR:")) else {
        return Classified::ok(shown, "allowed");
    };
    if let Some(c) = classify_common_error(error, redactor) {
        return c;
    }
    // The function's own settings check: `{function} USER DOES NOT HAVE PERMISSION TO …`.
    if error.message().contains("USER DOES NOT HAVE PERMISSION") {
        return Classified {
            auth: Some(AuthFailure::NotPermitted),
            ..Classified::permanent(
                format!("{} [{}]", permission_hint(function), redactor.redact(error.text)),
                true,
                "no_permission",
            )
        };
    }
    Classified::ok(redactor.redact(error.text), "allowed")
}

/// The user settings each function checks after `api_allowed_functions` (reference §1.1).
fn permission_hint(function: &str) -> &'static str {
    match function {
        "add_lead" => "the API user needs user level 8 or more, modify_leads 1-4 and agent API access",
        "lead_search" => "the API user needs user level 8 or more, modify_leads 1-5 and agent API access",
        _ => "the API user needs user level 7 or more, view_reports and agent API access",
    }
}

impl NonAgentApi {
    /// Probes one function (see [`ProbeFunction`]); never changes data on VICIdial.
    pub async fn probe(&self, function: ProbeFunction) -> ProbeAnswer {
        let call = Call { function: function.name(), mutating: false, interactive: false };
        let name = function.name();
        let classify = move |status: u16, body: &str, r: &Redactor| scrub(classify_probe(name, status, body, r), r);
        let c = self.execute(call, &function.params(), &classify).await;
        match (c.result, c.auth, c.code) {
            (Ok(reply), _, _) => ProbeAnswer::Allowed { reply },
            (Err(e), Some(AuthFailure::BadLogin | AuthFailure::Locked), _)
            | (Err(e), _, "ip_blocked" | "login_held") => ProbeAnswer::LoginRefused { reason: reason_of(e) },
            (Err(e), Some(AuthFailure::NotPermitted), _) => ProbeAnswer::NotPermitted { reason: reason_of(e) },
            (Err(e), None, _) => ProbeAnswer::Failed { reason: reason_of(e) },
        }
    }
}

fn reason_of(e: DialerError) -> String {
    match e {
        DialerError::Retryable { reason }
        | DialerError::Unknown { reason }
        | DialerError::Permanent { reason, .. }
        | DialerError::Integration { reason } => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(body: &str) -> Classified<String> {
        classify_probe("add_lead", 200, body, &Redactor::for_password("s3cret"))
    }

    #[test]
    fn an_error_past_the_permission_checks_proves_the_permission() {
        let c = probe("ERROR: add_lead NOT A DEFINED LIST ID, LIST EXISTS CHECK ENABLED - 1|987654321987\n");
        assert_eq!(
            c.result.unwrap(),
            "ERROR: add_lead NOT A DEFINED LIST ID, LIST EXISTS CHECK ENABLED - 1|987654321987"
        );
    }

    #[test]
    fn permission_errors_are_told_apart_from_login_errors() {
        let c = probe("ERROR: auth USER DOES NOT HAVE PERMISSION TO USE THIS FUNCTION: |6666|add_lead|\n");
        assert_eq!(c.auth, Some(AuthFailure::NotPermitted));
        let c = probe("ERROR: add_lead USER DOES NOT HAVE PERMISSION TO ADD LEADS TO THE SYSTEM: |6666|0|\n");
        assert_eq!(c.auth, Some(AuthFailure::NotPermitted));
        assert!(c.result.unwrap_err().to_string().contains("modify_leads 1-4"));
        let c = probe("ERROR: Login incorrect, please try again: |6666|s3cret|BAD|\n");
        assert_eq!(c.auth, Some(AuthFailure::BadLogin));
        assert!(!c.result.unwrap_err().to_string().contains("s3cret"));
    }
}

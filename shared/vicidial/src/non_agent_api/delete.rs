//! `update_lead` with `delete_lead=Y` by `lead_id` (reference §4): removes a lead vicibridge
//! added for a test (`vicibridge preflight`). The API user needs `update_lead` in
//! `api_allowed_functions` (user level 8+, `modify_leads` 1–4, agent API access).

use vicibridge_core::LeadId;
use vicibridge_core::lead::DialerError;

use super::reply::{AuthFailure, Classified, Redactor, classify_common_error, classify_status, scan, scrub, snippet};
use super::{Call, LEAD_SEARCH_SOURCE, NonAgentApi};

/// What became of the lead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    /// No lead has this id (already gone).
    NotFound,
}

fn classify_delete(status: u16, body: &str, redactor: &Redactor) -> Classified<Deleted> {
    if let Some(c) = classify_status("update_lead", status, body, true, redactor) {
        return c;
    }
    let (lines, _) = scan(body);
    if lines.iter().any(|l| l.message().starts_with("update_lead LEAD HAS BEEN DELETED")) {
        return Classified::ok(Deleted::Deleted, "deleted");
    }
    if let Some(error) = lines.iter().find(|l| l.text.starts_with("ERROR:")) {
        if let Some(c) = classify_common_error(error, redactor) {
            return c;
        }
        let m = error.message();
        if m.starts_with("update_lead NO MATCHES FOUND") {
            return Classified::ok(Deleted::NotFound, "not_found");
        }
        let shown = redactor.redact(error.text);
        if m.contains("USER DOES NOT HAVE PERMISSION") {
            return Classified {
                auth: Some(AuthFailure::NotPermitted),
                ..Classified::permanent(
                    format!("the API user needs user level 8 or more, modify_leads 1-4 and agent API access [{shown}]"),
                    true,
                    "no_permission",
                )
            };
        }
        return Classified::permanent(format!("VICIdial update_lead refused the delete: {shown}"), true, "refused");
    }
    Classified::retryable(
        format!("VICIdial update_lead answered something unexpected: {}", snippet(body, redactor)),
        "unrecognised_reply",
    )
}

impl NonAgentApi {
    /// Deletes one lead (and its callbacks, archived by VICIdial).
    pub async fn delete_lead(&self, lead_id: LeadId) -> Result<Deleted, DialerError> {
        const CALL: Call = Call { function: "update_lead", mutating: true, interactive: false };
        let params: Vec<(String, String)> = [
            ("source", LEAD_SEARCH_SOURCE.to_owned()),
            ("search_method", "LEAD_ID".to_owned()),
            ("lead_id", lead_id.to_string()),
            ("delete_lead", "Y".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let classify = |status: u16, body: &str, r: &Redactor| scrub(classify_delete(status, body, r), r);
        self.execute(CALL, &params, &classify).await.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_missing_and_refused_replies() {
        let r = Redactor::none();
        let c = classify_delete(200, "SUCCESS: update_lead LEAD HAS BEEN DELETED 0|0 - 6666|11|1|0|0|\n", &r);
        assert_eq!(c.result, Ok(Deleted::Deleted));
        let c = classify_delete(200, "ERROR: update_lead NO MATCHES FOUND IN THE SYSTEM: |6666|99999||\n", &r);
        assert_eq!(c.result, Ok(Deleted::NotFound));
        let c = classify_delete(
            200,
            "ERROR: auth USER DOES NOT HAVE PERMISSION TO USE THIS FUNCTION: |6666|update_lead|\n",
            &r,
        );
        assert_eq!(c.auth, Some(AuthFailure::NotPermitted));
    }
}

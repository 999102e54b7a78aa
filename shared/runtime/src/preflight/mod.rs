//! `vicibridge preflight`: proves an installation against the real configured systems before
//! VICIdial is pointed at it, as a checklist — one line per thing that must hold, each passed or
//! failed with a reason. The checks are adapters over the existing clients (VICIdial's
//! non-agent and agent APIs, the CRM adapters' own org checks); nothing here is a second client.

mod crm;
mod dispositions;
mod lead_injection;
mod screen_pop;
mod vicidial;

pub use dispositions::NEW as TEST_CONTACT_NEW;

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use vicibridge_core::config::Config;
use vicibridge_core::ports::{SecretStore, SecretWriter};

/// What became of one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// Works, with something the operator should know; does not fail the run.
    Warn,
    Fail,
    /// Not checked: not configured, or a line it depends on failed (that line says why).
    Skip,
}

impl Status {
    fn mark(self) -> &'static str {
        match self {
            Status::Pass => "✓",
            Status::Warn => "!",
            Status::Fail => "✗",
            Status::Skip => "-",
        }
    }
}

/// One checklist line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable identifier for scripts, e.g. `vicidial.function.add_lead`.
    pub id: String,
    /// What must hold, e.g. "VICIdial API user may use add_lead".
    pub title: String,
    pub status: Status,
    /// Why it passed or failed; for a failure, what to fix.
    pub reason: String,
}

impl Check {
    fn new(id: impl Into<String>, title: impl Into<String>, status: Status, reason: impl Into<String>) -> Check {
        Check { id: id.into(), title: title.into(), status, reason: reason.into() }
    }
    fn pass(id: impl Into<String>, title: impl Into<String>, reason: impl Into<String>) -> Check {
        Check::new(id, title, Status::Pass, reason)
    }
    fn fail(id: impl Into<String>, title: impl Into<String>, reason: impl Into<String>) -> Check {
        Check::new(id, title, Status::Fail, reason)
    }
    fn skip(id: impl Into<String>, title: impl Into<String>, reason: impl Into<String>) -> Check {
        Check::new(id, title, Status::Skip, reason)
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.mark(), self.title, self.reason)
    }
}

/// The whole checklist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// True when no line failed.
    pub passed: bool,
    pub checks: Vec<Check>,
}

impl Report {
    fn new(checks: Vec<Check>) -> Report {
        Report { passed: checks.iter().all(|c| c.status != Status::Fail), checks }
    }

    /// The checklist as text, one line per check, then a summary line.
    pub fn to_text(&self) -> String {
        let mut out: String = self.checks.iter().map(|c| format!("{c}\n")).collect();
        let failed = self.checks.iter().filter(|c| c.status == Status::Fail).count();
        if failed == 0 {
            out.push_str(&format!("preflight passed ({} checks)\n", self.checks.len()));
        } else {
            out.push_str(&format!("preflight FAILED: {failed} of {} checks\n", self.checks.len()));
        }
        out
    }

    /// The checklist as one JSON document (`{"passed": …, "checks": [{id, title, status, reason}]}`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"passed\":false,\"error\":\"{e}\"}}"))
    }
}

/// What the operator allows preflight to do beyond reading.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Inject a test lead with this phone number (and delete it afterwards).
    pub test_lead_phone: Option<String>,
    /// A CRM record (what VICIdial's `vendor_lead_code` holds for it) that preflight may change
    /// and put back: every mapped disposition is synced to it and read back, and its screen pop
    /// rendered. `new` ([`TEST_CONTACT_NEW`]): preflight creates one and deletes it afterwards.
    pub test_contact: Option<String>,
    /// Leave what preflight created, for inspection.
    pub keep: bool,
}

/// Runs every check the configuration calls for. `writer` stores a rotated Salesforce
/// refresh token, as `serve` would.
pub async fn run(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    writer: Option<Arc<dyn SecretWriter>>,
    options: &Options,
) -> Report {
    let mut checks = vicidial::checks(config, secrets.clone()).await;
    // A test lead only once the API user is known to log in and to be allowed add_lead.
    let injectable = checks.iter().all(|c| c.status != Status::Fail);
    let crm_lines = crm::checks(config, secrets.clone(), writer.clone()).await;
    // Synthetic calls only once the CRM takes the credentials.
    let crm_usable = crm_lines.iter().all(|c| c.id != crm::TOKEN || c.status != Status::Fail);
    checks.extend(crm_lines);
    if injectable {
        checks.extend(lead_injection::checks(config, secrets.clone(), options).await);
    } else if config.lead_injection.is_some() && options.test_lead_phone.is_some() {
        checks.push(Check::skip(lead_injection::ID, lead_injection::TITLE, "not tried: a VICIdial line above failed"));
    }
    if crm_usable {
        checks.extend(dispositions::checks(config, secrets, writer, options).await);
    } else if options.test_contact.is_some() {
        checks.push(Check::skip(dispositions::RECORD, dispositions::RECORD_TITLE, "not tried: the CRM login failed"));
    }
    Report::new(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_passes_only_without_failed_lines() {
        let ok = Report::new(vec![Check::pass("a", "A", "fine"), Check::skip("b", "B", "not configured")]);
        assert!(ok.passed);
        assert!(ok.to_text().ends_with("preflight passed (2 checks)\n"));
        let bad = Report::new(vec![Check::pass("a", "A", "fine"), Check::fail("c", "C", "broken: fix it")]);
        assert!(!bad.passed);
        assert!(bad.to_text().contains("✗ C: broken: fix it\n"));
        let json: serde_json::Value = serde_json::from_str(&bad.to_json()).unwrap();
        assert_eq!(json["passed"], false);
        assert_eq!(json["checks"][1]["status"], "fail");
    }
}

//! `[watchdogs]`: when `serve` warns about a condition an operator must look at (on AWS the
//! same conditions are CloudWatch alarms, with their thresholds as template parameters).

use serde::Deserialize;

use super::{Problem, Severity};

/// The window over which the bridge-id watchdog counts `vendor_lead_code` lookups.
pub const BRIDGE_ID_WINDOW_MINUTES: i64 = 15;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchdogsConfig {
    /// Warn when more than this percentage of the `vendor_lead_code` lookups of one campaign
    /// and list found no CRM record over the last 15 minutes (1–100; 100 never warns).
    pub bridge_id_not_found_percent: u8,
    /// ... once at least this many lookups were made in the window.
    pub bridge_id_min_events: u32,
    /// `serve` only: warn when the filesystem of the data directory is fuller than this
    /// percentage (1–100; 100 never warns).
    pub disk_percent: u8,
    /// `serve` only: minutes between two digests of the unmapped dispositions seen since the
    /// last one (one log line with the `[dispositions]` tables to paste); 0: no digest.
    pub unmapped_digest_minutes: u32,
    /// A call that started (Start Call URL) and has no disposition this many minutes later
    /// counts as a call without a disposition (its campaign may have lost its Dispo Call URL;
    /// [`crate::watchdog::dispositions`]); 0: off. On AWS the reconcile function counts them.
    pub calls_without_disposition_after_minutes: u32,
    /// `serve` only: seconds between two runs of the watchdogs (each change is logged once).
    pub check_interval_secs: u32,
}

impl Default for WatchdogsConfig {
    fn default() -> Self {
        WatchdogsConfig {
            bridge_id_not_found_percent: 20,
            bridge_id_min_events: 20,
            disk_percent: 90,
            unmapped_digest_minutes: 60,
            calls_without_disposition_after_minutes: 120,
            check_interval_secs: 30,
        }
    }
}

impl WatchdogsConfig {
    pub(super) fn problems(&self, out: &mut Vec<Problem>) {
        let mut error = |key: &str, message: &str| {
            out.push(Problem {
                key: format!("watchdogs.{key}"),
                message: message.to_owned(),
                severity: Severity::Error,
            })
        };
        if !(1..=100).contains(&self.bridge_id_not_found_percent) {
            error("bridge_id_not_found_percent", "must be between 1 and 100 (percent)");
        }
        if self.bridge_id_min_events == 0 {
            error("bridge_id_min_events", "must be at least 1");
        }
        if !(1..=100).contains(&self.disk_percent) {
            error("disk_percent", "must be between 1 and 100 (percent)");
        }
        if self.unmapped_digest_minutes > 7 * 24 * 60 {
            error("unmapped_digest_minutes", "must be between 0 (no digest) and 10080 (a week)");
        }
        if self.calls_without_disposition_after_minutes > 24 * 60 {
            error("calls_without_disposition_after_minutes", "must be between 1 and 1440 minutes, or 0 for off");
        }
        if !(1..=3600).contains(&self.check_interval_secs) {
            error("check_interval_secs", "must be between 1 and 3600 seconds");
        }
    }

    /// `None`: the disposition watchdog is off.
    pub fn calls_without_disposition_after(&self) -> Option<chrono::Duration> {
        match self.calls_without_disposition_after_minutes {
            0 => None,
            m => Some(chrono::Duration::minutes(i64::from(m))),
        }
    }

    /// How often `serve` runs the watchdogs.
    pub fn check_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.check_interval_secs))
    }

    /// Whether `not_found` of `lookups` is a broken bridge id: at least `bridge_id_min_events`
    /// lookups, and more than `bridge_id_not_found_percent` of them found nothing.
    pub fn bridge_id_broken(&self, lookups: u64, not_found: u64) -> bool {
        lookups >= u64::from(self.bridge_id_min_events)
            && not_found.saturating_mul(100) > u64::from(self.bridge_id_not_found_percent).saturating_mul(lookups)
    }

    /// Whether a filesystem `used_percent` full is above `disk_percent`.
    pub fn disk_full(&self, used_percent: f64) -> bool {
        used_percent > f64::from(self.disk_percent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const MINIMAL: &str = "[vicidial]\nbase_url = \"https://d\"\n[crm]\nkind = \"dry-run\"\n";

    #[test]
    fn defaults_are_20_percent_of_20_events_and_a_90_percent_disk() {
        let c = Config::from_toml(MINIMAL).unwrap();
        assert_eq!(c.watchdogs, WatchdogsConfig::default());
        let w = &c.watchdogs;
        assert!(!w.bridge_id_broken(19, 19), "fewer than 20 lookups never fire");
        assert!(!w.bridge_id_broken(20, 4), "20 % is not above 20 %");
        assert!(w.bridge_id_broken(20, 5));
        assert!(w.bridge_id_broken(1000, 201));
        assert_eq!(w.calls_without_disposition_after(), Some(chrono::Duration::hours(2)));
        assert!(!w.disk_full(90.0));
        assert!(w.disk_full(90.5));
        let never =
            WatchdogsConfig { bridge_id_not_found_percent: 100, disk_percent: 100, ..WatchdogsConfig::default() };
        assert!(!never.bridge_id_broken(50, 50) && !never.disk_full(100.0));
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        for (line, key) in [
            ("bridge_id_not_found_percent = 0", "watchdogs.bridge_id_not_found_percent"),
            ("bridge_id_not_found_percent = 101", "watchdogs.bridge_id_not_found_percent"),
            ("bridge_id_min_events = 0", "watchdogs.bridge_id_min_events"),
            ("disk_percent = 0", "watchdogs.disk_percent"),
            ("unmapped_digest_minutes = 20000", "watchdogs.unmapped_digest_minutes"),
            ("calls_without_disposition_after_minutes = 2000", "watchdogs.calls_without_disposition_after_minutes"),
            ("check_interval_secs = 0", "watchdogs.check_interval_secs"),
        ] {
            let e = Config::from_toml(&format!("{MINIMAL}[watchdogs]\n{line}\n")).unwrap_err().to_string();
            assert!(e.contains(key), "{line}: {e}");
        }
        let c = Config::from_toml(&format!("{MINIMAL}[watchdogs]\ndisk_percent = 1\nunmapped_digest_minutes = 0\n"))
            .unwrap();
        assert_eq!((c.watchdogs.disk_percent, c.watchdogs.unmapped_digest_minutes), (1, 0));
    }
}

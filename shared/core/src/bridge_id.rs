//! The bridge id watchdog: `vendor_lead_code` carries the CRM record id (the bridge between
//! VICIdial and the CRM). A list reloaded with its columns remapped puts something else there,
//! and every sync of that list misses its record. The CRM adapters report each lookup of a
//! `vendor_lead_code` ([`record_lookup`]); a spike of misses per campaign and list raises an
//! alert: on AWS a CloudWatch alarm on the metrics, in `serve` the [`BridgeIdWatch`] it feeds.
//!
//! Counting goes through the `metrics` facade like every other count (a no-op without a
//! recorder: no I/O here).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::WatchdogsConfig;
use crate::config::watchdogs::BRIDGE_ID_WINDOW_MINUTES;
use crate::plan::CallPlan;

/// Call events whose `vendor_lead_code` the CRM adapter looked up, by `campaign` and `list`.
pub const BRIDGE_ID_LOOKUPS: &str = "BridgeIdLookups";
/// Of those, the ones whose `vendor_lead_code` named no CRM record, by `campaign` and `list`.
pub const BRIDGE_ID_NOT_FOUND: &str = "BridgeIdNotFound";
/// [`BRIDGE_ID_LOOKUPS`] without dimensions: the BridgeIdAlarm in infra/template.yaml.
pub const BRIDGE_ID_LOOKUPS_TOTAL: &str = "BridgeIdLookupsTotal";
/// [`BRIDGE_ID_NOT_FOUND`] without dimensions: the BridgeIdAlarm in infra/template.yaml.
pub const BRIDGE_ID_NOT_FOUND_TOTAL: &str = "BridgeIdNotFoundTotal";

/// The label value of a campaign or list VICIdial did not send.
pub const UNKNOWN: &str = "(none)";

/// Where a call came from: its campaign and its lead's list.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CampaignList {
    pub campaign: String,
    pub list: String,
}

impl CampaignList {
    pub fn of(plan: &CallPlan) -> CampaignList {
        let value = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).unwrap_or(UNKNOWN).to_owned();
        CampaignList { campaign: value(plan.campaign.as_deref()), list: value(plan.lead.list_id.as_deref()) }
    }
}

impl std::fmt::Display for CampaignList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "campaign {}, list {}", self.campaign, self.list)
    }
}

/// A CRM adapter looked up the record `plan`'s `vendor_lead_code` names: `found` or not (not a
/// record id of the configured kind, or no such record). Call only for plans that carry one,
/// once per plan, and only when the answer is known (not when the CRM could not be asked).
pub fn record_lookup(plan: &CallPlan, found: bool) {
    let at = CampaignList::of(plan);
    metrics::counter!(BRIDGE_ID_LOOKUPS, "campaign" => at.campaign.clone(), "list" => at.list.clone()).increment(1);
    metrics::counter!(BRIDGE_ID_LOOKUPS_TOTAL).increment(1);
    if !found {
        metrics::counter!(BRIDGE_ID_NOT_FOUND, "campaign" => at.campaign, "list" => at.list).increment(1);
        metrics::counter!(BRIDGE_ID_NOT_FOUND_TOTAL).increment(1);
    }
}

/// Lookups and misses of one campaign and list over the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub lookups: u64,
    pub not_found: u64,
}

impl Counts {
    /// Whole percent of lookups that found nothing.
    pub fn percent_not_found(&self) -> u64 {
        (self.not_found * 100).checked_div(self.lookups).unwrap_or(0)
    }
}

/// A campaign and list whose bridge ids are broken, as `serve` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BridgeIdAlert {
    #[serde(flatten)]
    pub at: CampaignList,
    #[serde(flatten)]
    pub counts: Counts,
    /// When the watchdog first saw it.
    pub since: DateTime<Utc>,
}

/// What changed at one [`BridgeIdWatch::check`]: alerts raised, and campaigns/lists back to
/// normal (with their counts now).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub raised: Vec<BridgeIdAlert>,
    pub recovered: Vec<(CampaignList, Counts)>,
}

/// The last [`BRIDGE_ID_WINDOW_MINUTES`] minutes of lookups per campaign and list, and which
/// of them are alerting. Time is passed in (`now`), never read: tests move it.
#[derive(Debug, Default)]
pub struct BridgeIdWatch {
    /// Per campaign and list: (minute since the epoch, counts of that minute), oldest first.
    minutes: BTreeMap<CampaignList, VecDeque<(i64, Counts)>>,
    alerting: BTreeMap<CampaignList, DateTime<Utc>>,
}

fn minute_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(60)
}

impl BridgeIdWatch {
    pub fn new() -> BridgeIdWatch {
        BridgeIdWatch::default()
    }

    /// Counts `lookups` lookups (`not_found` of them misses) of `at` at `now`.
    pub fn add(&mut self, at: &CampaignList, lookups: u64, not_found: u64, now: DateTime<Utc>) {
        let minute = minute_of(now);
        let slots = self.minutes.entry(at.clone()).or_default();
        match slots.back_mut() {
            Some((m, c)) if *m == minute => {
                c.lookups += lookups;
                c.not_found += not_found;
            }
            _ => slots.push_back((minute, Counts { lookups, not_found })),
        }
    }

    /// The counts of the window ending at `now`, per campaign and list (older minutes dropped).
    fn window(&mut self, now: DateTime<Utc>) -> BTreeMap<CampaignList, Counts> {
        let first = minute_of(now) - BRIDGE_ID_WINDOW_MINUTES + 1;
        let mut out = BTreeMap::new();
        self.minutes.retain(|at, slots| {
            while slots.front().is_some_and(|(m, _)| *m < first) {
                slots.pop_front();
            }
            let mut sum = Counts::default();
            for (_, c) in slots.iter() {
                sum.lookups += c.lookups;
                sum.not_found += c.not_found;
            }
            if sum.lookups > 0 {
                out.insert(at.clone(), sum);
            }
            !slots.is_empty()
        });
        out
    }

    /// Decides at `now`: each campaign and list over the threshold raises one alert, until
    /// it falls back under it (then it is reported recovered, once).
    pub fn check(&mut self, now: DateTime<Utc>, cfg: &WatchdogsConfig) -> Changes {
        let window = self.window(now);
        let broken: BTreeSet<&CampaignList> =
            window.iter().filter(|(_, c)| cfg.bridge_id_broken(c.lookups, c.not_found)).map(|(at, _)| at).collect();
        let mut changes = Changes::default();
        for at in &broken {
            if !self.alerting.contains_key(*at) {
                self.alerting.insert((*at).clone(), now);
                changes.raised.push(BridgeIdAlert { at: (*at).clone(), counts: window[*at], since: now });
            }
        }
        let over: Vec<CampaignList> = self.alerting.keys().filter(|at| !broken.contains(at)).cloned().collect();
        for at in over {
            self.alerting.remove(&at);
            let counts = window.get(&at).copied().unwrap_or_default();
            changes.recovered.push((at, counts));
        }
        changes
    }

    /// The alerts standing after the last [`check`](Self::check), with the window's counts at `now`.
    pub fn alerts(&mut self, now: DateTime<Utc>) -> Vec<BridgeIdAlert> {
        let window = self.window(now);
        self.alerting
            .iter()
            .map(|(at, since)| BridgeIdAlert {
                at: at.clone(),
                counts: window.get(at).copied().unwrap_or_default(),
                since: *since,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 / 60 * 60 + minute * 60 + 30, 0).unwrap()
    }

    fn place(campaign: &str, list: &str) -> CampaignList {
        CampaignList { campaign: campaign.into(), list: list.into() }
    }

    #[test]
    fn a_spike_of_misses_fires_once_names_the_list_and_recovers_once() {
        let cfg = WatchdogsConfig::default();
        let mut w = BridgeIdWatch::new();
        let (bad, good) = (place("SALES", "1002"), place("SALES", "1001"));
        w.add(&good, 50, 2, at(0));
        w.add(&bad, 10, 9, at(0));
        assert_eq!(w.check(at(0), &cfg), Changes::default(), "10 lookups are fewer than 20");
        w.add(&bad, 10, 10, at(3));
        let changes = w.check(at(3), &cfg);
        assert_eq!(changes.raised.len(), 1);
        assert_eq!(changes.raised[0].at, bad);
        assert_eq!(changes.raised[0].counts, Counts { lookups: 20, not_found: 19 });
        assert_eq!(changes.raised[0].counts.percent_not_found(), 95);
        assert!(changes.recovered.is_empty());
        w.add(&bad, 5, 5, at(4));
        assert_eq!(w.check(at(4), &cfg), Changes::default(), "one alert per outage");
        assert_eq!(w.alerts(at(4)).len(), 1);

        // The misses age out of the 15-minute window: at minute 15 those of minute 0 are gone.
        w.add(&bad, 20, 0, at(10));
        assert_eq!(w.check(at(14), &cfg), Changes::default(), "24 of 45 is still above 20 %");
        let changes = w.check(at(19), &cfg);
        assert!(changes.raised.is_empty());
        assert_eq!(changes.recovered, vec![(bad.clone(), Counts { lookups: 20, not_found: 0 })]);
        assert!(w.alerts(at(19)).is_empty());
        assert_eq!(w.check(at(40), &cfg), Changes::default());
        assert!(w.minutes.is_empty(), "nothing kept once out of the window");
    }
}

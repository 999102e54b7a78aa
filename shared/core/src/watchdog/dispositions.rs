//! "A campaign stopped sending dispositions": a cloned VICIdial campaign often loses its Dispo
//! Call URL, and then its calls start (Start Call URL) and never end in the CRM.
//!
//! [`DispositionWatch`] is fed the calls that started and the dispositions that arrived, each
//! with its campaign and time, and answers per campaign:
//! - **calls without a disposition**: calls that started more than `after` ago, got no
//!   disposition, and started after the campaign's last disposition. A disposition proves the
//!   campaign's Dispo Call URL worked at that time, so a call started before it that never got
//!   one is an agent's or a browser's matter (reconcile's), not the campaign's; and once the
//!   URL is fixed, the first disposition clears the count.
//! - **silent**: the campaign sent dispositions yesterday, none today, while other campaigns
//!   sent dispositions today in an hour (complete, of the dialer's day) in which this one sent
//!   some yesterday.
//!
//! No I/O and no clock of its own: every answer is for the `now` it is given.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::event::Event;

/// How long calls and dispositions are remembered: today and yesterday are enough for every
/// answer.
pub const KEEP: Duration = Duration::hours(48);

/// What VICIdial told about one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallNoteKind {
    /// The Start Call URL: the call reached an agent (or was dialled).
    Start,
    /// The Dispo Call URL: the agent dispositioned it.
    Dispo,
}

impl CallNoteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CallNoteKind::Start => "start",
            CallNoteKind::Dispo => "dispo",
        }
    }

    pub fn parse(text: &str) -> Option<CallNoteKind> {
        match text {
            "start" => Some(CallNoteKind::Start),
            "dispo" => Some(CallNoteKind::Dispo),
            _ => None,
        }
    }
}

/// One call started or dispositioned: `call` is the call's uniqueid (or call_id), `at` when
/// VICIdial sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallNote {
    pub campaign: String,
    pub call: String,
    pub kind: CallNoteKind,
    pub at: DateTime<Utc>,
}

impl CallNote {
    /// The note of a call start or disposition received at `received`: its time is VICIdial's
    /// `epoch` (when the URL was built, so a URL replayed from VICIdial's URL log keeps its
    /// time), never later than `received`, else `received`. `None` for other events and for
    /// calls without a campaign.
    pub fn from_event(event: &Event, received: DateTime<Utc>) -> Option<CallNote> {
        let (kind, call) = match event {
            Event::CallStart(e) => (CallNoteKind::Start, &e.call),
            Event::Dispo(e) => (CallNoteKind::Dispo, &e.call),
            _ => return None,
        };
        let campaign = call.campaign.as_deref().filter(|c| !c.is_empty())?;
        let at = call.epoch.and_then(|s| DateTime::from_timestamp(s, 0)).map_or(received, |t| t.min(received));
        Some(CallNote { campaign: campaign.to_owned(), call: call.key.value().to_owned(), kind, at })
    }
}

/// One campaign as the watch sees it at a given time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CampaignWatch {
    pub campaign: String,
    /// Calls started more than `after` ago, after the campaign's last disposition, with none.
    pub calls_without_disposition: u64,
    /// When the oldest of those started.
    pub oldest_call_started_at: Option<DateTime<Utc>>,
    /// The campaign's last disposition (of the last two days).
    pub last_disposition_at: Option<DateTime<Utc>>,
    /// Hours of the dialer's day (0–23) in which this campaign sent dispositions yesterday and
    /// other campaigns did today, while this one sent none today; empty: not silent.
    pub silent_hours: Vec<u32>,
}

impl CampaignWatch {
    pub fn is_silent(&self) -> bool {
        !self.silent_hours.is_empty()
    }
}

/// A change worth one log line, from [`DispositionWatch::changes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchChange {
    /// The campaign has calls without a disposition (it had none at the last look).
    Missing(CampaignWatch),
    /// Its calls without a disposition are gone (a disposition arrived, or they aged out).
    MissingCleared(String),
    /// The campaign went silent.
    Silent(CampaignWatch),
    /// It sent a disposition again (or the day is over).
    SilentCleared(String),
}

#[derive(Clone, Debug, Default)]
struct Campaign {
    last_dispo: Option<DateTime<Utc>>,
    /// Calls started after `last_dispo` without a disposition: call → when it started.
    pending: HashMap<String, DateTime<Utc>>,
    /// Hours of each dialer-local day with a disposition, as bits (bit h = hour h).
    dispo_hours: BTreeMap<NaiveDate, u32>,
}

/// The tracker. Feed it with [`DispositionWatch::note`] in any order; ask with
/// [`DispositionWatch::campaigns`].
#[derive(Clone, Debug)]
pub struct DispositionWatch {
    after: Duration,
    tz: Tz,
    campaigns: BTreeMap<String, Campaign>,
    /// What [`DispositionWatch::changes`] last reported, to report each change once.
    alerted_missing: BTreeSet<String>,
    alerted_silent: BTreeSet<String>,
}

impl DispositionWatch {
    /// `after`: how long a call may go without a disposition; `tz`: the dialer's clock, whose
    /// days and hours "yesterday", "today" and "the same hours" are.
    pub fn new(after: Duration, tz: Tz) -> Self {
        DispositionWatch {
            after,
            tz,
            campaigns: BTreeMap::new(),
            alerted_missing: BTreeSet::new(),
            alerted_silent: BTreeSet::new(),
        }
    }

    pub fn after(&self) -> Duration {
        self.after
    }

    pub fn note(&mut self, note: &CallNote) {
        let c = self.campaigns.entry(note.campaign.clone()).or_default();
        match note.kind {
            CallNoteKind::Start => {
                if c.last_dispo.is_none_or(|last| note.at > last) {
                    let started = c.pending.entry(note.call.clone()).or_insert(note.at);
                    *started = (*started).min(note.at);
                }
            }
            CallNoteKind::Dispo => {
                c.pending.remove(&note.call);
                if c.last_dispo.is_none_or(|last| note.at > last) {
                    c.last_dispo = Some(note.at);
                    c.pending.retain(|_, started| *started > note.at);
                }
                let local = note.at.with_timezone(&self.tz);
                *c.dispo_hours.entry(local.date_naive()).or_default() |= 1 << local.hour();
            }
        }
    }

    /// Forgets what is older than [`KEEP`] before `now`.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        let cutoff = now - KEEP;
        let yesterday = self.today(now).pred_opt().unwrap_or(NaiveDate::MIN);
        self.campaigns.retain(|_, c| {
            c.pending.retain(|_, started| *started >= cutoff);
            c.dispo_hours.retain(|day, _| *day >= yesterday);
            if c.last_dispo.is_some_and(|last| last < cutoff) {
                c.last_dispo = None;
            }
            c.last_dispo.is_some() || !c.pending.is_empty() || !c.dispo_hours.is_empty()
        });
    }

    /// Every campaign seen in the last two days, by campaign id.
    pub fn campaigns(&self, now: DateTime<Utc>) -> Vec<CampaignWatch> {
        let cutoff = now - KEEP;
        let today = self.today(now);
        let yesterday = today.pred_opt().unwrap_or(NaiveDate::MIN);
        // Hours of today that are over.
        let hour = now.with_timezone(&self.tz).hour();
        let past_hours = (1u32 << hour) - 1;
        self.campaigns
            .iter()
            .map(|(id, c)| {
                let late: Vec<DateTime<Utc>> = c
                    .pending
                    .values()
                    .copied()
                    .filter(|started| *started >= cutoff && now.signed_duration_since(*started) >= self.after)
                    .collect();
                let hours = |campaign: &Campaign, day| campaign.dispo_hours.get(&day).copied().unwrap_or(0);
                let others_today = self
                    .campaigns
                    .iter()
                    .filter(|(other, _)| *other != id)
                    .fold(0, |acc, (_, other)| acc | hours(other, today));
                let silent = if hours(c, today) == 0 { hours(c, yesterday) & others_today & past_hours } else { 0 };
                CampaignWatch {
                    campaign: id.clone(),
                    calls_without_disposition: late.len() as u64,
                    oldest_call_started_at: late.iter().min().copied(),
                    last_disposition_at: c.last_dispo.filter(|last| *last >= cutoff),
                    silent_hours: (0..24).filter(|h| (silent & (1 << h)) != 0).collect(),
                }
            })
            .collect()
    }

    /// What changed since the last call: a campaign that started missing dispositions or went
    /// silent, or recovered. Each change is reported once.
    pub fn changes(&mut self, now: DateTime<Utc>) -> Vec<WatchChange> {
        let campaigns = self.campaigns(now);
        let mut out = Vec::new();
        let missing: BTreeSet<String> =
            campaigns.iter().filter(|c| c.calls_without_disposition > 0).map(|c| c.campaign.clone()).collect();
        let silent: BTreeSet<String> = campaigns.iter().filter(|c| c.is_silent()).map(|c| c.campaign.clone()).collect();
        for c in &campaigns {
            if missing.contains(&c.campaign) && !self.alerted_missing.contains(&c.campaign) {
                out.push(WatchChange::Missing(c.clone()));
            }
            if silent.contains(&c.campaign) && !self.alerted_silent.contains(&c.campaign) {
                out.push(WatchChange::Silent(c.clone()));
            }
        }
        out.extend(self.alerted_missing.difference(&missing).cloned().map(WatchChange::MissingCleared));
        out.extend(self.alerted_silent.difference(&silent).cloned().map(WatchChange::SilentCleared));
        self.alerted_missing = missing;
        self.alerted_silent = silent;
        out
    }

    fn today(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.tz).date_naive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).unwrap_or_default()
    }

    fn note(campaign: &str, call: &str, kind: CallNoteKind, when: &str) -> CallNote {
        CallNote { campaign: campaign.into(), call: call.into(), kind, at: at(when) }
    }

    fn watch() -> DispositionWatch {
        DispositionWatch::new(Duration::hours(2), Tz::UTC)
    }

    fn get(w: &DispositionWatch, now: &str, campaign: &str) -> CampaignWatch {
        w.campaigns(at(now)).into_iter().find(|c| c.campaign == campaign).unwrap_or_else(|| CampaignWatch {
            campaign: "(absent)".into(),
            calls_without_disposition: u64::MAX,
            oldest_call_started_at: None,
            last_disposition_at: None,
            silent_hours: vec![],
        })
    }

    #[test]
    fn a_campaign_without_dispositions_counts_once_its_calls_are_old_enough() {
        let mut w = watch();
        w.note(&note("CLONED", "1.1", CallNoteKind::Start, "2026-12-07T09:00:00Z"));
        w.note(&note("CLONED", "1.2", CallNoteKind::Start, "2026-12-07T09:30:00Z"));
        w.note(&note("CLONED", "1.2", CallNoteKind::Start, "2026-12-07T09:31:00Z")); // sent twice
        w.note(&note("GOOD", "2.1", CallNoteKind::Start, "2026-12-07T09:00:00Z"));
        w.note(&note("GOOD", "2.1", CallNoteKind::Dispo, "2026-12-07T09:05:00Z"));

        assert_eq!(get(&w, "2026-12-07T10:59:59Z", "CLONED").calls_without_disposition, 0);
        assert!(w.changes(at("2026-12-07T10:59:59Z")).is_empty());
        let cloned = get(&w, "2026-12-07T11:00:00Z", "CLONED");
        assert_eq!(cloned.calls_without_disposition, 1);
        assert_eq!(cloned.oldest_call_started_at, Some(at("2026-12-07T09:00:00Z")));
        assert_eq!(get(&w, "2026-12-07T11:40:00Z", "CLONED").calls_without_disposition, 2);
        assert_eq!(get(&w, "2026-12-07T11:40:00Z", "GOOD").calls_without_disposition, 0);

        let changes = w.changes(at("2026-12-07T11:40:00Z"));
        assert!(
            matches!(&changes[..], [WatchChange::Missing(c)] if c.campaign == "CLONED" && c.calls_without_disposition == 2)
        );
        assert!(w.changes(at("2026-12-07T11:45:00Z")).is_empty(), "reported once");

        // The Dispo Call URL is fixed: the first disposition clears the campaign.
        w.note(&note("CLONED", "1.9", CallNoteKind::Start, "2026-12-07T11:50:00Z"));
        w.note(&note("CLONED", "1.9", CallNoteKind::Dispo, "2026-12-07T11:52:00Z"));
        assert_eq!(get(&w, "2026-12-07T12:00:00Z", "CLONED").calls_without_disposition, 0);
        assert_eq!(w.changes(at("2026-12-07T12:00:00Z")), vec![WatchChange::MissingCleared("CLONED".into())]);
    }

    #[test]
    fn a_call_started_before_the_last_disposition_is_not_the_campaigns_problem() {
        let mut w = watch();
        // A call whose agent never dispositioned it, then the campaign went on working.
        w.note(&note("GOOD", "1.1", CallNoteKind::Start, "2026-12-07T09:00:00Z"));
        w.note(&note("GOOD", "1.2", CallNoteKind::Start, "2026-12-07T09:10:00Z"));
        w.note(&note("GOOD", "1.2", CallNoteKind::Dispo, "2026-12-07T09:15:00Z"));
        assert_eq!(get(&w, "2026-12-07T15:00:00Z", "GOOD").calls_without_disposition, 0);
        // In any order: a start replayed after a later disposition.
        w.note(&note("GOOD", "1.0", CallNoteKind::Start, "2026-12-07T08:00:00Z"));
        assert_eq!(get(&w, "2026-12-07T15:00:00Z", "GOOD").calls_without_disposition, 0);
        // Its own disposition, whenever it comes, takes the call off.
        w.note(&note("GOOD", "1.3", CallNoteKind::Start, "2026-12-07T09:20:00Z"));
        assert_eq!(get(&w, "2026-12-07T15:00:00Z", "GOOD").calls_without_disposition, 1);
        w.note(&note("GOOD", "1.3", CallNoteKind::Dispo, "2026-12-07T09:19:00Z"));
        assert_eq!(get(&w, "2026-12-07T15:00:00Z", "GOOD").calls_without_disposition, 0);
    }

    #[test]
    fn calls_older_than_two_days_are_forgotten() {
        let mut w = watch();
        w.note(&note("CLONED", "1.1", CallNoteKind::Start, "2026-12-05T09:00:00Z"));
        assert_eq!(get(&w, "2026-12-07T08:59:59Z", "CLONED").calls_without_disposition, 1);
        assert_eq!(get(&w, "2026-12-07T09:00:01Z", "CLONED").calls_without_disposition, 0);
        w.prune(at("2026-12-07T09:00:01Z"));
        assert!(w.campaigns(at("2026-12-07T09:00:01Z")).is_empty());
    }

    #[test]
    fn a_campaign_that_dispositioned_yesterday_goes_silent_when_others_work_its_hours() {
        // Dialer clock: New York (UTC-5 in December).
        let mut w = DispositionWatch::new(Duration::hours(2), "America/New_York".parse().unwrap_or(Tz::UTC));
        // Yesterday 09:xx and 10:xx New York: both campaigns.
        for (c, t) in [
            ("SPANISH", "2026-12-06T14:10:00Z"),
            ("SPANISH", "2026-12-06T15:10:00Z"),
            ("ENGLISH", "2026-12-06T14:20:00Z"),
        ] {
            w.note(&note(c, "9.9", CallNoteKind::Dispo, t));
        }
        // An afternoon campaign: yesterday 15:xx New York only.
        w.note(&note("AFTERNOON", "9.8", CallNoteKind::Dispo, "2026-12-06T20:30:00Z"));
        // Today only ENGLISH, at 09:xx and 10:xx.
        w.note(&note("ENGLISH", "8.1", CallNoteKind::Dispo, "2026-12-07T14:05:00Z"));
        w.note(&note("ENGLISH", "8.2", CallNoteKind::Dispo, "2026-12-07T15:05:00Z"));

        // 09:59 New York: the 09:00 hour is not over.
        assert!(!get(&w, "2026-12-07T14:59:00Z", "SPANISH").is_silent());
        // 10:30: it is, ENGLISH worked it, SPANISH did yesterday and sent nothing today.
        assert_eq!(get(&w, "2026-12-07T15:30:00Z", "SPANISH").silent_hours, vec![9]);
        assert_eq!(get(&w, "2026-12-07T16:00:00Z", "SPANISH").silent_hours, vec![9, 10]);
        assert!(!get(&w, "2026-12-07T16:00:00Z", "AFTERNOON").is_silent(), "nobody worked 15:00 yet");
        assert!(!get(&w, "2026-12-07T16:00:00Z", "ENGLISH").is_silent());
        let changes = w.changes(at("2026-12-07T16:00:00Z"));
        assert!(matches!(&changes[..], [WatchChange::Silent(c)] if c.campaign == "SPANISH"), "{changes:?}");

        // One disposition today and it speaks again.
        w.note(&note("SPANISH", "7.1", CallNoteKind::Dispo, "2026-12-07T16:10:00Z"));
        assert!(!get(&w, "2026-12-07T16:20:00Z", "SPANISH").is_silent());
        assert_eq!(w.changes(at("2026-12-07T16:20:00Z")), vec![WatchChange::SilentCleared("SPANISH".into())]);

        // The next day, pruned: yesterday is today's, the day before is gone.
        w.prune(at("2026-12-08T14:00:00Z"));
        assert!(!get(&w, "2026-12-08T16:00:00Z", "AFTERNOON").is_silent());
    }
}

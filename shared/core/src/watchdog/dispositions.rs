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

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

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
}

/// The tracker. Feed it with [`DispositionWatch::note`] in any order; ask with
/// [`DispositionWatch::campaigns`].
#[derive(Clone, Debug)]
pub struct DispositionWatch {
    after: Duration,
    tz: Tz,
    campaigns: BTreeMap<String, Campaign>,
    /// The hours of today and yesterday with dispositions, per campaign (the silent check).
    days: DispositionDays,
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
            days: DispositionDays::default(),
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
                self.days.note(&note.campaign, note.at.with_timezone(&self.tz).naive_local());
            }
        }
    }

    /// Forgets what is older than [`KEEP`] before `now`.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        let cutoff = now - KEEP;
        self.days.prune(self.today(now));
        let days = &self.days;
        self.campaigns.retain(|id, c| {
            c.pending.retain(|_, started| *started >= cutoff);
            if c.last_dispo.is_some_and(|last| last < cutoff) {
                c.last_dispo = None;
            }
            c.last_dispo.is_some() || !c.pending.is_empty() || days.contains(id)
        });
    }

    /// Every campaign seen in the last two days, by campaign id.
    pub fn campaigns(&self, now: DateTime<Utc>) -> Vec<CampaignWatch> {
        let cutoff = now - KEEP;
        let silent = self.days.silent(now.with_timezone(&self.tz).naive_local());
        self.campaigns
            .iter()
            .map(|(id, c)| {
                let late: Vec<DateTime<Utc>> = c
                    .pending
                    .values()
                    .copied()
                    .filter(|started| *started >= cutoff && now.signed_duration_since(*started) >= self.after)
                    .collect();
                CampaignWatch {
                    campaign: id.clone(),
                    calls_without_disposition: late.len() as u64,
                    oldest_call_started_at: late.iter().min().copied(),
                    last_disposition_at: c.last_dispo.filter(|last| *last >= cutoff),
                    silent_hours: silent.get(id).cloned().unwrap_or_default(),
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

/// Hours of one dialer-local day, as bits (bit h = hour h, 0–23).
pub type DayHours = u32;

/// Of a [`DayHours`], the hours (0–23), in order.
pub fn hours_of(bits: DayHours) -> Vec<u32> {
    (0..24).filter(|h| bits & (1 << h) != 0).collect()
}

/// The silent-campaign rule, for one campaign at an hour of today (`hour_now`, the dialer's):
/// the hours already over in which it sent dispositions `yesterday`, others sent some today
/// (`others_today`), while it sent none today (`today`). Empty: not silent.
pub fn silent_hours(today: DayHours, yesterday: DayHours, others_today: DayHours, hour_now: u32) -> DayHours {
    let past_hours = (1u32 << hour_now.min(24)) - 1;
    if today == 0 { yesterday & others_today & past_hours } else { 0 }
}

/// One campaign's dispositions by hour: the dialer-local `day` of its latest, and the hours of
/// that day and of the day before with some.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignDays {
    #[serde(rename = "d")]
    pub day: NaiveDate,
    #[serde(rename = "t")]
    pub today: DayHours,
    #[serde(rename = "y")]
    pub yesterday: DayHours,
}

impl CampaignDays {
    /// Its hours of `day` and of the day before (`(today, yesterday)` as seen on `day`).
    pub fn on(&self, day: NaiveDate) -> (DayHours, DayHours) {
        if self.day == day {
            (self.today, self.yesterday)
        } else if self.day.succ_opt() == Some(day) {
            (0, self.today)
        } else {
            (0, 0)
        }
    }

    /// A disposition at `local` (the dialer's clock): a later day rolls today into yesterday
    /// (at the dialer's midnight), an older one than yesterday is of no use. Noting the same
    /// hour twice changes nothing.
    pub fn note(&mut self, local: NaiveDateTime) {
        let (day, bit) = (local.date(), 1 << local.hour());
        if day > self.day {
            let (_, yesterday) = self.on(day);
            *self = CampaignDays { day, today: 0, yesterday };
        }
        if day == self.day {
            self.today |= bit;
        } else if day.succ_opt() == Some(self.day) {
            self.yesterday |= bit;
        }
    }
}

/// The dispositions of today and yesterday by hour, per campaign: all the silent-campaign
/// check needs. Small enough to keep between the reconcile Lambda's runs (JSON in an SSM
/// parameter, at most [`DispositionDays::MAX_CAMPAIGNS`]); `serve`'s [`DispositionWatch`]
/// keeps one in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DispositionDays {
    campaigns: BTreeMap<String, CampaignDays>,
}

impl DispositionDays {
    /// The most campaigns kept: with VICIdial's ids (at most 20 characters, an in-group's)
    /// their JSON stays under SSM's 4 KB Standard parameter. Beyond it, the campaigns with the
    /// fewest hours with dispositions today and yesterday are dropped (and not checked).
    pub const MAX_CAMPAIGNS: usize = 50;

    /// A disposition of `campaign` at `local`, the dialer's clock.
    pub fn note(&mut self, campaign: &str, local: NaiveDateTime) {
        match self.campaigns.get_mut(campaign) {
            Some(c) => c.note(local),
            None => {
                let mut c = CampaignDays { day: local.date(), today: 0, yesterday: 0 };
                c.note(local);
                self.campaigns.insert(campaign.to_owned(), c);
            }
        }
    }

    /// Adds what `other` holds (the same as noting its dispositions again: hours are sets).
    pub fn merge(&mut self, other: &DispositionDays) {
        for (campaign, c) in &other.campaigns {
            for (day, bits) in [(Some(c.day), c.today), (c.day.pred_opt(), c.yesterday)] {
                for hour in hours_of(bits) {
                    if let Some(at) = day.and_then(|d| d.and_hms_opt(hour, 0, 0)) {
                        self.note(campaign, at);
                    }
                }
            }
        }
    }

    pub fn contains(&self, campaign: &str) -> bool {
        self.campaigns.contains_key(campaign)
    }

    pub fn len(&self) -> usize {
        self.campaigns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.campaigns.is_empty()
    }

    /// Forgets the campaigns with no disposition on `today` (the dialer's) or the day before.
    pub fn prune(&mut self, today: NaiveDate) {
        self.campaigns.retain(|_, c| c.on(today) != (0, 0));
    }

    /// Keeps at most `max` campaigns: those with the most hours with dispositions `today` and
    /// the day before (a silent campaign ranks by its yesterday, like one that works).
    pub fn cap(&mut self, max: usize, today: NaiveDate) {
        if self.campaigns.len() <= max {
            return;
        }
        let hours = |c: &CampaignDays| {
            let (t, y) = c.on(today);
            t.count_ones() + y.count_ones()
        };
        let mut ranked: Vec<(String, CampaignDays)> = std::mem::take(&mut self.campaigns).into_iter().collect();
        ranked.sort_by(|(a, x), (b, y)| (hours(y), a).cmp(&(hours(x), b)));
        ranked.truncate(max);
        self.campaigns = ranked.into_iter().collect();
    }

    /// The silent campaigns at `now` (the dialer's clock) with their silent hours, by
    /// [`silent_hours`].
    pub fn silent(&self, now: NaiveDateTime) -> BTreeMap<String, Vec<u32>> {
        let today = now.date();
        self.campaigns
            .iter()
            .filter_map(|(id, c)| {
                let (own_today, own_yesterday) = c.on(today);
                let others_today = self
                    .campaigns
                    .iter()
                    .filter(|(other, _)| *other != id)
                    .fold(0, |acc, (_, other)| acc | other.on(today).0);
                let silent = silent_hours(own_today, own_yesterday, others_today, now.hour());
                (silent != 0).then(|| (id.clone(), hours_of(silent)))
            })
            .collect()
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

    fn local(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap_or_default()
    }

    #[test]
    fn the_hours_roll_over_at_the_dialers_midnight() {
        let mut days = DispositionDays::default();
        days.note("A", local("2026-12-06 09:10:00"));
        days.note("A", local("2026-12-06 10:59:59"));
        days.note("A", local("2026-12-06 10:00:00")); // replayed: hours are a set
        days.note("B", local("2026-12-06 09:30:00"));
        // The clock moves past midnight: yesterday's hours are the same, nobody's today yet.
        assert!(days.silent(local("2026-12-06 23:59:59")).is_empty());
        assert!(days.silent(local("2026-12-07 11:30:00")).is_empty(), "nobody worked today");
        days.note("B", local("2026-12-07 09:05:00"));
        days.note("B", local("2026-12-07 10:05:00"));
        assert!(days.silent(local("2026-12-07 09:59:59")).is_empty(), "the 09:00 hour is not over");
        assert_eq!(days.silent(local("2026-12-07 10:00:00")), BTreeMap::from([("A".to_owned(), vec![9])]));
        assert_eq!(days.silent(local("2026-12-07 11:00:00")), BTreeMap::from([("A".to_owned(), vec![9, 10])]));
        // A row of yesterday read late (a replayed window) still counts as yesterday's.
        days.note("B", local("2026-12-06 08:00:00"));
        assert_eq!(days.silent(local("2026-12-07 11:00:00")).len(), 1);
        // The day after: B's today is yesterday, A's 6 December is forgotten.
        assert!(days.silent(local("2026-12-08 12:00:00")).is_empty());
        days.note("C", local("2026-12-08 09:15:00"));
        assert_eq!(days.silent(local("2026-12-08 12:00:00")), BTreeMap::from([("B".to_owned(), vec![9])]));
        days.prune(local("2026-12-08 12:00:00").date());
        assert!(!days.contains("A") && days.contains("B") && days.contains("C"));
        // Two days later with nothing noted: nothing is silent, everything is pruned.
        assert!(days.silent(local("2026-12-10 12:00:00")).is_empty());
        days.prune(local("2026-12-10 12:00:00").date());
        assert!(days.is_empty());
    }

    #[test]
    fn a_disposition_skipping_a_day_leaves_no_yesterday() {
        let mut c = CampaignDays::default();
        c.note(local("2026-12-05 09:00:00"));
        c.note(local("2026-12-07 10:00:00"));
        assert_eq!(c.on(local("2026-12-07 00:00:00").date()), (1 << 10, 0));
        c.note(local("2026-12-05 11:00:00")); // older than yesterday: of no use
        c.note(local("2026-12-06 11:00:00"));
        assert_eq!(c.on(local("2026-12-07 00:00:00").date()), (1 << 10, 1 << 11));
        assert_eq!(c.on(local("2026-12-08 00:00:00").date()), (0, 1 << 10));
    }

    #[test]
    fn the_summary_fits_a_standard_ssm_parameter_and_keeps_the_latest_campaigns() {
        let mut days = DispositionDays::default();
        for i in 0..DispositionDays::MAX_CAMPAIGNS + 10 {
            let day = if i < 10 { "2026-12-06" } else { "2026-12-07" };
            for h in 0..24 {
                days.note(&format!("INGROUP_{i:012}"), local(&format!("{day} {h:02}:00:00")));
                days.note(
                    &format!("INGROUP_{i:012}"),
                    local(&format!("2026-12-0{} {h:02}:00:00", if i < 10 { 5 } else { 6 })),
                );
            }
        }
        days.cap(DispositionDays::MAX_CAMPAIGNS, local("2026-12-07 12:00:00").date());
        assert_eq!(days.len(), DispositionDays::MAX_CAMPAIGNS);
        assert!(!days.contains("INGROUP_000000000009"), "those with the fewest hours go first");
        assert!(days.contains("INGROUP_000000000010"));
        let mut again = DispositionDays::default();
        again.merge(&days);
        again.merge(&days);
        assert_eq!(again, days, "merging is noting again: nothing counts twice");
        let json = serde_json::to_string(&days).unwrap_or_default();
        assert!(json.len() < 4096, "{} bytes", json.len());
        assert_eq!(serde_json::from_str::<DispositionDays>(&json).ok(), Some(days));
    }
}

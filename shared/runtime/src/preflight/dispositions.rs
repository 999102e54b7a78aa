//! Disposition lines (`--test-contact ID`): for each mapped status, a synthetic Dispo Call URL
//! becomes an event and an envelope exactly as ingest builds them, goes through the crm-sync
//! worker's batch handler and the configured CRM adapter, and the CRM is read back (call,
//! stage / status, callback task, do-not-call). After each status the test record is put back
//! as it was; at the end the calls and tasks created are deleted unless `--keep`.

use std::sync::Arc;

use chrono::{Duration, Utc};
use vicibridge_core::Envelope;
use vicibridge_core::config::Config;
use vicibridge_core::disposition::{CallOutcome, DispositionMap};
use vicibridge_core::plan::{CallPlan, SyncPlan, plan};
use vicibridge_core::ports::{ProbeError, RecordSnapshot, SecretStore, SecretWriter, SyncProbe};
use vicibridge_vicidial::{CallUrl, VicidialQuery, to_event};

use super::{Check, Options, Status};
use crate::worker::{CrmSync, Delivery, Outcome};

pub(super) const RECORD: &str = "sync.record";
pub(super) const RECORD_TITLE: &str = "The test record is readable";
const RESTORE: &str = "sync.restore";
const RESTORE_TITLE: &str = "The test record is put back as it was";
const CLEANUP: &str = "sync.cleanup";
const CLEANUP_TITLE: &str = "The calls and tasks preflight created are removed";
const CREATE: &str = "sync.create";
const CREATE_TITLE: &str = "A test record is created (--test-contact new)";
const DELETE: &str = "sync.delete";
const DELETE_TITLE: &str = "The test record preflight created is deleted";

/// `--test-contact new`: preflight creates the test record and deletes it afterwards.
pub const NEW: &str = "new";

/// `lead_id` of the synthetic calls: no VICIdial lead, so nothing is looked up by it.
pub(super) const LEAD_ID: &str = "999999999";
/// `user` of the synthetic calls.
pub(super) const AGENT: &str = "vbpreflight";

/// One status to try, in the campaign whose override it is (`None`: the default layers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Trial {
    pub campaign: Option<String>,
    pub status: String,
}

impl Trial {
    fn id(&self) -> String {
        match &self.campaign {
            Some(c) => format!("sync.status.{c}.{}", self.status),
            None => format!("sync.status.{}", self.status),
        }
    }

    fn title(&self) -> String {
        match &self.campaign {
            Some(c) => format!("{} (campaign {c}) syncs to the test record", self.status),
            None => format!("{} syncs to the test record", self.status),
        }
    }
}

/// Every status the configuration maps (`[dispositions]`, `[campaigns.*.dispositions]`), every
/// built-in status that changes more than the call log (stage, status, callback, do-not-call),
/// and one built-in status for each call outcome none of those has.
pub(super) fn trials(config: &Config) -> Vec<Trial> {
    let map = config.disposition_map();
    let mut out: Vec<Trial> = config.dispositions.keys().map(|s| Trial { campaign: None, status: s.clone() }).collect();
    for (campaign, c) in &config.campaigns {
        out.extend(c.dispositions.keys().map(|s| Trial { campaign: Some(campaign.clone()), status: s.clone() }));
    }
    let effect = |s: &str| {
        map.rule_for(None, s)
            .is_some_and(|r| r.deal_stage.is_some() || r.lead_status.is_some() || r.callback_task || r.do_not_call)
    };
    for s in DispositionMap::built_in_statuses() {
        if !config.dispositions.contains_key(s) && effect(s) {
            out.push(Trial { campaign: None, status: s.to_owned() });
        }
    }
    let mut outcomes: Vec<CallOutcome> =
        out.iter().filter_map(|t| map.rule_for(t.campaign.as_deref(), &t.status)?.outcome).collect();
    for s in DispositionMap::built_in_statuses() {
        if out.iter().any(|t| t.campaign.is_none() && t.status == s) {
            continue;
        }
        if let Some(o) = map.rule_for(None, s).and_then(|r| r.outcome)
            && !outcomes.contains(&o)
        {
            outcomes.push(o);
            out.push(Trial { campaign: None, status: s.to_owned() });
        }
    }
    out
}

/// The Dispo Call URL's query VICIdial would send for this trial (its own variable names).
fn dispo_query(
    config: &Config,
    map: &DispositionMap,
    trial: &Trial,
    record: &str,
    uniqueid: &str,
    epoch: i64,
    talk: u32,
) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("lead_id", LEAD_ID)
        .append_pair("vendor_lead_code", record)
        .append_pair("dispo", &trial.status)
        .append_pair("talk_time", &talk.to_string())
        .append_pair("uniqueid", uniqueid)
        .append_pair("user", AGENT)
        .append_pair("epoch", &epoch.to_string());
    if let Some(c) = &trial.campaign {
        q.append_pair("campaign", c);
    }
    let callback = map.rule_for(trial.campaign.as_deref(), &trial.status).is_some_and(|r| r.callback_task);
    if callback {
        // Tomorrow 10:00 on the dialer's clock, as an agent would pick it.
        let tz = config.vicidial.server_time_zone;
        let day = (Utc::now().with_timezone(&tz) + Duration::days(1)).date_naive();
        q.append_pair("callback_datetime", &format!("{} 10:00:00", day.format("%Y-%m-%d")));
    }
    q.finish()
}

/// The lines when the operator named no test record, or the CRM has nothing to read back.
pub(super) fn skipped(config: &Config, options: &Options) -> Option<Check> {
    use vicibridge_core::config::CrmKind;
    let kind = config.crm.kind;
    match (&options.test_contact, kind) {
        (_, CrmKind::DryRun | CrmKind::Webhook) => options.test_contact.as_ref().map(|_| {
            Check::skip(RECORD, RECORD_TITLE, format!("crm.kind = \"{kind}\": there is no CRM record to read back"))
        }),
        (None, _) => Some(Check::skip(
            "sync.dispositions",
            "Every mapped disposition syncs to a test record",
            "pass --test-contact ID (a CRM record that may be changed and put back) to send a synthetic call per mapped \
             status through the worker and read the CRM back",
        )),
        (Some(_), _) => None,
    }
}

pub(super) async fn checks(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    writer: Option<Arc<dyn SecretWriter>>,
    options: &Options,
) -> Vec<Check> {
    if let Some(skip) = skipped(config, options) {
        return vec![skip];
    }
    let Some(named) = options.test_contact.as_deref() else { return Vec::new() };
    let (crm, probe) = match crate::crm::build_crm_with_probe(config, secrets.clone(), writer.clone()) {
        Ok(Some(pair)) => pair,
        Ok(None) => return Vec::new(),
        Err(e) => return vec![Check::fail(RECORD, RECORD_TITLE, e.to_string())],
    };
    let mut out = Vec::new();
    let record = if named == NEW {
        match probe.create().await {
            Ok(r) => {
                out.push(Check::pass(CREATE, CREATE_TITLE, format!("created; vendor_lead_code {r}")));
                r
            }
            Err(e) => return vec![Check::fail(CREATE, CREATE_TITLE, e.to_string())],
        }
    } else {
        named.to_owned()
    };
    out.extend(sync_lines(config, crm, probe.as_ref(), &record, options.keep).await);
    out.extend(super::screen_pop::check(config, secrets, writer, &record).await);
    if named == NEW {
        out.push(if options.keep {
            Check::new(DELETE, DELETE_TITLE, Status::Warn, format!("--keep: test record {record} left for inspection"))
        } else {
            match probe.delete(&record).await {
                Ok(()) => Check::pass(DELETE, DELETE_TITLE, format!("test record {record} deleted")),
                Err(e) => Check::fail(DELETE, DELETE_TITLE, format!("{e}: delete test record {record} by hand")),
            }
        });
    }
    out
}

/// The record line, one line per status, the restore and clean-up lines.
async fn sync_lines(
    config: &Config,
    crm: Arc<dyn vicibridge_core::ports::Crm>,
    probe: &dyn SyncProbe,
    record: &str,
    keep: bool,
) -> Vec<Check> {
    let before = match probe.snapshot(record).await {
        Ok(s) => s,
        Err(e) => return vec![Check::fail(RECORD, RECORD_TITLE, format!("{record}: {e}"))],
    };
    let mut out = vec![Check::pass(RECORD, RECORD_TITLE, before.summary.clone())];
    let worker = CrmSync::new(config, crm);
    let map = config.disposition_map();
    let run = fastrand::u32(..1_000_000);
    let base = Utc::now().timestamp();
    let mut applied: Vec<CallPlan> = Vec::new();
    let mut restored = Ok(());
    let trials = trials(config);
    for (i, trial) in trials.iter().enumerate() {
        if restored.is_err() {
            out.push(Check::skip(trial.id(), trial.title(), "not tried: the test record could not be put back"));
            continue;
        }
        // Asterisk's shape behind a system name no Asterisk has: unique per run and status.
        let uniqueid = format!("vbpreflight-{base}.{run:06}{i:03}");
        let talk = 30 + u32::try_from(i).unwrap_or(0);
        // Every synthetic call ends now: none is older than a call already on the record (the
        // sync would not let an older disposition move it), none newer than the next run's.
        let query = dispo_query(config, &map, trial, record, &uniqueid, base, talk);
        let (check, plan) = one(config, &worker, &map, probe, &before, trial, &query).await;
        out.push(check);
        if let Some(p) = plan {
            applied.push(p);
        }
        restored = probe.restore(&before).await;
    }
    out.push(match &restored {
        Ok(()) => Check::pass(RESTORE, RESTORE_TITLE, before.summary.clone()),
        Err(e) => Check::fail(RESTORE, RESTORE_TITLE, format!("{e}: put it back by hand to {}", before.summary)),
    });
    out.push(cleanup(probe, &applied, keep).await);
    out
}

/// One trial: the envelope through the worker, then the read-back.
async fn one(
    config: &Config,
    worker: &CrmSync,
    map: &DispositionMap,
    probe: &dyn SyncProbe,
    before: &RecordSnapshot,
    trial: &Trial,
    query: &str,
) -> (Check, Option<CallPlan>) {
    let (id, title) = (trial.id(), trial.title());
    let event = match to_event(CallUrl::Dispo, &VicidialQuery::parse(query)) {
        Ok(e) => e,
        Err(e) => return (Check::fail(id, title, format!("ingest refused the synthetic Dispo Call URL: {e}")), None),
    };
    let envelope = Envelope::new(event, Utc::now());
    let Ok(SyncPlan::Call(call)) = plan(&envelope, map, config.vicidial.server_time_zone) else {
        return (Check::fail(id, title, "the synthetic disposition did not make a call plan"), None);
    };
    let body = envelope.to_json();
    let outcome = worker.process_batch(&[Delivery { message_id: "preflight", body: &body, receive_count: 1 }]).await;
    let refused = match outcome.first() {
        Some(Outcome::Done) => None,
        Some(Outcome::DeadLetter { reason }) => Some(format!("the worker dead-lettered it: {reason}")),
        Some(Outcome::Retry { reason, .. }) => Some(format!("the worker would retry it: {reason}")),
        Some(Outcome::Paused { reason, .. }) => Some(format!("the CRM integration is paused: {reason}")),
        None => Some("the worker returned no outcome".to_owned()),
    };
    // Whatever the worker did, the read-back says what reached the CRM (and what to remove).
    let verified = probe.verify(before, &call).await;
    let check = match (refused, verified) {
        (Some(why), Ok(v)) if !v.problems.is_empty() => {
            Check::fail(id, title, format!("{why}; {}", v.problems.join("; ")))
        }
        (Some(why), _) => Check::fail(id, title, why),
        (None, Ok(v)) if v.problems.is_empty() => Check::pass(id, title, v.found.join(", ")),
        (None, Ok(v)) => Check::fail(id, title, v.problems.join("; ")),
        (None, Err(e)) => Check::fail(id, title, format!("cannot read the CRM back: {e}")),
    };
    (check, Some(call))
}

async fn cleanup(probe: &dyn SyncProbe, plans: &[CallPlan], keep: bool) -> Check {
    let (Some(first), Some(last)) = (plans.first(), plans.last()) else {
        return Check::skip(CLEANUP, CLEANUP_TITLE, "nothing was created");
    };
    let keys =
        if plans.len() == 1 { first.call_key.clone() } else { format!("{} to {}", first.call_key, last.call_key) };
    if keep {
        return Check::new(
            CLEANUP,
            CLEANUP_TITLE,
            Status::Warn,
            format!("--keep: the calls (and callback tasks) of call keys {keys} are left for inspection"),
        );
    }
    match probe.remove(plans).await {
        Ok(n) => Check::pass(CLEANUP, CLEANUP_TITLE, format!("{n} record(s) deleted (call keys {keys})")),
        Err(ProbeError::Crm(e) | ProbeError::Record(e)) => {
            Check::fail(CLEANUP, CLEANUP_TITLE, format!("{e}: delete the records of call keys {keys} by hand"))
        }
    }
}

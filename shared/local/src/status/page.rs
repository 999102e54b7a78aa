//! The HTML of `/status`: maud escapes every value; one inline stylesheet allowed by its hash
//! in the CSP, no script, nothing loaded from anywhere; reloads itself every 30 s.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::activity::Series;
use super::chart::{Line, chart};
use super::{ReconcileOutcome, ReconcileState, StatusReport};
use crate::queue_status::QueueStatus;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;padding:12px;max-width:1000px;\
color:#1d2330;background:#fff}h1{font-size:20px;margin:0 0 2px}h2{font-size:13px;text-transform:uppercase;\
color:#5b6475;margin:18px 0 6px}.meta{color:#5b6475;font-size:12px}.charts{display:flex;flex-wrap:wrap;gap:12px}\
figure.chart{margin:0;flex:1 1 460px;border:1px solid #e8ecf3;border-radius:4px;padding:6px}figcaption{font-size:13px}\
svg{width:100%;height:auto;display:block}.axis{stroke:#9aa3b2}.grid{stroke:#e8ecf3}.tick{font-size:9px;fill:#5b6475}\
.s0{stroke:#0b57d0;fill:#0b57d0;color:#0b57d0}.s1{stroke:#b3261e;fill:#b3261e;color:#b3261e}\
.s2{stroke:#b06000;fill:#b06000;color:#b06000}.line{fill:none;stroke-width:1.5}.key{white-space:nowrap}\
table{border-collapse:collapse;margin:4px 0}th,td{text-align:left;padding:3px 12px 3px 0;border-bottom:1px solid #e8ecf3;\
vertical-align:top}td.n{text-align:right;font-variant-numeric:tabular-nums}.warn{color:#b3261e;font-weight:bold}\
.ok{color:#1e7e34}pre{background:#f4f6fa;padding:8px;border-radius:4px;overflow-x:auto}";

static STYLE_HASH: LazyLock<String> = LazyLock::new(|| vicibridge_runtime::html::csp_hash(STYLE));

/// Nothing but the page's own stylesheet; never framed.
pub fn content_security_policy() -> String {
    format!(
        "default-src 'none'; style-src {}; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        *STYLE_HASH
    )
}

pub fn render(r: &StatusReport) -> String {
    let a = &r.activity;
    let per_minute = |s: Series| a.series(s).map(|x| x.per_minute.as_slice()).unwrap_or_default();
    let line = |s: Series| Line { label: s.label(), per_minute: per_minute(s) };
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                meta http-equiv="refresh" content="30";
                title { "vicibridge status" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "vicibridge status" }
                p.meta {
                    "CRM: " (r.crm) " · generated " (time(r.generated_at)) " · counting since serve started "
                    (time(a.counting_since)) " · reloads every 30 s"
                }

                h2 { "Watchdogs" }
                (watchdogs(r))

                h2 { "Last hour, per minute" }
                div.charts {
                    (chart("VICIdial events in", a.first_minute, &[line(Series::IngestAccepted), line(Series::IngestRejected)]))
                    (chart("CRM sync", a.first_minute, &[line(Series::SyncApplied), line(Series::SyncFailures), line(Series::SyncRetries)]))
                }

                h2 { "Queues" }
                table {
                    tr { th { "queue" } th { "waiting" } th { "in flight or backing off" } th { "oldest message" } th { "dead letters" } }
                    @for q in &r.queues.queues { (queue_row(q)) }
                }
                @for q in r.queues.queues.iter().filter(|q| !q.dead_letters_by_reason.is_empty()) {
                    h2 { "Dead letters by reason: " (q.name) }
                    table {
                        tr { th { "count" } th { "reason" } }
                        @for (reason, n) in &q.dead_letters_by_reason { tr { td.n { (n) } td { (reason) } } }
                    }
                    p.meta { "Replay them once the cause is fixed: " code { "vicibridge dlq replay --data-dir DIR" } }
                }

                h2 { "Last successful sync" }
                @if a.last_applied.is_empty() {
                    p { "No event applied since serve started." }
                } @else {
                    table {
                        @for (crm, at) in &a.last_applied { tr { td { (crm) } td { (time(*at)) " (" (ago(r.generated_at, *at)) " ago)" } } }
                    }
                }

                h2 { "Last reconcile" }
                (reconcile(r))

                h2 { "Dispositions by campaign" }
                (disposition_watch(r))

                h2 { "Unmapped dispositions" }
                @if r.queues.unmapped_statuses.is_empty() {
                    p.ok { "Every status seen is mapped." }
                } @else {
                    p { "Statuses no mapping knows: each was logged as a call with no other change. Map them in the config:" }
                    table {
                        tr { th { "status" } th { "calls (last 30 days)" } }
                        @for (status, n) in &r.queues.unmapped_statuses { tr { td { (status) } td.n { (n) } } }
                    }
                    pre { code { (r.dispositions_snippet) } }
                }
            }
        }
    };
    page.into_string()
}

fn queue_row(q: &QueueStatus) -> Markup {
    html! {
        tr {
            td { (q.name) }
            td.n { (q.visible) }
            td.n { (q.in_flight) }
            td { @match q.oldest_age { Some(age) => (duration(age.as_secs() as i64)), None => "empty" } }
            td.n.warn[q.dead_letters > 0] { (q.dead_letters) }
        }
    }
}

fn watchdogs(r: &StatusReport) -> Markup {
    let w = &r.watchdogs;
    let t = &w.bridge_id_threshold;
    html! {
        @if w.bridge_id.is_empty() {
            p.ok {
                "Bridge id: no campaign and list above " (t.not_found_percent) " % of vendor_lead_code lookups finding no CRM record (last "
                (t.window_minutes) " minutes, at least " (t.min_events) " lookups)."
            }
        } @else {
            p.warn { "Bridge id: vendor_lead_code finds no CRM record for most calls of these lists. Was a list reloaded with its columns remapped?" }
            table {
                tr { th { "campaign" } th { "list" } th { "lookups" } th { "not found" } th { "since" } }
                @for a in &w.bridge_id {
                    tr {
                        td { (a.at.campaign) } td { (a.at.list) } td.n { (a.counts.lookups) }
                        td.n.warn { (a.counts.not_found) " (" (a.counts.percent_not_found()) " %)" } td { (time(a.since)) }
                    }
                }
            }
        }
        @match (w.disk.used_percent, &w.disk.error) {
            (Some(p), _) if w.disk.full => p.warn {
                "Disk: the data directory's filesystem is " (format!("{p:.0}")) " % full (above " (w.disk.threshold_percent) " %). Free space before the queues cannot write."
            },
            (Some(p), _) => p.ok { "Disk: the data directory's filesystem is " (format!("{p:.0}")) " % full (warns above " (w.disk.threshold_percent) " %)." },
            (None, Some(e)) => p.warn { "Disk: " (e) },
            (None, None) => p { "Disk: not read." },
        }
    }
}

fn reconcile(r: &StatusReport) -> Markup {
    html! {
        @match &r.reconcile {
            None => p { "Not configured: add " code { "[reconcile]" } " to the config to recover dispositions VICIdial could not deliver." },
            Some(ReconcileState::NotRunYet) => p { "Never run since serve started (the first run starts with serve)." },
            Some(ReconcileState::Last(run)) => {
                @match &run.outcome {
                    ReconcileOutcome::Done(report) => p {
                        "Finished " (time(run.finished_at)) ": " (report.rows_read) " URL log rows read, "
                        (report.already_received) " already received, " (report.replayed) " replayed, "
                        (report.rejected.len()) " rejected."
                    },
                    ReconcileOutcome::Failed { error } => p.warn { "Failed " (time(run.finished_at)) ": " (error) },
                }
            }
        }
    }
}

fn disposition_watch(r: &StatusReport) -> Markup {
    let Some(w) = &r.disposition_watch else {
        return html! { p { "Watchdog off (" code { "[watchdogs] calls_without_disposition_after_minutes = 0" } ")." } };
    };
    let alerting = w.campaigns.iter().any(|c| c.calls_without_disposition > 0 || c.is_silent());
    html! {
        @if w.campaigns.is_empty() {
            p { "No call started or dispositioned in the last two days." }
        } @else {
            table {
                tr {
                    th { "campaign" }
                    th { "calls without a disposition after " (w.after_minutes) " min" }
                    th { "oldest started" }
                    th { "last disposition" }
                    th { "silent today" }
                }
                @for c in &w.campaigns {
                    tr {
                        td { (c.campaign) }
                        td.n.warn[c.calls_without_disposition > 0] { (c.calls_without_disposition) }
                        td { @if let Some(t) = c.oldest_call_started_at { (time(t)) } }
                        td { @match c.last_disposition_at { Some(t) => (time(t)), None => "none in two days" } }
                        td.warn[c.is_silent()] {
                            @if c.is_silent() {
                                "none today; others sent some at " (hours(&c.silent_hours)) " (dialer time), this one did yesterday"
                            }
                        }
                    }
                }
            }
            @if alerting {
                p.warn { "A campaign whose calls get no disposition has most likely lost its Dispo Call URL (a cloned campaign): check it in VICIdial, Admin → Campaigns → the campaign → Dispo Call URL." }
            }
        }
    }
}

/// `9:00, 10:00`.
fn hours(hours: &[u32]) -> String {
    hours.iter().map(|h| format!("{h}:00")).collect::<Vec<_>>().join(", ")
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn ago(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    duration((now - at).num_seconds().max(0))
}

/// `42 s`, `3 min 20 s`, `2 h 5 min`, `3 d 4 h`.
pub fn duration(secs: i64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min {s} s"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_an_operator_says_them() {
        assert_eq!(duration(42), "42 s");
        assert_eq!(duration(200), "3 min 20 s");
        assert_eq!(duration(7500), "2 h 5 min");
        assert_eq!(duration(273_600), "3 d 4 h");
    }
}

//! `vicibridge reconcile`: read VICIdial's URL log and replay what never reached vicibridge,
//! onto serve's queue (`--data-dir`) or the stack's crm-events queue (`--queue-url`).

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use vicibridge_core::config::{Config, Tz};
use vicibridge_core::ports::{Queue, SecretStore};
use vicibridge_local::queue::SqliteQueue;
use vicibridge_local::serve::CRM_EVENTS_DB;
use vicibridge_runtime::Ingest;
use vicibridge_runtime::reconcile::{Progress, ReconcileReport, Reconciler};
use vicibridge_vicidial::url_log::{UrlLogClient, UrlLogOptions};

use crate::queue_target::QueueTarget;

#[derive(Args, Debug)]
pub struct ReconcileArgs {
    #[arg(long, env = "VICIBRIDGE_CONFIG")]
    pub config: PathBuf,
    /// The secret JSON file (the reports user: vicidial.reports_user / reports_pass).
    #[arg(long, env = "VICIBRIDGE_SECRETS")]
    pub secrets: Option<PathBuf>,
    /// Start of the window: `6h`, `90m`, `2d` ago, an RFC 3339 time, or `YYYY-MM-DD[ HH:MM[:SS]]`
    /// in the dialer's time zone ([vicidial] server_time_zone). Default: [reconcile]
    /// lookback_hours (24) ago.
    #[arg(long)]
    pub since: Option<String>,
    /// End of the window, same forms as --since. Default: now.
    #[arg(long)]
    pub until: Option<String>,
    /// Read and decide, queue nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub target: QueueTarget,
}

pub async fn run(args: ReconcileArgs, config: Config, secrets: Arc<dyn SecretStore>) -> Result<(), String> {
    let tz = config.vicidial.server_time_zone;
    let now = Utc::now();
    let lookback = config.reconcile.as_ref().map_or(24, |r| r.lookback_hours);
    let since = match &args.since {
        Some(s) => parse_time(s, tz, now).map_err(|e| format!("--since: {e}"))?,
        None => now - chrono::Duration::hours(i64::from(lookback)),
    };
    let until = match &args.until {
        Some(s) => parse_time(s, tz, now).map_err(|e| format!("--until: {e}"))?,
        None => now,
    };
    if args.target.queue != crate::queue_target::QueueName::CrmEvents {
        return Err("reconcile replays onto the crm-events queue; drop --queue".into());
    }
    let queue: Arc<dyn Queue> = match args.target.resolve().await? {
        crate::queue_target::Resolved::DataDir(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let options = vicibridge_local::serve::queue_options(&config);
            Arc::new(SqliteQueue::open(&dir.join(CRM_EVENTS_DB), options).map_err(|e| e.to_string())?)
        }
        crate::queue_target::Resolved::Sqs { client, queues } => {
            Arc::new(vicibridge_aws::sqs::SqsQueue::new(client, queues.queue))
        }
    };
    let ingest = Arc::new(Ingest::new(queue, secrets.clone()));
    let client =
        UrlLogClient::new(&config.vicidial.base_url, secrets, UrlLogOptions::default()).map_err(|e| e.to_string())?;
    let ledger = match args.target.data_dir.as_deref() {
        Some(dir) => Some(Arc::new(vicibridge_local::reconcile::SqliteLedger::open(dir).map_err(|e| e.to_string())?)
            as Arc<dyn vicibridge_runtime::reconcile::ReplayLedger>),
        None => None,
    };
    let reconciler = Reconciler::new(client, ingest, tz, ledger);
    let bar = Bar::new();
    let result = reconciler.run(since, until, args.dry_run, &bar).await;
    bar.0.finish_and_clear();
    let report = result.map_err(|e| e.to_string())?;
    print_report(&report, since, until, args.dry_run);
    if report.queue_failures > 0 {
        return Err(format!("{} missed URL(s) could not be queued; run reconcile again", report.queue_failures));
    }
    Ok(())
}

/// The progress bar: hidden when stderr is not a terminal, and until there are rows.
struct Bar(ProgressBar);

impl Bar {
    fn new() -> Bar {
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} rows {elapsed}") {
            bar.set_style(style);
        }
        Bar(bar)
    }
}

impl Progress for Bar {
    fn rows_found(&self, rows: usize) {
        self.0.inc_length(rows as u64);
    }
    fn row_done(&self) {
        self.0.inc(1);
    }
}

#[allow(clippy::print_stdout)]
fn print_report(r: &ReconcileReport, since: DateTime<Utc>, until: DateTime<Utc>, dry_run: bool) {
    println!("reconcile {} .. {}{}", since.to_rfc3339(), until.to_rfc3339(), if dry_run { " (dry run)" } else { "" });
    println!("rows read:          {}", r.rows_read);
    println!("already received:   {}", r.already_received);
    println!("already replayed:   {}", r.already_replayed);
    println!("{}{}", if dry_run { "would replay:       " } else { "replayed:           " }, r.replayed);
    println!("rejected:           {}", r.rejected.len());
    for row in &r.rejected {
        println!("  {} {} {}: {}", row.uniqueid, row.url_date, row.url_type, row.reason);
    }
    println!("queue failures:     {}", r.queue_failures);
    println!("not vicibridge's:   {}", r.not_ours);
    println!("not fetched yet:    {}", r.pending);
    println!("unreadable records: {}", r.garbled);
}

/// `6h` / `90m` / `2d` / `30s` ago, RFC 3339, or a dialer-local `YYYY-MM-DD[ HH:MM[:SS]]`.
pub fn parse_time(text: &str, tz: Tz, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if let Some(unit) = t.chars().last().filter(|c| "smhd".contains(*c))
        && let Ok(n) = t[..t.len() - 1].parse::<i64>()
    {
        let secs = n.saturating_mul(match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => 86_400,
        });
        return Ok(now - chrono::Duration::seconds(secs));
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(t) {
        return Ok(at.with_timezone(&Utc));
    }
    let local = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
        .or_else(|| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok().map(|d| d.and_time(chrono::NaiveTime::MIN)));
    match local.map(|l| tz.from_local_datetime(&l).earliest()) {
        Some(Some(at)) => Ok(at.with_timezone(&Utc)),
        Some(None) => Err(format!("{t:?} does not exist in {tz} (a DST gap)")),
        None => Err(format!("{t:?} is not `6h`, `90m`, `2d`, RFC 3339 or YYYY-MM-DD[ HH:MM[:SS]]")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_relative_absolute_and_dialer_local() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z").map(|t| t.with_timezone(&Utc));
        let now = now.unwrap_or_default();
        let tz: Tz = "America/New_York".parse().unwrap_or(Tz::UTC);
        assert_eq!(parse_time("6h", tz, now).map(|t| t.to_rfc3339()), Ok("2026-12-06T06:00:00+00:00".into()));
        assert_eq!(parse_time("90m", tz, now).map(|t| t.to_rfc3339()), Ok("2026-12-06T10:30:00+00:00".into()));
        assert_eq!(
            parse_time("2026-12-06T01:00:00Z", tz, now).map(|t| t.to_rfc3339()),
            Ok("2026-12-06T01:00:00+00:00".into())
        );
        assert_eq!(parse_time("2026-12-06", tz, now).map(|t| t.to_rfc3339()), Ok("2026-12-06T05:00:00+00:00".into()));
        assert!(parse_time("yesterday", tz, now).is_err());
    }
}

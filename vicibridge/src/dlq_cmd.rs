//! `vicibridge dlq list|show|replay|purge`: the dead letters of serve's data dir or of the
//! stack's dead-letter queues. A dead letter keeps its idempotency key; replaying it twice
//! never queues it twice (serve marks it replayed; SQS moves it off the DLQ).

#![allow(clippy::print_stdout)]

use std::io::{BufRead, IsTerminal, Write};

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use vicibridge_aws::sqs_admin::{self, DeadMessage};
use vicibridge_core::config::Tz;
use vicibridge_local::queue::{DeadLetterFilter, QueueOptions, SqliteQueue};

use crate::queue_target::{QueueTarget, Resolved, SqsPair};

#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// The dead letters, oldest first: when, key, reason.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        target: QueueTarget,
    },
    /// One key: every time it was dead-lettered (reason history, replays) and its message.
    Show {
        key: String,
        #[command(flatten)]
        target: QueueTarget,
    },
    /// Put dead letters back on their queue.
    #[command(group(ArgGroup::new("which").required(true).args(["all", "key", "reason"])))]
    Replay {
        /// Every dead letter.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        target: QueueTarget,
    },
    /// Delete dead letters for good (asks first unless --yes).
    Purge {
        #[command(flatten)]
        filter: FilterArgs,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        target: QueueTarget,
    },
}

#[derive(Args, Debug, Clone)]
pub struct FilterArgs {
    /// Only this idempotency key.
    #[arg(long)]
    pub key: Option<String>,
    /// Only reasons containing this text (case-insensitive).
    #[arg(long)]
    pub reason: Option<String>,
    /// Only dead-lettered since: `6h`, `2d`, RFC 3339 or YYYY-MM-DD[ HH:MM[:SS]] (UTC).
    #[arg(long)]
    pub since: Option<String>,
}

/// A filter both backends understand.
struct Filter {
    key: Option<String>,
    reason: Option<String>,
    since: Option<DateTime<Utc>>,
}

impl Filter {
    fn parse(args: &FilterArgs) -> Result<Filter, String> {
        let since = args
            .since
            .as_deref()
            .map(|s| crate::reconcile_cmd::parse_time(s, Tz::UTC, Utc::now()).map_err(|e| format!("--since: {e}")))
            .transpose()?;
        Ok(Filter { key: args.key.clone(), reason: args.reason.clone(), since })
    }

    fn local(&self) -> DeadLetterFilter {
        DeadLetterFilter {
            key: self.key.clone(),
            reason_contains: self.reason.clone(),
            since: self.since,
            include_replayed: false,
        }
    }

    fn is_empty(&self) -> bool {
        self.key.is_none() && self.reason.is_none() && self.since.is_none()
    }

    fn matches(&self, m: &DeadMessage) -> bool {
        self.key.as_ref().is_none_or(|k| *k == m.key)
            && self.reason.as_ref().is_none_or(|r| m.reason.to_lowercase().contains(&r.to_lowercase()))
            && self.since.is_none_or(|s| m.sent_at.is_some_and(|t| t >= s))
    }
}

fn bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    bar
}

fn open_local(dir: &std::path::Path, target: &QueueTarget) -> Result<SqliteQueue, String> {
    let path = dir.join(target.queue.db_file());
    if !path.exists() {
        return Err(format!(
            "no {} queue in {} (serve has not run with this --data-dir)",
            target.queue.as_str(),
            dir.display()
        ));
    }
    SqliteQueue::open(&path, QueueOptions::default()).map_err(|e| e.to_string())
}

fn dlq_of(queues: &SqsPair) -> Result<&str, String> {
    queues.dlq.as_deref().ok_or_else(|| "pass --dlq-url (or --stack NAME) for the dead-letter queue".to_owned())
}

pub async fn run(command: DlqCommand) -> Result<(), String> {
    match command {
        DlqCommand::List { filter, target } => list(&Filter::parse(&filter)?, &target).await,
        DlqCommand::Show { key, target } => show(&key, &target).await,
        DlqCommand::Replay { all, filter, target } => {
            let filter = Filter::parse(&filter)?;
            if all && !filter.is_empty() {
                return Err("--all replays every dead letter: drop --key/--reason/--since, or drop --all".into());
            }
            replay(&filter, &target).await
        }
        DlqCommand::Purge { filter, yes, target } => purge(&Filter::parse(&filter)?, yes, &target).await,
    }
}

async fn list(filter: &Filter, target: &QueueTarget) -> Result<(), String> {
    match target.resolve().await? {
        Resolved::DataDir(dir) => {
            let queue = open_local(&dir, target)?;
            let dead = queue.dead_letters_where(filter.local()).await.map_err(|e| e.to_string())?;
            for d in &dead {
                println!("{}  {}  deliveries={}  {}", d.failed_at.to_rfc3339(), d.key, d.receive_count, d.reason);
            }
            println!("{} dead letter(s)", dead.len());
        }
        Resolved::Sqs { client, queues } => {
            let dead = sqs_admin::peek(&client, dlq_of(&queues)?, usize::MAX).await.map_err(|e| e.to_string())?;
            let dead: Vec<_> = dead.into_iter().filter(|m| filter.matches(m)).collect();
            for d in &dead {
                let at = d.sent_at.map_or_else(|| "?".to_owned(), |t| t.to_rfc3339());
                println!("{at}  {}  {}", d.key, d.reason);
            }
            println!("{} dead letter(s)", dead.len());
        }
    }
    Ok(())
}

async fn show(key: &str, target: &QueueTarget) -> Result<(), String> {
    let (history, body) = match target.resolve().await? {
        Resolved::DataDir(dir) => {
            let queue = open_local(&dir, target)?;
            let rows = queue
                .dead_letters_where(DeadLetterFilter {
                    key: Some(key.to_owned()),
                    include_replayed: true,
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            let history: Vec<String> = rows
                .iter()
                .map(|d| {
                    let replayed = d
                        .replayed_at
                        .map_or_else(|| "not replayed".to_owned(), |t| format!("replayed {}", t.to_rfc3339()));
                    format!("{}  deliveries={}  {replayed}  {}", d.failed_at.to_rfc3339(), d.receive_count, d.reason)
                })
                .collect();
            (history, rows.last().map(|d| d.body.clone()))
        }
        Resolved::Sqs { client, queues } => {
            let dead = sqs_admin::peek(&client, dlq_of(&queues)?, usize::MAX).await.map_err(|e| e.to_string())?;
            let found: Vec<_> = dead.into_iter().filter(|m| m.key == key).collect();
            let history = found
                .iter()
                .flat_map(|m| {
                    let at = m.sent_at.map_or_else(|| "?".to_owned(), |t| t.to_rfc3339());
                    m.history
                        .iter()
                        .map(|r| format!("earlier  replayed  {r}"))
                        .chain([format!("{at}  not replayed  {}", m.reason)])
                        .collect::<Vec<_>>()
                })
                .collect();
            (history, found.last().map(|m| m.body.clone()))
        }
    };
    let Some(body) = body else {
        return Err(format!("no dead letter with key {key}"));
    };
    println!("key: {key}");
    println!("history:");
    for line in history {
        println!("  {line}");
    }
    let pretty = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(body);
    println!("message:\n{pretty}");
    Ok(())
}

async fn replay(filter: &Filter, target: &QueueTarget) -> Result<(), String> {
    let name = target.queue.as_str();
    match target.resolve().await? {
        Resolved::DataDir(dir) => {
            let queue = open_local(&dir, target)?;
            let total = queue.dead_letters_where(filter.local()).await.map_err(|e| e.to_string())?.len();
            let bar = bar(total as u64);
            let mut replayed = 0;
            loop {
                let n = queue.replay_dead_letters(filter.local()).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                replayed += n;
                bar.inc(n as u64);
            }
            bar.finish_and_clear();
            println!("replayed {replayed} dead letter(s) onto {name}");
        }
        Resolved::Sqs { client, queues } => {
            let dlq = dlq_of(&queues)?;
            if filter.is_empty() {
                match sqs_admin::start_move(&client, dlq, &queues.queue).await {
                    Ok(_) => {
                        let bar = bar(0);
                        let moved = sqs_admin::wait_for_move(&client, dlq, |p| {
                            if let Some(n) = p.to_move {
                                bar.set_length(n);
                            }
                            bar.set_position(p.moved);
                        })
                        .await
                        .map_err(|e| e.to_string())?;
                        bar.finish_and_clear();
                        println!("replayed {moved} dead letter(s) onto {} (SQS message move task)", queues.queue);
                        return Ok(());
                    }
                    Err(e) => eprintln!("warning: {e}; moving the messages one by one instead"),
                }
            }
            let bar = bar(0);
            let moved = sqs_admin::resend(&client, dlq, &queues.queue, |m| filter.matches(m), || bar.inc(1))
                .await
                .map_err(|e| e.to_string())?;
            bar.finish_and_clear();
            println!("replayed {moved} dead letter(s) onto {}", queues.queue);
        }
    }
    Ok(())
}

fn confirm(question: &str) -> Result<bool, String> {
    if !std::io::stdin().is_terminal() {
        return Err(format!("{question}: pass --yes to confirm (stdin is not a terminal)"));
    }
    print!("{question} Type yes to confirm: ");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(|e| e.to_string())?;
    Ok(answer.trim() == "yes")
}

async fn purge(filter: &Filter, yes: bool, target: &QueueTarget) -> Result<(), String> {
    match target.resolve().await? {
        Resolved::DataDir(dir) => {
            let queue = open_local(&dir, target)?;
            let selected = DeadLetterFilter { include_replayed: filter.is_empty(), ..filter.local() };
            let n = queue.dead_letters_where(selected.clone()).await.map_err(|e| e.to_string())?.len();
            if !yes && !confirm(&format!("Delete {n} dead letter(s) of {} for good?", target.queue.as_str()))? {
                return Err("not confirmed; nothing deleted".into());
            }
            let deleted = queue.purge_dead_letters(selected).await.map_err(|e| e.to_string())?;
            println!("deleted {deleted} dead letter(s)");
        }
        Resolved::Sqs { client, queues } => {
            let dlq = dlq_of(&queues)?;
            if !yes && !confirm(&format!("Delete the dead letters of {dlq} for good?"))? {
                return Err("not confirmed; nothing deleted".into());
            }
            if filter.is_empty() {
                sqs_admin::purge(&client, dlq).await.map_err(|e| e.to_string())?;
                println!("purged {dlq}");
            } else {
                let deleted =
                    sqs_admin::delete_where(&client, dlq, |m| filter.matches(m)).await.map_err(|e| e.to_string())?;
                println!("deleted {deleted} dead letter(s)");
            }
        }
    }
    Ok(())
}

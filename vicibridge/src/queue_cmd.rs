//! `vicibridge queue status`: depth, in flight, oldest message age and dead letters by reason,
//! for serve's data dir or the stack's SQS queues.

#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;

use clap::Subcommand;
use vicibridge_aws::sqs_admin;
use vicibridge_local::queue_status::data_dir_status;

use crate::queue_target::{QueueTarget, Resolved};

/// Most DLQ messages peeked at on SQS to count reasons.
pub const PEEK_LIMIT: usize = 1000;

#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// Depth, in flight, oldest message age, dead letters by reason.
    Status {
        #[command(flatten)]
        target: QueueTarget,
    },
}

pub async fn run(command: QueueCommand) -> Result<(), String> {
    let QueueCommand::Status { target } = command;
    match target.resolve().await? {
        Resolved::DataDir(dir) => {
            let status = data_dir_status(&dir).await.map_err(|e| e.to_string())?;
            for name in ["crm-events", "lead-injections"] {
                if !status.queues.iter().any(|q| q.name == name) {
                    println!("{name}: no queue in {} (serve has not run with this --data-dir)", dir.display());
                }
            }
            for q in &status.queues {
                let age = q.oldest_age.map_or_else(|| "none".to_owned(), |a| format!("{} s", a.as_secs()));
                println!(
                    "{}: {} visible, {} in flight, oldest message {age}, {} dead letter(s)",
                    q.name, q.visible, q.in_flight, q.dead_letters
                );
                print_counts("dead letters by reason", q.dead_letters_by_reason.iter().map(|(r, n)| (r.as_str(), *n)));
            }
            print_counts(
                "unmapped dispositions (last 30 days, calls)",
                status.unmapped_statuses.iter().map(|(s, n)| (s.as_str(), *n)),
            );
        }
        Resolved::Sqs { client, queues } => {
            let counts = sqs_admin::counts(&client, &queues.queue).await.map_err(|e| e.to_string())?;
            println!(
                "{}: {} visible, {} in flight, {} delayed (oldest message age: CloudWatch ApproximateAgeOfOldestMessage)",
                queues.queue, counts.visible, counts.in_flight, counts.delayed
            );
            if let Some(dlq) = &queues.dlq {
                let dlq_counts = sqs_admin::counts(&client, dlq).await.map_err(|e| e.to_string())?;
                let dead = sqs_admin::peek(&client, dlq, PEEK_LIMIT).await.map_err(|e| e.to_string())?;
                println!("{dlq}: {} dead letter(s)", dlq_counts.visible + dlq_counts.in_flight);
                print_reasons(dead.iter().map(|d| d.reason.as_str()));
            }
        }
    }
    Ok(())
}

fn print_reasons<'a>(reasons: impl Iterator<Item = &'a str>) {
    let mut by_reason: BTreeMap<&str, u64> = BTreeMap::new();
    for r in reasons {
        *by_reason.entry(r).or_default() += 1;
    }
    let mut sorted: Vec<_> = by_reason.into_iter().collect();
    sorted.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    print_counts("dead letters by reason", sorted.into_iter());
}

fn print_counts<'a>(title: &str, counts: impl Iterator<Item = (&'a str, u64)>) {
    let mut counts = counts.peekable();
    if counts.peek().is_none() {
        return;
    }
    println!("  {title}:");
    for (what, n) in counts {
        println!("  {n:>6}  {what}");
    }
}

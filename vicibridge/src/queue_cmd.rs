//! `vicibridge queue status`: depth, in flight, oldest message age and dead letters by reason,
//! for serve's data dir or the stack's SQS queues.

#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;

use chrono::Utc;
use clap::Subcommand;
use vicibridge_aws::sqs_admin;
use vicibridge_local::queue::{QueueOptions, SqliteQueue};

use crate::queue_target::{QueueName, QueueTarget, Resolved};

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
            for name in [QueueName::CrmEvents, QueueName::LeadInjections] {
                let path = dir.join(name.db_file());
                if !path.exists() {
                    println!(
                        "{}: no queue in {} (serve has not run with this --data-dir)",
                        name.as_str(),
                        dir.display()
                    );
                    continue;
                }
                let queue = SqliteQueue::open(&path, QueueOptions::default()).map_err(|e| e.to_string())?;
                let stats = queue.stats().await.map_err(|e| e.to_string())?;
                let oldest = queue.oldest_sent_at().await.map_err(|e| e.to_string())?;
                let dead = queue.dead_letters().await.map_err(|e| e.to_string())?;
                let age = oldest
                    .map_or_else(|| "none".to_owned(), |t| format!("{} s", (Utc::now() - t).num_seconds().max(0)));
                println!(
                    "{}: {} visible, {} in flight, oldest message {age}, {} dead letter(s)",
                    name.as_str(),
                    stats.visible,
                    stats.in_flight,
                    stats.dead
                );
                print_reasons(dead.iter().map(|d| d.reason.as_str()));
            }
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
    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reasons {
        *by_reason.entry(r).or_default() += 1;
    }
    if by_reason.is_empty() {
        return;
    }
    println!("  dead letters by reason:");
    let mut sorted: Vec<_> = by_reason.into_iter().collect();
    sorted.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    for (reason, n) in sorted {
        println!("  {n:>6}  {reason}");
    }
}

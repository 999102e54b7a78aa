//! Load measurement of the SQLite queue's group commit (a benchmark, not a test):
//!
//! ```text
//! cargo run --release -p vicibridge-local --example queue_load
//! ```
//!
//! 32 tasks send 600-byte messages as fast as each send returns (committed), once with
//! `synchronous=NORMAL` and once with `FULL`, and print sends/s and latency percentiles.
//! `VICIBRIDGE_QUEUE_LOAD_DIR` picks the directory (default: a temporary one), since the
//! numbers with FULL are the disk's fsync latency.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // a measurement tool: a panic is its error report

use std::sync::Arc;
use std::time::{Duration, Instant};

use vicibridge_core::ports::{OutgoingMessage, Queue};
use vicibridge_local::queue::{QueueOptions, SqliteQueue, Synchronous};

const SENDERS: usize = 32;

/// Closed loop: every task sends its next message as soon as the last one returned, which
/// shows the most the queue can take. Open loop (`rate` > 0): the tasks together send `rate`
/// messages per second on a schedule and latency is counted from the scheduled time, so a
/// stall shows in the percentiles instead of slowing the senders down.
async fn run(synchronous: Synchronous, rate: u32, per_sender: usize) {
    let dir = match std::env::var_os("VICIBRIDGE_QUEUE_LOAD_DIR") {
        Some(base) => tempfile::tempdir_in(base).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let options = QueueOptions { synchronous, ..QueueOptions::default() };
    let queue = Arc::new(SqliteQueue::open(&dir.path().join("load.db"), options).unwrap());
    let body = format!(r#"{{"v":1,"kind":"dispo","payload":"{}"}}"#, "x".repeat(560));

    let started = Instant::now();
    let tasks: Vec<_> = (0..SENDERS)
        .map(|t| {
            let queue = Arc::clone(&queue);
            let body = body.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_sender);
                let mut schedule = (rate > 0).then(|| {
                    let period = Duration::from_secs_f64(SENDERS as f64 / f64::from(rate));
                    // Spread the tasks over one period instead of firing together.
                    let start = tokio::time::Instant::now() + period.mul_f64(t as f64 / SENDERS as f64);
                    tokio::time::interval_at(start, period)
                });
                for i in 0..per_sender {
                    let message = OutgoingMessage { key: format!("dispo:{t}:{i}"), body: body.clone() };
                    let sent = match schedule.as_mut() {
                        Some(schedule) => schedule.tick().await.into_std(),
                        None => Instant::now(),
                    };
                    queue.send(&message).await.unwrap();
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = Vec::with_capacity(SENDERS * per_sender);
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let mode = if rate > 0 { format!("open loop at {rate}/s") } else { "closed loop".to_owned() };
    eprintln!(
        "synchronous={synchronous:?}, {mode}: {} sends from {SENDERS} tasks in {:.2?} = {:.0} sends/s; \
         latency p50 {:.2?} p99 {:.2?} p99.9 {:.2?} max {:.2?}",
        latencies.len(),
        elapsed,
        latencies.len() as f64 / elapsed.as_secs_f64(),
        at(0.50),
        at(0.99),
        at(0.999),
        at(1.0),
    );
    let visible = queue.stats().await.unwrap().visible;
    assert_eq!(visible, (SENDERS * per_sender) as u64, "every acknowledged message is in the queue");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    run(Synchronous::Normal, 0, 8_000).await;
    run(Synchronous::Normal, 20_000, 12_000).await;
    run(Synchronous::Full, 0, 1_000).await;
    run(Synchronous::Full, 4_000, 1_000).await;
}

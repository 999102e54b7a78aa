//! The SQLite queue through its public API, on a real database file.

// clippy.toml allows unwrap in #[test] functions only; the helpers here are test code too.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use vicibridge_core::ports::{OutgoingMessage, Queue};
use vicibridge_local::queue::{
    LocalQueueError, MAX_ROWS_PER_TRANSACTION, QueueOptions, QueueStats, Settle, SqliteQueue, Synchronous,
};

/// Short enough for re-delivery tests to wait for; tests sleep past it, never time it.
const SHORT: Duration = Duration::from_millis(200);

fn message(key: &str) -> OutgoingMessage {
    OutgoingMessage { key: key.to_owned(), body: format!(r#"{{"key":"{key}"}}"#) }
}

fn options(visibility_timeout: Duration, max_receive_count: u32) -> QueueOptions {
    QueueOptions { visibility_timeout, max_receive_count, synchronous: Synchronous::Normal }
}

fn open(path: &Path, visibility_timeout: Duration, max_receive_count: u32) -> SqliteQueue {
    SqliteQueue::open(path, options(visibility_timeout, max_receive_count)).unwrap()
}

async fn wait_past_visibility() {
    tokio::time::sleep(SHORT + Duration::from_millis(50)).await;
}

#[tokio::test]
async fn send_receive_delete() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(&dir.path().join("q.db"), Duration::from_secs(60), 5);
    for key in ["a", "b", "c"] {
        queue.send(&message(key)).await.unwrap();
    }
    assert_eq!(queue.stats().await.unwrap(), QueueStats { visible: 3, in_flight: 0, dead: 0 });

    let got = queue.receive(2).await.unwrap();
    let keys: Vec<&str> = got.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, ["a", "b"], "oldest first");
    assert_eq!(got[0].body, r#"{"key":"a"}"#);
    assert_eq!(got[0].receive_count, 1);
    assert_eq!(got[0].receipt.message_id(), got[0].message_id);
    assert_ne!(got[0].message_id, got[1].message_id);
    assert_eq!(queue.stats().await.unwrap(), QueueStats { visible: 1, in_flight: 2, dead: 0 });

    for m in &got {
        assert!(queue.delete(&m.receipt).await.unwrap());
    }
    assert!(!queue.delete(&got[0].receipt).await.unwrap(), "already deleted");
    let rest = queue.receive(10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].key, "c");
    assert!(queue.receive(10).await.unwrap().is_empty(), "in flight messages are invisible");
    assert!(queue.receive(0).await.unwrap().is_empty());
    assert_eq!(queue.stats().await.unwrap(), QueueStats { visible: 0, in_flight: 1, dead: 0 });
}

#[tokio::test]
async fn an_expired_visibility_timeout_redelivers_with_the_next_receive_count() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(&dir.path().join("q.db"), SHORT, 5);
    let id = queue.enqueue(&message("a")).await.unwrap();

    let first = queue.receive(10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].message_id, id);
    wait_past_visibility().await;

    let second = queue.receive(10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].message_id, id);
    assert_eq!(second[0].receive_count, 2);
    assert_eq!(second[0].sent_at, first[0].sent_at);

    // The first delivery's receipt is stale now: it must not touch the message.
    assert!(!queue.delete(&first[0].receipt).await.unwrap());
    assert!(!queue.retry_later(&first[0].receipt, Duration::ZERO, "stale").await.unwrap());
    assert!(!queue.dead_letter(&first[0].receipt, "stale").await.unwrap());
    let stats = queue.stats().await.unwrap();
    // In flight, or visible again if this test ran slower than the timeout: either way, kept.
    assert_eq!((stats.visible + stats.in_flight, stats.dead), (1, 0));
    assert!(queue.delete(&second[0].receipt).await.unwrap());
    assert_eq!(queue.stats().await.unwrap(), QueueStats::default());
}

#[tokio::test]
async fn a_receipt_still_deletes_after_its_timeout_if_nobody_received_the_message_again() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(&dir.path().join("q.db"), SHORT, 5);
    queue.send(&message("a")).await.unwrap();
    let got = queue.receive(1).await.unwrap();
    wait_past_visibility().await;
    assert!(queue.delete(&got[0].receipt).await.unwrap());
    assert!(queue.receive(1).await.unwrap().is_empty());
}

#[tokio::test]
async fn max_receive_count_moves_the_message_to_the_dead_letters_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(&dir.path().join("q.db"), SHORT, 2);
    let id = queue.enqueue(&message("a")).await.unwrap();

    let first = queue.receive(10).await.unwrap();
    assert_eq!(first[0].receive_count, 1);
    assert!(queue.retry_later(&first[0].receipt, Duration::ZERO, "HubSpot answered 503").await.unwrap());
    let second = queue.receive(10).await.unwrap();
    assert_eq!(second[0].receive_count, 2);
    wait_past_visibility().await; // the worker died: no retry_later, no delete

    assert!(queue.receive(10).await.unwrap().is_empty(), "received twice already: dead-lettered");
    let dead = queue.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message_id, id);
    assert_eq!(dead[0].key, "a");
    assert_eq!(dead[0].body, r#"{"key":"a"}"#);
    assert_eq!(dead[0].receive_count, 2);
    assert_eq!(dead[0].reason, "exceeded maxReceiveCount (2); last failure: HubSpot answered 503");
    assert!(dead[0].failed_at >= dead[0].sent_at);
    assert_eq!(queue.stats().await.unwrap(), QueueStats { visible: 0, in_flight: 0, dead: 1 });
}

#[tokio::test]
async fn redrive_without_a_recorded_failure_says_none_and_receive_fills_up_behind_it() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(&dir.path().join("q.db"), SHORT, 1);
    queue.send(&message("old")).await.unwrap();
    assert_eq!(queue.receive(1).await.unwrap()[0].key, "old");
    wait_past_visibility().await;
    queue.send(&message("new")).await.unwrap();

    let got = queue.receive(1).await.unwrap();
    assert_eq!(got.len(), 1, "the dead-lettered message does not use up the batch");
    assert_eq!(got[0].key, "new");
    let dead = queue.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].key, "old");
    assert_eq!(dead[0].reason, "exceeded maxReceiveCount (1); last failure: none");
}

#[tokio::test]
async fn retry_later_hides_the_message_for_the_delay_and_records_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(&dir.path().join("q.db"), Duration::from_secs(60), 2);
    queue.send(&message("a")).await.unwrap();
    queue.send(&message("b")).await.unwrap();
    let got = queue.receive(2).await.unwrap();

    assert!(queue.retry_later(&got[0].receipt, Duration::from_secs(3600), "Retry-After: 3600").await.unwrap());
    assert!(queue.retry_later(&got[1].receipt, SHORT, "timeout").await.unwrap());
    wait_past_visibility().await;
    let again = queue.receive(10).await.unwrap();
    assert_eq!(again.len(), 1, "only the short delay has passed");
    assert_eq!(again[0].key, "b");
    assert_eq!(again[0].receive_count, 2);
    assert_eq!(queue.stats().await.unwrap(), QueueStats { visible: 0, in_flight: 2, dead: 0 });

    // The recorded reason shows up when redrive dead-letters the message.
    assert!(queue.retry_later(&again[0].receipt, Duration::ZERO, "timeout again").await.unwrap());
    assert!(queue.receive(10).await.unwrap().is_empty());
    let dead = queue.dead_letters().await.unwrap();
    assert_eq!(dead[0].reason, "exceeded maxReceiveCount (2); last failure: timeout again");
}

#[tokio::test]
async fn retried_messages_queue_behind_those_already_visible() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(&dir.path().join("q.db"), Duration::from_secs(60), 5);
    queue.send(&message("a")).await.unwrap();
    let a = queue.receive(1).await.unwrap();
    queue.send(&message("b")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await; // "b" became visible strictly earlier
    assert!(queue.retry_later(&a[0].receipt, Duration::ZERO, "busy").await.unwrap());
    let keys: Vec<String> = queue.receive(10).await.unwrap().into_iter().map(|m| m.key).collect();
    assert_eq!(keys, ["b", "a"]);
}

#[tokio::test]
async fn dead_letter_moves_the_message_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(&dir.path().join("q.db"), Duration::from_secs(60), 5);
    let id = queue.enqueue(&message("a")).await.unwrap();
    queue.send(&message("b")).await.unwrap();
    let got = queue.receive(1).await.unwrap();
    assert!(queue.dead_letter(&got[0].receipt, "VICIdial: PERMISSION DENIED").await.unwrap());
    assert!(!queue.dead_letter(&got[0].receipt, "twice").await.unwrap());

    let dead = queue.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].message_id.as_str(), dead[0].reason.as_str()), (id.as_str(), "VICIdial: PERMISSION DENIED"));
    assert_eq!(dead[0].receive_count, 1);
    assert_eq!(queue.stats().await.unwrap(), QueueStats { visible: 1, in_flight: 0, dead: 1 });
    assert!(!queue.delete(&got[0].receipt).await.unwrap(), "no longer in the queue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_all_land_exactly_once() {
    const TASKS: usize = 32;
    const PER_TASK: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(open(&dir.path().join("q.db"), Duration::from_secs(60), 5));
    let senders: Vec<_> = (0..TASKS)
        .map(|t| {
            let queue = Arc::clone(&queue);
            tokio::spawn(async move {
                for i in 0..PER_TASK {
                    queue.send(&message(&format!("{t}-{i}"))).await.unwrap();
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }

    let got = queue.receive(TASKS * PER_TASK + 10).await.unwrap();
    assert_eq!(got.len(), TASKS * PER_TASK);
    let keys: HashSet<&str> = got.iter().map(|m| m.key.as_str()).collect();
    let ids: HashSet<&str> = got.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(keys.len(), TASKS * PER_TASK, "every message exactly once");
    assert_eq!(ids.len(), TASKS * PER_TASK, "unique message ids");
    // Each task's own messages keep their order.
    for t in 0..TASKS {
        let prefix = format!("{t}-");
        let mine: Vec<&str> = got.iter().map(|m| m.key.as_str()).filter(|k| k.starts_with(&prefix)).collect();
        let expected: Vec<String> = (0..PER_TASK).map(|i| format!("{t}-{i}")).collect();
        assert_eq!(mine, expected);
    }
}

#[tokio::test]
async fn messages_survive_a_clean_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let queue = open(&path, Duration::from_secs(60), 5);
    for i in 0..100 {
        queue.send(&message(&i.to_string())).await.unwrap();
    }
    let received = queue.receive(1).await.unwrap();
    queue.delete(&received[0].receipt).await.unwrap();
    drop(queue);

    let queue = open(&path, Duration::from_secs(60), 5);
    assert_eq!(queue.stats().await.unwrap().visible, 99);
    let keys: Vec<String> = queue.receive(1000).await.unwrap().into_iter().map(|m| m.key).collect();
    assert_eq!(keys, (1..100).map(|i| i.to_string()).collect::<Vec<_>>());
}

#[tokio::test]
async fn messages_survive_a_queue_that_was_never_shut_down() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let queue = open(&path, Duration::from_secs(60), 5);
    for i in 0..100 {
        queue.send(&message(&i.to_string())).await.unwrap();
    }
    // No Drop: the writer thread is never joined and its connection never closed or
    // checkpointed; what was acknowledged must be in the WAL already.
    std::mem::forget(queue);

    let queue = open(&path, Duration::from_secs(60), 5);
    let got = queue.receive(1000).await.unwrap();
    assert_eq!(got.len(), 100);
}

// A kill -9 of the real process after its 200s is tested end to end through `vicibridge serve`
// (vicibridge/tests/serve_e2e.rs, acknowledged_events_survive_kill_9).

#[test]
fn invalid_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let zero_count = SqliteQueue::open(&path, options(SHORT, 0));
    assert!(matches!(zero_count, Err(LocalQueueError::InvalidOptions(_))));
    let zero_timeout = SqliteQueue::open(&path, options(Duration::ZERO, 5));
    assert!(matches!(zero_timeout, Err(LocalQueueError::InvalidOptions(_))));
    let full = SqliteQueue::open(&path, QueueOptions { synchronous: Synchronous::Full, ..QueueOptions::default() });
    assert!(full.is_ok());
}

#[test]
fn an_unopenable_path_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("q.db");
    let error = SqliteQueue::open(&path, QueueOptions::default()).unwrap_err();
    assert!(matches!(error, LocalQueueError::Open { .. }));
    assert!(error.to_string().contains("no-such-dir"), "{error}");
}

#[tokio::test]
async fn receive_wait_returns_when_a_message_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(open(&dir.path().join("q.db"), Duration::from_secs(60), 5));
    assert!(queue.receive_wait(10, Duration::from_millis(20)).await.unwrap().is_empty());

    let waiter = {
        let queue = Arc::clone(&queue);
        // Long enough that only the send can end the wait in a passing run.
        tokio::spawn(async move { queue.receive_wait(10, Duration::from_secs(600)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    queue.send(&message("a")).await.unwrap();
    let got = waiter.await.unwrap().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].key, "a");
}

#[tokio::test]
async fn settle_carries_out_a_whole_batch_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(&dir.path().join("q.db"), Duration::from_secs(60), 5);
    for key in ["done", "later", "dead", "stale"] {
        queue.send(&message(key)).await.unwrap();
    }
    let got = queue.receive(10).await.unwrap();
    let receipt = |key: &str| got.iter().find(|m| m.key == key).unwrap().receipt.clone();
    // "stale" is acknowledged once, so the second acknowledgement in the batch is stale.
    assert!(queue.delete(&receipt("stale")).await.unwrap());
    let stale = queue
        .settle(vec![
            (receipt("done"), Settle::Delete),
            (receipt("later"), Settle::RetryLater { delay: Duration::ZERO, reason: "503 from the CRM".into() }),
            (receipt("dead"), Settle::DeadLetter { reason: "invalid phone".into() }),
            (receipt("stale"), Settle::Delete),
        ])
        .await
        .unwrap();
    assert_eq!(stale, 1);
    assert_eq!(queue.stats().await.unwrap(), QueueStats { visible: 1, in_flight: 0, dead: 1 });
    let again = queue.receive(10).await.unwrap();
    assert_eq!((again.len(), again[0].key.as_str(), again[0].receive_count), (1, "later", 2));
    let dead = queue.dead_letters().await.unwrap();
    assert_eq!((dead[0].key.as_str(), dead[0].reason.as_str()), ("dead", "invalid phone"));
}

#[tokio::test]
async fn batches_larger_than_one_transaction_are_received_and_settled_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(&dir.path().join("q.db"), Duration::from_secs(60), 5);
    let total = MAX_ROWS_PER_TRANSACTION * 2 + 50;
    for i in 0..total {
        queue.send(&message(&format!("m{i:04}"))).await.unwrap();
    }
    // Exactly `max`, even when it is not a multiple of the transaction size.
    let first = queue.receive(MAX_ROWS_PER_TRANSACTION + 1).await.unwrap();
    assert_eq!(first.len(), MAX_ROWS_PER_TRANSACTION + 1);
    let rest = queue.receive(10 * total).await.unwrap();
    let keys: Vec<String> = first.iter().chain(&rest).map(|m| m.key.clone()).collect();
    let expected: Vec<String> = (0..total).map(|i| format!("m{i:04}")).collect();
    assert_eq!(keys, expected, "every message once, in send order");

    let settled = first.iter().chain(&rest).map(|m| (m.receipt.clone(), Settle::Delete)).collect();
    assert_eq!(queue.settle(settled).await.unwrap(), 0);
    assert_eq!(queue.stats().await.unwrap(), QueueStats::default());
}

/// The disposition watchdog's notes: a call sent twice keeps its earliest time, they survive
/// reopening the file, and reading from a time forgets what is older.
#[tokio::test]
async fn call_notes_keep_the_earliest_time_and_forget_the_old_ones() {
    use chrono::{TimeZone, Utc};
    use vicibridge_core::watchdog::dispositions::{CallNote, CallNoteKind};
    let note = |call: &str, kind, secs: i64| CallNote {
        campaign: "CLONED".into(),
        call: call.into(),
        kind,
        at: Utc.timestamp_opt(1_795_500_000 + secs, 0).unwrap(),
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    {
        let queue = open(&path, Duration::from_secs(60), 5);
        queue
            .note_calls(vec![
                note("1.1", CallNoteKind::Start, 100),
                note("1.1", CallNoteKind::Start, 50),
                note("1.1", CallNoteKind::Dispo, 200),
                note("1.0", CallNoteKind::Start, 0),
            ])
            .await
            .unwrap();
        queue.note_calls(vec![note("1.1", CallNoteKind::Start, 70)]).await.unwrap();
    }
    let queue = open(&path, Duration::from_secs(60), 5);
    let all = queue.call_notes_since(Utc.timestamp_opt(0, 0).unwrap()).await.unwrap();
    assert_eq!(
        all,
        vec![
            note("1.0", CallNoteKind::Start, 0),
            note("1.1", CallNoteKind::Start, 50),
            note("1.1", CallNoteKind::Dispo, 200)
        ]
    );
    let recent = queue.call_notes_since(Utc.timestamp_opt(1_795_500_010, 0).unwrap()).await.unwrap();
    assert_eq!(recent.len(), 2);
    let again = queue.call_notes_since(Utc.timestamp_opt(0, 0).unwrap()).await.unwrap();
    assert_eq!(again, recent, "the older note is gone");
    queue.forget_call_notes_before(Utc.timestamp_opt(1_795_500_100, 0).unwrap()).await.unwrap();
    let left = queue.call_notes_since(Utc.timestamp_opt(0, 0).unwrap()).await.unwrap();
    assert_eq!(left, vec![note("1.1", CallNoteKind::Dispo, 200)]);
}

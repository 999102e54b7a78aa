//! The embedded SQLite queue with SQS semantics: what `vicibridge serve` uses instead of SQS.
//!
//! One queue per database file (e.g. `DATA_DIR/crm-events.db`). A message is visible, or in
//! flight for the visibility timeout after a `receive`, or delayed by `retry_later`; each
//! `receive` counts, and a message whose receive count has reached `max_receive_count` goes to
//! the dead-letter table instead of being delivered (SQS's redrive policy).
//!
//! **One writer thread, group commit.** A dedicated thread owns the one `Connection` that
//! reads and writes rows (a second one only checkpoints, see below). Callers send it requests
//! over a channel with a oneshot reply; it drains everything pending (up to [`MAX_GROUP`]),
//! runs ONE transaction for the whole group and only then answers every caller.
//! So `send` returns after its row is committed, the cost of a commit (and of an fsync with
//! `synchronous=FULL`) is shared by every concurrent sender, and there is no `SQLITE_BUSY`
//! between our own operations.
//!
//! **Durability.** Always WAL. The default is [`Synchronous::Normal`]: a commit has written the
//! WAL frames to the OS when it returns, so an acknowledged message survives a `kill -9` or a
//! crash of the process, but not an OS crash or power loss (the WAL is fsynced at checkpoints
//! only). [`Synchronous::Full`] fsyncs the WAL at every group commit and survives power loss;
//! thanks to group commit it costs throughput far less than one fsync per message would.
//! Normal is the default because the process dying is the common failure of a self-hosted
//! bridge and VICIdial never retries a URL, so ingest latency matters; choose Full where the
//! machine itself is not trusted to stay up.
//!
//! **Checkpoints off the commit path.** Copying the WAL back into the database fsyncs both
//! files (in either mode); done inline every 1000 pages, as SQLite does by default, it stalled
//! every sender waiting behind it for 10 to 100 ms. A second thread with its own connection
//! runs passive checkpoints instead (they never block the writer and never touch a row) and
//! flushes the database file after each, and the writer checkpoints inline only if the WAL
//! outgrows [`INLINE_CHECKPOINT_PAGES`], which bounds it when a sustained load never leaves
//! the background checkpoint a quiet moment to catch up; by then little is left to copy or
//! flush.
//!
//! **Short transactions.** Every send waits for the transaction ahead of it, so the worker's
//! receives and acknowledgements are cut into transactions of [`MAX_ROWS_PER_TRANSACTION`]
//! rows, between which the writer commits the sends that arrived meanwhile.
//!
//! Times are wall-clock milliseconds stored in the file, so visibility timeouts and delays
//! survive a restart.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::{Notify, oneshot};
use vicibridge_core::ports::{OutgoingMessage, Queue, QueueError};
use vicibridge_core::watchdog::dispositions::{CallNote, CallNoteKind};

/// SQS's default visibility timeout.
pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 5;

/// Most requests one group commit takes: bounds the transaction, and so the wait of the
/// requests queued behind it, during a burst.
pub const MAX_GROUP: usize = 512;

/// Under load, a group smaller than [`GATHER_BELOW`] waits up to this long for more requests
/// before it commits. Each commit costs the same (locks, and a WAL frame for every page it
/// touched) whatever its size; measured at 25k sends/s with 32 senders, groups grew from 3.4
/// to about 13 requests, a quarter of the commits, and the p99 of ingest fell (BENCHMARKS.md).
/// A lone request (the last group had no company) never waits.
const GATHER: Duration = Duration::from_micros(250);
const GATHER_BELOW: usize = 8;

/// Most rows one `receive` or `settle` touches in one transaction; a larger batch takes
/// several. Every send queued behind a transaction waits for it: measured, a 1000-row receive
/// held the writer 5 to 10 ms, and put that wait in the p90 of ingest.
pub const MAX_ROWS_PER_TRANSACTION: usize = 100;

/// WAL size (pages; 256 MiB) at which a commit checkpoints inline, so that the WAL restarts
/// from its beginning. Only a sustained load reaches it, and each time stalls the writer for
/// the two fsyncs: large, to make that rare (measured: 16 Ki pages put those stalls in p99).
pub const INLINE_CHECKPOINT_PAGES: u32 = 65_536;

/// At most one background checkpoint per this: each costs two fsyncs, and the shorter it
/// is, the less an inline checkpoint has left to copy.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(50);

/// The WAL file is truncated back to this when it restarts after a checkpoint. Above the
/// size a full WAL reaches (the inline threshold plus one more transaction), so under load it
/// is reused in place rather than truncated and grown again each cycle; a clean close
/// deletes the file anyway.
const WAL_SIZE_LIMIT_BYTES: i64 = (INLINE_CHECKPOINT_PAGES as i64 + 4096) * (4096 + 24) + 32;

/// `PRAGMA user_version` of the schema below plus the migrations after it.
const SCHEMA_VERSION: i64 = 4;

/// `seq` is the rowid; receipts also carry `message_id` because SQLite may reuse the rowid of
/// a deleted last row, and a stale receipt must never match a newer message.
/// The index serves `receive` (visible rows in the order they became visible) and `stats`.
const SCHEMA: &str = "
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS messages (
    seq           INTEGER PRIMARY KEY,
    message_id    TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    sent_at_ms    INTEGER NOT NULL,
    visible_at_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    last_failure  TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages (visible_at_ms);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq           INTEGER PRIMARY KEY,
    message_id    TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    receive_count INTEGER NOT NULL,
    sent_at_ms    INTEGER NOT NULL,
    failed_at_ms  INTEGER NOT NULL
);
PRAGMA user_version = 1;
COMMIT;
";

/// Version 2: a dead letter replayed onto the queue keeps its row, marked with the time, so a
/// key's dead letters are its reason history (`vicibridge dlq show`) and a second replay finds
/// nothing left to replay.
const MIGRATE_2: &str = "
BEGIN IMMEDIATE;
ALTER TABLE dead_letters ADD COLUMN replayed_at_ms INTEGER;
PRAGMA user_version = 2;
COMMIT;
";

/// Version 3: the disposition statuses the sync saw without a mapping, one row per call
/// (a redelivered message counts once), for `vicibridge queue status` and `/status`.
const MIGRATE_3: &str = "
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS unmapped_statuses (
    key        TEXT PRIMARY KEY,
    status     TEXT    NOT NULL,
    seen_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS unmapped_by_time ON unmapped_statuses (seen_at_ms);
PRAGMA user_version = 3;
COMMIT;
";

/// Version 4: the calls started and dispositioned per campaign, for the disposition watchdog
/// (`crate::watchdog`); a restart rebuilds the watch from them. Kept two days.
const MIGRATE_4: &str = "
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS call_notes (
    campaign TEXT    NOT NULL,
    call     TEXT    NOT NULL,
    kind     TEXT    NOT NULL,
    at_ms    INTEGER NOT NULL,
    PRIMARY KEY (campaign, call, kind)
);
CREATE INDEX IF NOT EXISTS call_notes_by_time ON call_notes (at_ms);
PRAGMA user_version = 4;
COMMIT;
";

/// How long an unmapped status is remembered.
pub const UNMAPPED_KEEP: Duration = Duration::from_secs(30 * 86_400);

/// SQLite `PRAGMA synchronous` (the journal is always WAL). See the module documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// Survives a crash of the process, not of the OS. The default.
    #[default]
    Normal,
    /// fsync at every group commit: survives power loss.
    Full,
}

impl Synchronous {
    fn pragma_value(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueOptions {
    /// How long a received message stays invisible before it is delivered again.
    pub visibility_timeout: Duration,
    /// Deliveries allowed before the next `receive` moves the message to the dead letters.
    pub max_receive_count: u32,
    pub synchronous: Synchronous,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            max_receive_count: DEFAULT_MAX_RECEIVE_COUNT,
            synchronous: Synchronous::Normal,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocalQueueError {
    #[error("invalid queue options: {0}")]
    InvalidOptions(&'static str),
    #[error("cannot open queue database {}: {source}", path.display())]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error(
        "queue database {} is in journal mode {mode:?} and cannot switch to WAL; \
         put the data directory on a local filesystem",
        path.display()
    )]
    NoWal { path: PathBuf, mode: String },
    #[error(
        "queue database {} has schema version {found}, newer than this vicibridge knows \
         ({SCHEMA_VERSION}); upgrade vicibridge",
        path.display()
    )]
    SchemaTooNew { path: PathBuf, found: i64 },
    #[error("cannot open queue database {}: {source}", path.display())]
    OpenFile { path: PathBuf, source: std::io::Error },
    #[error("cannot start the queue writer thread: {0}")]
    Spawn(std::io::Error),
    /// SQLite's message (never row data); one group's failure is reported to each caller.
    #[error("queue storage error: {0}")]
    Storage(String),
    #[error("the queue writer thread has stopped")]
    Stopped,
}

/// Proof of one delivery, needed to delete, delay or dead-letter the message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Receipt {
    seq: i64,
    message_id: String,
    /// The receive count of this delivery: a receipt from an earlier delivery no longer
    /// matches once the message was delivered again.
    receive_count: u32,
}

impl Receipt {
    pub fn message_id(&self) -> &str {
        &self.message_id
    }
}

/// What to do with one delivered message, for [`SqliteQueue::settle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settle {
    /// Acknowledge: the message is gone.
    Delete,
    /// Visible again after `delay`, with `reason` as its last failure.
    RetryLater { delay: Duration, reason: String },
    /// To the dead letters at once, with its reason.
    DeadLetter { reason: String },
    /// Visible again after `delay`, and this delivery does not count toward
    /// `max_receive_count`: the message was not at fault (its integration is paused, see
    /// `vicibridge_runtime::breaker`), so an outage of any length cannot dead-letter it.
    Postpone { delay: Duration, reason: String },
}

/// One delivered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub receipt: Receipt,
    pub message_id: String,
    pub key: String,
    pub body: String,
    /// 1 on the first delivery.
    pub receive_count: u32,
    pub sent_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub message_id: String,
    pub key: String,
    pub body: String,
    pub reason: String,
    pub receive_count: u32,
    pub sent_at: DateTime<Utc>,
    pub failed_at: DateTime<Utc>,
    /// When it was put back on the queue (`vicibridge dlq replay`); `None`: still dead.
    pub replayed_at: Option<DateTime<Utc>>,
}

/// Which dead letters an operator command works on. The default: every one not replayed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeadLetterFilter {
    /// Exactly this idempotency key.
    pub key: Option<String>,
    /// Reason containing this text (case-insensitive).
    pub reason_contains: Option<String>,
    /// Dead-lettered at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Also the dead letters replayed already (a key's history).
    pub include_replayed: bool,
}

impl DeadLetterFilter {
    fn sql(&self, head: &str) -> (String, Vec<rusqlite::types::Value>) {
        use rusqlite::types::Value;
        let mut clauses = Vec::new();
        let mut args = Vec::new();
        if let Some(key) = &self.key {
            args.push(Value::Text(key.clone()));
            clauses.push(format!("key = ?{}", args.len()));
        }
        if let Some(text) = &self.reason_contains {
            args.push(Value::Text(text.to_lowercase()));
            clauses.push(format!("instr(lower(reason), ?{}) > 0", args.len()));
        }
        if let Some(since) = self.since {
            args.push(Value::Integer(since.timestamp_millis()));
            clauses.push(format!("failed_at_ms >= ?{}", args.len()));
        }
        if !self.include_replayed {
            clauses.push("replayed_at_ms IS NULL".to_owned());
        }
        let sql = if clauses.is_empty() { head.to_owned() } else { format!("{head} WHERE {}", clauses.join(" AND ")) };
        (sql, args)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Ready for `receive`.
    pub visible: u64,
    /// Received and not yet deleted, or delayed by `retry_later` (SQS's "not visible").
    pub in_flight: u64,
    pub dead: u64,
}

/// The queue. Share it behind an `Arc`; dropping it lets the writer finish the requests
/// already sent, closes the database and waits for that.
pub struct SqliteQueue {
    path: PathBuf,
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    writer: Option<JoinHandle<()>>,
    checkpointer: Option<JoinHandle<()>>,
    /// Woken after every group that stored new messages, for `receive_wait`.
    sent: Arc<Notify>,
}

impl fmt::Debug for SqliteQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteQueue").field("path", &self.path).finish_non_exhaustive()
    }
}

impl SqliteQueue {
    /// Opens (creating if missing) the queue in `path` and starts its writer thread.
    pub fn open(path: &Path, options: QueueOptions) -> Result<SqliteQueue, LocalQueueError> {
        let visibility_ms = millis(options.visibility_timeout);
        if visibility_ms == 0 {
            // A zero timeout would hand the same message to every receive in a row.
            return Err(LocalQueueError::InvalidOptions("visibility_timeout must be at least 1 ms"));
        }
        if options.max_receive_count == 0 {
            return Err(LocalQueueError::InvalidOptions("max_receive_count must be at least 1"));
        }
        let conn = open_connection(path, options.synchronous)?;
        // Opened second: the schema exists by now.
        let checkpoint_conn = open_connection(path, options.synchronous)?;
        let sent = Arc::new(Notify::new());
        let (jobs, inbox) = mpsc::channel();
        // One pending nudge is enough to say "there is something to checkpoint".
        let (nudge, nudges) = mpsc::sync_channel(1);
        let db_file =
            std::fs::File::open(path).map_err(|source| LocalQueueError::OpenFile { path: path.to_owned(), source })?;
        let checkpointer = Checkpointer { conn: checkpoint_conn, db_file, synced_frames: 0, nudges };
        let checkpointer = std::thread::Builder::new()
            .name("vicibridge-queue-checkpoint".to_owned())
            .spawn(move || checkpointer.run())
            .map_err(LocalQueueError::Spawn)?;
        let writer = Writer {
            conn,
            inbox,
            visibility_ms,
            max_receive_count: options.max_receive_count,
            sent: Arc::clone(&sent),
            nudge,
        };
        // On failure the writer (and with it `nudge`) is dropped: the checkpointer stops.
        let writer = std::thread::Builder::new()
            .name("vicibridge-queue".to_owned())
            .spawn(move || writer.run())
            .map_err(LocalQueueError::Spawn)?;
        Ok(SqliteQueue {
            path: path.to_owned(),
            jobs: Some(jobs),
            writer: Some(writer),
            checkpointer: Some(checkpointer),
            sent,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores a message and returns its id once it is committed.
    pub async fn enqueue(&self, message: &OutgoingMessage) -> Result<String, LocalQueueError> {
        let message_id = new_message_id();
        let row = (message_id.clone(), message.key.clone(), message.body.clone());
        self.call(Kind::Wakes, move |conn, ctx| {
            let (id, key, body) = &row;
            conn.prepare_cached(
                "INSERT INTO messages (message_id, key, body, sent_at_ms, visible_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
            )?
            .execute(params![id, key, body, ctx.now_ms])?;
            Ok(())
        })
        .await?;
        Ok(message_id)
    }

    /// Up to `max` visible messages, in the order they became visible (send order for fresh
    /// messages; a message put back by `retry_later` or an expired timeout queues behind those
    /// already visible, so a failing message cannot hold up the rest). Each is made invisible
    /// for the visibility timeout and its receive count incremented; messages that already
    /// reached `max_receive_count` go to the dead letters instead. Taken
    /// [`MAX_ROWS_PER_TRANSACTION`] at a time, so sends interleave with a large receive.
    pub async fn receive(&self, max: usize) -> Result<Vec<Received>, LocalQueueError> {
        let mut out = Vec::new();
        while out.len() < max {
            let want = (max - out.len()).min(MAX_ROWS_PER_TRANSACTION);
            let got = self.call(Kind::Receive, move |conn, ctx| receive_rows(conn, ctx, want)).await?;
            let short = got.len() < want;
            out.extend(got);
            if short {
                break;
            }
        }
        Ok(out)
    }

    /// Like `receive`, but when nothing is visible waits up to `wait` for a new message
    /// (SQS long polling). Messages that become visible by a timeout are found by the next
    /// call, not awaited.
    pub async fn receive_wait(&self, max: usize, wait: Duration) -> Result<Vec<Received>, LocalQueueError> {
        let deadline = tokio::time::Instant::now().checked_add(wait);
        loop {
            // Registered before looking, so a send committed in between still wakes us.
            let mut sent = std::pin::pin!(self.sent.notified());
            sent.as_mut().enable();
            let got = self.receive(max).await?;
            if !got.is_empty() || max == 0 {
                return Ok(got);
            }
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, sent).await.is_err() {
                        return Ok(got);
                    }
                }
                None => sent.await,
            }
        }
    }

    /// Acknowledges a delivery: the message is gone. `false` when the receipt is stale (the
    /// message was delivered again since, or is already gone) and nothing was deleted.
    pub async fn delete(&self, receipt: &Receipt) -> Result<bool, LocalQueueError> {
        let receipt = receipt.clone();
        self.call(Kind::Other, move |conn, _| delete_row(conn, &receipt)).await
    }

    /// Makes the message visible again after `delay` (SQS ChangeMessageVisibility) and
    /// records `reason` as its last failure. `false` when the receipt is stale.
    pub async fn retry_later(&self, receipt: &Receipt, delay: Duration, reason: &str) -> Result<bool, LocalQueueError> {
        let receipt = receipt.clone();
        let reason = reason.to_owned();
        self.call(if delay.is_zero() { Kind::Wakes } else { Kind::Other }, move |conn, ctx| {
            retry_row(conn, ctx, &receipt, delay, &reason, false)
        })
        .await
    }

    /// Moves the message to the dead letters at once (a permanent failure). `false` when the
    /// receipt is stale.
    pub async fn dead_letter(&self, receipt: &Receipt, reason: &str) -> Result<bool, LocalQueueError> {
        let receipt = receipt.clone();
        let reason = reason.to_owned();
        self.call(Kind::Other, move |conn, ctx| move_to_dead_letters(conn, ctx, &receipt, &reason)).await
    }

    /// Carries out the outcomes of a whole batch, [`MAX_ROWS_PER_TRANSACTION`] per round trip
    /// (one transaction) to the writer thread: under load each round trip waits for a group
    /// commit, so acknowledging a batch of 1000 one by one would cost 1000 of them. Returns how
    /// many receipts were stale.
    pub async fn settle(&self, items: Vec<(Receipt, Settle)>) -> Result<usize, LocalQueueError> {
        let mut items = items.into_iter().peekable();
        let mut stale = 0;
        while items.peek().is_some() {
            let chunk: Vec<(Receipt, Settle)> = items.by_ref().take(MAX_ROWS_PER_TRANSACTION).collect();
            let wakes = chunk.iter().any(|(_, s)| {
                matches!(s, Settle::RetryLater { delay, .. } | Settle::Postpone { delay, .. } if delay.is_zero())
            });
            stale += self
                .call(if wakes { Kind::Wakes } else { Kind::Other }, move |conn, ctx| settle_rows(conn, ctx, &chunk))
                .await?;
        }
        Ok(stale)
    }

    /// Every dead letter not replayed, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, LocalQueueError> {
        self.dead_letters_where(DeadLetterFilter::default()).await
    }

    /// The dead letters `filter` selects, oldest first.
    pub async fn dead_letters_where(&self, filter: DeadLetterFilter) -> Result<Vec<DeadLetter>, LocalQueueError> {
        self.call(Kind::Other, move |conn, _| {
            let (sql, args) = filter.sql(
                "SELECT message_id, key, body, reason, receive_count, sent_at_ms, failed_at_ms, replayed_at_ms
                 FROM dead_letters",
            );
            conn.prepare(&format!("{sql} ORDER BY seq"))?
                .query_map(rusqlite::params_from_iter(args.iter()), |row| {
                    Ok(DeadLetter {
                        message_id: row.get(0)?,
                        key: row.get(1)?,
                        body: row.get(2)?,
                        reason: row.get(3)?,
                        receive_count: row.get(4)?,
                        sent_at: timestamp(row.get(5)?),
                        failed_at: timestamp(row.get(6)?),
                        replayed_at: row.get::<_, Option<i64>>(7)?.map(timestamp),
                    })
                })?
                .collect()
        })
        .await
    }

    /// Puts up to [`MAX_ROWS_PER_TRANSACTION`] dead letters that `filter` selects back on the
    /// queue (visible now, receive count 0, same key and body, the dead-letter reason as last
    /// failure) and marks them replayed, in one transaction. Returns how many; call again
    /// until 0. A replayed dead letter is never selected again.
    pub async fn replay_dead_letters(&self, filter: DeadLetterFilter) -> Result<usize, LocalQueueError> {
        let filter = DeadLetterFilter { include_replayed: false, ..filter };
        self.call(Kind::Wakes, move |conn, ctx| {
            let (sql, args) = filter.sql("SELECT seq, key, body, reason FROM dead_letters");
            let rows: Vec<(i64, String, String, String)> = conn
                .prepare(&format!("{sql} ORDER BY seq LIMIT {MAX_ROWS_PER_TRANSACTION}"))?
                .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            for (seq, key, body, reason) in &rows {
                conn.prepare_cached(
                    "INSERT INTO messages (message_id, key, body, sent_at_ms, visible_at_ms, last_failure)
                     VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
                )?
                .execute(params![
                    new_message_id(),
                    key,
                    body,
                    ctx.now_ms,
                    format!("replayed from the dead letters; dead-lettered for: {reason}")
                ])?;
                conn.prepare_cached("UPDATE dead_letters SET replayed_at_ms = ?2 WHERE seq = ?1")?
                    .execute(params![seq, ctx.now_ms])?;
            }
            Ok(rows.len())
        })
        .await
    }

    /// Deletes the dead letters `filter` selects (with their history when
    /// `include_replayed`). Returns how many rows went.
    pub async fn purge_dead_letters(&self, filter: DeadLetterFilter) -> Result<usize, LocalQueueError> {
        self.call(Kind::Other, move |conn, _| {
            let (sql, args) = filter.sql("DELETE FROM dead_letters");
            conn.execute(&sql, rusqlite::params_from_iter(args.iter()))
        })
        .await
    }

    /// When the oldest message still on the queue (visible or in flight) was sent.
    pub async fn oldest_sent_at(&self) -> Result<Option<DateTime<Utc>>, LocalQueueError> {
        self.call(Kind::Other, |conn, _| {
            conn.query_row("SELECT min(sent_at_ms) FROM messages", [], |row| row.get::<_, Option<i64>>(0))
                .map(|ms| ms.map(timestamp))
        })
        .await
    }

    pub async fn stats(&self) -> Result<QueueStats, LocalQueueError> {
        self.call(Kind::Other, |conn, ctx| {
            conn.prepare_cached(
                "SELECT (SELECT count(*) FROM messages WHERE visible_at_ms <= ?1),
                        (SELECT count(*) FROM messages WHERE visible_at_ms > ?1),
                        (SELECT count(*) FROM dead_letters WHERE replayed_at_ms IS NULL)",
            )?
            .query_row([ctx.now_ms], |row| {
                Ok(QueueStats { visible: row.get(0)?, in_flight: row.get(1)?, dead: row.get(2)? })
            })
        })
        .await
    }

    /// Dead letters not replayed, counted by reason, most frequent first.
    pub async fn dead_letter_reasons(&self) -> Result<Vec<(String, u64)>, LocalQueueError> {
        self.call(Kind::Other, |conn, _| {
            conn.prepare_cached(
                "SELECT reason, count(*) AS n FROM dead_letters WHERE replayed_at_ms IS NULL
                 GROUP BY reason ORDER BY n DESC, reason",
            )?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect()
        })
        .await
    }

    /// Notes that the call `key` carried a disposition `status` the mapping does not know
    /// (once per key), and forgets notes older than [`UNMAPPED_KEEP`].
    pub async fn note_unmapped(&self, key: &str, status: &str) -> Result<(), LocalQueueError> {
        let (key, status) = (key.to_owned(), status.to_owned());
        self.call(Kind::Other, move |conn, ctx| {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO unmapped_statuses (key, status, seen_at_ms) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![key, status, ctx.now_ms])?;
            let cutoff = ctx.now_ms - UNMAPPED_KEEP.as_millis() as i64;
            conn.prepare_cached("DELETE FROM unmapped_statuses WHERE seen_at_ms < ?1")?.execute([cutoff])?;
            Ok(())
        })
        .await
    }

    /// Unmapped statuses seen in the last [`UNMAPPED_KEEP`], with the number of calls, most
    /// frequent first.
    pub async fn unmapped_statuses(&self) -> Result<Vec<(String, u64)>, LocalQueueError> {
        let keep = chrono::Duration::from_std(UNMAPPED_KEEP).unwrap_or_default();
        self.unmapped_statuses_since(Utc::now() - keep).await
    }

    /// Unmapped statuses first seen at or after `since`, with the number of calls, most
    /// frequent first (the digest of `serve`'s watchdog).
    pub async fn unmapped_statuses_since(&self, since: DateTime<Utc>) -> Result<Vec<(String, u64)>, LocalQueueError> {
        let since_ms = since.timestamp_millis();
        self.call(Kind::Other, move |conn, _| {
            conn.prepare_cached(
                "SELECT status, count(*) AS n FROM unmapped_statuses WHERE seen_at_ms >= ?1
                 GROUP BY status ORDER BY n DESC, status",
            )?
            .query_map([since_ms], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect()
        })
        .await
    }

    /// Remembers calls started and dispositioned, for the disposition watchdog (the earliest
    /// time of a call VICIdial sent twice). One transaction for them all.
    pub async fn note_calls(&self, notes: Vec<CallNote>) -> Result<(), LocalQueueError> {
        self.call(Kind::Other, move |conn, _| {
            let mut insert = conn.prepare_cached(
                "INSERT INTO call_notes (campaign, call, kind, at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (campaign, call, kind) DO UPDATE SET at_ms = min(at_ms, excluded.at_ms)",
            )?;
            for n in &notes {
                insert.execute(params![n.campaign, n.call, n.kind.as_str(), n.at.timestamp_millis()])?;
            }
            Ok(())
        })
        .await
    }

    /// Forgets the call notes older than `cutoff`.
    pub async fn forget_call_notes_before(&self, cutoff: DateTime<Utc>) -> Result<(), LocalQueueError> {
        let cutoff = cutoff.timestamp_millis();
        self.call(Kind::Other, move |conn, _| {
            conn.prepare_cached("DELETE FROM call_notes WHERE at_ms < ?1")?.execute([cutoff]).map(drop)
        })
        .await
    }

    /// The call notes at or after `since`, oldest first; forgets the older ones.
    pub async fn call_notes_since(&self, since: DateTime<Utc>) -> Result<Vec<CallNote>, LocalQueueError> {
        let cutoff = since.timestamp_millis();
        self.call(Kind::Other, move |conn, _| {
            conn.prepare_cached("DELETE FROM call_notes WHERE at_ms < ?1")?.execute([cutoff])?;
            let mut statement = conn.prepare_cached(
                "SELECT campaign, call, kind, at_ms FROM call_notes WHERE at_ms >= ?1 ORDER BY at_ms",
            )?;
            let rows = statement.query_map([cutoff], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?, row.get(3)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (campaign, call, kind, at_ms) = row?;
                if let Some(kind) = CallNoteKind::parse(&kind) {
                    out.push(CallNote { campaign, call, kind, at: timestamp(at_ms) });
                }
            }
            Ok(out)
        })
        .await
    }

    /// Runs `work` on the writer thread inside the next group transaction and returns its
    /// result once that transaction has committed.
    async fn call<T, F>(&self, kind: Kind, work: F) -> Result<T, LocalQueueError>
    where
        T: Send + 'static,
        F: FnMut(&Connection, &Ctx) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Call { work, output: None, reply, kind });
        let jobs = self.jobs.as_ref().ok_or(LocalQueueError::Stopped)?;
        jobs.send(job).map_err(|_| LocalQueueError::Stopped)?;
        answer.await.map_err(|_| LocalQueueError::Stopped)?
    }
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), QueueError> {
        self.enqueue(message).await.map(drop).map_err(|e| QueueError::Unavailable(e.to_string()))
    }
}

impl Drop for SqliteQueue {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop once it has answered what was sent, and
        // the writer's end ends the checkpointer; joining both makes a dropped queue a closed
        // (and checkpointed) database file.
        self.jobs.take();
        for thread in [self.writer.take(), self.checkpointer.take()].into_iter().flatten() {
            if thread.join().is_err() {
                tracing::error!(path = %self.path.display(), "queue thread panicked");
            }
        }
    }
}

fn open_connection(path: &Path, synchronous: Synchronous) -> Result<Connection, LocalQueueError> {
    let open_error = |source| LocalQueueError::Open { path: path.to_owned(), source };
    let conn = Connection::open(path).map_err(open_error)?;
    // Only an outside reader (an operator's sqlite3 shell) can hold a lock; wait it out.
    conn.busy_timeout(Duration::from_secs(5)).map_err(open_error)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(open_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(LocalQueueError::NoWal { path: path.to_owned(), mode });
    }
    conn.pragma_update(None, "synchronous", synchronous.pragma_value()).map_err(open_error)?;
    conn.pragma_update(None, "wal_autocheckpoint", INLINE_CHECKPOINT_PAGES).map_err(open_error)?;
    // Returns the limit as a row, hence query_row.
    conn.query_row(&format!("PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}"), [], |_| Ok(()))
        .map_err(open_error)?;
    // The statements below, with room to spare.
    conn.set_prepared_statement_cache_capacity(32);
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(open_error)?;
    if version > SCHEMA_VERSION {
        return Err(LocalQueueError::SchemaTooNew { path: path.to_owned(), found: version });
    }
    if version < 1 {
        conn.execute_batch(SCHEMA).map_err(open_error)?;
    }
    for (to, migration) in [(2, MIGRATE_2), (3, MIGRATE_3), (4, MIGRATE_4)] {
        if version < to
            && let Err(e) = conn.execute_batch(migration)
        {
            // Another process may have migrated in between: then the change is there.
            let _ = conn.execute_batch("ROLLBACK");
            let now: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(open_error)?;
            if now < to {
                return Err(open_error(e));
            }
        }
    }
    Ok(conn)
}

/// What a group's work sees: one clock reading for the whole group, and the options.
#[derive(Debug)]
struct Ctx {
    now_ms: i64,
    visibility_ms: i64,
    max_receive_count: u32,
}

/// A request on the writer thread: `run` inside the group transaction (perhaps twice, see
/// `Writer::commit_group`), then `finish` with the outcome of the commit.
trait Job: Send {
    fn run(&mut self, conn: &Connection, ctx: &Ctx) -> rusqlite::Result<()>;
    fn kind(&self) -> Kind;
    fn finish(self: Box<Self>, failure: Option<LocalQueueError>);
}

struct Call<T, F> {
    work: F,
    output: Option<T>,
    reply: oneshot::Sender<Result<T, LocalQueueError>>,
    kind: Kind,
}

/// What the writer needs to know about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Makes a message visible now: wakes `receive_wait`.
    Wakes,
    /// Hands out messages: skipped once its caller stopped waiting (a cancelled
    /// `receive_wait`), or they would stay hidden for a visibility timeout for nothing.
    Receive,
    Other,
}

impl<T, F> Job for Call<T, F>
where
    T: Send + 'static,
    F: FnMut(&Connection, &Ctx) -> rusqlite::Result<T> + Send + 'static,
{
    fn run(&mut self, conn: &Connection, ctx: &Ctx) -> rusqlite::Result<()> {
        // A rerun after a failed group must not keep the rolled-back first answer.
        self.output = None;
        if self.kind == Kind::Receive && self.reply.is_closed() {
            return Ok(());
        }
        self.output = Some((self.work)(conn, ctx)?);
        Ok(())
    }

    fn kind(&self) -> Kind {
        self.kind
    }

    fn finish(self: Box<Self>, failure: Option<LocalQueueError>) {
        let answer = match (failure, self.output) {
            (Some(error), _) => Err(error),
            (None, Some(output)) => Ok(output),
            // Skipped because nobody waits for the answer (see `Kind::Receive`).
            (None, None) => Err(LocalQueueError::Stopped),
        };
        // The caller may have stopped waiting (its future was dropped); nothing to tell.
        let _ = self.reply.send(answer);
    }
}

struct Writer {
    conn: Connection,
    inbox: mpsc::Receiver<Box<dyn Job>>,
    visibility_ms: i64,
    max_receive_count: u32,
    sent: Arc<Notify>,
    nudge: mpsc::SyncSender<()>,
}

impl Writer {
    fn run(mut self) {
        let mut group: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_GROUP);
        // Whether the last group had company: the sign of load, when gathering pays.
        let mut busy = false;
        // Ends when every SqliteQueue handle is gone; the Connection closes on return.
        while let Ok(first) = self.inbox.recv() {
            group.push(first);
            self.take_pending(&mut group, None);
            if busy && group.len() < GATHER_BELOW {
                self.take_pending(&mut group, Instant::now().checked_add(GATHER));
            }
            busy = group.len() > 1;
            let wakes_receivers = group.iter().any(|job| job.kind() == Kind::Wakes);
            self.commit_group(&mut group);
            if wakes_receivers {
                self.sent.notify_waiters();
            }
            // Full means a nudge is already pending.
            let _ = self.nudge.try_send(());
        }
    }

    /// Adds the requests already waiting to `group`, and with a deadline also those arriving
    /// until then.
    fn take_pending(&self, group: &mut Vec<Box<dyn Job>>, until: Option<Instant>) {
        while group.len() < MAX_GROUP {
            let next = match until {
                None => self.inbox.try_recv().ok(),
                Some(until) => match until.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => self.inbox.recv_timeout(left).ok(),
                    _ => None,
                },
            };
            match next {
                Some(job) => group.push(job),
                None => return,
            }
        }
    }

    /// One transaction for the whole group. If it fails, each request is retried in a
    /// transaction of its own, so one bad request cannot fail the others.
    fn commit_group(&mut self, group: &mut Vec<Box<dyn Job>>) {
        let ctx =
            Ctx { now_ms: now_ms(), visibility_ms: self.visibility_ms, max_receive_count: self.max_receive_count };
        let result = run_in_transaction(&mut self.conn, &ctx, group.iter_mut());
        match result {
            Ok(()) => group.drain(..).for_each(|job| job.finish(None)),
            Err(error) if group.len() == 1 => group.drain(..).for_each(|job| job.finish(Some(storage_error(&error)))),
            Err(error) => {
                tracing::warn!(%error, requests = group.len(), "queue group commit failed; retrying its requests one by one");
                for mut job in group.drain(..) {
                    let failure = run_in_transaction(&mut self.conn, &ctx, std::iter::once(&mut job))
                        .err()
                        .map(|e| storage_error(&e));
                    job.finish(failure);
                }
            }
        }
    }
}

/// Runs passive checkpoints on its own connection while the writer commits.
struct Checkpointer {
    conn: Connection,
    /// The database file, to flush what the checkpoints copied (see `checkpoint`).
    db_file: std::fs::File,
    /// Frames checkpointed (SQLite's count) when the database file was last flushed.
    synced_frames: i64,
    nudges: mpsc::Receiver<()>,
}

impl Checkpointer {
    fn run(mut self) {
        let mut pending = false;
        loop {
            // Sleep until a commit happened; the writer's end closes the channel.
            if !pending && self.nudges.recv().is_err() {
                return;
            }
            pending = match self.checkpoint() {
                // Not everything copied (another checkpoint held the lock): go again, since
                // the WAL restarts from its beginning only once all of it is in the database.
                // Commits made during the checkpoint arrive as a nudge.
                Ok(complete) => !complete,
                Err(error) => {
                    tracing::warn!(%error, "background WAL checkpoint failed; the writer will checkpoint inline");
                    false
                }
            };
            // Pace the checkpoints, remembering commits made meanwhile, but stop at once
            // when the queue closes.
            let until = std::time::Instant::now() + CHECKPOINT_INTERVAL;
            loop {
                let left = until.saturating_duration_since(std::time::Instant::now());
                match self.nudges.recv_timeout(left) {
                    Ok(()) => pending = true,
                    Err(mpsc::RecvTimeoutError::Timeout) => break,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
        }
    }

    /// Whether every frame committed when it started is now in the database.
    ///
    /// SQLite fsyncs the database file only when a checkpoint reaches the end of the WAL,
    /// which under steady load only the writer's inline checkpoint does: it then had to flush
    /// seconds of copied pages while every sender waited (measured: 15 to 40 ms). Flushing
    /// here, after each passive checkpoint, leaves it little to flush.
    fn checkpoint(&mut self) -> rusqlite::Result<bool> {
        // (busy, frames in the WAL, frames checkpointed)
        let (busy, log, done): (i64, i64, i64) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        if done > 0 && done != self.synced_frames {
            match self.db_file.sync_data() {
                Ok(()) => self.synced_frames = done,
                // Only a head start: the inline checkpoint fsyncs through SQLite anyway.
                Err(error) => tracing::warn!(%error, "cannot flush the queue database after a checkpoint"),
            }
        }
        Ok(busy == 0 && log == done)
    }
}

fn run_in_transaction<'a>(
    conn: &mut Connection,
    ctx: &Ctx,
    jobs: impl Iterator<Item = &'a mut Box<dyn Job>>,
) -> rusqlite::Result<()> {
    // IMMEDIATE takes the write lock up front: no upgrade failure half-way through a group.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in jobs {
        job.run(&tx, ctx)?;
    }
    tx.commit()
}

fn storage_error(error: &rusqlite::Error) -> LocalQueueError {
    LocalQueueError::Storage(error.to_string())
}

struct Candidate {
    receipt: Receipt,
    key: String,
    body: String,
    sent_at_ms: i64,
    last_failure: Option<String>,
}

fn receive_rows(conn: &Connection, ctx: &Ctx, max: usize) -> rusqlite::Result<Vec<Received>> {
    let mut out = Vec::with_capacity(max.min(MAX_GROUP));
    // Dead-lettered candidates leave room: look again until `max` or nothing visible is left.
    // Every candidate is deleted or made invisible, so the loop ends.
    while out.len() < max {
        let want = i64::try_from(max - out.len()).unwrap_or(i64::MAX);
        let candidates: Vec<Candidate> = conn
            .prepare_cached(
                "SELECT seq, message_id, key, body, receive_count, sent_at_ms, last_failure
                 FROM messages WHERE visible_at_ms <= ?1
                 ORDER BY visible_at_ms, seq LIMIT ?2",
            )?
            .query_map(params![ctx.now_ms, want], |row| {
                Ok(Candidate {
                    receipt: Receipt { seq: row.get(0)?, message_id: row.get(1)?, receive_count: row.get(4)? },
                    key: row.get(2)?,
                    body: row.get(3)?,
                    sent_at_ms: row.get(5)?,
                    last_failure: row.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        if candidates.is_empty() {
            break;
        }
        for candidate in candidates {
            let mut receipt = candidate.receipt;
            if receipt.receive_count >= ctx.max_receive_count {
                let reason = format!(
                    "exceeded maxReceiveCount ({}); last failure: {}",
                    ctx.max_receive_count,
                    candidate.last_failure.as_deref().unwrap_or("none")
                );
                // Every dead letter gets an ERROR line with its reason, this one included.
                tracing::error!(message_id = %receipt.message_id, key = %candidate.key, reason = %reason, "sent to the dead-letter queue");
                move_to_dead_letters(conn, ctx, &receipt, &reason)?;
                continue;
            }
            // Below max_receive_count (a u32), so no overflow.
            receipt.receive_count += 1;
            conn.prepare_cached("UPDATE messages SET receive_count = ?2, visible_at_ms = ?3 WHERE seq = ?1")?
                .execute(params![receipt.seq, receipt.receive_count, ctx.now_ms.saturating_add(ctx.visibility_ms)])?;
            out.push(Received {
                message_id: receipt.message_id.clone(),
                receive_count: receipt.receive_count,
                receipt,
                key: candidate.key,
                body: candidate.body,
                sent_at: timestamp(candidate.sent_at_ms),
            });
        }
    }
    Ok(out)
}

fn settle_rows(conn: &Connection, ctx: &Ctx, items: &[(Receipt, Settle)]) -> rusqlite::Result<usize> {
    let mut stale = 0;
    for (receipt, settle) in items {
        let done = match settle {
            Settle::Delete => delete_row(conn, receipt)?,
            Settle::RetryLater { delay, reason } => retry_row(conn, ctx, receipt, *delay, reason, false)?,
            Settle::DeadLetter { reason } => move_to_dead_letters(conn, ctx, receipt, reason)?,
            Settle::Postpone { delay, reason } => retry_row(conn, ctx, receipt, *delay, reason, true)?,
        };
        if !done {
            stale += 1;
        }
    }
    Ok(stale)
}

fn delete_row(conn: &Connection, receipt: &Receipt) -> rusqlite::Result<bool> {
    let deleted = conn
        .prepare_cached("DELETE FROM messages WHERE seq = ?1 AND message_id = ?2 AND receive_count = ?3")?
        .execute(params![receipt.seq, receipt.message_id, receipt.receive_count])?;
    Ok(deleted == 1)
}

/// `uncount`: give the delivery back (Settle::Postpone), so it does not count toward the
/// redrive to the dead letters.
fn retry_row(
    conn: &Connection,
    ctx: &Ctx,
    receipt: &Receipt,
    delay: Duration,
    reason: &str,
    uncount: bool,
) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE messages SET visible_at_ms = ?4, last_failure = ?5, receive_count = receive_count - ?6
             WHERE seq = ?1 AND message_id = ?2 AND receive_count = ?3 AND receive_count >= ?6",
        )?
        .execute(params![
            receipt.seq,
            receipt.message_id,
            receipt.receive_count,
            ctx.now_ms.saturating_add(millis(delay)),
            reason,
            i64::from(uncount)
        ])?;
    Ok(changed == 1)
}

fn move_to_dead_letters(conn: &Connection, ctx: &Ctx, receipt: &Receipt, reason: &str) -> rusqlite::Result<bool> {
    let copied = conn
        .prepare_cached(
            "INSERT INTO dead_letters (message_id, key, body, reason, receive_count, sent_at_ms, failed_at_ms)
             SELECT message_id, key, body, ?4, receive_count, sent_at_ms, ?5 FROM messages
             WHERE seq = ?1 AND message_id = ?2 AND receive_count = ?3",
        )?
        .execute(params![receipt.seq, receipt.message_id, receipt.receive_count, reason, ctx.now_ms])?;
    if copied == 0 {
        return Ok(false);
    }
    conn.prepare_cached("DELETE FROM messages WHERE seq = ?1")?.execute([receipt.seq])?;
    Ok(true)
}

/// A random UUIDv4 (SQS message ids are UUIDs): unique is all it must be.
fn new_message_id() -> String {
    let random = u128::from(fastrand::u64(..)) << 64 | u128::from(fastrand::u64(..));
    let v = (random & !(0xF << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        v >> 96,
        (v >> 80) & 0xFFFF,
        (v >> 64) & 0xFFFF,
        (v >> 48) & 0xFFFF,
        v & 0xFFFF_FFFF_FFFF
    )
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(millis).unwrap_or(0)
}

/// Times are written by this module; a value chrono cannot represent would mean a corrupt
/// row, and is shown as the epoch rather than failing the delivery.
fn timestamp(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_uuid_v4_shaped_and_distinct() {
        let a = new_message_id();
        let b = new_message_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }
}

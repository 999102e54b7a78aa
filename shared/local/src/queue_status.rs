//! The state of `serve`'s queues in one read: depth, in flight, oldest message age, dead
//! letters by reason, and the disposition statuses the sync saw without a mapping. Shared by
//! `vicibridge queue status` (on a data dir) and serve's `/status` page (on its open queues).

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use tracing::warn;
use vicibridge_runtime::worker::UnmappedStatusLog;

use crate::queue::{LocalQueueError, QueueOptions, SqliteQueue};
use crate::serve::{CRM_EVENTS_DB, LEAD_INJECTIONS_DB};

/// One queue and its dead letters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueStatus {
    /// `crm-events` or `lead-injections`.
    pub name: &'static str,
    /// Ready to be received now.
    pub visible: u64,
    /// Received and not settled, or waiting for a retry.
    pub in_flight: u64,
    /// Age of the oldest message on the queue (visible or in flight); `None`: empty. In JSON
    /// `oldest_age_secs`, whole seconds (what a script compares with a threshold).
    #[serde(rename = "oldest_age_secs", serialize_with = "whole_seconds")]
    pub oldest_age: Option<Duration>,
    /// Dead letters not replayed.
    pub dead_letters: u64,
    /// Those, counted by reason, most frequent first.
    pub dead_letters_by_reason: Vec<(String, u64)>,
}

fn whole_seconds<S: serde::Serializer>(age: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match age {
        Some(a) => s.serialize_some(&a.as_secs()),
        None => s.serialize_none(),
    }
}

impl QueueStatus {
    /// Messages waiting: visible plus in flight.
    pub fn depth(&self) -> u64 {
        self.visible + self.in_flight
    }
}

/// Everything `queue status` shows for a data dir.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServeQueuesStatus {
    /// The queues that exist in the data dir (serve creates both at its first start).
    pub queues: Vec<QueueStatus>,
    /// Disposition statuses synced without a mapping in the last 30 days, by number of
    /// calls, most frequent first.
    pub unmapped_statuses: Vec<(String, u64)>,
}

/// The status of one open queue.
pub async fn queue_status(name: &'static str, queue: &SqliteQueue) -> Result<QueueStatus, LocalQueueError> {
    let stats = queue.stats().await?;
    let oldest_age = queue.oldest_sent_at().await?.map(|t| (Utc::now() - t).to_std().unwrap_or(Duration::ZERO));
    Ok(QueueStatus {
        name,
        visible: stats.visible,
        in_flight: stats.in_flight,
        oldest_age,
        dead_letters: stats.dead,
        dead_letters_by_reason: queue.dead_letter_reasons().await?,
    })
}

/// The status of serve's open queues (what `/status` shows).
pub async fn serve_queues_status(
    crm_events: &SqliteQueue,
    lead_injections: &SqliteQueue,
) -> Result<ServeQueuesStatus, LocalQueueError> {
    Ok(ServeQueuesStatus {
        queues: vec![
            queue_status("crm-events", crm_events).await?,
            queue_status("lead-injections", lead_injections).await?,
        ],
        unmapped_statuses: crm_events.unmapped_statuses().await?,
    })
}

/// The status of the queues in `data_dir`, opened for the read (serve may be running).
/// A queue file serve has not created yet is left out.
pub async fn data_dir_status(data_dir: &Path) -> Result<ServeQueuesStatus, LocalQueueError> {
    let mut out = ServeQueuesStatus::default();
    for (name, file) in [("crm-events", CRM_EVENTS_DB), ("lead-injections", LEAD_INJECTIONS_DB)] {
        let path = data_dir.join(file);
        if !path.exists() {
            continue;
        }
        let queue = SqliteQueue::open(&path, QueueOptions::default())?;
        out.queues.push(queue_status(name, &queue).await?);
        if name == "crm-events" {
            out.unmapped_statuses = queue.unmapped_statuses().await?;
        }
    }
    Ok(out)
}

#[async_trait::async_trait]
impl UnmappedStatusLog for SqliteQueue {
    async fn note(&self, key: &str, status: &str) {
        if let Err(e) = self.note_unmapped(key, status).await {
            warn!(key, status, error = %e, "cannot record the unmapped status for queue status");
        }
    }
}

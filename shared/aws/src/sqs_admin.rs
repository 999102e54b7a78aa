//! Operator tools on the stack's SQS queues (`vicibridge queue status`, `vicibridge dlq …`):
//! counts, peeking at a dead-letter queue without consuming it, moving dead letters back to
//! their source queue (SQS `StartMessageMoveTask` for a whole DLQ, receive-and-resend for a
//! filtered replay) and purging.
//!
//! A dead letter keeps its body (the envelope, idempotency key inside) and its
//! `idempotency_key` attribute; a resent one carries `failure_history`, the reasons it was
//! dead-lettered for so far.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName};
use chrono::{DateTime, Utc};

use crate::config_source::sdk_error_message;
use crate::sqs::{FAILURE_REASON_ATTRIBUTE, IDEMPOTENCY_KEY_ATTRIBUTE, MAX_FAILURE_REASON_BYTES};

/// Message attribute: earlier reasons a replayed dead letter was dead-lettered for, oldest
/// first, separated by ` | `.
pub const FAILURE_HISTORY_ATTRIBUTE: &str = "failure_history";

/// While peeking, received messages stay hidden this long (they are made visible again at
/// once afterwards; this only bounds a crash in between).
const PEEK_VISIBILITY_SECS: i32 = 30;

#[derive(Debug, thiserror::Error)]
#[error("SQS {action} on {queue_url} failed: {message}")]
pub struct AdminError {
    action: &'static str,
    queue_url: String,
    message: String,
}

fn error<E, R>(action: &'static str, queue_url: &str) -> impl FnOnce(aws_sdk_sqs::error::SdkError<E, R>) -> AdminError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let queue_url = queue_url.to_owned();
    move |e| AdminError { action, queue_url, message: sdk_error_message(&e) }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

pub async fn counts(client: &Client, queue_url: &str) -> Result<QueueCounts, AdminError> {
    let out = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(error("GetQueueAttributes", queue_url))?;
    let attrs = out.attributes.unwrap_or_default();
    let get = |name: QueueAttributeName| attrs.get(&name).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(QueueCounts {
        visible: get(QueueAttributeName::ApproximateNumberOfMessages),
        in_flight: get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        delayed: get(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
    })
}

/// One message on a dead-letter queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// The `idempotency_key` attribute (empty if the message has none).
    pub key: String,
    /// `failure_reason`; a message moved by the redrive policy (maxReceiveCount) has none.
    pub reason: String,
    /// Earlier reasons (`failure_history`), oldest first.
    pub history: Vec<String>,
    /// When it reached the DLQ (SQS's SentTimestamp).
    pub sent_at: Option<DateTime<Utc>>,
}

impl DeadMessage {
    fn from_sdk(m: aws_sdk_sqs::types::Message) -> DeadMessage {
        let sent_at = m
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_millis);
        let attrs: HashMap<String, String> = m
            .message_attributes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| v.string_value.map(|s| (k, s)))
            .collect();
        let history = attrs
            .get(FAILURE_HISTORY_ATTRIBUTE)
            .map(|h| h.split(" | ").map(str::to_owned).collect())
            .unwrap_or_default();
        DeadMessage {
            message_id: m.message_id.unwrap_or_default(),
            receipt_handle: m.receipt_handle.unwrap_or_default(),
            body: m.body.unwrap_or_default(),
            key: attrs.get(IDEMPOTENCY_KEY_ATTRIBUTE).cloned().unwrap_or_default(),
            reason: attrs
                .get(FAILURE_REASON_ATTRIBUTE)
                .cloned()
                .unwrap_or_else(|| "exceeded maxReceiveCount (redrive policy)".to_owned()),
            history,
            sent_at,
        }
    }
}

async fn receive_hidden(
    client: &Client,
    queue_url: &str,
    visibility_secs: i32,
) -> Result<Vec<DeadMessage>, AdminError> {
    let out = client
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .visibility_timeout(visibility_secs)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
        .send()
        .await
        .map_err(error("ReceiveMessage", queue_url))?;
    Ok(out.messages.unwrap_or_default().into_iter().map(DeadMessage::from_sdk).collect())
}

/// Makes received messages visible again.
async fn release(client: &Client, queue_url: &str, messages: &[DeadMessage]) -> Result<(), AdminError> {
    for chunk in messages.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&m.receipt_handle)
                    .visibility_timeout(0)
                    .build()
                    .ok()
            })
            .collect();
        client
            .change_message_visibility_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(error("ChangeMessageVisibilityBatch", queue_url))?;
    }
    Ok(())
}

/// Up to `max` messages of the queue, without consuming them: each is received (hidden for a
/// moment) and made visible again. Their receive counts grow, which a DLQ (no redrive policy
/// of its own) does not act on.
pub async fn peek(client: &Client, queue_url: &str, max: usize) -> Result<Vec<DeadMessage>, AdminError> {
    let mut seen = Vec::new();
    while seen.len() < max {
        let got = receive_hidden(client, queue_url, PEEK_VISIBILITY_SECS).await?;
        if got.is_empty() {
            break;
        }
        seen.extend(got);
    }
    release(client, queue_url, &seen).await?;
    seen.truncate(max);
    Ok(seen)
}

/// Receive-and-resend: every DLQ message `select` picks goes back to `queue_url` with its
/// body, key and reason history, then is deleted from the DLQ; the others are made visible
/// again. `progress` is called after each message moved. Returns how many moved.
pub async fn resend(
    client: &Client,
    dlq_url: &str,
    queue_url: &str,
    select: impl Fn(&DeadMessage) -> bool,
    progress: impl Fn(),
) -> Result<usize, AdminError> {
    let mut skipped = Vec::new();
    let mut moved = 0;
    let result = async {
        loop {
            let got = receive_hidden(client, dlq_url, 120).await?;
            if got.is_empty() {
                return Ok::<(), AdminError>(());
            }
            for m in got {
                if !select(&m) {
                    skipped.push(m);
                    continue;
                }
                let mut history = m.history.clone();
                history.push(m.reason.clone());
                let history = cut(&history.join(" | "));
                let mut send = client.send_message().queue_url(queue_url).message_body(&m.body);
                for (name, value) in
                    [(IDEMPOTENCY_KEY_ATTRIBUTE, m.key.as_str()), (FAILURE_HISTORY_ATTRIBUTE, &history)]
                {
                    if value.is_empty() {
                        continue;
                    }
                    if let Ok(attr) = aws_sdk_sqs::types::MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(value)
                        .build()
                    {
                        send = send.message_attributes(name, attr);
                    }
                }
                send.send().await.map_err(error("SendMessage", queue_url))?;
                // Sent before deleted: a failure in between leaves a duplicate, never a loss;
                // the idempotency key makes the duplicate a no-op.
                delete(client, dlq_url, &m).await?;
                moved += 1;
                progress();
            }
        }
    }
    .await;
    release(client, dlq_url, &skipped).await?;
    result.map(|()| moved)
}

/// Deletes one received DLQ message.
async fn delete(client: &Client, dlq_url: &str, m: &DeadMessage) -> Result<(), AdminError> {
    client
        .delete_message()
        .queue_url(dlq_url)
        .receipt_handle(&m.receipt_handle)
        .send()
        .await
        .map_err(error("DeleteMessage", dlq_url))?;
    Ok(())
}

/// Deletes the DLQ messages `select` picks (the others are made visible again).
pub async fn delete_where(
    client: &Client,
    dlq_url: &str,
    select: impl Fn(&DeadMessage) -> bool,
) -> Result<usize, AdminError> {
    let mut skipped = Vec::new();
    let mut deleted = 0;
    loop {
        let got = receive_hidden(client, dlq_url, 120).await?;
        if got.is_empty() {
            break;
        }
        for m in got {
            if select(&m) {
                delete(client, dlq_url, &m).await?;
                deleted += 1;
            } else {
                skipped.push(m);
            }
        }
    }
    release(client, dlq_url, &skipped).await?;
    Ok(deleted)
}

/// SQS PurgeQueue: everything on the queue, at once (SQS allows one purge per 60 s).
pub async fn purge(client: &Client, queue_url: &str) -> Result<(), AdminError> {
    client.purge_queue().queue_url(queue_url).send().await.map_err(error("PurgeQueue", queue_url))?;
    Ok(())
}

async fn queue_arn(client: &Client, queue_url: &str) -> Result<String, AdminError> {
    let out = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(error("GetQueueAttributes", queue_url))?;
    out.attributes.unwrap_or_default().remove(&QueueAttributeName::QueueArn).ok_or_else(|| AdminError {
        action: "GetQueueAttributes",
        queue_url: queue_url.to_owned(),
        message: "no QueueArn in the answer".into(),
    })
}

/// The state of a message move task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoveProgress {
    pub status: String,
    pub moved: u64,
    pub to_move: Option<u64>,
    pub failure: Option<String>,
}

/// SQS StartMessageMoveTask from the DLQ to `queue_url` (every message, by SQS itself).
/// Returns the task's handle for [`move_progress`].
pub async fn start_move(client: &Client, dlq_url: &str, queue_url: &str) -> Result<String, AdminError> {
    let source = queue_arn(client, dlq_url).await?;
    let destination = queue_arn(client, queue_url).await?;
    let out = client
        .start_message_move_task()
        .source_arn(&source)
        .destination_arn(destination)
        .send()
        .await
        .map_err(error("StartMessageMoveTask", dlq_url))?;
    Ok(out.task_handle.unwrap_or_default())
}

/// The latest move task of the DLQ.
pub async fn move_progress(client: &Client, dlq_url: &str) -> Result<Option<MoveProgress>, AdminError> {
    let source = queue_arn(client, dlq_url).await?;
    let out = client
        .list_message_move_tasks()
        .source_arn(source)
        .max_results(1)
        .send()
        .await
        .map_err(error("ListMessageMoveTasks", dlq_url))?;
    Ok(out.results.unwrap_or_default().into_iter().next().map(|t| MoveProgress {
        status: t.status.unwrap_or_default(),
        moved: t.approximate_number_of_messages_moved.max(0) as u64,
        to_move: t.approximate_number_of_messages_to_move.map(|n| n.max(0) as u64),
        failure: t.failure_reason,
    }))
}

/// Waits for the move task to end, reporting progress; returns the messages moved.
pub async fn wait_for_move(
    client: &Client,
    dlq_url: &str,
    progress: impl Fn(&MoveProgress),
) -> Result<u64, AdminError> {
    loop {
        match move_progress(client, dlq_url).await? {
            Some(p) if p.status == "RUNNING" => progress(&p),
            Some(p) => {
                progress(&p);
                if let Some(reason) = p.failure.filter(|_| p.status == "FAILED") {
                    return Err(AdminError {
                        action: "StartMessageMoveTask",
                        queue_url: dlq_url.into(),
                        message: reason,
                    });
                }
                return Ok(p.moved);
            }
            None => return Ok(0),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A `failure_history` value within SQS's attribute limits: the newest reasons.
pub fn cut_history(text: &str) -> String {
    cut(text)
}

fn cut(text: &str) -> String {
    let max = 4 * MAX_FAILURE_REASON_BYTES;
    if text.len() <= max {
        return text.to_owned();
    }
    // Keep the newest reasons (the end).
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

//! SQS adapter: the producer side of the event queues ([`SqsQueue`] implements
//! [`Queue`]), the consumer helpers the crm-sync Lambda needs (`retry_later`, `receive`,
//! `delete`), and [`SqsDeadLetters`], which puts permanent failures on the DLQ at once.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
use vicibridge_core::ports::{OutgoingMessage, Queue, QueueError};

use crate::config_source::sdk_error_message;

/// Message attribute carrying the envelope's idempotency key (also on DLQ messages).
pub const IDEMPOTENCY_KEY_ATTRIBUTE: &str = "idempotency_key";
/// Message attribute carrying why a message was dead-lettered.
pub const FAILURE_REASON_ATTRIBUTE: &str = "failure_reason";
/// SQS's largest visibility timeout (12 hours).
pub const MAX_VISIBILITY_TIMEOUT_SECS: i32 = 43_200;
/// Longest `failure_reason` kept: enough for a CRM's error message, small next to the
/// message size limit (attributes count towards it).
pub const MAX_FAILURE_REASON_BYTES: usize = 1_024;
/// SQS's ReceiveMessage limits.
const MAX_RECEIVE_BATCH: u32 = 10;
const MAX_WAIT_SECS: u64 = 20;

#[derive(Debug, thiserror::Error)]
pub enum SqsError {
    #[error("SQS SendMessage to {queue_url} failed: {message}")]
    Send { queue_url: String, message: String },
    #[error("SQS ChangeMessageVisibility on {queue_url} failed: {message}")]
    ChangeVisibility { queue_url: String, message: String },
    #[error("SQS ReceiveMessage from {queue_url} failed: {message}")]
    Receive { queue_url: String, message: String },
    #[error("SQS DeleteMessage on {queue_url} failed: {message}")]
    Delete { queue_url: String, message: String },
    /// A request could not be built (a bug, not an outage).
    #[error("SQS request could not be built: {0}")]
    Build(String),
}

impl From<SqsError> for QueueError {
    fn from(e: SqsError) -> Self {
        QueueError::Unavailable(e.to_string())
    }
}

/// One received message. `attributes` holds the String message attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub attributes: HashMap<String, String>,
    /// SQS's ApproximateReceiveCount (1 on the first delivery).
    pub receive_count: u32,
}

/// An SQS queue, addressed by URL.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsQueue { client, queue_url: queue_url.into() }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Hands a received message back to the queue, visible again after `delay` (rounded up
    /// to whole seconds, clamped to SQS's 0..=43200 s). SQS still rejects a timeout that
    /// would end more than 12 hours after the first receive; the message then simply
    /// reappears after the queue's own visibility timeout.
    pub async fn retry_later(&self, receipt_handle: &str, delay: Duration) -> Result<(), SqsError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(visibility_timeout_secs(delay))
            .send()
            .await
            .map_err(|e| SqsError::ChangeVisibility {
                queue_url: self.queue_url.clone(),
                message: sdk_error_message(&e),
            })?;
        Ok(())
    }

    /// Up to `max` messages (clamped to 1..=10), long-polling up to `wait` (at most 20 s),
    /// with every String message attribute and the receive count.
    pub async fn receive(&self, max: u32, wait: Duration) -> Result<Vec<ReceivedMessage>, SqsError> {
        let max = max.clamp(1, MAX_RECEIVE_BATCH) as i32;
        let wait = wait.as_secs().min(MAX_WAIT_SECS) as i32;
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| SqsError::Receive { queue_url: self.queue_url.clone(), message: sdk_error_message(&e) })?;
        Ok(out.messages.unwrap_or_default().into_iter().map(received).collect())
    }

    pub async fn delete(&self, receipt_handle: &str) -> Result<(), SqsError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| SqsError::Delete { queue_url: self.queue_url.clone(), message: sdk_error_message(&e) })?;
        Ok(())
    }

    async fn send_with(&self, body: &str, attributes: &[(&str, &str)]) -> Result<(), SqsError> {
        let mut request = self.client.send_message().queue_url(&self.queue_url).message_body(body);
        for (name, value) in attributes {
            // SQS rejects empty attribute values; an empty one carries nothing anyway.
            if value.is_empty() {
                continue;
            }
            request = request.message_attributes(*name, string_attribute(value)?);
        }
        request
            .send()
            .await
            .map_err(|e| SqsError::Send { queue_url: self.queue_url.clone(), message: sdk_error_message(&e) })?;
        Ok(())
    }
}

#[async_trait]
impl Queue for SqsQueue {
    /// Returns once SQS has acknowledged the message, which SQS does only after storing it
    /// redundantly.
    async fn send(&self, message: &OutgoingMessage) -> Result<(), QueueError> {
        self.send_with(&message.body, &[(IDEMPOTENCY_KEY_ATTRIBUTE, &message.key)]).await?;
        Ok(())
    }
}

/// The dead-letter queue of a worker's source queue. Permanent failures are sent here at
/// once, with their reason, instead of waiting for `maxReceiveCount` redeliveries.
#[derive(Clone, Debug)]
pub struct SqsDeadLetters {
    queue: SqsQueue,
}

impl SqsDeadLetters {
    pub fn new(client: Client, dlq_url: impl Into<String>) -> Self {
        SqsDeadLetters { queue: SqsQueue::new(client, dlq_url) }
    }

    pub fn dlq_url(&self) -> &str {
        self.queue.queue_url()
    }

    /// Sends `body` (the original envelope, unchanged) with the String attributes
    /// `failure_reason` (sanitised, truncated to [`MAX_FAILURE_REASON_BYTES`]) and
    /// `idempotency_key`. The caller deletes the source message only after this succeeds.
    pub async fn send(&self, body: &str, key: &str, reason: &str) -> Result<(), SqsError> {
        self.send_after(body, key, reason, "").await
    }

    /// [`SqsDeadLetters::send`] for a message that was dead-lettered before and replayed
    /// (`vicibridge dlq replay`): `history` is its earlier reasons, oldest first, joined by
    /// ` | ` (the `failure_history` attribute; empty for none), so the reason history stays.
    pub async fn send_after(&self, body: &str, key: &str, reason: &str, history: &str) -> Result<(), SqsError> {
        let reason = failure_reason(reason);
        let history = crate::sqs_admin::cut_history(history);
        self.queue
            .send_with(
                body,
                &[
                    (FAILURE_REASON_ATTRIBUTE, &reason),
                    (IDEMPOTENCY_KEY_ATTRIBUTE, key),
                    (crate::sqs_admin::FAILURE_HISTORY_ATTRIBUTE, &history),
                ],
            )
            .await
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, SqsError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| SqsError::Build(e.to_string()))
}

fn received(m: aws_sdk_sqs::types::Message) -> ReceivedMessage {
    let receive_count = m
        .attributes
        .as_ref()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let attributes = m
        .message_attributes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, value)| value.string_value.map(|v| (name, v)))
        .collect();
    ReceivedMessage {
        message_id: m.message_id.unwrap_or_default(),
        receipt_handle: m.receipt_handle.unwrap_or_default(),
        body: m.body.unwrap_or_default(),
        attributes,
        receive_count,
    }
}

/// Whole seconds, rounded up so a Retry-After is never cut short, within SQS's range.
fn visibility_timeout_secs(delay: Duration) -> i32 {
    let secs = delay.as_secs().saturating_add(u64::from(delay.subsec_nanos() > 0));
    secs.min(MAX_VISIBILITY_TIMEOUT_SECS as u64) as i32
}

/// A reason SQS accepts: characters outside SQS's allowed set (most control characters)
/// become spaces, the text is cut on a character boundary, and an empty reason is named.
fn failure_reason(reason: &str) -> String {
    let suffix = "…";
    let mut out = String::with_capacity(reason.len().min(MAX_FAILURE_REASON_BYTES));
    for c in reason.trim().chars() {
        let c = if allowed_by_sqs(c) { c } else { ' ' };
        if out.len() + c.len_utf8() > MAX_FAILURE_REASON_BYTES - suffix.len() {
            out.push_str(suffix);
            break;
        }
        out.push(c);
    }
    if out.trim().is_empty() { "unspecified".to_owned() } else { out }
}

/// SQS message text: #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF.
fn allowed_by_sqs(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_is_rounded_up_and_clamped() {
        assert_eq!(visibility_timeout_secs(Duration::ZERO), 0);
        assert_eq!(visibility_timeout_secs(Duration::from_millis(1)), 1);
        assert_eq!(visibility_timeout_secs(Duration::from_secs(30)), 30);
        assert_eq!(visibility_timeout_secs(Duration::from_millis(30_500)), 31);
        assert_eq!(visibility_timeout_secs(Duration::from_secs(43_200)), 43_200);
        assert_eq!(visibility_timeout_secs(Duration::from_secs(86_400)), 43_200);
        assert_eq!(visibility_timeout_secs(Duration::MAX), 43_200);
    }

    #[test]
    fn failure_reason_is_kept_when_short() {
        assert_eq!(
            failure_reason("HubSpot 400: Property \"x\" does not exist"),
            "HubSpot 400: Property \"x\" does not exist"
        );
    }

    #[test]
    fn failure_reason_is_truncated_on_a_char_boundary() {
        let long = "é".repeat(2_000);
        let out = failure_reason(&long);
        assert!(out.len() <= MAX_FAILURE_REASON_BYTES);
        assert!(out.ends_with('…'));
        assert!(out.starts_with("éé"));
    }

    #[test]
    fn failure_reason_drops_characters_sqs_rejects() {
        assert_eq!(failure_reason("bad\u{0}byte\u{1b}[0m\tok\nline"), "bad byte [0m\tok\nline");
        assert_eq!(failure_reason("\u{FFFE}"), "unspecified");
        assert_eq!(failure_reason("   "), "unspecified");
        assert_eq!(failure_reason(""), "unspecified");
    }
}

//! The SQS adapter against moto's server: real wire protocol, real redrive.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use vicibridge_aws::sqs::{
    FAILURE_REASON_ATTRIBUTE, IDEMPOTENCY_KEY_ATTRIBUTE, MAX_FAILURE_REASON_BYTES, SqsDeadLetters, SqsQueue,
};
use vicibridge_core::ports::{OutgoingMessage, Queue, QueueError};
use vicibridge_tests::moto::Moto;

/// Long enough for moto's long poll to see a message made visible a moment ago.
const WAIT: Duration = Duration::from_secs(1);

fn message(key: &str) -> OutgoingMessage {
    OutgoingMessage { key: key.to_owned(), body: format!(r#"{{"v":1,"key":"{key}","payload":{{"dispo":"SALE"}}}}"#) }
}

#[tokio::test]
async fn send_receive_delete_carries_the_idempotency_key() {
    let moto = Moto::start().await;
    let url = moto.create_queue("crm-events", &[]).await;
    let queue = SqsQueue::new(moto.sqs(), &url);
    let sent = message("vicidial:1700000000.123:dispo");

    queue.send(&sent).await.unwrap();
    let got = queue.receive(10, WAIT).await.unwrap();

    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, sent.body);
    assert_eq!(got[0].attributes.get(IDEMPOTENCY_KEY_ATTRIBUTE), Some(&sent.key));
    assert_eq!(got[0].receive_count, 1);
    assert!(!got[0].message_id.is_empty());
    assert_eq!(moto.queue_depth(&url).await, (0, 1));

    queue.delete(&got[0].receipt_handle).await.unwrap();
    assert_eq!(moto.queue_depth(&url).await, (0, 0));
}

#[tokio::test]
async fn a_message_received_max_receive_count_times_moves_to_the_dlq() {
    let moto = Moto::start().await;
    let (url, dlq_url) = moto.create_queue_with_dlq("crm-events", 2).await;
    let queue = SqsQueue::new(moto.sqs(), &url);
    let sent = message("vicidial:1700000000.456:dispo");
    queue.send(&sent).await.unwrap();

    // A worker that keeps failing: each delivery is handed back at once, never deleted.
    let mut deliveries = 0;
    for _ in 0..10 {
        let got = queue.receive(10, WAIT).await.unwrap();
        let Some(m) = got.first() else { break };
        assert_eq!(got.len(), 1);
        deliveries += 1;
        assert_eq!(m.receive_count, deliveries);
        queue.retry_later(&m.receipt_handle, Duration::ZERO).await.unwrap();
    }

    assert_eq!(deliveries, 2, "maxReceiveCount 2 allows exactly two deliveries");
    assert_eq!(moto.queue_depth(&url).await, (0, 0));
    let dead = SqsQueue::new(moto.sqs(), &dlq_url).receive(10, WAIT).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, sent.body);
    assert_eq!(dead[0].attributes.get(IDEMPOTENCY_KEY_ATTRIBUTE), Some(&sent.key));
}

#[tokio::test]
async fn dead_letters_send_puts_the_reason_on_the_dlq() {
    let moto = Moto::start().await;
    let (url, dlq_url) = moto.create_queue_with_dlq("crm-events", 5).await;
    let dead_letters = SqsDeadLetters::new(moto.sqs(), &dlq_url);
    assert_eq!(dead_letters.dlq_url(), dlq_url);
    let body = message("k").body;

    dead_letters.send(&body, "hubspot:123:call", "HubSpot 400: Property \"vb_uniqueid\" does not exist").await.unwrap();
    // A CRM's whole HTML error page, with a control character SQS would refuse.
    let huge = format!("Salesforce 400:\u{0}{}", "<p>INVALID_FIELD</p>".repeat(500));
    dead_letters.send(&body, "salesforce:00Q:lead", &huge).await.unwrap();

    let dlq = SqsQueue::new(moto.sqs(), &dlq_url);
    let mut got = dlq.receive(10, WAIT).await.unwrap();
    if got.len() < 2 {
        got.extend(dlq.receive(10, WAIT).await.unwrap());
    }
    got.sort_by(|a, b| a.attributes[IDEMPOTENCY_KEY_ATTRIBUTE].cmp(&b.attributes[IDEMPOTENCY_KEY_ATTRIBUTE]));
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|m| m.body == body));

    let hubspot = &got[0];
    assert_eq!(hubspot.attributes[IDEMPOTENCY_KEY_ATTRIBUTE], "hubspot:123:call");
    assert_eq!(hubspot.attributes[FAILURE_REASON_ATTRIBUTE], "HubSpot 400: Property \"vb_uniqueid\" does not exist");

    let salesforce = &got[1];
    assert_eq!(salesforce.attributes[IDEMPOTENCY_KEY_ATTRIBUTE], "salesforce:00Q:lead");
    let reason = &salesforce.attributes[FAILURE_REASON_ATTRIBUTE];
    assert!(reason.starts_with("Salesforce 400: <p>INVALID_FIELD</p>"), "{reason}");
    assert!(reason.len() <= MAX_FAILURE_REASON_BYTES, "{} bytes", reason.len());
    assert!(reason.ends_with('…'));

    // Straight to the DLQ: the source queue never saw them.
    assert_eq!(moto.queue_depth(&url).await, (0, 0));
}

#[tokio::test]
async fn retry_later_hides_the_message_until_its_delay() {
    let moto = Moto::start().await;
    // Visibility timeout 0: without retry_later a received message is visible again at once.
    let url = moto.create_queue("crm-events", &[(QueueAttributeName::VisibilityTimeout, "0")]).await;
    let queue = SqsQueue::new(moto.sqs(), &url);
    queue.send(&message("k1")).await.unwrap();

    let first = queue.receive(1, WAIT).await.unwrap();
    assert_eq!(first.len(), 1);
    let again = queue.receive(1, WAIT).await.unwrap();
    assert_eq!(again.len(), 1, "visibility 0 redelivers at once");
    assert_eq!(again[0].receive_count, 2);

    queue.retry_later(&again[0].receipt_handle, Duration::from_secs(600)).await.unwrap();
    assert!(queue.receive(10, Duration::ZERO).await.unwrap().is_empty());
    assert_eq!(moto.queue_depth(&url).await, (0, 1), "hidden, not deleted");

    // Delay over (set to 0): delivered again.
    queue.retry_later(&again[0].receipt_handle, Duration::ZERO).await.unwrap();
    let back = queue.receive(1, WAIT).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].receive_count, 3);
}

#[tokio::test]
async fn retry_later_with_a_bad_receipt_is_an_error() {
    let moto = Moto::start().await;
    let url = moto.create_queue("crm-events", &[]).await;
    let err = SqsQueue::new(moto.sqs(), &url).retry_later("not-a-receipt", Duration::from_secs(5)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("ChangeMessageVisibility") && text.contains("ReceiptHandleIsInvalid"), "{text}");
}

#[tokio::test]
async fn send_to_a_missing_queue_is_unavailable_with_the_reason() {
    let moto = Moto::start().await;
    let url = format!("{}/123456789012/no-such-queue", moto.endpoint());

    let err = SqsQueue::new(moto.sqs(), &url).send(&message("k")).await.unwrap_err();

    assert!(matches!(err, QueueError::Unavailable(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("no-such-queue"), "{text}");
    assert!(text.contains("NonExistentQueue") || text.contains("QueueDoesNotExist"), "{text}");
}

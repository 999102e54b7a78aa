//! `vicibridge queue status` and `vicibridge dlq …` against a real serve data dir (the same
//! SQLite queue `serve` uses, then `serve` itself applying what was replayed) and against SQS
//! (moto).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use chrono::Utc;
use common::{Serve, TOKEN, dispo_query};
use vicibridge_aws::sqs::SqsDeadLetters;
use vicibridge_core::Envelope;
use vicibridge_local::queue::{QueueOptions, SqliteQueue};
use vicibridge_tests::moto::Moto;
use vicibridge_vicidial::{CallUrl, VicidialQuery, to_event};

fn envelope(lead: u64, uniqueid: &str) -> Envelope {
    let query = VicidialQuery::parse(&dispo_query(TOKEN, lead, uniqueid, "SALE"));
    Envelope::new(to_event(CallUrl::Dispo, &query).unwrap(), Utc::now())
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(common::bin()).args(args).envs(env.iter().copied()).stdin(Stdio::null()).output().unwrap()
}

fn ok(out: Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    text
}

/// Dead letters the way serve's worker makes them: received, then dead-lettered with a reason.
async fn dead_letter(dir: &Path, items: &[(&Envelope, &str)]) {
    let queue = SqliteQueue::open(&dir.join("crm-events.db"), QueueOptions::default()).unwrap();
    for (env, _) in items {
        queue
            .send(&vicibridge_core::ports::OutgoingMessage { key: env.key.to_string(), body: env.to_json() })
            .await
            .unwrap();
    }
    let received = queue.receive(items.len()).await.unwrap();
    for (message, (_, reason)) in received.iter().zip(items) {
        assert!(queue.dead_letter(&message.receipt, reason).await.unwrap());
    }
}

use vicibridge_core::ports::Queue as _;

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_of_a_serve_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let envs: Vec<Envelope> = (0..3).map(|i| envelope(500 + i, &format!("1795305000.{i}"))).collect();
    dead_letter(
        &data,
        &[
            (&envs[0], "HubSpot 400: Property \"x\" does not exist"),
            (&envs[1], "HubSpot 400: Property \"x\" does not exist"),
            (&envs[2], "unknown lead 502"),
        ],
    )
    .await;
    let d = data.to_str().unwrap();

    let status = ok(run(&["queue", "status", "--data-dir", d], &[]));
    assert!(status.contains("crm-events: 0 visible, 0 in flight, oldest message none, 3 dead letter(s)"), "{status}");
    assert!(status.contains("2  HubSpot 400: Property \"x\" does not exist"), "{status}");
    assert!(status.contains("1  unknown lead 502"), "{status}");
    assert!(status.contains("lead-injections: no queue"), "{status}");

    let list = ok(run(&["dlq", "list", "--data-dir", d, "--reason", "hubspot"], &[]));
    assert!(list.contains(envs[0].key.as_str()) && list.contains(envs[1].key.as_str()), "{list}");
    assert!(!list.contains(envs[2].key.as_str()) && list.contains("2 dead letter(s)"), "{list}");

    // Purge asks first; without a terminal and without --yes it refuses and deletes nothing.
    let refused = run(&["dlq", "purge", "--data-dir", d], &[]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));

    let replayed = ok(run(&["dlq", "replay", "--data-dir", d, "--reason", "HUBSPOT 400"], &[]));
    assert!(replayed.contains("replayed 2 dead letter(s) onto crm-events"), "{replayed}");
    let again = ok(run(&["dlq", "replay", "--data-dir", d, "--reason", "HUBSPOT 400"], &[]));
    assert!(again.contains("replayed 0 dead letter(s)"), "{again}");
    let all = ok(run(&["dlq", "replay", "--data-dir", d, "--all"], &[]));
    assert!(all.contains("replayed 1 dead letter(s)"), "{all}");
    assert!(ok(run(&["dlq", "replay", "--data-dir", d, "--all"], &[])).contains("replayed 0 dead letter(s)"));

    let status = ok(run(&["queue", "status", "--data-dir", d], &[]));
    assert!(status.contains("crm-events: 3 visible, 0 in flight") && status.contains("0 dead letter(s)"), "{status}");

    // The key keeps its history: when and why it died, and that it was replayed.
    let show = ok(run(&["dlq", "show", envs[2].key.as_str(), "--data-dir", d], &[]));
    assert!(show.contains("unknown lead 502") && show.contains("replayed 20"), "{show}");
    assert!(show.contains("\"uniqueid\": \"1795305000.2\""), "{show}");

    // serve applies each replayed dead letter exactly once.
    let config = common::write_config(dir.path());
    let secrets = common::write_secrets(dir.path());
    let mut serve = Serve::start(&config, &secrets, &data, "serve.log");
    serve.wait_records("the replayed dead letters", |r| r.len() >= 3);
    // A status the mapping does not know, twice for one call: one call in queue status.
    let unmapped = format!("{}/vicidial/dispo?{}", serve.base, dispo_query(TOKEN, 777, "1795305777.1", "ZZUNK"));
    for _ in 0..2 {
        assert!(reqwest::get(&unmapped).await.unwrap().status().is_success());
    }
    let drained = (0..300)
        .map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            ok(run(&["queue", "status", "--data-dir", d], &[]))
        })
        .find(|s| s.contains("crm-events: 0 visible, 0 in flight") && s.contains("ZZUNK"));
    let status = drained.expect("serve did not sync the unmapped disposition");
    assert!(status.contains("unmapped dispositions (last 30 days, calls):\n       1  ZZUNK"), "{status}");
    serve.stop();
    let mut per_key: HashMap<String, usize> = HashMap::new();
    for r in serve.dry_run_records() {
        *per_key.entry(r["key"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(per_key.len(), 4);
    assert!(envs.iter().all(|e| per_key[e.key.as_str()] == 1), "{per_key:?}");

    let purged = ok(run(&["dlq", "purge", "--data-dir", d, "--yes"], &[]));
    assert!(purged.contains("deleted 3 dead letter(s)"), "{purged}");
    assert!(!run(&["dlq", "show", envs[2].key.as_str(), "--data-dir", d], &[]).status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_on_sqs() {
    let moto = Moto::start().await;
    // Named the way CloudFormation names the template's queues, so --stack finds them.
    let queue = moto.create_queue("vb-test-CrmEventsQueue-1A2B3C", &[]).await;
    let dlq = moto.create_queue("vb-test-CrmEventsDLQ-4D5E6F", &[]).await;
    let dead = SqsDeadLetters::new(moto.sqs(), &dlq);
    let envs: Vec<Envelope> = (0..3).map(|i| envelope(600 + i, &format!("1795306000.{i}"))).collect();
    dead.send(&envs[0].to_json(), envs[0].key.as_str(), "HubSpot 400: bad property").await.unwrap();
    dead.send(&envs[1].to_json(), envs[1].key.as_str(), "HubSpot 400: bad property").await.unwrap();
    dead.send(&envs[2].to_json(), envs[2].key.as_str(), "unknown lead").await.unwrap();
    let env = [
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];

    let status = ok(run(&["queue", "status", "--stack", "vb-test"], &env));
    assert!(status.contains(&format!("{queue}: 0 visible")), "{status}");
    assert!(status.contains(&format!("{dlq}: 3 dead letter(s)")), "{status}");
    assert!(status.contains("2  HubSpot 400: bad property"), "{status}");
    // Peeking consumed nothing.
    assert_eq!(moto.queue_depth(&dlq).await, (3, 0));

    let list = ok(run(&["dlq", "list", "--queue-url", &queue, "--dlq-url", &dlq, "--reason", "unknown"], &env));
    assert!(list.contains(envs[2].key.as_str()) && list.contains("1 dead letter(s)"), "{list}");
    assert_eq!(moto.queue_depth(&dlq).await, (3, 0));

    let replayed = ok(run(&["dlq", "replay", "--stack", "vb-test", "--reason", "hubspot"], &env));
    assert!(replayed.contains("replayed 2 dead letter(s)"), "{replayed}");
    assert_eq!(moto.queue_depth(&dlq).await, (1, 0));
    assert_eq!(moto.queue_depth(&queue).await, (2, 0));
    // Back on the queue with their key and the reason they died for.
    let back = moto
        .sqs()
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(back.len(), 2);
    for m in &back {
        let attrs = m.message_attributes.clone().unwrap_or_default();
        let key = attrs["idempotency_key"].string_value.clone().unwrap();
        assert!(key == envs[0].key.as_str() || key == envs[1].key.as_str(), "{key}");
        assert_eq!(attrs["failure_history"].string_value.as_deref(), Some("HubSpot 400: bad property"));
        assert_eq!(Envelope::from_json(m.body.as_deref().unwrap()).unwrap().key.as_str(), key);
    }

    // --all: StartMessageMoveTask, or receive-and-resend where the service lacks it.
    let all = ok(run(&["dlq", "replay", "--stack", "vb-test", "--all"], &env));
    assert!(all.contains("replayed 1 dead letter(s)"), "{all}");
    assert_eq!(moto.queue_depth(&dlq).await.0, 0);
    let again = ok(run(&["dlq", "replay", "--stack", "vb-test", "--all"], &env));
    assert!(again.contains("replayed 0 dead letter(s)"), "{again}");

    dead.send(&envs[0].to_json(), envs[0].key.as_str(), "again").await.unwrap();
    let purged = ok(run(&["dlq", "purge", "--stack", "vb-test", "--yes"], &env));
    assert!(purged.contains("purged"), "{purged}");
    assert_eq!(moto.queue_depth(&dlq).await.0, 0);
}

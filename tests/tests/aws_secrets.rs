//! The Secrets Manager adapter against moto's server: read, cache, rotation, errors.

use std::sync::Arc;
use std::time::Duration;

use vicibridge_aws::secrets_manager::SecretsManagerStore;
use vicibridge_core::ports::{SecretStore, SecretsError};
use vicibridge_core::secrets::SecretDoc;
use vicibridge_tests::moto::{Moto, sdk_error};

const SECRET: &str = "vicibridge/test";
const V1: &str = r#"{"ingest_tokens": ["tok-one"], "hubspot": {"access_token": "pat-one"}}"#;
const V2: &str = r#"{"ingest_tokens": ["tok-two", "tok-one"], "hubspot": {"access_token": "pat-two"}}"#;

async fn create_secret(moto: &Moto, name: &str, value: &str) {
    moto.secrets_manager()
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("moto CreateSecret {name}: {}", sdk_error(&e)));
}

async fn rotate(moto: &Moto, name: &str, value: &str) {
    moto.secrets_manager()
        .put_secret_value()
        .secret_id(name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("moto PutSecretValue {name}: {}", sdk_error(&e)));
}

fn first_token(doc: &SecretDoc) -> &str {
    doc.ingest_tokens[0].expose()
}

#[tokio::test]
async fn reads_caches_and_refreshes_after_a_rotation() {
    let moto = Moto::start().await;
    create_secret(&moto, SECRET, V1).await;
    let store = SecretsManagerStore::new(moto.secrets_manager(), SECRET);

    let first = store.current().await.unwrap();
    assert_eq!(first_token(&first), "tok-one");
    let hubspot = first.hubspot.as_ref().unwrap();
    assert_eq!(hubspot.access_token.as_ref().unwrap().expose(), "pat-one");

    rotate(&moto, SECRET, V2).await;

    // Within the TTL (300 s by default): the very same cached document.
    let cached = store.current().await.unwrap();
    assert!(Arc::ptr_eq(&first, &cached));
    assert_eq!(first_token(&cached), "tok-one");

    let refreshed = store.refresh().await.unwrap();
    assert_eq!(first_token(&refreshed), "tok-two");
    assert_eq!(refreshed.ingest_tokens[1].expose(), "tok-one");
    assert!(Arc::ptr_eq(&refreshed, &store.current().await.unwrap()));
}

#[tokio::test]
async fn an_expired_ttl_reads_again() {
    let moto = Moto::start().await;
    create_secret(&moto, SECRET, V1).await;
    let store = SecretsManagerStore::new(moto.secrets_manager(), SECRET).with_ttl(Duration::ZERO);

    assert_eq!(first_token(&store.current().await.unwrap()), "tok-one");
    rotate(&moto, SECRET, V2).await;
    assert_eq!(first_token(&store.current().await.unwrap()), "tok-two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_read() {
    let moto = Moto::start().await;
    create_secret(&moto, SECRET, V1).await;
    let store = Arc::new(SecretsManagerStore::new(moto.secrets_manager(), SECRET));

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let store = Arc::clone(&store);
        tasks.spawn(async move { store.current().await.unwrap() });
    }
    let docs = tasks.join_all().await;
    assert!(docs.iter().all(|d| Arc::ptr_eq(d, &docs[0])), "a cold cache is read once, not once per caller");

    // A burst of refreshes (a batch meeting the same 401) costs at most two reads: the one
    // in flight when a caller arrives may predate the rotation it saw, the next cannot.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let store = Arc::clone(&store);
        tasks.spawn(async move { store.refresh().await.unwrap() });
    }
    let docs = tasks.join_all().await;
    let mut distinct: Vec<&Arc<SecretDoc>> = Vec::new();
    for d in &docs {
        if !distinct.iter().any(|seen| Arc::ptr_eq(seen, d)) {
            distinct.push(d);
        }
    }
    assert!(distinct.len() <= 2, "{} reads for 16 concurrent refreshes", distinct.len());
}

#[tokio::test]
async fn a_missing_secret_is_a_clear_error() {
    let moto = Moto::start().await;
    let store = SecretsManagerStore::new(moto.secrets_manager(), "vicibridge/absent");

    let err = store.current().await.unwrap_err();

    assert!(matches!(err, SecretsError::Unavailable(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("vicibridge/absent") && text.contains("not found"), "{text}");
}

#[tokio::test]
async fn invalid_secret_json_never_shows_the_secret() {
    let moto = Moto::start().await;
    let cases = [
        ("vicibridge/not-json", "hunter2-plain-text-secret"),
        ("vicibridge/wrong-type", r#"{"ingest_tokens": "hunter2-token-as-string"}"#),
        ("vicibridge/wrong-field", r#"{"vicidial": {"api_user": "api", "api_pass": 12345678, "x": "hunter2-extra"}}"#),
    ];
    for (name, value) in cases {
        create_secret(&moto, name, value).await;
        let store = SecretsManagerStore::new(moto.secrets_manager(), name);

        let err = store.current().await.unwrap_err();

        assert!(matches!(err, SecretsError::Invalid(_)), "{name}: {err:?}");
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(shown.contains(name), "{shown}");
            assert!(!shown.contains("hunter2") && !shown.contains("12345678"), "{name} leaked: {shown}");
        }
    }
}

#[tokio::test]
async fn a_broken_rotation_keeps_the_last_good_secret_for_current_but_fails_refresh() {
    let moto = Moto::start().await;
    create_secret(&moto, SECRET, V1).await;
    // TTL 0: every current() re-reads, so the broken value is seen at once.
    let store = SecretsManagerStore::new(moto.secrets_manager(), SECRET).with_ttl(Duration::ZERO);
    assert_eq!(first_token(&store.current().await.unwrap()), "tok-one");

    rotate(&moto, SECRET, r#"{"ingest_tokens": ["hunter2-new""#).await;

    assert_eq!(first_token(&store.current().await.unwrap()), "tok-one");
    let err = store.refresh().await.unwrap_err();
    assert!(matches!(err, SecretsError::Invalid(_)), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

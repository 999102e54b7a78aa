//! The AWS SDK's transport (`vicibridge_aws::sdk::http_client`, reqwest on the shared TLS
//! stack) as the SDK's own orchestrator drives it, against a real HTTP server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_secretsmanager::config::Credentials;
use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::post;

/// Longer than the SDK's stalled-upload grace period (5 s): an answer this slow must be waited
/// for, not taken for a stalled upload and asked again.
const SLOW_ANSWER: Duration = Duration::from_secs(7);

#[tokio::test]
async fn a_slow_answer_is_waited_for_and_the_request_sent_once() {
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&requests);
    let app = Router::new().route(
        "/",
        post(move || {
            let counted = Arc::clone(&counted);
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(SLOW_ANSWER).await;
                ([(CONTENT_TYPE, "application/x-amz-json-1.1")], r#"{"Name":"vicibridge","SecretString":"{}"}"#)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // As the tests' moto clients: no attempt timeout, the SDK's default stalled-stream protection.
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .http_client(vicibridge_aws::sdk::http_client())
        .load()
        .await;
    let secret = aws_sdk_secretsmanager::Client::new(&sdk).get_secret_value().secret_id("vicibridge").send().await;

    assert_eq!(secret.map(|s| s.secret_string().map(str::to_owned)).ok(), Some(Some("{}".to_owned())));
    assert_eq!(requests.load(Ordering::SeqCst), 1, "the request was sent again");
}

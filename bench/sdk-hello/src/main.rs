//! Cold-start baseline `sdk-hello`: `hello` plus what every AWS Lambda written with the SDK
//! pays at init — the SDK configuration from the environment and an SQS and a Secrets
//! Manager client, with the SDK's own HTTPS client and the project's other SDK features. No
//! call is made.

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let (sqs, secrets) = (&sqs, &secrets);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        // Keep the clients alive (and linked) like a real handler would.
        let _ = (sqs.config().region(), secrets.config().region());
        Ok::<_, Error>(event.payload)
    }))
    .await
}

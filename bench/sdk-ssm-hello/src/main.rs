//! Cold-start baseline `sdk-ssm-hello`: `sdk-hello` plus one SSM `GetParameter` of
//! `VICIBRIDGE_CONFIG_PARAMETER` before the first `GET /next`, which lead-webhook, crm-sync and
//! lead-inject also do (their configuration). It separates the cost of that round trip from
//! the functions' own init work.

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let name = std::env::var("VICIBRIDGE_CONFIG_PARAMETER")?;
    let config = ssm.get_parameter().name(name).send().await?;
    let size = config.parameter().and_then(|p| p.value()).map_or(0, str::len);
    let (sqs, secrets) = (&sqs, &secrets);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        // Keep the clients alive (and linked) like a real handler would.
        let _ = (sqs.config().region(), secrets.config().region(), size);
        Ok::<_, Error>(event.payload)
    }))
    .await
}

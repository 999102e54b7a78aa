//! Cold-start baseline `hello`: the smallest Rust Lambda (lambda_runtime + tokio), answering
//! each invocation with its own payload. Measured against the functions in BENCHMARKS.md.

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move { Ok::<_, Error>(event.payload) },
    ))
    .await
}

//! Lambda `dispo`: `GET /vicidial/dispo` → crm-events queue.

#[tokio::main]
async fn main() -> Result<(), vicibridge_aws::lambda::Error> {
    vicibridge_aws::lambda::run_ingest(vicibridge_aws::CallUrl::Dispo).await
}

//! Lambda `new-lead`: `GET /vicidial/new-lead` → crm-events queue.

#[tokio::main]
async fn main() -> Result<(), vicibridge_aws::lambda::Error> {
    vicibridge_aws::lambda::run_ingest(vicibridge_aws::CallUrl::NewLead).await
}

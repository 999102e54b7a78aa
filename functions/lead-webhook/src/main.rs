//! Lambda `lead-webhook`: POST /hubspot/leads, POST /salesforce/leads → lead-injections queue.

#[tokio::main]
async fn main() -> Result<(), vicibridge_aws::lambda::Error> {
    vicibridge_aws::lambda::run_lead_webhook().await
}

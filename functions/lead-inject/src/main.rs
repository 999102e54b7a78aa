//! Lambda `lead-inject`: lead-injections queue → VICIdial add_lead.

#[tokio::main]
async fn main() -> Result<(), vicibridge_aws::lambda::Error> {
    vicibridge_aws::lambda::run_lead_inject().await
}

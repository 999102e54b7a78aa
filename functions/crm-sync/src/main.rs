//! Lambda `crm-sync`: crm-events queue → the configured CRM.

#[tokio::main]
async fn main() -> Result<(), vicibridge_aws::lambda::Error> {
    vicibridge_aws::lambda::run_crm_sync().await
}

//! Lambda `reconcile`: on a schedule, VICIdial's URL log → replay of missed URLs onto crm-events.

#[tokio::main]
async fn main() -> Result<(), vicibridge_aws::lambda::Error> {
    vicibridge_aws::reconcile::run_reconcile().await
}

//! Lambda `screen-pop`: `GET /vicidial/screen-pop` → the agent's CRM page.

#[tokio::main]
async fn main() -> Result<(), vicibridge_aws::lambda::Error> {
    vicibridge_aws::lambda::run_screen_pop().await
}

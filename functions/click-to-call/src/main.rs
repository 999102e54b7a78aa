//! Lambda `click-to-call`: GET /dialer, /dialer/{hubspot,salesforce}, /agent/oauth/{crm}/{start,callback},
//! POST /agent/dial → VICIdial agent_status + external_dial.

#[tokio::main]
async fn main() -> Result<(), vicibridge_aws::lambda::Error> {
    vicibridge_aws::click_to_call::run().await
}

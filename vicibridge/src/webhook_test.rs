//! `vicibridge webhook test --config PATH --secrets PATH`: sends one signed sample
//! `call.dispositioned` to `[webhook] url` and prints what the endpoint answered.

use clap::Subcommand;
use vicibridge_core::config::Config;
use vicibridge_core::ports::SecretStore;

#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// Send one signed sample call.dispositioned to [webhook] url and print the answer.
    Test {
        #[arg(long, env = "VICIBRIDGE_CONFIG")]
        config: std::path::PathBuf,
        #[arg(long, env = "VICIBRIDGE_SECRETS")]
        secrets: Option<std::path::PathBuf>,
    },
}

/// Prints the request's id and body, then the answer; fails unless the answer is 2xx.
pub async fn test(config: &Config, secrets: std::sync::Arc<dyn SecretStore>) -> Result<(), String> {
    if config.webhook.is_none() {
        return Err("the config has no [webhook] section (url = \"https://crm.example.com/hooks/vicidial\")".into());
    }
    let report = vicibridge_webhook::test_send::send_test(config, secrets).await.map_err(|e| e.to_string())?;
    println!("POST {}", report.url);
    println!("webhook-id: {}", report.webhook_id);
    println!("body: {}", report.body);
    match report.answer {
        Ok(a) if (200..300).contains(&a.status) => {
            println!("answer: HTTP {} {}", a.status, a.excerpt);
            Ok(())
        }
        Ok(a) => {
            println!("answer: HTTP {} {}", a.status, a.excerpt);
            Err(format!("the endpoint answered HTTP {}: the sample was not accepted", a.status))
        }
        Err(reason) => Err(reason),
    }
}

//! The webhook requests of a batch, for the dry-run record: URL, headers and body exactly as
//! they would be sent, except what only exists at send time (the timestamp, the signature)
//! and the values of `[webhook] headers` (they may hold a receiver's API key).

use std::collections::BTreeMap;

use chrono_tz::Tz;
use vicibridge_core::config::WebhookConfig;
use vicibridge_core::plan::SyncPlan;
use vicibridge_core::ports::{PreviewRequests, RequestPreview};

use crate::body::BodyContext;

#[derive(Debug)]
pub struct WebhookPreview {
    cfg: WebhookConfig,
    ctx: BodyContext,
}

impl WebhookPreview {
    pub fn new(cfg: WebhookConfig, server_tz: Tz) -> Self {
        let ctx = BodyContext::new(&cfg, server_tz);
        WebhookPreview { cfg, ctx }
    }
}

impl PreviewRequests for WebhookPreview {
    fn crm_name(&self) -> &'static str {
        "webhook"
    }

    fn preview(&self, plans: &[SyncPlan]) -> Vec<RequestPreview> {
        crate::requests(&self.cfg, &self.ctx, plans)
            .into_iter()
            .map(|r| {
                let mut headers: BTreeMap<String, String> = self
                    .cfg
                    .headers
                    .keys()
                    .map(|k| (k.to_ascii_lowercase(), format!("{{webhook.headers.{k}}}")))
                    .collect();
                headers.insert("content-type".into(), "application/json".into());
                headers.insert("webhook-id".into(), r.webhook_id);
                headers.insert("webhook-timestamp".into(), "{unix seconds at sending}".into());
                headers.insert(
                    "webhook-signature".into(),
                    "v1,{base64 HMAC-SHA256 of webhook-id.webhook-timestamp.body with webhook.signing_secret} (and one with webhook.previous_signing_secret while it is set)".into(),
                );
                RequestPreview {
                    method: "POST",
                    url: self.cfg.url.clone(),
                    headers,
                    body: serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null),
                }
            })
            .collect()
    }
}

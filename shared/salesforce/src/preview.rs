//! The dry-run view: the requests the adapter would send for a batch, without sending them.
//! The read round is shown as sent; the write round as it would be if nothing existed yet
//! (a Task is created, not updated) and only for plans whose `vendor_lead_code` names the
//! record — the others depend on the phone lookup's answer.

use std::sync::Arc;

use serde_json::json;
use vicibridge_core::config::salesforce::SalesforceConfig;
use vicibridge_core::plan::SyncPlan;
use vicibridge_core::ports::{PreviewRequests, RequestPreview};

use crate::sync::{self, Observed, RecordRef, Target};
use crate::{build_subrequests, read_queries};

/// Placeholder for the `instance_url` a token answer would give.
pub const INSTANCE_PLACEHOLDER: &str = "{instance_url}";

#[derive(Debug, Clone)]
pub struct SalesforcePreview {
    cfg: Arc<SalesforceConfig>,
}

impl SalesforcePreview {
    pub fn new(cfg: SalesforceConfig) -> Self {
        SalesforcePreview { cfg: Arc::new(cfg) }
    }
}

impl PreviewRequests for SalesforcePreview {
    fn crm_name(&self) -> &'static str {
        "salesforce"
    }

    fn preview(&self, plans: &[SyncPlan]) -> Vec<RequestPreview> {
        let cfg = &*self.cfg;
        let data = format!("/services/data/{}", cfg.api_version());
        let mut targets: Vec<Option<RecordRef>> = vec![None; plans.len()];
        let mut lookups = Vec::new();
        for (i, plan) in plans.iter().enumerate() {
            let SyncPlan::Call(c) = plan else { continue };
            match sync::target_of(c.crm_ref.as_deref(), &c.lead, cfg) {
                Ok(Target::Known(r)) => targets[i] = Some(r),
                Ok(Target::ByPhone(p)) => lookups.push((i, p)),
                _ => {}
            }
        }
        let composite = |subs: Vec<crate::client::SubRequest>| RequestPreview {
            method: "POST",
            url: format!("{INSTANCE_PLACEHOLDER}{data}/composite"),
            headers: Default::default(),
            body: json!({ "allOrNone": false, "collateSubrequests": false, "compositeRequest": subs }),
        };
        let mut out = Vec::new();
        let queries = read_queries(cfg, plans, &targets, &lookups);
        let (subs, _) = build_subrequests(cfg, &data, &[], &queries);
        out.extend(subs.chunks(5).map(|c| composite(c.to_vec())));
        let decision = sync::decide(cfg, plans, &targets, &Observed::default(), chrono::Utc::now());
        let (subs, _) = build_subrequests(cfg, &data, &decision.writes, &[]);
        out.extend(subs.chunks(5).map(|c| composite(c.to_vec())));
        out
    }
}

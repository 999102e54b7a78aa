//! What the Lambdas and `vicibridge serve` share: the ingest handler, the crm-sync batch
//! processor, the dry-run CRM and telemetry. Framework-neutral: the Lambda and axum shells
//! only translate their request types.

pub mod background;
pub mod breaker;
pub mod budget;
pub mod click_to_call;
pub mod crm;
pub mod html;
pub mod ingest;
pub mod lead_inject;
pub mod lead_webhook;
pub mod metrics;
pub mod preflight;
pub mod reconcile;
pub mod retry;
pub mod screen_pop;
pub mod telemetry;
pub mod worker;

pub use breaker::{Admit, Guarded, Hold, Integration};
pub use ingest::{Ingest, IngestResponse};
pub use lead_inject::LeadInject;
pub use lead_webhook::{LeadWebhook, WebhookRequest, WebhookResponse};
pub use worker::{BatchHandler, CrmSync, Delivery, Outcome};

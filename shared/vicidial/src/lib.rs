//! VICIdial: the call URLs it sends us (Start Call, Dispo Call, API New Lead) and the URLs
//! to paste into its settings. Facts: `shared/reference/vicidial.md` §3 and §10.

pub mod agent_api;
pub mod call_url;
pub mod non_agent_api;
pub mod query;
pub mod url_log;
pub mod url_templates;

pub use call_url::{CallUrl, RequestError, to_event};
pub use query::VicidialQuery;

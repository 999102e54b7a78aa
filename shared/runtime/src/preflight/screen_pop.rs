//! Screen pop line (`--test-contact ID`, with `screen_pop_tokens` in the secret): the pop of a
//! lead whose `vendor_lead_code` names the test record is rendered by the screen pop's own code
//! (`ScreenPop::render_for`: the CRM read side and the page) and must show that record.

use std::sync::Arc;

use vicibridge_core::LeadId;
use vicibridge_core::agent::AgentUser;
use vicibridge_core::config::{Config, CrmKind};
use vicibridge_core::ports::{SecretStore, SecretWriter};
use vicibridge_core::screen_pop::PopView;

use super::Check;
use super::dispositions::{AGENT, LEAD_ID};

const ID: &str = "screen_pop.render";
const TITLE: &str = "The screen pop shows the test record";

pub(super) async fn check(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    writer: Option<Arc<dyn SecretWriter>>,
    record: &str,
) -> Option<Check> {
    if !matches!(config.crm.kind, CrmKind::Hubspot | CrmKind::Salesforce) {
        return None;
    }
    let configured = secrets.current().await.is_ok_and(|doc| !doc.screen_pop_tokens.is_empty());
    if !configured {
        return Some(Check::skip(ID, TITLE, "no screen_pop_tokens in the secret: the screen pop is off"));
    }
    let pop = match crate::screen_pop::build_screen_pop(config, secrets, writer) {
        Ok(p) => p,
        Err(e) => return Some(Check::fail(ID, TITLE, e.to_string())),
    };
    let (Ok(agent), Ok(lead)) = (AGENT.parse::<AgentUser>(), LEAD_ID.parse::<LeadId>()) else {
        return Some(Check::fail(ID, TITLE, "the synthetic agent or lead id is not valid"));
    };
    let (view, page) = pop.render_for(&agent, lead, record).await;
    Some(match view {
        Err(e) => Check::fail(ID, TITLE, format!("the page shows \"CRM unavailable\" ({}): {e}", page.status)),
        Ok(PopView::Record(r)) => {
            let name = html_escape::encode_text(&r.name).to_string();
            if page.status == 200 && page.body.contains(&name) {
                Check::pass(
                    ID,
                    TITLE,
                    format!("{} {} {:?} shown ({} bytes of HTML)", r.crm, r.kind, r.name, page.body.len()),
                )
            } else {
                Check::fail(
                    ID,
                    TITLE,
                    format!("{} {} was found but the page ({}) does not show its name", r.kind, r.id, page.status),
                )
            }
        }
        Ok(PopView::Choose { candidates, .. }) => Check::fail(
            ID,
            TITLE,
            format!("the pop asks the agent to choose among {} records instead of showing {record}", candidates.len()),
        ),
        Ok(PopView::NoRecord { .. }) => {
            Check::fail(ID, TITLE, format!("the pop finds no CRM record for vendor_lead_code {record}"))
        }
        Ok(PopView::LeadOnly) => Check::fail(ID, TITLE, "the pop shows VICIdial's lead only: no CRM read side"),
    })
}

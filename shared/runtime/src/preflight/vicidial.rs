//! VICIdial lines: the password survives VICIdial's character filter, the API user logs in, and
//! may use every function this configuration makes vicibridge call — each probed with a request
//! that changes nothing ([`ProbeFunction`]).

use std::sync::Arc;

use vicibridge_core::config::Config;
use vicibridge_core::ports::SecretStore;
use vicibridge_vicidial::agent_api::{AgentApi, AgentApiOptions, AgentRef, DialRefusal, ExternalDial};
use vicibridge_vicidial::non_agent_api::{NonAgentApi, NonAgentApiOptions, PROBE_CODE, ProbeAnswer, ProbeFunction};

use super::Check;

const LOGIN: &str = "vicidial.login";
const LOGIN_TITLE: &str = "VICIdial API user logs in";

/// The non-agent functions this configuration uses, with what uses them.
fn functions(config: &Config) -> Vec<(ProbeFunction, &'static str)> {
    let mut out = Vec::new();
    if config.lead_injection.is_some() {
        out.push((ProbeFunction::AddLead, "lead injection"));
        out.push((ProbeFunction::LeadSearch, "lead injection, to find a lead whose insert went unanswered"));
    }
    if config.screen_pop.verify_agent || config.click_to_call.is_some() {
        out.push((ProbeFunction::AgentStatus, "screen pop and click-to-call, to see which agent is on which call"));
    }
    out
}

pub(super) async fn checks(config: &Config, secrets: Arc<dyn SecretStore>) -> Vec<Check> {
    let mut out = Vec::new();
    let doc = match secrets.current().await {
        Ok(doc) => doc,
        Err(e) => return vec![Check::fail(LOGIN, LOGIN_TITLE, format!("cannot read the secret: {e}"))],
    };
    let Some(v) = doc.vicidial.as_ref() else {
        return vec![Check::fail(LOGIN, LOGIN_TITLE, "the secret has no \"vicidial\" section (api_user, api_pass)")];
    };
    out.push(password_check(v.api_pass.expose()));

    let api = match NonAgentApi::new(&config.vicidial.base_url, secrets.clone(), NonAgentApiOptions::default()) {
        Ok(api) => api,
        Err(e) => {
            out.push(Check::fail(LOGIN, LOGIN_TITLE, e.to_string()));
            return out;
        }
    };
    let wanted = functions(config);
    // The login is proven by the first probe's answer (a permission error comes after it);
    // with nothing to probe, lead_search asks the login alone.
    let first = wanted.first().map_or(ProbeFunction::LeadSearch, |(f, _)| *f);
    let mut answers = vec![(first, api.probe(first).await)];
    let login = match &answers[0].1 {
        ProbeAnswer::LoginRefused { reason } | ProbeAnswer::Failed { reason } => Err(reason.clone()),
        ProbeAnswer::Allowed { .. } | ProbeAnswer::NotPermitted { .. } => Ok(()),
    };
    match &login {
        Ok(()) => out.push(Check::pass(LOGIN, LOGIN_TITLE, format!("user {:?} at {}", v.api_user, api.endpoint()))),
        Err(reason) => out.push(Check::fail(LOGIN, LOGIN_TITLE, reason.clone())),
    }
    if login.is_ok() {
        for (function, _) in wanted.iter().skip(1) {
            answers.push((*function, api.probe(*function).await));
        }
    }
    for (function, used_by) in &wanted {
        let id = format!("vicidial.function.{}", function.name());
        let title = format!("VICIdial API user may use {} (for {used_by})", function.name());
        let answer = answers.iter().find(|(f, _)| f == function).map(|(_, a)| a);
        out.push(match (answer, &login) {
            (_, Err(_)) | (None, _) => Check::skip(id, title, "not checked: the login failed"),
            (Some(ProbeAnswer::Allowed { reply }), _) => {
                Check::pass(id, title, format!("allowed (probe answered {:?})", shorten(reply)))
            }
            (Some(ProbeAnswer::NotPermitted { reason } | ProbeAnswer::Failed { reason }), _) => {
                Check::fail(id, title, reason.clone())
            }
            (Some(ProbeAnswer::LoginRefused { reason }), _) => Check::fail(id, title, reason.clone()),
        });
    }
    if config.reconcile.is_some() {
        out.push(url_log_check(config, secrets.clone()).await);
    }
    if config.click_to_call.is_some() {
        let id = "vicidial.function.external_dial";
        let title = "VICIdial API user may use external_dial (agent API, for click-to-call)";
        if login.is_err() {
            out.push(Check::skip(id, title, "not checked: the login failed"));
        } else {
            out.push(external_dial_check(config, secrets, id, title).await);
        }
    }
    out
}

/// `non_agent_api.php` deletes every password character but letters, digits, `-` and `_`
/// before comparing (reference §1): such a password can never log in.
fn password_check(pass: &str) -> Check {
    let id = "vicidial.password";
    let title = "VICIdial API password uses only characters VICIdial keeps";
    let dropped: Vec<char> = pass.chars().filter(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')).collect();
    if pass.is_empty() {
        Check::fail(id, title, "vicidial.api_pass is empty")
    } else if dropped.is_empty() {
        Check::pass(id, title, "letters, digits, '-' and '_' only")
    } else {
        Check::fail(
            id,
            title,
            format!(
                "vicidial.api_pass has {} character(s) VICIdial's API deletes before comparing (anything but letters, \
                 digits, '-' and '_'): give the API user such a password",
                dropped.len()
            ),
        )
    }
}

/// The agent API checks the login, then `api_allowed_functions`, then whether the agent is
/// logged in (`agc/api.php`, external_dial): asked for an agent that is not logged in, "not
/// logged in" proves the permission and dials nothing.
async fn external_dial_check(config: &Config, secrets: Arc<dyn SecretStore>, id: &str, title: &str) -> Check {
    let api = match AgentApi::new(&config.vicidial.base_url, secrets, AgentApiOptions::default()) {
        Ok(api) => api,
        Err(e) => return Check::fail(id, title, e.to_string()),
    };
    let probe = ExternalDial {
        agent: AgentRef::User(PROBE_CODE.to_owned()),
        phone_code: "1".into(),
        phone_number: "7275550100".into(),
        vendor_id: None,
    };
    match api.external_dial(&probe).await {
        Err(
            DialRefusal::NotLoggedIn
            | DialRefusal::NotPaused
            | DialRefusal::ManualDialNotAllowed
            | DialRefusal::NoAltUser
            | DialRefusal::AlreadyQueued,
        ) => Check::pass(id, title, "allowed (probe for an agent that is not logged in: \"not logged in\")"),
        Err(DialRefusal::Setup(line)) if line.contains("PERMISSION") => {
            Check::fail(id, title, format!("add ' external_dial ' to the API user's api_allowed_functions [{line}]"))
        }
        // "external_dial not valid" comes before the permission check: it proves nothing.
        Err(e @ (DialRefusal::Setup(_) | DialRefusal::Unavailable(_) | DialRefusal::InvalidNumber(_))) => {
            Check::fail(id, title, e.to_string())
        }
        Ok(q) => Check::fail(
            id,
            title,
            format!("VICIdial queued a dial for the probe agent {:?}: a user of that name is logged in", q.agent_user),
        ),
    }
}

/// `[reconcile]` reads VICIdial's URL Log Report as the reports user: read one second of today
/// (server-local), which proves the login, "View Reports" and the report in the user group's
/// Allowed Reports.
async fn url_log_check(config: &Config, secrets: Arc<dyn SecretStore>) -> Check {
    use vicibridge_vicidial::url_log::{DayWindow, UrlLogClient, UrlLogOptions, UrlType};
    let id = "vicidial.url_log";
    let title = "VICIdial reports user can read the URL log (for [reconcile])";
    let client = match UrlLogClient::new(&config.vicidial.base_url, secrets, UrlLogOptions::default()) {
        Ok(c) => c,
        Err(e) => return Check::fail(id, title, e.to_string()),
    };
    let day = chrono::Utc::now().with_timezone(&config.vicidial.server_time_zone).date_naive();
    let window = DayWindow { day, from: chrono::NaiveTime::MIN, to: chrono::NaiveTime::MIN };
    match client.fetch(window, &UrlType::ALL).await {
        Ok(_) => Check::pass(id, title, "the URL Log Report answered"),
        Err(e) => Check::fail(id, title, e.to_string()),
    }
}

fn shorten(reply: &str) -> String {
    let mut s: String = reply.chars().take(80).collect();
    if reply.chars().count() > 80 {
        s.push('…');
    }
    s
}

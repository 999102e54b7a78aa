//! The Agent API (`/agc/api.php`) of the VICIdial simulator: `external_dial` as `www/agc/api.php`
//! runs it (checks in its order, its exact lines; checked against the real PHP, see
//! `shared/reference/vicidial.md` §9.2), on the simulator's agents and their live state.

use std::collections::{HashMap, HashSet};

use super::{Reply, SimAgentState, State, filter_login, keep};

pub const AGENT_API_PATH: &str = "/agc/api.php";

/// One `external_dial` VICIdial accepted: what it wrote to `vicidial_live_agents.external_dial`
/// (or the manual dial queue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalDialCall {
    pub agent_user: String,
    pub value: String,
    pub phone_code: String,
    pub search: String,
    pub preview: String,
    pub focus: String,
    pub vendor_id: String,
    /// Queued in `vicidial_manual_dial_queue` (campaign `api_manual_dial` QUEUE*).
    pub queued: bool,
}

/// Agent-API settings of the simulated users and campaigns.
#[derive(Debug, Default)]
pub struct AgentApiState {
    /// Agents without `agentcall_manual='1'`.
    pub no_manual_dial: HashSet<String>,
    /// `vicidial_users.custom_three` by agent.
    pub custom_three: HashMap<String, String>,
    /// Campaigns with `api_manual_dial` QUEUE (default STANDARD).
    pub queue_campaigns: HashSet<String>,
    pub dials: Vec<ExternalDialCall>,
}

impl super::VicidialSim {
    /// `vicidial_users.custom_three` of an agent (what `alt_user` looks up).
    pub fn set_custom_three(&self, agent: &str, value: &str) {
        self.state().agent_api.custom_three.insert(agent.to_owned(), value.to_owned());
    }

    /// `agentcall_manual` of an agent (default allowed).
    pub fn set_manual_dial(&self, agent: &str, allowed: bool) {
        let mut s = self.state();
        if allowed {
            s.agent_api.no_manual_dial.remove(agent);
        } else {
            s.agent_api.no_manual_dial.insert(agent.to_owned());
        }
    }

    /// Campaign `api_manual_dial`: QUEUE (`true`) or STANDARD.
    pub fn set_queue_manual_dial(&self, campaign: &str, queue: bool) {
        let mut s = self.state();
        if queue {
            s.agent_api.queue_campaigns.insert(campaign.to_owned());
        } else {
            s.agent_api.queue_campaigns.remove(campaign);
        }
    }

    /// Every accepted `external_dial`, in order.
    pub fn external_dials(&self) -> Vec<ExternalDialCall> {
        self.state().agent_api.dials.clone()
    }
}

pub(super) fn handle(s: &mut State, params: &HashMap<String, String>) -> Reply {
    let p = |k: &str| params.get(k).cloned().unwrap_or_default();
    let source = keep(&p("source"), |c| c.is_ascii_alphanumeric());
    if source.len() < 2 {
        return Reply::ok(format!("ERROR: Invalid Source - {source}\n"));
    }
    let user = filter_login(&p("user"));
    let pass = keep(&p("pass"), |c| c.is_ascii_alphanumeric() || "-.+/=_".contains(c));
    let found = s
        .users
        .iter()
        .find(|u| u.user.eq_ignore_ascii_case(&user) && u.pass.eq_ignore_ascii_case(&pass) && u.active)
        .cloned();
    let Some(api_user) = found.filter(|u| u.vdc_agent_api_access) else {
        return Reply::ok(format!("ERROR: Invalid Username/Password: |{user}|{pass}|0|1|BAD|\n"));
    };
    match p("function").as_str() {
        "external_dial" => external_dial(s, params, &api_user),
        "version" => {
            Reply::ok("VERSION: 2.14-82|BUILD: 250122-1010|DATE: 2026-12-06 22:59:46|EPOCH: 1796597986\n".into())
        }
        _ => Reply::ok("ERROR: NO FUNCTION SPECIFIED\n".into()),
    }
}

fn external_dial(s: &mut State, params: &HashMap<String, String>, api_user: &super::SimUser) -> Reply {
    let p = |k: &str| params.get(k).cloned().unwrap_or_default();
    let word = |k: &str| keep(&p(k), |c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let value = keep(&p("value"), |c| c.is_ascii_digit());
    let phone_code = keep(&p("phone_code"), |c| c.is_ascii_digit() || c == 'X');
    let (search, preview, focus) = (word("search"), word("preview"), word("focus"));
    let lead_id = keep(&p("lead_id"), |c| c.is_ascii_digit());
    let mut agent_user = filter_login(&p("agent_user"));
    let alt_user = keep(&p("alt_user"), |c| c.is_ascii_alphanumeric());
    // `;`, `#` dropped and `+` as a space, as api.php does.
    let vendor_id = p("vendor_id").replace([';', '#'], "").replace('+', " ");
    if (value.len() < 2 && lead_id.is_empty())
        || (agent_user.len() < 2 && alt_user.len() < 2)
        || search.len() < 2
        || preview.len() < 2
        || focus.len() < 2
    {
        return Reply::ok(format!(
            "ERROR: external_dial not valid - {value}|{phone_code}|{search}|{preview}|{focus}|{lead_id}|{agent_user}|{alt_user}\n"
        ));
    }
    let allowed = &api_user.api_allowed_functions;
    if !(allowed.contains(" external_dial ") || allowed.contains("ALL_FUNCTIONS")) {
        return Reply::ok(format!(
            "ERROR: auth USER DOES NOT HAVE PERMISSION TO USE THIS FUNCTION - {value}|{}|external_dial|ADMIN\n",
            api_user.user
        ));
    }
    let mut out = String::new();
    if alt_user.len() > 1 {
        let mut owners: Vec<&String> =
            s.agent_api.custom_three.iter().filter(|(_, v)| **v == alt_user).map(|(k, _)| k).collect();
        owners.sort();
        match owners.first() {
            Some(u) => agent_user = (*u).clone(),
            // api.php prints this and carries on with the agent_user it had.
            None => out.push_str(&format!("ERROR: no user found - {alt_user}\n")),
        }
    }
    let live = s.agents.iter().find(|(u, _)| u.eq_ignore_ascii_case(&agent_user)).and_then(|(_, a)| a.live.clone());
    let Some(live) = live else {
        out.push_str(&format!("ERROR: agent_user is not logged in - {agent_user}\n"));
        return Reply::ok(out);
    };
    let queue_mode = s.agent_api.queue_campaigns.contains(&live.campaign_id);
    if !queue_mode && live.state != SimAgentState::Paused {
        out.push_str(&format!("ERROR: agent_user is not paused - {agent_user}\n"));
        return Reply::ok(out);
    }
    if s.agent_api.no_manual_dial.contains(&agent_user) {
        out.push_str(&format!("ERROR: agent_user is not allowed to place manual dial calls - {agent_user}\n"));
        return Reply::ok(out);
    }
    if queue_mode && s.agent_api.dials.iter().any(|d| d.queued && d.agent_user == agent_user && d.value == value) {
        out.push_str(&format!(
            "ERROR: phone_number is already in this agents manual dial queue - {agent_user}|{value}\n"
        ));
        return Reply::ok(out);
    }
    s.agent_api.dials.push(ExternalDialCall {
        agent_user: agent_user.clone(),
        value: value.clone(),
        phone_code: phone_code.clone(),
        search: search.clone(),
        preview: preview.clone(),
        focus: focus.clone(),
        vendor_id: vendor_id.clone(),
        queued: queue_mode,
    });
    let epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    out.push_str(&format!(
        "SUCCESS: external_dial function set - {value}|{agent_user}|{phone_code}|{search}|{preview}|{focus}|{vendor_id}|{epoch}||||\n"
    ));
    Reply::ok(out)
}

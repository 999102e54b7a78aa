//! Agent identity, in one place for the screen pop and the dialer: who the agent is in VICIdial
//! ([`AgentUser`]), what VICIdial says the agent is doing right now ([`AgentStatus`], read with
//! the non-agent API `agent_status`), and the decision "is this agent on this lead"
//! ([`AgentStatus::on_lead`]). Facts: `shared/reference/crm-ui-and-backfill.md` §B.2.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;

use crate::event::LeadId;
use crate::lead::DialerError;

/// A VICIdial user id (`vicidial_users.user`, VARCHAR(20)). VICIdial deletes every character
/// other than letters, digits, `-` and `_` from `agent_user` before looking it up, so a value
/// with others would be checked as a different user: refused at the edge instead.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentUser(String);

/// Longest VICIdial user id.
pub const AGENT_USER_MAX: usize = 20;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a VICIdial user is 1 to {AGENT_USER_MAX} letters, digits, '-' or '_'")]
pub struct InvalidAgentUser;

impl FromStr for AgentUser {
    type Err = InvalidAgentUser;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= AGENT_USER_MAX
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok { Ok(AgentUser(s.to_owned())) } else { Err(InvalidAgentUser) }
    }
}

impl AgentUser {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `vicidial_live_agents.status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentState {
    Ready,
    /// A call is being sent to the agent.
    Queue,
    InCall,
    Paused,
    /// Waiting for inbound calls only.
    Closer,
    /// A manual-dial call is queued for the agent.
    MQueue,
    /// A status this code does not know (a newer VICIdial).
    Other(String),
}

impl AgentState {
    pub fn parse(s: &str) -> AgentState {
        match s {
            "READY" => AgentState::Ready,
            "QUEUE" => AgentState::Queue,
            "INCALL" => AgentState::InCall,
            "PAUSED" => AgentState::Paused,
            "CLOSER" => AgentState::Closer,
            "MQUEUE" => AgentState::MQueue,
            other => AgentState::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            AgentState::Ready => "READY",
            AgentState::Queue => "QUEUE",
            AgentState::InCall => "INCALL",
            AgentState::Paused => "PAUSED",
            AgentState::Closer => "CLOSER",
            AgentState::MQueue => "MQUEUE",
            AgentState::Other(s) => s,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a real_time_sub_status VICIdial prints")]
pub struct UnknownSubStatus;

/// `agent_status`'s `real_time_sub_status`, computed by `non_agent_api.php`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubStatus {
    /// In call, but the customer's channel is gone: the agent is about to disposition.
    Dead,
    /// Paused with a lead: dispositioning it.
    Dispo,
    ThreeWay,
    Park,
    Ring,
    /// Paused on a previewed lead (the lead_id is the preview's).
    Preview,
    /// A manual dial still ringing out.
    Dial,
}

impl SubStatus {
    /// `None` for the empty field; `Err` for a value VICIdial does not print.
    pub fn parse(s: &str) -> Result<Option<SubStatus>, UnknownSubStatus> {
        Ok(Some(match s {
            "" => return Ok(None),
            "DEAD" => SubStatus::Dead,
            "DISPO" => SubStatus::Dispo,
            "3-WAY" => SubStatus::ThreeWay,
            "PARK" => SubStatus::Park,
            "RING" => SubStatus::Ring,
            "PREVIEW" => SubStatus::Preview,
            "DIAL" => SubStatus::Dial,
            _ => return Err(UnknownSubStatus),
        }))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SubStatus::Dead => "DEAD",
            SubStatus::Dispo => "DISPO",
            SubStatus::ThreeWay => "3-WAY",
            SubStatus::Park => "PARK",
            SubStatus::Ring => "RING",
            SubStatus::Preview => "PREVIEW",
            SubStatus::Dial => "DIAL",
        }
    }
}

/// One `agent_status` row of a logged-in agent. Empty fields are `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentStatus {
    pub state: AgentState,
    pub sub_status: Option<SubStatus>,
    /// `callerid`: VICIdial's call id of the live call.
    pub call_id: Option<String>,
    /// The lead on the agent's screen (`0` in VICIdial's reply is `None`).
    pub lead_id: Option<LeadId>,
    pub campaign_id: Option<String>,
    pub calls_today: u32,
    pub full_name: String,
    pub user_group: Option<String>,
    pub user_level: u8,
    pub pause_code: Option<String>,
    /// The lead's (or the live call's) number, as VICIdial stores it.
    pub phone_number: Option<String>,
    pub vendor_lead_code: Option<String>,
    /// The agent's conference (`conf_exten`); the Web Form/Script variable `session_id`.
    pub session_id: Option<String>,
}

impl AgentStatus {
    /// Whether this lead is the one on the agent's screen now: in a call with it (any
    /// sub-status, also DEAD after the customer hung up), the call being delivered (QUEUE),
    /// or paused on it to disposition or preview it. When the page was given a `session_id`,
    /// it must be the agent's conference too.
    pub fn on_lead(&self, lead: LeadId, session_id: Option<&str>) -> bool {
        if self.lead_id != Some(lead) {
            return false;
        }
        if let Some(wanted) = session_id
            && self.session_id.as_deref() != Some(wanted)
        {
            return false;
        }
        match self.state {
            AgentState::InCall | AgentState::Queue => true,
            AgentState::Paused => matches!(self.sub_status, Some(SubStatus::Dispo | SubStatus::Preview)),
            _ => false,
        }
    }
}

/// What VICIdial knows about an agent right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentPresence {
    LoggedIn(Box<AgentStatus>),
    /// A VICIdial user, not logged in to the agent screen.
    LoggedOut,
    /// No such user (or one the API user's group may not see).
    UnknownUser,
}

impl AgentPresence {
    /// [`AgentStatus::on_lead`]; never for an agent who is not logged in.
    pub fn on_lead(&self, lead: LeadId, session_id: Option<&str>) -> bool {
        matches!(self, AgentPresence::LoggedIn(s) if s.on_lead(lead, session_id))
    }

    /// A fixed word for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            AgentPresence::LoggedIn(_) => "logged_in",
            AgentPresence::LoggedOut => "logged_out",
            AgentPresence::UnknownUser => "unknown_user",
        }
    }
}

/// Live agent state from the dialer (VICIdial's non-agent API `agent_status`). Errors are
/// classified like every dialer call: a read is never [`DialerError::Unknown`].
#[async_trait]
pub trait AgentDirectory: Send + Sync {
    async fn agent_status(&self, user: &AgentUser) -> Result<AgentPresence, DialerError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: AgentState, sub: Option<SubStatus>, lead: u64, session: &str) -> AgentStatus {
        AgentStatus {
            state,
            sub_status: sub,
            call_id: None,
            lead_id: (lead > 0).then(|| lead.to_string().parse().unwrap()),
            campaign_id: Some("TESTCAMP".into()),
            calls_today: 0,
            full_name: "Agent".into(),
            user_group: None,
            user_level: 1,
            pause_code: None,
            phone_number: None,
            vendor_lead_code: None,
            session_id: Some(session.into()),
        }
    }

    #[test]
    fn agent_user_is_what_vicidial_keeps() {
        for ok in ["1000", "agent_7", "a-b", "x".repeat(20).as_str()] {
            assert_eq!(ok.parse::<AgentUser>().unwrap().as_str(), ok);
        }
        for bad in ["", "a b", "1000'", "ag.ent", "ü", &"x".repeat(21)] {
            assert_eq!(bad.parse::<AgentUser>(), Err(InvalidAgentUser), "{bad}");
        }
    }

    #[test]
    fn on_lead_only_for_the_lead_on_screen() {
        let lead: LeadId = "10".parse().unwrap();
        let yes = [
            status(AgentState::InCall, None, 10, "8600051"),
            status(AgentState::InCall, Some(SubStatus::Dead), 10, "8600051"),
            status(AgentState::InCall, Some(SubStatus::ThreeWay), 10, "8600051"),
            status(AgentState::Queue, None, 10, "8600051"),
            status(AgentState::Paused, Some(SubStatus::Dispo), 10, "8600051"),
            status(AgentState::Paused, Some(SubStatus::Preview), 10, "8600051"),
        ];
        for s in &yes {
            assert!(s.on_lead(lead, None), "{s:?}");
            assert!(s.on_lead(lead, Some("8600051")), "{s:?}");
            assert!(!s.on_lead(lead, Some("8600052")), "{s:?}");
            assert!(!s.on_lead("11".parse().unwrap(), None), "{s:?}");
        }
        let no = [
            status(AgentState::Ready, None, 0, "8600051"),
            status(AgentState::Paused, None, 0, "8600051"),
            // Paused with a lead but no DISPO/PREVIEW: not what VICIdial prints, refuse anyway.
            status(AgentState::Paused, None, 10, "8600051"),
            status(AgentState::Closer, None, 10, "8600051"),
            status(AgentState::Other("NEW".into()), None, 10, "8600051"),
        ];
        for s in &no {
            assert!(!s.on_lead(lead, None), "{s:?}");
        }
        assert!(!AgentPresence::LoggedOut.on_lead(lead, None));
        assert!(!AgentPresence::UnknownUser.on_lead(lead, None));
    }
}

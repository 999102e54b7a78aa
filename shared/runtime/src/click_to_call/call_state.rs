//! `GET /agent/state`: where the signed-in agent's call is, from VICIdial's `agent_status`, so
//! the HubSpot widget can move HubSpot's call bar along (answered, ended) for a call VICIdial
//! placed. `external_dial` only queues the number for the agent screen, so the widget follows
//! the call by asking (reference: crm-ui-and-backfill.md §A, "Follow call state").

use serde::Serialize;
use vicibridge_core::agent::{AgentPresence, AgentState, SubStatus};

/// Polls allowed per agent per minute (the widget asks every 3 s while it follows a call).
pub const POLLS_PER_MINUTE: u32 = 40;

/// The agent's call, in the words the widget branches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// Logged in, no lead on the screen: the queued dial has not been placed yet, or the call
    /// is over and dispositioned.
    Free,
    /// The call is being placed or delivered (sub-status DIAL/RING, or QUEUE).
    Ringing,
    /// Talking.
    OnCall,
    /// The customer hung up (DEAD) or the agent is dispositioning (DISPO): the call has ended.
    Ended,
    /// Not logged in to the agent screen (or not a user VICIdial knows).
    LoggedOut,
}

impl CallState {
    pub fn of(presence: &AgentPresence) -> CallState {
        let AgentPresence::LoggedIn(s) = presence else { return CallState::LoggedOut };
        match (&s.state, s.sub_status) {
            (_, Some(SubStatus::Dead | SubStatus::Dispo)) => CallState::Ended,
            (AgentState::InCall, Some(SubStatus::Dial | SubStatus::Ring)) => CallState::Ringing,
            (AgentState::Queue | AgentState::MQueue, _) => CallState::Ringing,
            (AgentState::InCall | AgentState::Closer, _) => CallState::OnCall,
            // Paused on a lead without a live call: after the call, before the disposition.
            (_, _) if s.lead_id.is_some() => CallState::Ended,
            _ => CallState::Free,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Free => "free",
            CallState::Ringing => "ringing",
            CallState::OnCall => "on_call",
            CallState::Ended => "ended",
            CallState::LoggedOut => "logged_out",
        }
    }
}

/// The JSON answer of `GET /agent/state`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateAnswer {
    pub ok: bool,
    pub state: CallState,
}

#[cfg(test)]
mod tests {
    use super::*;
    use vicibridge_core::agent::AgentStatus;

    fn agent(state: &str, sub: &str, lead: Option<u64>) -> AgentPresence {
        AgentPresence::LoggedIn(Box::new(AgentStatus {
            state: AgentState::parse(state),
            sub_status: SubStatus::parse(sub).unwrap(),
            call_id: None,
            lead_id: lead.map(|l| l.to_string().parse().unwrap()),
            campaign_id: Some("TESTCAMP".into()),
            calls_today: 1,
            full_name: "Ada".into(),
            user_group: None,
            user_level: 1,
            pause_code: None,
            phone_number: None,
            vendor_lead_code: None,
            session_id: None,
        }))
    }

    #[test]
    fn every_agent_status_row_is_one_call_state() {
        let cases = [
            (agent("PAUSED", "", None), CallState::Free),
            (agent("READY", "", None), CallState::Free),
            (agent("INCALL", "DIAL", Some(31)), CallState::Ringing),
            (agent("INCALL", "RING", Some(31)), CallState::Ringing),
            (agent("QUEUE", "", Some(31)), CallState::Ringing),
            (agent("INCALL", "", Some(31)), CallState::OnCall),
            (agent("INCALL", "3-WAY", Some(31)), CallState::OnCall),
            (agent("INCALL", "DEAD", Some(31)), CallState::Ended),
            (agent("PAUSED", "DISPO", Some(31)), CallState::Ended),
            (agent("PAUSED", "", Some(31)), CallState::Ended),
            (AgentPresence::LoggedOut, CallState::LoggedOut),
            (AgentPresence::UnknownUser, CallState::LoggedOut),
        ];
        for (presence, want) in cases {
            assert_eq!(CallState::of(&presence), want, "{presence:?}");
        }
    }
}

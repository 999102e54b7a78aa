//! `NonAgentApi::agent_status` (the `AgentDirectory`) against the VICIdial simulator, which
//! answers like the real `non_agent_api.php` (rows checked on r3939, see agent_status.rs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use vicibridge_core::agent::{AgentDirectory, AgentPresence, AgentState, AgentUser, SubStatus};
use vicibridge_core::lead::DialerError;
use vicibridge_core::ports::{SecretStore, SecretsError};
use vicibridge_core::secrets::SecretDoc;
use vicibridge_tests::vicidial_sim::{SimAgentState, SimUser, VicidialSim};
use vicibridge_vicidial::non_agent_api::{NonAgentApi, NonAgentApiOptions};

struct Fixed(Arc<SecretDoc>);

#[async_trait::async_trait]
impl SecretStore for Fixed {
    async fn current(&self) -> Result<Arc<SecretDoc>, SecretsError> {
        Ok(self.0.clone())
    }
    async fn refresh(&self) -> Result<Arc<SecretDoc>, SecretsError> {
        Ok(self.0.clone())
    }
}

fn api(sim: &VicidialSim) -> NonAgentApi {
    let doc = SecretDoc::from_json(r#"{"vicidial":{"api_user":"6666","api_pass":"1234"}}"#).unwrap();
    NonAgentApi::new(&sim.base_url(), Arc::new(Fixed(Arc::new(doc))), NonAgentApiOptions::default()).unwrap()
}

fn agent(user: &str) -> AgentUser {
    user.parse().unwrap()
}

async fn logged_in(api: &NonAgentApi, user: &str) -> vicibridge_core::agent::AgentStatus {
    match api.agent_status(&agent(user)).await {
        Ok(AgentPresence::LoggedIn(s)) => *s,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn every_agent_state_reads_back() {
    let sim = VicidialSim::start().await;
    let api = api(&sim);
    // A pipe in the name: VICIdial's default delimiter would split it.
    sim.add_agent("1000", "Ann | Sales");
    let lead = sim.seed_lead("999", "7275550101", "HS-901", std::time::Duration::ZERO);
    let on = |lead: u64| lead.to_string().parse().unwrap();

    assert_eq!(api.agent_status(&agent("1000")).await, Ok(AgentPresence::LoggedOut));
    assert_eq!(api.agent_status(&agent("nobody")).await, Ok(AgentPresence::UnknownUser));

    sim.log_in_agent("1000", "TESTCAMP", "8600051");
    sim.set_pause_code("1000", "LOGIN");
    let s = logged_in(&api, "1000").await;
    assert_eq!((s.state.clone(), s.lead_id, s.pause_code.as_deref()), (AgentState::Paused, None, Some("LOGIN")));
    assert_eq!((s.full_name.as_str(), s.session_id.as_deref()), ("Ann | Sales", Some("8600051")));
    assert!(!s.on_lead(on(lead), None));

    sim.set_agent_state("1000", SimAgentState::Ready);
    assert_eq!(logged_in(&api, "1000").await.state, AgentState::Ready);

    sim.set_agent_state("1000", SimAgentState::Queue { lead_id: lead });
    let s = logged_in(&api, "1000").await;
    assert_eq!((s.state.clone(), s.calls_today), (AgentState::Queue, 1));
    assert!(s.on_lead(on(lead), Some("8600051")));

    sim.set_agent_state("1000", SimAgentState::InCall { lead_id: lead, customer_gone: false });
    let s = logged_in(&api, "1000").await;
    assert_eq!((s.state.clone(), s.sub_status), (AgentState::InCall, None));
    assert_eq!((s.vendor_lead_code.as_deref(), s.phone_number.as_deref()), (Some("HS-901"), Some("7275550101")));
    assert_eq!(s.campaign_id.as_deref(), Some("TESTCAMP"));
    assert!(s.call_id.is_some());
    assert!(s.on_lead(on(lead), Some("8600051")));
    assert!(!s.on_lead(on(lead), Some("8600052")));
    assert!(!s.on_lead(on(lead + 1), None));

    sim.set_agent_state("1000", SimAgentState::InCall { lead_id: lead, customer_gone: true });
    assert_eq!(logged_in(&api, "1000").await.sub_status, Some(SubStatus::Dead));
    sim.set_agent_state("1000", SimAgentState::Dispo { lead_id: lead });
    let s = logged_in(&api, "1000").await;
    assert_eq!((s.state.clone(), s.sub_status), (AgentState::Paused, Some(SubStatus::Dispo)));
    assert!(s.on_lead(on(lead), None));

    sim.log_out_agent("1000");
    assert_eq!(api.agent_status(&agent("1000")).await, Ok(AgentPresence::LoggedOut));
    // Asked as VICIdial is asked: a form POST with the tab delimiter.
    let last = sim.requests().pop().unwrap();
    assert_eq!((last.method.as_str(), last.param("stage"), last.param("agent_user")), ("POST", "tab", "1000"));
}

#[tokio::test]
/// A missing permission is a condition of the API user, not of one request: an integration
/// error, which pauses a worker and shows an operator message on the pages.
async fn missing_permissions_are_integration_errors() {
    let sim = VicidialSim::start().await;
    let api = api(&sim);
    sim.add_agent("1000", "Ann");
    let mut user = SimUser::api("6666", "1234");
    user.api_allowed_functions = " add_lead lead_search ".into();
    sim.add_user(user);
    let Err(DialerError::Integration { reason }) = api.agent_status(&agent("1000")).await else { panic!() };
    assert!(reason.contains("' agent_status '"), "{reason}");

    let mut user = SimUser::api("6666", "1234");
    user.view_reports = false;
    sim.add_user(user);
    let Err(DialerError::Integration { reason }) = api.agent_status(&agent("1000")).await else { panic!() };
    assert!(reason.contains("view_reports"), "{reason}");
}

#[tokio::test]
async fn an_unreachable_vicidial_is_retryable() {
    let sim = VicidialSim::start().await;
    let url = sim.base_url();
    drop(sim);
    let doc = SecretDoc::from_json(r#"{"vicidial":{"api_user":"6666","api_pass":"1234"}}"#).unwrap();
    let api = NonAgentApi::new(&url, Arc::new(Fixed(Arc::new(doc))), NonAgentApiOptions::default()).unwrap();
    assert!(matches!(api.agent_status(&agent("1000")).await, Err(DialerError::Retryable { .. })));
}

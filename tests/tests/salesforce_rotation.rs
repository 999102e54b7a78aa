//! Refresh-token rotation: the new refresh token is stored in the secret (moto's Secrets
//! Manager, or the local secrets file) before the new access token is used; and no secret
//! ever reaches a log line or an error.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};
use vicibridge_aws::secret_writer::SecretsManagerWriter;
use vicibridge_aws::secrets_manager::SecretsManagerStore;
use vicibridge_core::config::Config;
use vicibridge_core::plan::{SyncPlan, plan};
use vicibridge_core::ports::{Applied, Crm, SecretStore, SecretWriter, SecretsError};
use vicibridge_core::secrets::Secret;
use vicibridge_core::{Envelope, SyncError};
use vicibridge_local::secret_writer::FileSecretWriter;
use vicibridge_local::secrets_file::FileSecrets;
use vicibridge_salesforce::SalesforceCrm;
use vicibridge_tests::moto::Moto;
use vicibridge_tests::salesforce_sim::*;
use vicibridge_vicidial::{CallUrl, VicidialQuery, to_event};

const SECRET_NAME: &str = "vicibridge/salesforce-rotation";

fn config(sim: &SalesforceSim) -> Config {
    Config::from_toml(&format!(
        "[vicidial]\nbase_url = \"https://dialer.example.com\"\n[crm]\nkind = \"salesforce\"\n[salesforce]\nlogin_url = \"{}\"\n[dispositions.SALE]\nlead_status = \"Closed - Converted\"\n",
        sim.base
    ))
    .unwrap()
}

fn secret_json() -> String {
    json!({
        "ingest_tokens": ["ingest-token-rot"],
        "vicidial": { "api_user": "api", "api_pass": "vici-pass-77" },
        "salesforce": { "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN, "organization_id": "00Dsim000000001AAA" }
    })
    .to_string()
}

fn dispo(cfg: &Config, lead_id: &str, uniqueid: &str) -> SyncPlan {
    let q = format!(
        "lead_id=5&vendor_lead_code={lead_id}&phone_number=7275558888&user=1000&campaign=TESTCAMP&uniqueid={uniqueid}&epoch=1795299036&dispo=SALE&talk_time=20"
    );
    let envelope = Envelope::new(to_event(CallUrl::Dispo, &VicidialQuery::parse(&q)).unwrap(), chrono::Utc::now());
    plan(&envelope, &cfg.disposition_map(), cfg.vicidial.server_time_zone).unwrap()
}

fn lead(sim: &SalesforceSim) -> String {
    sim.insert("Lead", json!({ "LastName": "X", "Company": "Acme", "IsConverted": false }))
}

async fn stored_refresh_token(moto: &Moto) -> String {
    let out = moto.secrets_manager().get_secret_value().secret_id(SECRET_NAME).send().await.unwrap();
    let v: Value = serde_json::from_str(out.secret_string().unwrap()).unwrap();
    assert_eq!(v["vicidial"]["api_pass"], "vici-pass-77", "the rest of the secret is kept");
    assert_eq!(v["salesforce"]["client_id"], CLIENT_ID);
    v["salesforce"]["refresh_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_rotated_refresh_token_is_stored_in_secrets_manager_before_use() {
    let moto = Moto::start().await;
    moto.secrets_manager().create_secret().name(SECRET_NAME).secret_string(secret_json()).send().await.unwrap();
    let sim = SalesforceSim::start_with(Options { rotate_refresh_tokens: true, ..Options::default() }).await;
    let cfg = config(&sim);
    let section = cfg.salesforce.clone().unwrap();
    let store_a: Arc<dyn SecretStore> = Arc::new(SecretsManagerStore::new(moto.secrets_manager(), SECRET_NAME));
    let store_b: Arc<dyn SecretStore> = Arc::new(SecretsManagerStore::new(moto.secrets_manager(), SECRET_NAME));
    let writer =
        || -> Arc<dyn SecretWriter> { Arc::new(SecretsManagerWriter::new(moto.secrets_manager(), SECRET_NAME)) };
    let a = SalesforceCrm::new(section.clone(), Arc::clone(&store_a), Some(writer())).unwrap();
    let b = SalesforceCrm::new(section.clone(), Arc::clone(&store_b), Some(writer())).unwrap();
    let lead_id = lead(&sim);
    // B read the secret (old refresh token) before A rotated it: B's cache is stale.
    store_b.current().await.unwrap();

    assert_eq!(a.apply(&[dispo(&cfg, &lead_id, "1.1")]).await, vec![Ok(Applied::Done)]);
    let first = sim.state().issued_refresh_tokens.clone();
    assert_eq!(first.len(), 1);
    assert_eq!(stored_refresh_token(&moto).await, first[0], "stored in Secrets Manager");

    // B: invalid_grant with its cached token, re-reads the secret, succeeds, rotates again.
    assert_eq!(b.apply(&[dispo(&cfg, &lead_id, "1.2")]).await, vec![Ok(Applied::Done)]);
    let issued = sim.state().issued_refresh_tokens.clone();
    assert_eq!(issued.len(), 2);
    assert_eq!(stored_refresh_token(&moto).await, issued[1]);

    // A's session expires: A's token is stale too; it recovers the same way.
    sim.expire_sessions();
    assert_eq!(a.apply(&[dispo(&cfg, &lead_id, "1.3")]).await, vec![Ok(Applied::Done)]);
    let issued = sim.state().issued_refresh_tokens.clone();
    assert_eq!(stored_refresh_token(&moto).await, *issued.last().unwrap());

    // A restart (a cold Lambda) starts from the secret alone.
    let cold_store: Arc<dyn SecretStore> = Arc::new(SecretsManagerStore::new(moto.secrets_manager(), SECRET_NAME));
    let cold = SalesforceCrm::new(section, cold_store, Some(writer())).unwrap();
    assert_eq!(cold.apply(&[dispo(&cfg, &lead_id, "1.4")]).await, vec![Ok(Applied::Done)]);
    assert_eq!(sim.count("Task"), 4);
}

/// A writer whose storage can be switched off.
struct FlakyWriter {
    inner: FileSecretWriter,
    up: AtomicBool,
}

#[async_trait]
impl SecretWriter for FlakyWriter {
    async fn put_salesforce_refresh_token(&self, token: &Secret) -> Result<(), SecretsError> {
        if !self.up.load(Ordering::SeqCst) {
            return Err(SecretsError::Unavailable("storage is down".into()));
        }
        self.inner.put_salesforce_refresh_token(token).await
    }
}

#[tokio::test]
async fn a_token_that_cannot_be_stored_is_not_used_and_is_stored_first_next_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.json");
    std::fs::write(&path, secret_json()).unwrap();
    let sim = SalesforceSim::start_with(Options { rotate_refresh_tokens: true, ..Options::default() }).await;
    let cfg = config(&sim);
    let store: Arc<dyn SecretStore> = Arc::new(FileSecrets::open(&path).unwrap());
    let writer = Arc::new(FlakyWriter { inner: FileSecretWriter::new(&path), up: AtomicBool::new(false) });
    let crm = SalesforceCrm::new(cfg.salesforce.clone().unwrap(), store, Some(writer.clone())).unwrap();
    let lead_id = lead(&sim);

    let results = crm.apply(&[dispo(&cfg, &lead_id, "2.1")]).await;
    let Err(SyncError::Retryable { reason, .. }) = &results[0] else { panic!("{results:?}") };
    assert!(reason.contains("rotated Salesforce refresh token"), "{reason}");
    assert_eq!(sim.api_calls(), 0, "the new access token was not used");
    assert_eq!(sim.count("Task"), 0);

    writer.up.store(true, Ordering::SeqCst);
    assert_eq!(crm.apply(&[dispo(&cfg, &lead_id, "2.1")]).await, vec![Ok(Applied::Done)]);
    let doc = vicibridge_core::secrets::SecretDoc::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let stored = doc.salesforce.unwrap().refresh_token.unwrap();
    assert_eq!(stored.expose(), sim.state().issued_refresh_tokens.last().unwrap(), "the file holds the live token");
    assert_eq!(doc.vicidial.unwrap().api_pass.expose(), "vici-pass-77");
}

/// Collects every log line of the test's thread.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_reaches_a_log_line_or_an_error() {
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.json");
    std::fs::write(&path, secret_json()).unwrap();
    let sim = SalesforceSim::start_with(Options { rotate_refresh_tokens: true, ..Options::default() }).await;
    let cfg = config(&sim);
    let store: Arc<dyn SecretStore> = Arc::new(FileSecrets::open(&path).unwrap());
    let crm = SalesforceCrm::new(cfg.salesforce.clone().unwrap(), store, Some(Arc::new(FileSecretWriter::new(&path))))
        .unwrap();
    let lead_id = lead(&sim);
    let mut shown = String::new();
    let mut results = crm.apply(&[dispo(&cfg, &lead_id, "3.1")]).await;
    sim.expire_sessions();
    results.extend(crm.apply(&[dispo(&cfg, &lead_id, "3.2")]).await);
    sim.revoke_refresh_tokens();
    sim.expire_sessions();
    results.extend(crm.apply(&[dispo(&cfg, &lead_id, "3.3")]).await);
    // JWT with a bad key, and a missing secret section.
    let jwt_cfg = Config::from_toml(&format!(
        "[vicidial]\nbase_url = \"https://d.example.com\"\n[crm]\nkind = \"salesforce\"\n[salesforce]\nlogin_url = \"{}\"\nauth = \"jwt-bearer\"\n",
        sim.base
    ))
    .unwrap();
    let bad_key = json!({ "salesforce": { "client_id": CLIENT_ID, "username": USERNAME, "private_key": "-----BEGIN PRIVATE KEY-----\nsecret-key-material-xyz\n-----END PRIVATE KEY-----\n" } });
    let jwt = SalesforceCrm::new(
        jwt_cfg.salesforce.clone().unwrap(),
        Arc::new(FileSecrets::from_json(&bad_key.to_string()).unwrap()),
        None,
    )
    .unwrap();
    results.extend(jwt.apply(&[dispo(&cfg, &lead_id, "3.4")]).await);
    for r in &results {
        shown.push_str(&format!("{r:?}\n"));
        if let Err(e) = r {
            shown.push_str(&format!("{e}\n"));
        }
    }
    shown.push_str(&format!("{crm:?}\n{jwt:?}\n"));
    assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
    assert!(matches!(results[2], Err(SyncError::Integration { .. })), "{results:?}");
    assert!(matches!(results[3], Err(SyncError::Integration { .. })), "{results:?}");

    let log = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("obtained a Salesforce access token"), "the capture works: {log}");
    assert!(log.contains("stored the rotated Salesforce refresh token"), "{log}");
    let haystack = format!("{log}\n{shown}");
    let state = sim.state();
    let mut secrets: Vec<String> =
        vec![CLIENT_SECRET.into(), REFRESH_TOKEN.into(), "secret-key-material-xyz".into(), "vici-pass-77".into()];
    secrets.extend(state.issued_refresh_tokens.iter().cloned());
    secrets.extend(state.access_tokens.iter().cloned());
    secrets.push("00Dsim!access-".into());
    for s in &secrets {
        assert!(!haystack.contains(s.as_str()), "secret {s:?} leaked:\n{haystack}");
    }
}

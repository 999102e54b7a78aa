//! The AWS SDK's configuration in a Lambda: what Lambda puts in the environment, and the
//! process's one HTTP/TLS stack (`vicibridge_http`) as the SDK's transport.
//!
//! Not `aws_config::load_defaults` (nor the aws-config crate): that reads the shared config
//! files and builds the whole credential chain (profiles, web identity/STS, ECS, IMDS) and a
//! second HTTPS client whose construction parses the root certificates once per SDK client.
//! Lambda gives credentials
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and `AWS_REGION` in the
//! environment; `AWS_ENDPOINT_URL` (tests: moto) is honoured for every service, and
//! `AWS_ENDPOINT_URL_<SERVICE>` (`SQS`, `SECRETS_MANAGER`, `SSM`) for one, as the SDK's own
//! configuration loader does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_types::SdkConfig;
use aws_types::region::Region;
use http_body_util::BodyExt;

/// The SDK configuration of this process, built once from the environment.
pub fn sdk_config() -> &'static SdkConfig {
    static CONFIG: OnceLock<SdkConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let mut builder = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(SharedCredentialsProvider::new(LambdaEnvironmentCredentials))
            .http_client(http_client())
            .sleep_impl(
                aws_smithy_async::rt::sleep::default_async_sleep()
                    .unwrap_or_else(|| unreachable!("the SDK's tokio sleep is compiled in (rt-tokio)")),
            )
            .time_source(aws_smithy_async::time::SharedTimeSource::default());
        builder.set_region(env_value("AWS_REGION").or_else(|| env_value("AWS_DEFAULT_REGION")).map(Region::new));
        builder.set_endpoint_url(env_value("AWS_ENDPOINT_URL"));
        builder.build()
    })
}

/// `AWS_ENDPOINT_URL_<service>` when set: one service's endpoint (a VPC endpoint, a test fault).
pub fn service_endpoint(service: &str) -> Option<String> {
    env_value(&format!("AWS_ENDPOINT_URL_{service}"))
}

fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The execution role's credentials, which Lambda puts in the environment: read at each
/// request (as the SDK's environment provider does), so that unset ones fail the request with
/// the SDK's "credentials not loaded" error rather than the init.
#[derive(Debug)]
struct LambdaEnvironmentCredentials;

impl ProvideCredentials for LambdaEnvironmentCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let credentials = match (env_value("AWS_ACCESS_KEY_ID"), env_value("AWS_SECRET_ACCESS_KEY")) {
            (Some(key), Some(secret)) => {
                Ok(Credentials::new(key, secret, env_value("AWS_SESSION_TOKEN"), None, "LambdaEnvironment"))
            }
            _ => Err(CredentialsError::not_loaded(
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not both set in the environment",
            )),
        };
        future::ProvideCredentials::ready(credentials)
    }
}

/// The SDK's transport: `reqwest` on the process's shared TLS configuration, one client per
/// pair of connect / read timeouts the SDK clients ask for.
pub fn http_client() -> SharedHttpClient {
    SharedHttpClient::new(ReqwestClient::default())
}

/// Connect and read timeouts: what tells one connector from another.
type Timeouts = (Option<Duration>, Option<Duration>);

#[derive(Debug, Default)]
struct ReqwestClient {
    connectors: Mutex<HashMap<Timeouts, SharedHttpConnector>>,
}

impl HttpClient for ReqwestClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        let key: Timeouts = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self.connectors.lock().unwrap_or_else(PoisonError::into_inner);
        connectors.entry(key).or_insert_with(|| SharedHttpConnector::new(ReqwestConnector::new(settings))).clone()
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("reqwest", None))
    }
}

#[derive(Debug)]
struct ReqwestConnector {
    client: Result<reqwest::Client, Arc<str>>,
}

impl ReqwestConnector {
    fn new(settings: &HttpConnectorSettings) -> Self {
        // As the SDK's own client: no proxy, no redirect (the SDK sees every answer).
        let mut builder = vicibridge_http::client_builder().no_proxy().redirect(reqwest::redirect::Policy::none());
        if let Some(connect) = settings.connect_timeout() {
            builder = builder.connect_timeout(connect);
        }
        if let Some(read) = settings.read_timeout() {
            builder = builder.read_timeout(read);
        }
        ReqwestConnector { client: builder.build().map_err(|e| Arc::from(e.to_string())) }
    }
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        HttpConnectorFuture::new(async move {
            let client = client.map_err(|e| other(format!("cannot build the HTTP client: {e}")))?;
            let request = request.try_into_http1x().map_err(|e| ConnectorError::other(e.into(), None))?;
            let (parts, body) = request.into_parts();
            // Read through the body rather than taking its bytes: the SDK's stalled-upload check
            // watches it being read, and takes a body never read for a stalled upload (the
            // attempt fails after a 5 s grace period and is sent again).
            let body = body.collect().await.map_err(|e| ConnectorError::other(e, None))?.to_bytes();
            let request = reqwest::Request::try_from(http::Request::from_parts(parts, body))
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            let response = client.execute(request).await.map_err(classify)?;
            let (status, headers) = (response.status(), response.headers().clone());
            let body = response.bytes().await.map_err(classify)?;
            let mut response = http::Response::new(SdkBody::from(body));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

fn other(message: String) -> ConnectorError {
    ConnectorError::other(message.into(), None)
}

/// As the SDK's own client classifies: timeouts, and I/O errors (refused, reset, closed) that
/// the standard retry strategy retries.
fn classify(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_connect() || e.is_request() || e.is_body() {
        ConnectorError::io(e.into())
    } else {
        ConnectorError::other(e.into(), None)
    }
}

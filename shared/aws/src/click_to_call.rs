//! The `click-to-call` Lambda: API Gateway HTTP API requests to the shared click-to-call handler.

use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use vicibridge_runtime::budget::AGENT_REQUEST;
use vicibridge_runtime::click_to_call::{AgentRequest, ClickToCall, build_click_to_call};

use crate::config_source::{aws_config, load_config};
use crate::function::{InitError, env, start};
use crate::lambda::{Error, SECRET_ENV, serve_http};
use crate::limits::INGEST;
use crate::secrets_manager::SecretsManagerStore;

pub async fn run() -> Result<(), Error> {
    let (metrics, handler) = start(Box::pin(async {
        let budget = AGENT_REQUEST.from_env()?;
        let secret_id = env(SECRET_ENV)?;
        let sdk = aws_config().await;
        // The secret read is one step of an agent's request: the ingest limits keep it short.
        let (config, secrets) =
            tokio::join!(load_config(), async { SecretsManagerStore::new(INGEST.secrets_manager(sdk), secret_id) });
        let config = config?;
        let handler = build_click_to_call(&config, Arc::new(secrets))?.ok_or(InitError::NotConfigured {
            what: "the configuration has no [click_to_call] section: the click-to-call function has nothing to serve",
        })?;
        Ok(handler.with_budget(budget))
    }))
    .await;
    let handler = &handler;
    serve_http(metrics, move |req| async move { handle(handler, req).await }).await
}

/// The HTTP handler; public so tests drive it with real API Gateway event JSON.
pub async fn handle(handler: &ClickToCall, req: Request) -> Response<Body> {
    let answer = handler
        .handle(AgentRequest {
            method: req.method().as_str(),
            path: req.uri().path(),
            query: req.uri().query(),
            headers: req.headers(),
            body: req.body().as_ref(),
        })
        .await;
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = lambda_http::http::StatusCode::from_u16(answer.status)
        .unwrap_or(lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in answer.headers {
        if let Ok(v) = lambda_http::http::HeaderValue::try_from(value) {
            response.headers_mut().append(name, v);
        }
    }
    response
}

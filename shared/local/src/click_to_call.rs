//! The click-to-call routes of `vicibridge serve`: the dialer pages, agent sign-in and
//! `POST /agent/dial` / `GET /agent/state`, handed to the shared handler (`vicibridge_runtime::click_to_call`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use vicibridge_runtime::click_to_call::{AgentRequest, ClickToCall, MAX_BODY_BYTES};

use crate::serve::BODY_READ_TIMEOUT;

type Handler = Option<Arc<ClickToCall>>;

/// `None`: `[click_to_call]` is not configured, and the routes say so.
pub fn routes(handler: Handler) -> Router {
    Router::new()
        .route("/agent/dial", post(route))
        .route("/agent/state", get(route))
        .route("/agent/oauth/{crm}/{step}", get(route))
        .route("/dialer", get(route))
        .route("/dialer/{page}", get(route))
        .with_state(handler)
}

async fn route(State(handler): State<Handler>, request: Request) -> Response {
    let Some(handler) = handler else {
        return (StatusCode::NOT_FOUND, "click-to-call is not configured: add [click_to_call] to the config")
            .into_response();
    };
    let (parts, body) = request.into_parts();
    // The header-read timeout does not cover the body (see serve's webhook routes).
    let body = match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response(),
        Err(_) => {
            let mut response = (StatusCode::REQUEST_TIMEOUT, "request body not received in time").into_response();
            response.headers_mut().insert(axum::http::header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };
    let answer = handler
        .handle(AgentRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers: &parts.headers,
            body: &body,
        })
        .await;
    let mut response = Response::new(axum::body::Body::from(answer.body));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in answer.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().append(n, v);
        }
    }
    response
}

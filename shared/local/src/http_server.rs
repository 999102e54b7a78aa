//! The HTTP/1.1 server under `vicibridge serve`: the axum router on hyper, with the limits a
//! listener reachable from a dialer's network needs. `axum::serve` sets none of them (no header
//! size cap below ~400 KB, no header-read or idle timeout, and a graceful shutdown that waits
//! for every connection however long a client holds it).

mod framing;

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::{debug, warn};

/// Request line and headers together; more is answered 431 and the connection closed. VICIdial
/// sends `Host` and `Connection: close` only; CRM webhooks a few hundred bytes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Time a connection may take to send a request's headers, counted from the moment the server
/// waits for them: a new connection, or an idle keep-alive one. Then it is closed, so a client
/// that trickles bytes (slowloris) or idles holds no connection for long.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// On shutdown, requests in flight get this long to finish; connections still open after
/// that (a client holding a partial request) are dropped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets requests
/// in flight finish for up to [`SHUTDOWN_GRACE`] and closes what is left.
pub async fn run(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = TowerToHyperService::new(router);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).max_header_size(MAX_HEADER_BYTES);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Reap finished connections so the set holds only live ones.
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                warn!(error = %e, "cannot accept a connection; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Answers are one small write each: send them at once (Nagle would hold one back while
        // a previous segment is unacknowledged).
        if let Err(e) = tcp.set_nodelay(true) {
            debug!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
        let (io, ambiguous) = framing::FramingWatch::new(tcp);
        let service = service.clone();
        let per_connection = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            // Routes that depend on who is asking (`/status` from loopback) read it with axum's
            // `ConnectInfo` extractor.
            request.extensions_mut().insert(ConnectInfo(peer));
            let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
            let answer = (!(chunked && ambiguous.seen())).then(|| service.call(request));
            async move {
                let Some(answer) = answer else { return Ok::<_, Infallible>(refuse_ambiguous_framing()) };
                let mut response = answer.await?;
                // The framing of later requests on this connection is no longer followed.
                if chunked {
                    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok(response)
            }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(io), per_connection));
        connections.spawn(async move {
            if let Err(e) = connection.await {
                debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        warn!(
            open = connections.len(),
            "connections still open {}s after the shutdown signal were closed",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    connections.shutdown().await;
    Ok(())
}

/// A request with both `Transfer-Encoding` and `Content-Length` can be framed two ways; a proxy
/// in front may have read it the other way (request smuggling): 400, and the connection closes.
fn refuse_ambiguous_framing() -> Response {
    warn!(status = 400, "request with both Transfer-Encoding and Content-Length refused");
    let mut response =
        (StatusCode::BAD_REQUEST, "rejected: both Transfer-Encoding and Content-Length\n").into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Errors of one connection that the listener survives (as hyper-util's and axum's loops do).
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

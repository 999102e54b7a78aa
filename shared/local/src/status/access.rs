//! Who may read `/status`: a request with one of the secret's `status_tokens` (from anywhere),
//! or, without a token, a request from this machine that no proxy forwarded, while
//! `[status] loopback_without_token` holds (the default).

use std::net::IpAddr;

use axum::http::{HeaderMap, header};
use vicibridge_core::auth::token_matches;
use vicibridge_core::secrets::Secret;

/// Headers a reverse proxy adds: their presence means the TCP peer is the proxy, not the reader.
const PROXY_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Allowed,
    /// 401: a token was presented and is wrong, or one is needed and tokens are configured.
    Unauthorized,
    /// 403: a remote request while no `status_tokens` are configured: nothing it could present.
    LoopbackOnly,
}

/// The token a request presents: `Authorization: Bearer …` (preferred: stays out of logs
/// and browser history), else `token=` in the query.
pub fn presented_token<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<String> {
    if let Some(bearer) =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_owned());
    }
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// Whether the request came straight from this machine.
pub fn is_local(peer: IpAddr, headers: &HeaderMap) -> bool {
    let ip = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
        v4 => v4,
    };
    ip.is_loopback() && !PROXY_HEADERS.iter().any(|h| headers.contains_key(*h))
}

pub fn decide(local: bool, presented: Option<&str>, tokens: &[Secret], loopback_without_token: bool) -> Access {
    match presented {
        Some(token) if token_matches(token, tokens) => Access::Allowed,
        Some(_) => Access::Unauthorized,
        None if local && loopback_without_token => Access::Allowed,
        None if tokens.iter().all(|t| t.expose().is_empty()) => Access::LoopbackOnly,
        None => Access::Unauthorized,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_open_it_anywhere_and_loopback_needs_none_unless_turned_off() {
        let tokens = [Secret::new("status-token-1")];
        assert_eq!(decide(false, Some("status-token-1"), &tokens, true), Access::Allowed);
        assert_eq!(decide(false, Some("wrong"), &tokens, true), Access::Unauthorized);
        assert_eq!(
            decide(true, Some("wrong"), &tokens, true),
            Access::Unauthorized,
            "a wrong token is never waved through"
        );
        assert_eq!(decide(false, None, &tokens, true), Access::Unauthorized);
        assert_eq!(decide(false, None, &[], true), Access::LoopbackOnly);
        assert_eq!(decide(true, None, &[], true), Access::Allowed);
        assert_eq!(decide(true, None, &tokens, false), Access::Unauthorized);
        assert_eq!(decide(true, None, &[], false), Access::LoopbackOnly);
    }

    #[test]
    fn a_proxied_request_is_not_local() {
        let mut headers = HeaderMap::new();
        assert!(is_local("127.0.0.1".parse().unwrap(), &headers));
        assert!(is_local("::1".parse().unwrap(), &headers));
        assert!(is_local("::ffff:127.0.0.1".parse().unwrap(), &headers));
        assert!(!is_local("192.0.2.7".parse().unwrap(), &headers));
        headers.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
        assert!(!is_local("127.0.0.1".parse().unwrap(), &headers));
    }

    #[test]
    fn the_bearer_header_wins_over_the_query() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_token(&headers, Some("a=1&token=q%2Bt")).as_deref(), Some("q+t"));
        headers.insert(header::AUTHORIZATION, "Bearer h-t".parse().unwrap());
        assert_eq!(presented_token(&headers, Some("token=q")).as_deref(), Some("h-t"));
        assert_eq!(presented_token(&HeaderMap::new(), None), None);
    }
}

//! The domain of vicibridge. Pure: no I/O, no AWS, no HTTP client.
//!
//! Everything that decides something lives here (or in an outside-system crate) and is tested
//! here; the Lambdas and `vicibridge serve` only wire adapters to these types.

pub mod agent;
pub mod auth;
pub mod bridge_id;
pub mod config;
pub mod direction;
pub mod disposition;
pub mod envelope;
pub mod event;
pub mod lead;
pub mod phone;
pub mod plan;
pub mod ports;
pub mod screen_pop;
pub mod secrets;
pub mod sync_error;
pub mod watchdog;

pub use envelope::{Envelope, IdempotencyKey};
pub use event::{Event, EventKind, LeadId};
pub use sync_error::SyncError;

/// An error and its sources on one line ("a: b: c"): HTTP clients' own messages hide the cause
/// (connection refused, DNS, TLS) in the source chain.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("error sending request")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn error_chain_shows_every_cause() {
        let e = Outer(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused"));
        assert_eq!(super::error_chain(&e), "error sending request: connection refused");
    }
}

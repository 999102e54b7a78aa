//! The domain of vicibridge. Pure: no I/O, no AWS, no HTTP client.
//!
//! Everything that decides something lives here (or in an outside-system crate) and is tested
//! here; the Lambdas and `vicibridge serve` only wire adapters to these types.

pub mod auth;
pub mod config;
pub mod disposition;
pub mod envelope;
pub mod event;
pub mod lead;
pub mod phone;
pub mod plan;
pub mod ports;
pub mod secrets;
pub mod sync_error;

pub use envelope::{Envelope, IdempotencyKey};
pub use event::{Event, EventKind, LeadId};
pub use sync_error::SyncError;

//! Local / self-hosted adapters: what `vicibridge serve` runs on instead of AWS.

pub mod click_to_call;
pub mod data_dir_lock;
pub mod disposition_watch;
pub mod http_server;
pub mod queue;
pub mod queue_status;
pub mod reconcile;
pub mod secret_writer;
pub mod secrets_file;
pub mod serve;
pub mod status;
pub mod watchdog;

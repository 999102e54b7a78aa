//! AWS adapters (SQS, Secrets Manager, SSM Parameter Store) and the Lambda entry points.

pub mod click_to_call;
pub mod config_source;
pub mod function;
pub mod lambda;
pub mod limits;
pub mod reconcile;
pub mod sdk;
pub mod secret_writer;
pub mod secrets_manager;
pub mod sqs;
pub mod sqs_admin;

pub use vicibridge_vicidial::CallUrl;

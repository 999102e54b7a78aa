//! Logging for `serve` and tests (Lambdas use lambda_runtime's subscriber, which reads
//! `AWS_LAMBDA_LOG_FORMAT`/`AWS_LAMBDA_LOG_LEVEL`).
//!
//! Redaction is by construction: secrets are `Secret` values with a redacted `Debug`, the
//! VICIdial `pass`/`token` variables are dropped by the query parser, raw queries and request
//! bodies are never logged.

use std::io::{BufWriter, IsTerminal};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Keeps the thread that writes the log; dropping it writes out what is still buffered.
#[derive(Debug)]
#[must_use = "log lines still buffered when the guard is dropped are written then; keep it until exit"]
pub struct LogGuard {
    _writer: WorkerGuard,
}

/// Logs to stderr. `RUST_LOG` overrides the default `info`.
///
/// Lines are written by a thread of their own, in batches: written inline, one `write` per
/// line on the request path, logging cost `serve` about 15 % of its ingest throughput
/// (BENCHMARKS.md). Never lossy: when that thread falls behind, loggers wait rather than
/// lines being dropped.
pub fn init_logging(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("vicibridge-log")
        .finish(BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    // try_init: a second call (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    LogGuard { _writer: guard }
}

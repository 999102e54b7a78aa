//! The embedded SQLite queue with SQS semantics.

//! The configuration TOML read from an SSM parameter (or a file) at cold start.

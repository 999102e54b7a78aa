//! Secrets from a local JSON file or an environment variable.

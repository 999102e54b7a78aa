//! Secrets Manager adapter: the secret JSON cached with a TTL.

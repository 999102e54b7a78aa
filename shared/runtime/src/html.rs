//! What the HTML pages vicibridge serves share.

use base64::Engine;
use sha2::{Digest, Sha256};

/// `'sha256-…'` of an inline `<style>` or `<script>` body: the CSP source that allows exactly it.
pub fn csp_hash(source: &str) -> String {
    let digest = Sha256::digest(source.as_bytes());
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest))
}

//! Authentication of VICIdial's requests: a shared token in the URL.

use subtle::ConstantTimeEq;

use crate::secrets::Secret;

/// Compares `presented` with every accepted token in constant time (per token length) and
/// without stopping at the first match, so timing tells nothing about which token matched.
pub fn token_matches(presented: &str, accepted: &[Secret]) -> bool {
    let mut ok = subtle::Choice::from(0);
    for token in accepted {
        let t = token.expose().as_bytes();
        if !t.is_empty() {
            ok |= t.ct_eq(presented.as_bytes());
        }
    }
    ok.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_and_previous_tokens_are_accepted() {
        let tokens = [Secret::new("current-token"), Secret::new("previous-token")];
        assert!(token_matches("current-token", &tokens));
        assert!(token_matches("previous-token", &tokens));
        assert!(!token_matches("current-toke", &tokens));
        assert!(!token_matches("", &tokens));
        assert!(!token_matches("x", &[]));
        assert!(!token_matches("", &[Secret::new("")]), "an empty configured token never matches");
    }
}

//! Reading the TOML so that one look shows every mistake: toml reports each syntax error it
//! can recover from, but serde stops at the first unknown key, wrong type or missing key.
//! Each of those is reported, its key (or, for a missing one, its table) set aside, and the
//! rest read again.

use std::ops::Range;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use super::Config;

/// Enough for any real file; bounds the re-reads of a pathological one.
const MAX_ERRORS: usize = 50;

/// The configuration, read from what is left once the keys in error are set aside (so its
/// own checks can still run), and toml's messages, each with line, column, the line itself
/// and the key.
pub(super) fn read(text: &str) -> (Option<Config>, Vec<String>) {
    let (doc, syntax) = DeTable::parse_recoverable(text);
    let had_syntax_errors = !syntax.is_empty();
    let mut errors: Vec<(usize, String)> = syntax.into_iter().map(|e| render(e, text)).collect();
    let mut doc = doc;
    let mut set_aside: Vec<String> = Vec::new();
    while errors.len() < MAX_ERRORS {
        let error = match Config::deserialize(toml::de::Deserializer::from(doc.clone())) {
            Ok(config) => return (Some(config), in_file_order(errors)),
            Err(e) => e,
        };
        // serde reports a missing key once it has read the rest of its table: setting the
        // table aside lets the reading go on with the tables after it.
        let missing = error.message().strip_prefix("missing field `").and_then(|m| m.strip_suffix('`'));
        let removed = error.span().and_then(|span| remove_entry_at(doc.get_mut(), &span));
        match missing {
            // Missing because it was set aside (or lost to a syntax error): already reported.
            Some(field) if set_aside.iter().any(|k| k == field) || had_syntax_errors => {}
            _ => errors.push(render(error, text)),
        }
        match removed {
            Some(key) => set_aside.push(key),
            None => break,
        }
    }
    (None, in_file_order(errors))
}

/// toml's message and where it is in the file.
fn render(mut error: toml::de::Error, text: &str) -> (usize, String) {
    error.set_input(Some(text));
    (error.span().map_or(usize::MAX, |s| s.start), error.to_string().trim_end().to_owned())
}

/// serde reads tables in key order, not the file's.
fn in_file_order(mut errors: Vec<(usize, String)>) -> Vec<String> {
    errors.sort_by_key(|(at, _)| *at);
    errors.into_iter().map(|(_, message)| message).collect()
}

/// Removes the innermost key-value pair whose key or value covers `span`; returns its key.
fn remove_entry_at(table: &mut DeTable<'_>, span: &Range<usize>) -> Option<String> {
    for (_, value) in table.iter_mut() {
        let found = match value.get_mut() {
            DeValue::Table(inner) => remove_entry_at(inner, span),
            DeValue::Array(items) => items.iter_mut().find_map(|item| match item.get_mut() {
                DeValue::Table(inner) => remove_entry_at(inner, span),
                _ => None,
            }),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    let covers = |s: Range<usize>| s.start <= span.start && span.end <= s.end;
    let key = table.iter().find(|(k, v)| covers(k.span()) || covers(v.span())).map(|(k, _)| k.clone())?;
    table.remove(&key);
    Some(key.into_inner().into_owned())
}

//! `[screen_pop]`: the agent-facing page `GET /vicidial/screen-pop` (README "Screen pop").

use serde::Deserialize;

use super::{Problem, Severity};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScreenPopConfig {
    /// Ask VICIdial (`agent_status`) that `user` is on `lead_id` before showing anything.
    /// `false` lets anyone holding the page URL read any lead's CRM record: `check-config`
    /// warns about it.
    pub verify_agent: bool,
    /// Origins allowed to frame the page (CSP `frame-ancestors`); empty: the origin of
    /// `[vicidial] base_url`.
    pub frame_ancestors: Vec<String>,
    /// Seconds a caller's CRM context is reused for the same lead (page reloads, tab switches).
    pub cache_secs: u32,
    /// Recent activities (calls, notes, tasks) shown.
    pub activities: u8,
    /// Pops one agent may open per minute; above it the page answers 429.
    pub max_pops_per_minute: u32,
}

impl Default for ScreenPopConfig {
    fn default() -> Self {
        ScreenPopConfig {
            verify_agent: true,
            frame_ancestors: Vec::new(),
            cache_secs: 30,
            activities: 5,
            max_pops_per_minute: 30,
        }
    }
}

/// `scheme://host[:port]` of an http(s) URL, `None` for anything else.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next()?;
    is_host_port(host).then(|| format!("{scheme}://{}", host.to_ascii_lowercase()))
}

fn is_host_port(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let host = host.strip_prefix("*.").unwrap_or(host);
    !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

impl ScreenPopConfig {
    /// The CSP `frame-ancestors` sources: the configured origins, or VICIdial's.
    pub fn frame_ancestors(&self, vicidial_base_url: &str) -> Vec<String> {
        if self.frame_ancestors.is_empty() {
            origin_of(vicidial_base_url).into_iter().collect()
        } else {
            self.frame_ancestors.iter().filter_map(|o| origin_of(o)).collect()
        }
    }

    pub(super) fn problems(&self, out: &mut Vec<Problem>) {
        let mut add = |key: &str, message: String, severity| {
            out.push(Problem { key: format!("screen_pop.{key}"), message, severity });
        };
        if !self.verify_agent {
            add(
                "verify_agent",
                "false: the screen pop shows any lead's CRM record to whoever holds the page URL (every agent sees \
                 it), without asking VICIdial whether that agent is on that call"
                    .into(),
                Severity::Warning,
            );
        }
        for o in &self.frame_ancestors {
            // Each value lands in a response header: only a bare origin may pass.
            if origin_of(o).as_deref() != Some(o.trim_end_matches('/')) {
                add(
                    "frame_ancestors",
                    format!(
                        "{o:?} is not an origin such as \"https://dialer.example.com\" (scheme, host, optional port)"
                    ),
                    Severity::Error,
                );
            }
        }
        if self.activities == 0 || self.activities > 50 {
            add("activities", "must be between 1 and 50".into(), Severity::Error);
        }
        if self.cache_secs > 3600 {
            add(
                "cache_secs",
                "must be at most 3600 (a pop shows the CRM as it was this long ago)".into(),
                Severity::Error,
            );
        }
        if self.max_pops_per_minute == 0 {
            add("max_pops_per_minute", "must be at least 1".into(), Severity::Error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(origin_of("https://Dialer.example.com/vicidial/").as_deref(), Some("https://dialer.example.com"));
        assert_eq!(origin_of("http://127.0.0.1:8091").as_deref(), Some("http://127.0.0.1:8091"));
        for bad in ["ftp://x", "https://a b", "https://x;script-src *", "https://", "x"] {
            assert_eq!(origin_of(bad), None, "{bad}");
        }
        let c = ScreenPopConfig::default();
        assert_eq!(c.frame_ancestors("https://d.example.com/x"), vec!["https://d.example.com".to_owned()]);
    }

    #[test]
    fn problems() {
        let mut out = Vec::new();
        let c = ScreenPopConfig {
            verify_agent: false,
            frame_ancestors: vec!["https://ok.example.com".into(), "https://x; script-src *".into()],
            ..ScreenPopConfig::default()
        };
        c.problems(&mut out);
        assert!(out.iter().any(|p| p.key == "screen_pop.verify_agent" && p.severity == Severity::Warning));
        let errors: Vec<_> = out.iter().filter(|p| p.severity == Severity::Error).collect();
        assert_eq!(errors.len(), 1, "{out:?}");
        assert!(errors[0].message.contains("script-src"));
    }
}

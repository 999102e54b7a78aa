//! The dialer pages: plain HTML, one script and one stylesheet of our own (served by vicibridge,
//! so `script-src 'self'`), the CRM's SDK where it needs one, configuration in `data-`
//! attributes (escaped). Every page gets CSP `frame-ancestors` for who may frame it and
//! `Referrer-Policy: no-referrer`.

use html_escape::encode_double_quoted_attribute as attr;

pub const WIDGET_JS: &str = include_str!("assets/widget.js");
pub const WIDGET_CSS: &str = include_str!("assets/widget.css");

/// Which page: each has its own SDK and framing rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    Hubspot,
    Salesforce,
    Plain,
}

impl Surface {
    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Hubspot => "hubspot",
            Surface::Salesforce => "salesforce",
            Surface::Plain => "plain",
        }
    }
}

/// A page's headers: `frame-ancestors` from config (`'none'` when empty), scripts only from us
/// and the given SDK origin, requests only to us.
pub fn headers(frame_ancestors: &[String], script_origin: Option<&str>) -> Vec<(&'static str, String)> {
    let ancestors = if frame_ancestors.is_empty() { "'none'".to_owned() } else { frame_ancestors.join(" ") };
    let scripts = match script_origin {
        Some(o) => format!("'self' {o}"),
        None => "'self'".to_owned(),
    };
    vec![
        (
            "content-security-policy",
            format!(
                "default-src 'none'; script-src {scripts}; style-src 'self'; img-src 'self'; connect-src 'self'; \
                 base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}"
            ),
        ),
        ("referrer-policy", "no-referrer".to_owned()),
        ("x-content-type-options", "nosniff".to_owned()),
        ("cache-control", "no-store".to_owned()),
    ]
}

/// `https://host[:port]` of a URL, for CSP.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| format!("{scheme}://{host}"))
}

/// The widget page. `sdk`: `(src, integrity)`; `sign_in`: CRMs the agent may sign in with.
pub fn widget(surface: Surface, sdk: Option<(&str, Option<&str>)>, sign_in: &[&str]) -> String {
    let sdk_tag = match sdk {
        Some((src, Some(sri))) => {
            format!(r#"<script src="{}" integrity="{}" crossorigin="anonymous"></script>"#, attr(src), attr(sri))
        }
        Some((src, None)) => format!(r#"<script src="{}"></script>"#, attr(src)),
        None => String::new(),
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>VICIdial dialer</title><link rel="stylesheet" href="/dialer/widget.css">
{sdk_tag}<script src="/dialer/widget.js" defer></script></head>
<body data-surface="{surface}" data-sign-in="{sign_in}">
<main><h1>VICIdial</h1>
<p id="status" role="status">Loading…</p>
<p id="detail"></p>
<div id="actions"></div>
</main></body></html>
"#,
        surface = surface.as_str(),
        sign_in = attr(&sign_in.join(" ")),
    )
}

/// The end of a sign-in, in the popup: hands the session to the widget that opened it (same
/// origin only) and closes; or says what went wrong.
pub fn signed_in(session: &str, agent: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Signed in</title><link rel="stylesheet" href="/dialer/widget.css">
<script src="/dialer/widget.js" defer></script></head>
<body data-surface="signed-in" data-session="{}" data-agent="{}">
<main><h1>VICIdial</h1><p id="status" role="status">Signed in as VICIdial agent {}. You can close this window.</p></main>
</body></html>
"#,
        attr(session),
        attr(agent),
        html_escape::encode_text(agent),
    )
}

/// A readable error page (sign-in failures, unmapped users).
pub fn problem(title: &str, message: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{t}</title><link rel="stylesheet" href="/dialer/widget.css"></head>
<body data-surface="problem"><main><h1>VICIdial</h1><p id="status" class="error" role="alert">{t}</p><p id="detail">{m}</p></main></body></html>
"#,
        t = html_escape::encode_text(title),
        m = html_escape::encode_text(message),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_framing_is_limited() {
        let page =
            widget(Surface::Hubspot, Some(("https://cdn.example/x.js?a=\"><script>", Some("sha384-x"))), &["hubspot"]);
        assert!(!page.contains("\"><script>"), "{page}");
        let page = problem("<b>", "<script>alert(1)</script>");
        assert!(!page.contains("<script>alert") && !page.contains("<b>"));
        let h = headers(&[], None);
        assert!(h.iter().any(|(k, v)| *k == "content-security-policy" && v.ends_with("frame-ancestors 'none'")));
        assert!(h.iter().any(|(k, v)| *k == "referrer-policy" && v == "no-referrer"));
        assert_eq!(origin_of("https://cdn.jsdelivr.net/npm/x").as_deref(), Some("https://cdn.jsdelivr.net"));
    }
}

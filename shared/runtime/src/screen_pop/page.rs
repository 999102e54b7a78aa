//! The screen pop's HTML: maud escapes every value; one inline stylesheet allowed by its hash
//! in the CSP, no script, nothing loaded from anywhere. Readable from 400 px wide up.

use std::sync::LazyLock;

use maud::{DOCTYPE, Markup, html};
use vicibridge_core::LeadId;
use vicibridge_core::agent::{AgentStatus, AgentUser};
use vicibridge_core::screen_pop::{PopView, Record};
use vicibridge_vicidial::VicidialQuery;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;padding:10px;color:#1d2330;background:#fff}\
h1{font-size:18px;margin:0 0 4px}h2{font-size:13px;text-transform:uppercase;color:#5b6475;margin:14px 0 4px}\
.meta{color:#5b6475;font-size:12px}.badge{display:inline-block;padding:1px 6px;border-radius:3px;font-size:12px;\
background:#e8ecf3}.dnc{background:#b3261e;color:#fff;font-weight:bold}.note{background:#fff4ce;padding:6px;\
border-radius:4px}dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 10px;margin:6px 0}dt{color:#5b6475}\
dd{margin:0;overflow-wrap:anywhere}ul{list-style:none;padding:0;margin:0}li{padding:4px 0;border-bottom:1px solid \
#e8ecf3}a{color:#0b57d0}.err{border-left:4px solid #b3261e;padding:6px 10px}";

/// `'sha256-…'` of [`STYLE`]: the only style the CSP allows.
static STYLE_HASH: LazyLock<String> = LazyLock::new(|| crate::html::csp_hash(STYLE));

/// `default-src 'none'` plus the page's own stylesheet; framing limited to `ancestors`
/// (`'none'` when there is none).
pub fn content_security_policy(ancestors: &[String]) -> String {
    let frame = if ancestors.is_empty() { "'none'".to_owned() } else { ancestors.join(" ") };
    format!(
        "default-src 'none'; style-src {}; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors {frame}",
        *STYLE_HASH
    )
}

/// The VICIdial side of the pop: the agent, the lead, and what VICIdial said about it.
#[derive(Clone, Debug)]
pub struct Caller {
    pub agent: AgentUser,
    pub lead_id: LeadId,
    pub vendor_lead_code: Option<String>,
    pub phone_number: Option<String>,
    pub phone_code: Option<String>,
    pub campaign: Option<String>,
    /// From VICIdial's agent_status (not from the page URL).
    pub verified: bool,
}

impl Caller {
    pub fn verified(agent: &AgentUser, lead_id: LeadId, s: &AgentStatus) -> Caller {
        Caller {
            agent: agent.clone(),
            lead_id,
            vendor_lead_code: s.vendor_lead_code.clone(),
            phone_number: s.phone_number.clone(),
            phone_code: None,
            campaign: s.campaign_id.clone(),
            verified: true,
        }
    }

    /// `verify_agent = false`: the URL's own values.
    pub fn from_url(agent: &AgentUser, lead_id: LeadId, q: &VicidialQuery) -> Caller {
        let get = |k: &str| q.get(k).map(str::to_owned);
        Caller {
            agent: agent.clone(),
            lead_id,
            vendor_lead_code: get("vendor_lead_code"),
            phone_number: get("phone_number"),
            phone_code: get("phone_code"),
            campaign: get("campaign"),
            verified: false,
        }
    }
}

/// Why nothing is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    BadToken,
    BadLink,
    NotOnCall,
    TooMany,
    VicidialUnavailable,
    Misconfigured,
}

#[derive(Clone, Debug)]
pub enum Page {
    Pop { caller: Caller, view: PopView },
    CrmUnavailable { crm: &'static str, caller: Caller },
    Denied(Denial),
}

fn shell(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
}

/// Only http(s) links are rendered as links (a CRM value is data, never a `javascript:` URL).
fn link(url: Option<&str>, text: &str) -> Markup {
    match url {
        Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
            html! { a href=(u) target="_blank" rel="noopener noreferrer" { (text) } }
        }
        _ => html! {},
    }
}

fn lead_facts(c: &Caller) -> Markup {
    html! {
        dl {
            dt { "VICIdial lead" } dd { (c.lead_id) }
            @if let Some(v) = &c.vendor_lead_code { dt { "Vendor lead code" } dd { (v) } }
            @if let Some(p) = &c.phone_number { dt { "Phone" } dd { @if let Some(code) = &c.phone_code { "+" (code) " " } (p) } }
            @if let Some(cmp) = &c.campaign { dt { "Campaign" } dd { (cmp) } }
            dt { "Agent" } dd { (c.agent) @if !c.verified { " " span.badge { "not verified" } } }
        }
    }
}

fn record(r: &Record) -> Markup {
    html! {
        h1 { (r.name) " " span.badge { (r.crm) " " (r.kind) } @if r.do_not_call { " " span.badge.dnc { "DO NOT CALL" } } }
        dl { @for f in &r.fields { dt { (f.label) } dd { (f.value) } } }
        (link(r.open_url.as_deref(), &format!("Open in {}", r.crm)))
        @if !r.deals.is_empty() {
            h2 { "Open deals" }
            ul { @for d in &r.deals { li {
                strong { (d.name) }
                @if let Some(s) = &d.stage { " · " (s) }
                @if let Some(a) = &d.amount { " · " (a) }
                @if let Some(c) = &d.close_date { span.meta { " · closes " (c) } }
            } } }
        }
        @if !r.tasks.is_empty() {
            h2 { "Open tasks" }
            ul { @for t in &r.tasks { li { (t.subject) @if let Some(d) = &t.due { span.meta { " · due " (d) } } } } }
        }
        h2 { "Recent activity" }
        @if r.activities.is_empty() { p.meta { "None yet." } }
        ul { @for a in &r.activities { li {
            span.badge { (a.kind) } " " (a.title)
            @if let Some(o) = &a.outcome { " · " (o) }
            @if let Some(d) = &a.duration { " · " (d) }
            @if let Some(d) = &a.date { span.meta { " · " (d) } }
            @if a.recording_url.is_some() { " · " (link(a.recording_url.as_deref(), "recording")) }
        } } }
    }
}

impl Page {
    pub fn render(&self) -> String {
        let markup = match self {
            Page::Pop { caller, view } => shell(
                "Caller",
                html! {
                    @match view {
                        PopView::Record(r) => (record(r)),
                        PopView::Choose { crm, candidates } => {
                            @if candidates.len() == 1 {
                                h1 { "1 " (crm) " record has this caller's number" }
                            } @else {
                                h1 { (candidates.len()) " " (crm) " records match this caller" }
                            }
                            p.meta { "Pick the right one:" }
                            ul { @for c in candidates { li {
                                strong { (c.name) } " " span.badge { (c.kind) }
                                @if let Some(d) = &c.detail { span.meta { " · " (d) } }
                                " " (link(c.open_url.as_deref(), "open"))
                            } } }
                        }
                        PopView::NoRecord { crm, create_url } => {
                            h1 { "No " (crm) " record for this caller" }
                            p { (link(create_url.as_deref(), &format!("Create one in {crm}"))) }
                        }
                        PopView::LeadOnly => {
                            h1 { "VICIdial lead " (caller.lead_id) }
                            p.note { "Dry run: no CRM is connected (crm.kind = \"dry-run\"). This is VICIdial's lead data only." }
                        }
                    }
                    h2 { "This call" }
                    (lead_facts(caller))
                },
            ),
            Page::CrmUnavailable { crm, caller } => shell(
                "CRM unavailable",
                html! {
                    div.err { h1 { (crm) " is not answering" } p { "The CRM record cannot be shown right now. Reload this tab in a moment." } }
                    h2 { "This call" }
                    (lead_facts(caller))
                },
            ),
            Page::Denied(d) => {
                let (title, text) = match d {
                    Denial::NotOnCall => (
                        "This call is no longer on your screen",
                        "The CRM record is shown only for the call you are on now.",
                    ),
                    Denial::BadToken => (
                        "This page link is not valid",
                        "Ask your VICIdial administrator to check the screen pop URL (its token).",
                    ),
                    Denial::BadLink => (
                        "This page link is incomplete",
                        "The screen pop needs lead_id and user from VICIdial; ask your administrator to check the URL.",
                    ),
                    Denial::TooMany => ("Too many pops", "Wait a minute, then reload this tab."),
                    Denial::VicidialUnavailable => {
                        ("VICIdial could not confirm your call", "Reload this tab in a moment.")
                    }
                    Denial::Misconfigured => (
                        "The screen pop is not available",
                        "vicibridge cannot read its settings; tell your administrator.",
                    ),
                };
                shell(title, html! { div.err { h1 { (title) } p { (text) } } })
            }
        };
        markup.into_string()
    }
}

//! Inbound: Salesforce Outbound Messages (SOAP 1.1, up to 100 notifications) and the exact
//! acknowledgement Salesforce waits for (reference §2). Flow HTTP callouts (JSON) too (§3).

use std::collections::BTreeMap;

use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

/// The ACK, byte for byte (reference §2.2). Anything else — even a 200 with another body —
/// makes Salesforce redeliver for 24 hours.
pub const ACK: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">\n  <soapenv:Body>\n    <notificationsResponse xmlns=\"http://soap.sforce.com/2005/09/outbound\">\n      <Ack>true</Ack>\n    </notificationsResponse>\n  </soapenv:Body>\n</soapenv:Envelope>\n";
pub const ACK_CONTENT_TYPE: &str = "text/xml; charset=UTF-8";

/// WSDL `maxOccurs="100"`.
pub const MAX_NOTIFICATIONS: usize = 100;

/// SOAP 1.1's envelope namespace: `Envelope` and `Body`.
pub const SOAP_ENVELOPE_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The outbound-message WSDL's namespace: `notifications` and what it holds.
pub const OUTBOUND_NS: &str = "http://soap.sforce.com/2005/09/outbound";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    pub organization_id: String,
    pub action_id: Option<String>,
    pub notifications: Vec<Notification>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The notification id (prefix `04l`): Salesforce's dedupe key for redeliveries.
    pub id: String,
    /// `Lead`, `Contact`, ... from `xsi:type="sf:Lead"`.
    pub object: Option<String>,
    /// `sf:Id`: the record id.
    pub record_id: String,
    /// The fields selected in the outbound message definition (nil ones left out).
    pub fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoapError {
    #[error("XML carries a DTD or entity declaration: refused")]
    Dtd,
    #[error("XML uses the entity &{0}; (only the five predefined ones are allowed)")]
    Entity(String),
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("not a SOAP 1.1 envelope: the document must start with <Envelope> in {SOAP_ENVELOPE_NS}")]
    NotSoapEnvelope,
    #[error("<{element}> is in namespace {namespace:?}; an outbound message has it in {expected}")]
    WrongNamespace { element: &'static str, namespace: String, expected: &'static str },
    #[error("the document ends before </Envelope>: truncated")]
    Truncated,
    #[error("not an outbound message: no notifications/OrganizationId")]
    NotOutboundMessage,
    #[error("the outbound message carries no notification")]
    NoNotifications,
    #[error("notification {0} has no Id or no sObject Id")]
    IncompleteNotification(usize),
    #[error("{0} notifications: an outbound message carries at most 100")]
    TooMany(usize),
}

/// Only the predefined entities and character references: anything else would need a DTD.
fn resolve_entity(name: &str) -> Result<String, SoapError> {
    let predefined = match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => None,
    };
    if let Some(c) = predefined {
        return Ok(c.to_string());
    }
    let code = name
        .strip_prefix("#x")
        .map(|h| u32::from_str_radix(h, 16))
        .or_else(|| name.strip_prefix('#').map(str::parse::<u32>));
    match code {
        Some(Ok(n)) => char::from_u32(n).map(|c| c.to_string()).ok_or_else(|| SoapError::Entity(name.to_owned())),
        _ => Err(SoapError::Entity(name.chars().take(32).collect())),
    }
}

fn namespace(ns: &ResolveResult<'_>) -> String {
    match ns {
        ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
        ResolveResult::Unbound => String::new(),
        ResolveResult::Unknown(prefix) => format!("{}: (undeclared prefix)", String::from_utf8_lossy(prefix)),
    }
}

/// The three elements whose place and namespace make a document an outbound message.
fn check_frame(path: &[String], name: &str, ns: &ResolveResult<'_>) -> Result<(), SoapError> {
    let parent = path.last().map(String::as_str);
    let (element, expected) = match (path.len(), parent, name) {
        (0, _, "Envelope") => ("Envelope", SOAP_ENVELOPE_NS),
        (0, _, _) => return Err(SoapError::NotSoapEnvelope),
        (1, Some("Envelope"), "Body") => ("Body", SOAP_ENVELOPE_NS),
        (2, Some("Body"), "notifications") => ("notifications", OUTBOUND_NS),
        _ => return Ok(()),
    };
    let found = namespace(ns);
    if found != expected {
        if element == "Envelope" {
            return Err(SoapError::NotSoapEnvelope);
        }
        return Err(SoapError::WrongNamespace { element, namespace: found, expected });
    }
    Ok(())
}

fn local(name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    name.rsplit(':').next().unwrap_or(&name).to_owned()
}

#[derive(Default)]
struct Partial {
    id: Option<String>,
    object: Option<String>,
    record_id: Option<String>,
    fields: BTreeMap<String, String>,
}

/// Parses an outbound message. Refuses DTDs and custom entities outright (no expansion, no
/// external fetch: the classic XXE and billion-laughs payloads never get evaluated). Only a
/// complete SOAP 1.1 envelope whose `Body` holds `notifications` in Salesforce's outbound
/// namespace, with an `OrganizationId` and at least one notification, is one: anything else
/// must not be acknowledged, or Salesforce deletes a message nobody read.
pub fn parse(body: &[u8]) -> Result<OutboundMessage, SoapError> {
    // Not trim_text: it would trim around every `&amp;` too. Values are trimmed whole.
    let mut reader = NsReader::from_reader(body);
    let mut complete = false;
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut nil = false;
    let mut org = None;
    let mut action = None;
    let mut notifications = Vec::new();
    let mut current: Option<Partial> = None;
    loop {
        let (ns, event) = match reader.read_resolved_event() {
            Ok(read) => read,
            Err(e) => {
                let message = e.to_string();
                // The input ran out inside a tag, comment or reference: cut short, not malformed.
                if usize::try_from(reader.buffer_position()).is_ok_and(|p| p >= body.len()) {
                    return Err(SoapError::Truncated);
                }
                return Err(SoapError::Malformed(message));
            }
        };
        match event {
            Event::DocType(_) => return Err(SoapError::Dtd),
            Event::Empty(e) if path.is_empty() => check_frame(&path, &local(e.name().as_ref()), &ns)?,
            Event::Start(e) => {
                let name = local(e.name().as_ref());
                check_frame(&path, &name, &ns)?;
                nil = e.attributes().flatten().any(|a| local(a.key.as_ref()) == "nil" && a.value.as_ref() == b"true");
                if name == "Notification" && path.last().map(String::as_str) == Some("notifications") {
                    current = Some(Partial::default());
                }
                if name == "sObject"
                    && let Some(n) = current.as_mut()
                {
                    n.object = e
                        .attributes()
                        .flatten()
                        .find(|a| local(a.key.as_ref()) == "type")
                        .map(|a| local(a.value.as_ref()));
                }
                path.push(name);
                text.clear();
            }
            Event::Empty(_) => {}
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| SoapError::Malformed(e.to_string()))?),
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| SoapError::Malformed(e.to_string()))?;
                text.push_str(&resolve_entity(&name)?);
            }
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                complete = path.is_empty();
                let parent = path.last().map(String::as_str);
                let value = std::mem::take(&mut text).trim().to_owned();
                match (parent, name.as_str()) {
                    (Some("notifications"), "OrganizationId") => org = Some(value),
                    (Some("notifications"), "ActionId") => action = Some(value),
                    (Some("Notification"), "Id") => {
                        if let Some(n) = current.as_mut() {
                            n.id = Some(value);
                        }
                    }
                    (Some("sObject"), field) => {
                        if let Some(n) = current.as_mut() {
                            if field == "Id" {
                                n.record_id = Some(value);
                            } else if !nil {
                                n.fields.insert(field.to_owned(), value);
                            }
                        }
                    }
                    (Some("notifications"), "Notification") => {
                        let n = current.take().unwrap_or_default();
                        let index = notifications.len();
                        match (n.id, n.record_id) {
                            (Some(id), Some(record_id)) if !id.is_empty() && !record_id.is_empty() => {
                                notifications.push(Notification { id, object: n.object, record_id, fields: n.fields })
                            }
                            _ => return Err(SoapError::IncompleteNotification(index)),
                        }
                    }
                    _ => {}
                }
                nil = false;
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !complete {
        return Err(if path.is_empty() && notifications.is_empty() && org.is_none() {
            SoapError::NotSoapEnvelope
        } else {
            SoapError::Truncated
        });
    }
    let organization_id = org.filter(|o| !o.is_empty()).ok_or(SoapError::NotOutboundMessage)?;
    if notifications.is_empty() {
        return Err(SoapError::NoNotifications);
    }
    if notifications.len() > MAX_NOTIFICATIONS {
        return Err(SoapError::TooMany(notifications.len()));
    }
    Ok(OutboundMessage { organization_id, action_id: action, notifications })
}

/// Salesforce shows ids with 15 (case-sensitive) or 18 characters; the first 15 identify.
pub fn same_org(message_org: &str, configured: &str) -> bool {
    let a = message_org.trim();
    let b = configured.trim();
    a.len() >= 15 && b.len() >= 15 && a.get(..15) == b.get(..15)
}

/// A Flow HTTP callout body: one record object or an array of them, each with `Id` (or `id`);
/// `attributes.type` names the object when present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRecord {
    pub record_id: String,
    pub object: Option<String>,
    pub fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("expected a record object or an array of records")]
    Shape,
    #[error("record {0} has no Id")]
    NoId(usize),
    #[error("{0} records: at most 200 per callout")]
    TooMany(usize),
}

pub fn parse_flow(body: &[u8]) -> Result<Vec<FlowRecord>, FlowError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| FlowError::NotJson(e.to_string()))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(_) => vec![value],
        _ => return Err(FlowError::Shape),
    };
    if items.len() > 200 {
        return Err(FlowError::TooMany(items.len()));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let obj = item.as_object().ok_or(FlowError::Shape)?;
            let mut fields = BTreeMap::new();
            for (k, v) in obj {
                let s = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    _ => continue,
                };
                fields.insert(k.clone(), s);
            }
            let record_id = fields
                .remove("Id")
                .or_else(|| fields.remove("id"))
                .filter(|s| !s.is_empty())
                .ok_or(FlowError::NoId(i))?;
            let object = obj.get("attributes").and_then(|a| a.get("type")).and_then(|t| t.as_str()).map(str::to_owned);
            Ok(FlowRecord { record_id, object, fields })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn message(n: usize) -> String {
        let notes: String = (0..n)
            .map(|i| {
                format!(
                    r#"
   <Notification>
    <Id>04l5g00000ABC{i:03}AAA</Id>
    <sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>00Q5g00000XYZ{i:03}AAA</sf:Id>
     <sf:Company xsi:nil="true"/>
     <sf:Description xsi:nil="true"></sf:Description>
     <sf:FirstName>Ada &amp; Co &#233;</sf:FirstName>
     <sf:Phone>+1 (415) 555-{:04}</sf:Phone>
    </sObject>
   </Notification>"#,
                    2600 + i
                )
            })
            .collect();
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>00D5g000004ABCDEAA</OrganizationId>
   <ActionId>04k5g000000XYZAAA</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/62.0/00D5g000004ABCD</EnterpriseUrl>
   <PartnerUrl>https://example.my.salesforce.com/services/Soap/u/62.0/00D5g000004ABCD</PartnerUrl>{notes}
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>"#
        )
    }

    #[test]
    fn one_and_a_hundred_notifications() {
        let m = parse(message(1).as_bytes()).unwrap();
        assert_eq!(m.organization_id, "00D5g000004ABCDEAA");
        assert_eq!(m.action_id.as_deref(), Some("04k5g000000XYZAAA"));
        let n = &m.notifications[0];
        assert_eq!(
            (n.id.as_str(), n.record_id.as_str(), n.object.as_deref()),
            ("04l5g00000ABC000AAA", "00Q5g00000XYZ000AAA", Some("Lead"))
        );
        assert_eq!(n.fields.get("FirstName").map(String::as_str), Some("Ada & Co é"));
        assert_eq!(n.fields.get("Phone").map(String::as_str), Some("+1 (415) 555-2600"));
        assert!(!n.fields.contains_key("Company") && !n.fields.contains_key("Description"), "nil fields are left out");
        let m = parse(message(100).as_bytes()).unwrap();
        assert_eq!(m.notifications.len(), 100);
        assert_eq!(m.notifications[99].record_id, "00Q5g00000XYZ099AAA");
        assert_eq!(parse(message(101).as_bytes()), Err(SoapError::TooMany(101)));
    }

    #[test]
    fn dtds_entities_and_junk_are_refused() {
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><notifications><OrganizationId>&xxe;</OrganizationId></notifications>"#;
        assert_eq!(parse(xxe.as_bytes()), Err(SoapError::Dtd));
        let undeclared = message(1).replace("00D5g000004ABCDEAA", "&lol;");
        assert_eq!(parse(undeclared.as_bytes()), Err(SoapError::Entity("lol".into())));
        assert!(matches!(
            parse(b"<notifications><OrganizationId>x</Organization"),
            Err(SoapError::Malformed(_) | SoapError::NotSoapEnvelope)
        ));
        assert_eq!(parse(b"<hello/>"), Err(SoapError::NotSoapEnvelope));
        let no_id = message(1).replace("<sf:Id>00Q5g00000XYZ000AAA</sf:Id>", "");
        assert_eq!(parse(no_id.as_bytes()), Err(SoapError::IncompleteNotification(0)));
    }

    #[test]
    fn only_a_complete_envelope_in_salesforces_namespaces_with_notifications_is_a_message() {
        let whole = message(2);
        // Cut anywhere before the closing tag: never a message, however much was readable.
        for cut in [whole.len() - 30, whole.find("</notifications>").unwrap(), whole.len() / 2] {
            assert!(
                matches!(parse(&whole.as_bytes()[..cut]), Err(SoapError::Truncated | SoapError::Malformed(_))),
                "cut at {cut}: {:?}",
                parse(&whole.as_bytes()[..cut])
            );
        }
        let bare = whole
            .split_once("<soapenv:Body>")
            .and_then(|(_, rest)| rest.split_once("</soapenv:Body>"))
            .map(|(inner, _)| inner.to_owned())
            .unwrap();
        assert_eq!(parse(bare.as_bytes()), Err(SoapError::NotSoapEnvelope), "notifications without an envelope");
        assert_eq!(parse(b""), Err(SoapError::NotSoapEnvelope));
        assert_eq!(parse(br#"{"Id":"00Q5g00000XYZ000AAA"}"#), Err(SoapError::NotSoapEnvelope));
        let soap12 = whole.replace(SOAP_ENVELOPE_NS, "http://www.w3.org/2003/05/soap-envelope");
        assert_eq!(parse(soap12.as_bytes()), Err(SoapError::NotSoapEnvelope));
        let other = whole.replace(OUTBOUND_NS, "http://example.com/not-salesforce");
        assert!(
            matches!(parse(other.as_bytes()), Err(SoapError::WrongNamespace { element: "notifications", .. })),
            "{:?}",
            parse(other.as_bytes())
        );
        let none = message(0);
        assert_eq!(parse(none.as_bytes()), Err(SoapError::NoNotifications));
        assert_eq!(parse(whole.as_bytes()).map(|m| m.notifications.len()), Ok(2));
    }

    #[test]
    fn org_ids_compare_on_15_characters() {
        assert!(same_org("00D5g000004ABCDEAA", "00D5g000004ABCD"));
        assert!(same_org("00D5g000004ABCDEAA", "00D5g000004ABCDEAA"));
        assert!(!same_org("00D5g000004ABCDEAA", "00D5g000004abcdEAA"));
        assert!(!same_org("00D5g000004ABCDEAA", ""));
    }

    #[test]
    fn flow_callouts() {
        let one =
            parse_flow(br#"{"Id":"00Q5g00000XYZ001AAA","Phone":"4155552671","attributes":{"type":"Lead"}}"#).unwrap();
        assert_eq!(one[0].object.as_deref(), Some("Lead"));
        assert_eq!(one[0].fields.get("Phone").map(String::as_str), Some("4155552671"));
        let many = parse_flow(br#"[{"id":"a"},{"Id":"b","NumberOfEmployees":5}]"#).unwrap();
        assert_eq!(many.len(), 2);
        assert_eq!(parse_flow(br#"[{"Phone":"1"}]"#), Err(FlowError::NoId(0)));
        assert_eq!(parse_flow(b"42"), Err(FlowError::Shape));
    }

    #[test]
    fn ack_is_byte_exact() {
        assert!(ACK.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soapenv:Envelope"));
        assert!(ACK.contains(
            "<notificationsResponse xmlns=\"http://soap.sforce.com/2005/09/outbound\">\n      <Ack>true</Ack>"
        ));
    }
}

//! The read side for the screen pop, in two `POST /composite` requests (one API call each):
//!
//! 1. the record `vendor_lead_code` names (a Lead `00Q…` or Contact `003…`), and the Leads
//!    and Contacts with the caller's number (every spelling [`Phone::variants`] knows), in
//!    one composite of SOQL subrequests — so a stale id falls back to the phone without a
//!    round of its own;
//! 2. for the record shown: its last N closed Tasks (subject, CallDisposition, duration),
//!    its open Tasks, and for a Contact the open Opportunities of its Account.
//!
//! A cold process adds the OAuth token request before round 1: three sequential requests at
//! most. Several phone matches give a chooser; none a "no record" view with a link to a new
//! Lead. The client shares the sync's token (and its refresh-token rotation).

use async_trait::async_trait;
use serde_json::Value;
use vicibridge_core::config::salesforce::LookupObject;
use vicibridge_core::screen_pop::{
    ActivityLine, Candidate, DealLine, Field, PopError, PopLookup, PopView, Record, ScreenPopSource, TaskLine,
    display_duration, display_time,
};

use crate::SalesforceCrm;
use crate::client::{SubAnswer, SubRequest};
use crate::error::SfError;
use crate::sync::{Phone, is_salesforce_id, quote};

const CRM: &str = "Salesforce";
/// Matches a chooser lists, and open Opportunities / open Tasks shown.
const LIST_MAX: usize = 10;

const LEAD_FIELDS: &str = "Id, Name, Company, Status, DoNotCall, Phone, MobilePhone, Email, Owner.Name";
const CONTACT_FIELDS: &str = "Id, Name, Account.Name, Title, DoNotCall, Phone, MobilePhone, Email, Owner.Name";

fn fields_of(object: LookupObject) -> &'static str {
    match object {
        LookupObject::Lead => LEAD_FIELDS,
        LookupObject::Contact => CONTACT_FIELDS,
    }
}

fn object_of_id(id: &str) -> Option<LookupObject> {
    match id.get(..3)? {
        "00Q" => Some(LookupObject::Lead),
        "003" => Some(LookupObject::Contact),
        _ => None,
    }
}

fn from_sf(e: SfError) -> PopError {
    let reason = e.to_string();
    if e.is_retryable() { PopError::Unavailable { crm: CRM, reason } } else { PopError::Refused { crm: CRM, reason } }
}

fn text<'v>(r: &'v Value, path: &str) -> Option<&'v str> {
    let mut v = r;
    for part in path.split('.') {
        v = v.get(part)?;
    }
    v.as_str().map(str::trim).filter(|s| !s.is_empty())
}

fn records(a: &SubAnswer) -> Result<Vec<Value>, PopError> {
    if !(200..300).contains(&a.http_status_code) {
        let e = crate::client::ApiError::first(&a.body);
        let reason = format!("Salesforce query {}: {} {}", a.reference_id, a.http_status_code, e.describe());
        return Err(if a.http_status_code >= 500 {
            PopError::Unavailable { crm: CRM, reason }
        } else {
            PopError::Refused { crm: CRM, reason }
        });
    }
    Ok(a.body.get("records").and_then(Value::as_array).cloned().unwrap_or_default())
}

fn amount(v: &Value) -> Option<String> {
    let n = v.as_f64()?;
    Some(if n.fract() == 0.0 { format!("{n:.0}") } else { format!("{n:.2}") })
}

fn query(reference: &str, data_path: &str, soql: &str) -> SubRequest {
    SubRequest {
        method: "GET",
        url: format!("{data_path}/query?q={}", crate::client::encode_query(soql)),
        reference_id: reference.to_owned(),
        body: None,
    }
}

/// A found Lead or Contact.
struct Found {
    object: LookupObject,
    row: Value,
}

impl Found {
    fn id(&self) -> String {
        text(&self.row, "Id").unwrap_or_default().to_owned()
    }

    fn kind(&self) -> &'static str {
        self.object.api_name()
    }

    fn company(&self) -> Option<&str> {
        match self.object {
            LookupObject::Lead => text(&self.row, "Company"),
            LookupObject::Contact => text(&self.row, "Account.Name"),
        }
    }
}

impl SalesforceCrm {
    async fn instance(&self) -> Result<String, PopError> {
        Ok(self.client().auth().token().await.map_err(from_sf)?.instance_url.trim_end_matches('/').to_owned())
    }

    /// Round 1: the named record and the phone matches.
    async fn find(&self, lookup: &PopLookup) -> Result<(Option<Found>, Vec<Found>), PopError> {
        let data = self.client().data_path();
        let mut subs = Vec::new();
        let named = lookup
            .vendor_lead_code
            .as_deref()
            .map(str::trim)
            .filter(|c| is_salesforce_id(c))
            .and_then(|id| Some((id, object_of_id(id)?)));
        if let Some((id, object)) = named {
            let soql = format!("SELECT {} FROM {} WHERE Id IN ({})", fields_of(object), object.api_name(), quote(id));
            subs.push((Some(object), query("named", &data, &soql)));
        }
        let phone = lookup.phone_number.as_deref().and_then(|p| {
            let digits: String = p.chars().filter(char::is_ascii_digit).collect();
            let code: String =
                lookup.phone_code.as_deref().unwrap_or("1").chars().filter(char::is_ascii_digit).collect();
            (digits.len() >= 5).then_some(Phone { digits, code })
        });
        if let Some(p) = &phone {
            let list = p.variants().iter().map(|v| quote(v)).collect::<Vec<_>>().join(",");
            for object in &self.cfg.lookup_objects {
                let converted = if *object == LookupObject::Lead { "IsConverted = false AND " } else { "" };
                let soql = format!(
                    "SELECT {} FROM {} WHERE {converted}(Phone IN ({list}) OR MobilePhone IN ({list})) ORDER BY LastModifiedDate DESC LIMIT {LIST_MAX}",
                    fields_of(*object),
                    object.api_name()
                );
                subs.push((Some(*object), query(object.api_name(), &data, &soql)));
            }
        }
        if subs.is_empty() {
            return Ok((None, Vec::new()));
        }
        let requests: Vec<SubRequest> = subs.iter().map(|(_, r)| r.clone()).collect();
        let answers = self.client().composite("screen_pop.find", &requests).await.map_err(from_sf)?;
        let mut named_found = None;
        let mut matches = Vec::new();
        for ((object, req), answer) in subs.iter().zip(&answers) {
            let Some(object) = *object else { continue };
            let rows = records(answer)?;
            if req.reference_id == "named" {
                named_found = rows.into_iter().next().map(|row| Found { object, row });
            } else {
                let p = phone.as_ref();
                matches.extend(
                    rows.into_iter()
                        .filter(|r| {
                            ["Phone", "MobilePhone"]
                                .iter()
                                .any(|f| text(r, f).is_some_and(|v| p.is_some_and(|p| p.matches(v))))
                        })
                        .map(|row| Found { object, row }),
                );
            }
        }
        Ok((named_found, matches))
    }

    /// Round 2: the record's Tasks and (Contacts) its Account's open Opportunities.
    async fn record(&self, found: Found, activities: u8, instance: &str) -> Result<Record, PopError> {
        let id = found.id();
        let data = self.client().data_path();
        let who = quote(&id);
        let mut subs = vec![
            query(
                "recent",
                &data,
                &format!(
                    "SELECT Id, Subject, CallDisposition, CallDurationInSeconds, ActivityDate, CreatedDate FROM Task WHERE WhoId = {who} AND IsClosed = true ORDER BY CreatedDate DESC LIMIT {}",
                    activities.max(1)
                ),
            ),
            query(
                "open",
                &data,
                &format!(
                    "SELECT Id, Subject, ActivityDate FROM Task WHERE WhoId = {who} AND IsClosed = false ORDER BY ActivityDate ASC NULLS LAST LIMIT {LIST_MAX}"
                ),
            ),
        ];
        if found.object == LookupObject::Contact {
            subs.push(query(
                "opportunities",
                &data,
                &format!(
                    "SELECT Id, Name, StageName, Amount, CloseDate FROM Opportunity WHERE IsClosed = false AND AccountId IN (SELECT AccountId FROM Contact WHERE Id IN ({who})) ORDER BY CloseDate ASC LIMIT {LIST_MAX}"
                ),
            ));
        }
        let answers = self.client().composite("screen_pop.context", &subs).await.map_err(from_sf)?;
        let recent = records(&answers[0])?;
        let open = records(&answers[1])?;
        let opportunities = match answers.get(2) {
            Some(a) => records(a)?,
            None => Vec::new(),
        };

        let r = &found.row;
        let mut fields = Vec::new();
        let mut add = |label: &'static str, value: Option<&str>| {
            if let Some(v) = value {
                fields.push(Field { label, value: v.to_owned() });
            }
        };
        add(if found.object == LookupObject::Lead { "Company" } else { "Account" }, found.company());
        add("Title", text(r, "Title"));
        add("Email", text(r, "Email"));
        add("Phone", text(r, "Phone").or_else(|| text(r, "MobilePhone")));
        add("Owner", text(r, "Owner.Name"));
        add("Lead status", text(r, "Status"));

        Ok(Record {
            crm: CRM,
            kind: found.kind(),
            name: text(r, "Name").unwrap_or("(no name)").to_owned(),
            fields,
            do_not_call: r.get("DoNotCall").and_then(Value::as_bool).unwrap_or(false),
            deals: opportunities
                .iter()
                .map(|o| DealLine {
                    name: text(o, "Name").unwrap_or("(no name)").to_owned(),
                    stage: text(o, "StageName").map(str::to_owned),
                    amount: o.get("Amount").and_then(amount),
                    close_date: text(o, "CloseDate").and_then(display_time),
                })
                .collect(),
            activities: recent
                .iter()
                .map(|t| ActivityLine {
                    kind: "Task",
                    date: text(t, "ActivityDate").or_else(|| text(t, "CreatedDate")).and_then(display_time),
                    title: text(t, "Subject").unwrap_or("(no subject)").to_owned(),
                    outcome: text(t, "CallDisposition").map(str::to_owned),
                    duration: t.get("CallDurationInSeconds").and_then(Value::as_u64).map(display_duration),
                    recording_url: None,
                })
                .collect(),
            tasks: open
                .iter()
                .map(|t| TaskLine {
                    subject: text(t, "Subject").unwrap_or("(no subject)").to_owned(),
                    due: text(t, "ActivityDate").and_then(display_time),
                })
                .collect(),
            open_url: Some(format!("{instance}/{id}")),
            id,
        })
    }
}

#[async_trait]
impl ScreenPopSource for SalesforceCrm {
    fn crm_name(&self) -> &'static str {
        CRM
    }

    async fn context(&self, lookup: &PopLookup) -> Result<PopView, PopError> {
        let instance = self.instance().await?;
        let (named, mut matches) = self.find(lookup).await?;
        let one = match (named, matches.len()) {
            (Some(found), _) => found,
            (None, 0) => {
                return Ok(PopView::NoRecord {
                    crm: CRM,
                    create_url: Some(format!("{instance}/lightning/o/Lead/new")),
                });
            }
            (None, 1) => matches.remove(0),
            (None, _) => {
                let candidates = matches
                    .iter()
                    .take(LIST_MAX)
                    .map(|f| {
                        let id = f.id();
                        Candidate {
                            open_url: Some(format!("{instance}/{id}")),
                            kind: f.kind(),
                            name: text(&f.row, "Name").unwrap_or("(no name)").to_owned(),
                            detail: f.company().map(str::to_owned),
                            id,
                        }
                    })
                    .collect();
                return Ok(PopView::Choose { crm: CRM, candidates });
            }
        };
        Ok(PopView::Record(Box::new(self.record(one, lookup.activities, &instance).await?)))
    }
}

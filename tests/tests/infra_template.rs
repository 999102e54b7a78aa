//! infra/template.yaml's dashboard and backlog alarm watch what the code really emits: every
//! vicibridge metric a widget names is one the code defines, every function's errors and
//! durations are on it, every alarm is in its alarm widget, and the crm-events backlog alarm
//! watches the age of the oldest message against its parameter.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeSet;

use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;
use vicibridge_runtime::metrics as m;

/// Every metric name the functions emit in the `vicibridge` namespace that a dashboard may show.
const EMITTED: &[&str] = &[
    m::INGEST_ACCEPTED,
    m::INGEST_REJECTED,
    m::INGEST_QUEUE_FAILURES,
    m::SYNC_FAILURES,
    m::SYNC_RETRIES,
    m::SYNC_APPLIED,
    m::SYNC_PAUSED,
    m::CRM_AUTH_ALERTS,
    m::INTEGRATION_PAUSES,
    m::UNMAPPED_DISPOSITIONS,
    m::UNMAPPED_DISPOSITIONS_TOTAL,
    m::BRIDGE_ID_LOOKUPS,
    m::BRIDGE_ID_NOT_FOUND,
    m::BRIDGE_ID_LOOKUPS_TOTAL,
    m::BRIDGE_ID_NOT_FOUND_TOTAL,
    m::WEBHOOK_REJECTED,
    m::WEBHOOK_QUEUED,
    m::LEAD_INJECTIONS,
    m::DIALER_AUTH_ALERTS,
    m::CLICK_TO_CALL,
    m::RECONCILE_MISSING,
    m::RECONCILE_REPLAYED,
    m::CALLS_WITHOUT_DISPOSITION,
    m::SILENT_CAMPAIGNS,
];

fn template() -> Yaml {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn resources_of_type<'a>(t: &'a Yaml, kind: &str) -> Vec<(&'a str, &'a Yaml)> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(name, r)| (name.as_str().unwrap(), r))
        .collect()
}

/// `!Tag value` → (tag without `!`, value).
fn tagged(v: &Yaml) -> (String, &Yaml) {
    match v {
        Yaml::Tagged(t) => (t.tag.to_string().trim_start_matches('!').to_owned(), &t.value),
        other => panic!("expected an intrinsic function, got {other:?}"),
    }
}

/// The dashboard body with each `${Name}` of `!Sub` replaced: a Number parameter by its
/// default (the body uses one as a JSON number), anything else by `<Name>`. Every name must
/// be a parameter, a resource (or `Resource.Attribute`) or a pseudo parameter.
fn substituted_body(t: &Yaml, body: &str) -> Json {
    let params = t["Parameters"].as_mapping().unwrap();
    let resources = t["Resources"].as_mapping().unwrap();
    let mut out = String::new();
    let mut rest = body;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        let name = &rest[start + 2..end];
        let head = name.split('.').next().unwrap();
        if let Some(p) = params.get(head) {
            match p["Type"].as_str() {
                Some("Number") => out.push_str(&p["Default"].as_u64().unwrap().to_string()),
                _ => out.push_str(&format!("<{name}>")),
            }
        } else {
            assert!(
                resources.contains_key(head) || name.starts_with("AWS::"),
                "the dashboard names ${{{name}}}, which the template does not define"
            );
            out.push_str(&format!("<{name}>"));
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("the dashboard body is not JSON: {e}\n{out}"))
}

/// (namespace, metric name, dimension values) of every metric a metric widget shows; a
/// SEARCH expression contributes its `{namespace,...} MetricName="..."`.
fn widget_metrics(body: &Json) -> Vec<(String, String, Vec<String>)> {
    let mut found = Vec::new();
    for w in body["widgets"].as_array().unwrap() {
        if w["type"] != "metric" {
            continue;
        }
        for row in w["properties"]["metrics"].as_array().unwrap() {
            let row = row.as_array().unwrap();
            if let Some(expression) = row[0]["expression"].as_str() {
                let Some(search) = expression.split("SEARCH('{").nth(1) else { continue };
                let namespace = search.split([',', '}']).next().unwrap();
                let name = search.split("MetricName=\"").nth(1).unwrap().split('"').next().unwrap();
                found.push((namespace.to_owned(), name.to_owned(), Vec::new()));
            } else {
                let words: Vec<String> = row.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
                assert!(!words.contains(&".".to_owned()), "write metrics out in full, not with \".\"");
                found.push((words[0].clone(), words[1].clone(), words[2..].to_vec()));
            }
        }
    }
    found
}

fn dashboard(t: &Yaml) -> Json {
    let dashboards = resources_of_type(t, "AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1, "one dashboard");
    let (tag, body) = tagged(&dashboards[0].1["Properties"]["DashboardBody"]);
    assert_eq!(tag, "Sub");
    substituted_body(t, body.as_str().unwrap())
}

#[test]
fn the_dashboard_shows_only_metrics_the_code_emits_and_all_the_operator_needs() {
    let t = template();
    let metrics = widget_metrics(&dashboard(&t));
    let ours: BTreeSet<&str> =
        metrics.iter().filter(|(ns, ..)| ns == m::NAMESPACE).map(|(_, name, _)| name.as_str()).collect();
    for name in &ours {
        assert!(EMITTED.contains(name), "the dashboard shows {}/{name}, which no code emits", m::NAMESPACE);
    }
    for needed in [
        m::INGEST_ACCEPTED,
        m::INGEST_REJECTED,
        m::SYNC_APPLIED,
        m::SYNC_RETRIES,
        m::SYNC_FAILURES,
        m::UNMAPPED_DISPOSITIONS,
        m::BRIDGE_ID_NOT_FOUND,
        m::BRIDGE_ID_LOOKUPS,
        m::CALLS_WITHOUT_DISPOSITION,
        m::SILENT_CAMPAIGNS,
    ] {
        assert!(ours.contains(needed), "the dashboard lacks {needed}");
    }

    let shows = |ns: &str, name: &str, dimension: &str| {
        metrics.iter().any(|(n, m, dims)| n == ns && m == name && dims.iter().any(|d| d == dimension))
    };
    assert!(shows("AWS/SQS", "ApproximateNumberOfMessagesVisible", "<CrmEventsQueue.QueueName>"));
    assert!(shows("AWS/SQS", "ApproximateAgeOfOldestMessage", "<CrmEventsQueue.QueueName>"));
    assert!(shows("AWS/SQS", "ApproximateNumberOfMessagesVisible", "<CrmEventsDLQ.QueueName>"));
    assert!(shows("AWS/SQS", "ApproximateNumberOfMessagesVisible", "<LeadInjectionsDLQ.QueueName>"));
    let functions = resources_of_type(&t, "AWS::Serverless::Function");
    assert!(functions.len() >= 8);
    for (function, _) in functions {
        for metric in ["Errors", "Duration"] {
            assert!(shows("AWS/Lambda", metric, &format!("<{function}>")), "the dashboard lacks {function} {metric}");
        }
    }
}

#[test]
fn every_alarm_is_on_the_dashboard() {
    let t = template();
    let body = dashboard(&t);
    let listed: BTreeSet<String> = body["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["type"] == "alarm")
        .flat_map(|w| w["properties"]["alarms"].as_array().unwrap().iter())
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    for (alarm, _) in resources_of_type(&t, "AWS::CloudWatch::Alarm") {
        assert!(listed.contains(&format!("<{alarm}.Arn>")), "{alarm} is not in the dashboard's alarm widget");
    }
}

#[test]
fn a_backlog_on_crm_events_raises_an_alarm_at_the_configured_age() {
    let t = template();
    let parameter = &t["Parameters"]["OldestMessageAlarmSeconds"];
    assert_eq!(parameter["Type"].as_str(), Some("Number"));
    assert!(parameter["Default"].as_u64().unwrap() >= 60);

    let alarms: Vec<&Yaml> = resources_of_type(&t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(_, a)| &a["Properties"])
        .filter(|p| p["MetricName"].as_str() == Some("ApproximateAgeOfOldestMessage"))
        .collect();
    assert_eq!(alarms.len(), 1);
    let alarm = alarms[0];
    assert_eq!(alarm["Namespace"].as_str(), Some("AWS/SQS"));
    assert_eq!(alarm["ComparisonOperator"].as_str(), Some("GreaterThanThreshold"));
    let dimension = &alarm["Dimensions"][0];
    assert_eq!(dimension["Name"].as_str(), Some("QueueName"));
    let (tag, queue) = tagged(&dimension["Value"]);
    assert_eq!((tag.as_str(), queue.as_str()), ("GetAtt", Some("CrmEventsQueue.QueueName")));
    let (tag, threshold) = tagged(&alarm["Threshold"]);
    assert_eq!((tag.as_str(), threshold.as_str()), ("Ref", Some("OldestMessageAlarmSeconds")));
    let (tag, topic) = tagged(&alarm["AlarmActions"][0]);
    assert_eq!((tag.as_str(), topic.as_str()), ("Ref", Some("AlarmTopic")));
}

/// Every vicibridge metric an alarm watches (directly or in its metric math) is one the code
/// emits, without dimensions (the code emits the alarms' metrics without any).
#[test]
fn alarms_watch_metrics_the_code_emits() {
    let t = template();
    let emitted: Vec<&str> =
        EMITTED.iter().copied().chain([vicibridge_webhook::metrics::WEBHOOK_ENDPOINT_GONE]).collect();
    let mut watched = BTreeSet::new();
    for (alarm, a) in resources_of_type(&t, "AWS::CloudWatch::Alarm") {
        let p = &a["Properties"];
        let mut metrics: Vec<&Yaml> = vec![p];
        if let Some(queries) = p["Metrics"].as_sequence() {
            metrics.extend(queries.iter().filter_map(|q| q.get("MetricStat").map(|s| &s["Metric"])));
        }
        for metric in metrics {
            if metric["Namespace"].as_str() != Some(m::NAMESPACE) {
                continue;
            }
            let name = metric["MetricName"].as_str().unwrap();
            assert!(emitted.contains(&name), "{alarm} watches {}/{name}, which no code emits", m::NAMESPACE);
            assert!(metric["Dimensions"].is_null(), "{alarm}: {name} is emitted without dimensions");
            watched.insert(name.to_owned());
        }
    }
    for needed in [m::BRIDGE_ID_LOOKUPS_TOTAL, m::BRIDGE_ID_NOT_FOUND_TOTAL, m::UNMAPPED_DISPOSITIONS_TOTAL] {
        assert!(watched.contains(needed), "no alarm watches {needed}");
    }
}

/// The bridge id alarm: not-found / lookups over 15 minutes above its parameter, only with at
/// least its minimum of lookups: the same rule as serve's `[watchdogs]`, with the same defaults.
#[test]
fn the_bridge_id_alarm_compares_the_not_found_rate_with_its_parameters() {
    let t = template();
    let defaults = vicibridge_core::config::WatchdogsConfig::default();
    let parameter = |name: &str| t["Parameters"][name]["Default"].as_u64().unwrap();
    assert_eq!(parameter("BridgeIdNotFoundPercent"), u64::from(defaults.bridge_id_not_found_percent));
    assert_eq!(parameter("BridgeIdMinEvents"), u64::from(defaults.bridge_id_min_events));
    let alarm = &t["Resources"]["BridgeIdAlarm"]["Properties"];
    let (tag, threshold) = tagged(&alarm["Threshold"]);
    assert_eq!((tag.as_str(), threshold.as_str()), ("Ref", Some("BridgeIdNotFoundPercent")));
    assert_eq!(alarm["ComparisonOperator"].as_str(), Some("GreaterThanThreshold"));
    let queries = alarm["Metrics"].as_sequence().unwrap();
    let periods: Vec<u64> = queries.iter().filter_map(|q| q["MetricStat"]["Period"].as_u64()).collect();
    assert_eq!(periods, [900, 900], "two sums over 15 minutes");
    let returned: Vec<&Yaml> = queries.iter().filter(|q| q["ReturnData"].as_bool() != Some(false)).collect();
    assert_eq!(returned.len(), 1, "one time series decides");
    let (tag, expression) = tagged(&returned[0]["Expression"]);
    assert_eq!(tag, "Sub");
    let expression = expression.as_str().unwrap();
    assert!(expression.contains("lookups >= ${BridgeIdMinEvents}"), "{expression}");
    assert!(expression.contains("100 * FILL(notfound, 0) / lookups"), "{expression}");
}

//! VICIdial call URLs, encoded the way VICIdial encodes them (fixtures/), to typed events.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use chrono::NaiveDate;
use vicibridge_core::event::{CallKey, Event};
use vicibridge_vicidial::call_url::RequestError;
use vicibridge_vicidial::url_templates::call_urls;
use vicibridge_vicidial::{CallUrl, VicidialQuery, to_event};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn event(kind: CallUrl, raw: &str) -> Result<Event, RequestError> {
    to_event(kind, &VicidialQuery::parse(raw))
}

#[test]
fn dispo_callback_as_vicidial_sends_it() {
    let raw = fixture("dispo_callbk.query");
    let q = VicidialQuery::parse(&raw);
    assert_eq!(q.token(), Some("tok-current-0123456789"));
    let Ok(Event::Dispo(d)) = to_event(CallUrl::Dispo, &q) else { panic!("not a dispo") };
    assert_eq!(d.lead_id.get(), 9);
    assert_eq!(d.status, "CALLBK");
    assert_eq!(d.status_name.as_deref(), Some("Call Back Hold"), "dispo_name is double-encoded");
    assert_eq!(d.talk_time_secs, Some(63));
    assert_eq!(d.call.key, CallKey::Uniqueid("1795298900.123".into()));
    assert_eq!(d.call.call_id.as_deref(), Some("M1121220900000000009"));
    assert_eq!(d.call.agent.as_deref(), Some("1000"));
    assert_eq!(d.call.epoch, Some(1_795_298_982));
    assert_eq!(d.lead.vendor_lead_code.as_deref(), Some("0031x00000AbCdE"));
    assert_eq!(d.lead.last_name.as_deref(), Some("O'Brien"));
    assert_eq!(d.lead.email.as_deref(), Some("a b@x.com"), "VICIdial itself turned + into a space");
    assert_eq!(d.recording_filename.as_deref(), Some("20261121-220900_7275558888_1000-all"));
    let expected = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap().and_hms_opt(15, 30, 0).unwrap();
    assert_eq!(d.callback_at, Some(expected));
    assert_eq!(d.call_notes, None, "empty notes arrive as a lone +");
    let json = serde_json::to_string(&d).unwrap();
    assert!(!json.contains("agentsecret"), "pass must be dropped at the edge: {json}");
}

#[test]
fn call_start_and_new_lead() {
    let Ok(Event::CallStart(c)) = event(CallUrl::CallStart, &fixture("call_start.query")) else { panic!() };
    assert_eq!(c.lead.first_name.as_deref(), Some("Jos Mara"));
    assert_eq!(c.lead.vendor_lead_code, None);
    assert_eq!(c.call.ingroup, None);
    assert_eq!(c.call.key.value(), "1795298973.4567");

    let Ok(Event::NewLead(n)) = event(CallUrl::NewLead, &fixture("new_lead.query")) else { panic!() };
    assert_eq!(n.lead.vendor_lead_code.as_deref(), Some("CRM-123/abc"));
    assert_eq!(n.lead.comments.as_deref(), Some("hello world & more"));
    assert_eq!(n.added_by.as_deref(), Some("6666"));
    assert_eq!(n.entry_date.as_deref(), Some("2026-11-21 22:08:41"));
}

#[test]
fn bad_input_names_the_variable() {
    let e = event(CallUrl::Dispo, &fixture("start_url_misused.query")).unwrap_err();
    assert_eq!(
        e,
        RequestError::Unsubstituted { key: "recording_filename".into(), variable: "recording_filename".into() }
    );
    assert!(e.to_string().contains("--A--recording_filename--B--"));

    let cases: &[(&str, &str)] = &[
        ("uniqueid=1.2&dispo=SALE", "missing `lead_id`"),
        ("lead_id=12a&uniqueid=1.2&dispo=SALE", "`lead_id` must be 1 to 10 digits"),
        ("lead_id=1&uniqueid=1.2", "missing `dispo`"),
        ("lead_id=1&dispo=SALE", "missing `uniqueid` or `call_id`"),
        ("lead_id=1&lead_id=2&uniqueid=1.2&dispo=SALE", "query key `lead_id` is repeated with different values"),
        ("lead_id=1&uniqueid=1.2&dispo=SALE&talk_time=1m", "`talk_time` must be a whole number of seconds"),
        (
            "lead_id=1&uniqueid=1.2&dispo=SALE&callback_datetime=tomorrow",
            "`callback_datetime` must be YYYY-MM-DD HH:MM:SS",
        ),
    ];
    for (raw, msg) in cases {
        let e = event(CallUrl::Dispo, raw).unwrap_err();
        assert_eq!(e.to_string(), *msg, "{raw}");
        assert_eq!(e.http_status(), 400);
    }
    // A call id alone is enough; repeated identical values are fine.
    assert!(event(CallUrl::Dispo, "lead_id=1&lead_id=1&call_id=M1121220900000000001&dispo=NI").is_ok());
}

/// Identifiers must have VICIdial's shape or the request is refused naming the key; in
/// particular bytes that are not UTF-8 never decode to the same value (both would be U+FFFD).
#[test]
fn identifiers_are_strict_and_never_decoded_lossily() {
    let good = "lead_id=5&uniqueid=1700000000.123&call_id=V1121220933000000005&user=1000&campaign=TESTCAMP&epoch=1795298973&dispo=SALE";
    assert!(event(CallUrl::Dispo, good).is_ok());
    // What real VICIdial sends: manual dial, auto-dial, inbound, and a named Asterisk system.
    for ok in [
        good.replace("V1121220933000000005", "M1121220900000000009"),
        good.replace("V1121220933000000005", "Y1121221000000000012"),
        good.replace("1700000000.123", "dialer1-1700000000.123"),
        good.replace("user=1000", "user=agent_07").replace("dispo=SALE", "dispo=CALLBK"),
    ] {
        assert!(event(CallUrl::Dispo, &ok).is_ok(), "{ok}");
    }
    let cases = [
        ("1700000000.123", "%FF1.1", "uniqueid"),
        ("1700000000.123", "%FE1.1", "uniqueid"),
        ("1700000000.123", "1700000000", "uniqueid"),
        ("1700000000.123", "1700000000.12a", "uniqueid"),
        ("V1121220933000000005", "V112122093300000000", "call_id"),
        ("V1121220933000000005", "V11212209330000000%E9", "call_id"),
        ("V1121220933000000005", "x1121220933000000005", "call_id"),
        ("lead_id=5", "lead_id=%FF5", "lead_id"),
        ("dispo=SALE", "dispo=SA%FFLE", "dispo"),
        ("dispo=SALE", "dispo=SA%3BLE", "dispo"),
        ("user=1000", "user=10%E900", "user"),
        ("campaign=TESTCAMP", "campaign=TEST%27CAMP", "campaign"),
        ("epoch=1795298973", "epoch=17952%FF98973", "epoch"),
    ];
    for (from, to, key) in cases {
        let raw = good.replace(from, to);
        let e = event(CallUrl::Dispo, &raw).unwrap_err();
        assert_eq!(e.http_status(), 400, "{raw}");
        assert!(e.to_string().starts_with(&format!("`{key}`")), "{raw}: {e}");
    }
    let new_lead = "lead_id=10&user=6666&campaign=TESTCAMP&status=NEW";
    assert!(event(CallUrl::NewLead, new_lead).is_ok());
    assert!(event(CallUrl::NewLead, &new_lead.replace("6666", "66%FF66")).is_err());
}

/// A dialer on Latin-1 sends `%E9` for `é`: free text is read as Windows-1252, never refused.
#[test]
fn latin1_free_text_is_windows_1252_and_accepted() {
    let raw = "lead_id=5&uniqueid=1700000000.123&dispo=SALE&first_name=Jos%E9&last_name=M%FCller&address1=Stra%DFe+1&city=K%F6ln&comments=caf%E9+%80&dispo_name=Vente+r%E9ussie";
    let Ok(Event::Dispo(d)) = event(CallUrl::Dispo, raw) else { panic!("refused: {:?}", event(CallUrl::Dispo, raw)) };
    assert_eq!(d.lead.first_name.as_deref(), Some("José"));
    assert_eq!(d.lead.last_name.as_deref(), Some("Müller"));
    assert_eq!(d.lead.address1.as_deref(), Some("Straße 1"));
    assert_eq!(d.lead.city.as_deref(), Some("Köln"));
    assert_eq!(d.lead.comments.as_deref(), Some("café €"));
    assert_eq!(d.status_name.as_deref(), Some("Vente réussie"));
}

/// The URLs `vicibridge urls` prints, filled in the way VICIdial fills them, parse back.
#[test]
fn printed_urls_round_trip() {
    let urls = call_urls("https://abc.execute-api.us-east-1.amazonaws.com/", "tok/+=");
    assert!(
        urls.dispo_call_url
            .starts_with("https://abc.execute-api.us-east-1.amazonaws.com/vicidial/dispo?token=tok%2F%2B%3D&")
    );
    for unavailable in ["recording", "dispo_name", "callback", "talk_time_ms", "term_reason"] {
        assert!(!urls.start_call_url.contains(unavailable), "{unavailable} is not filled in a Start Call URL");
    }
    assert!(!urls.api_new_lead_url.contains("epoch"));
    let fill = |url: &str| {
        let query = url.split_once('?').unwrap().1;
        query
            .split('&')
            .map(|p| match p.split_once("=--A--") {
                Some((k, _)) => format!(
                    "{k}={}",
                    match k {
                        "lead_id" => "5",
                        "uniqueid" => "1795298900.1",
                        "dispo" => "SALE",
                        "talk_time" => "12",
                        "epoch" => "1795298982",
                        "callback_datetime" => "",
                        "dispo_name" => "Sale%2BMade",
                        "call_id" => "M1121220900000000005",
                        _ => "x",
                    }
                ),
                None => p.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&")
    };
    let q = VicidialQuery::parse(&fill(&urls.dispo_call_url));
    assert_eq!(q.token(), Some("tok/+="));
    assert!(
        matches!(to_event(CallUrl::Dispo, &q), Ok(Event::Dispo(d)) if d.status_name.as_deref() == Some("Sale Made"))
    );
    assert!(to_event(CallUrl::CallStart, &VicidialQuery::parse(&fill(&urls.start_call_url))).is_ok());
    assert!(to_event(CallUrl::NewLead, &VicidialQuery::parse(&fill(&urls.api_new_lead_url))).is_ok());
}

//! Outbound values shaped to what VICIdial keeps (reference §1 "Silent character filtering",
//! §11 field widths, §12, §13.2, §13.3), so the stored lead is what we sent and no value
//! trips a PHP fatal error (HTTP 500, retried forever to no avail).

use vicibridge_core::lead::{AddLeadRequest, DialerError};

/// `vicidial_list.vendor_lead_code` is VARCHAR(20).
pub const VENDOR_LEAD_CODE_MAX: usize = 20;
/// add_lead's `source` is logged in a 20-character column and must keep ≥ 2 characters.
pub const SOURCE_MAX: usize = 20;

/// Parameters the client sets itself: a `fields` entry must never override them (PHP keeps the
/// last of repeated keys, so `fields["user"]` would replace the API user).
const RESERVED: &[&str] = &[
    "function",
    "user",
    "pass",
    "source",
    "phone_code",
    "phone_number",
    "list_id",
    "vendor_lead_code",
    "duplicate_check",
];

/// Name and address fields: VICIdial keeps letters, digits, space and `- ' + _ .`, then turns
/// `+` into a space, and drops non-ASCII letters (`use_non_latin=0`, §1).
const NAME_FIELDS: &[(&str, usize)] = &[
    ("title", 4),
    ("first_name", 30),
    ("middle_initial", 1),
    ("last_name", 30),
    ("address1", 100),
    ("address2", 100),
    ("address3", 100),
    ("city", 50),
    ("state", 2),
    ("province", 50),
    ("postal_code", 10),
    ("country_code", 3),
];

/// Free text where VICIdial only removes `; # "` and turns `+` into a space (§1); a backslash
/// reaches MySQL unescaped (§13.3).
const TEXT_FIELDS: &[(&str, usize)] = &[("comments", 255), ("source_id", 50)];

/// Other known widths (§11); strict `sql_mode` turns an over-long value into a 500.
const WIDTHS: &[(&str, usize)] = &[("security_phrase", 100), ("owner", 20), ("email", 70), ("alt_phone", 12)];

fn permanent(reason: String, alert: bool) -> DialerError {
    DialerError::Permanent { reason, alert }
}

fn truncate(value: &str, max: usize) -> String {
    value.chars().take(max).collect()
}

/// Latin letters with diacritics → ASCII, so `José` is stored as `Jose` rather than `Jos`
/// (VICIdial deletes the letter). Anything not listed is left for the filter to drop.
fn fold_latin(c: char) -> Option<&'static str> {
    Some(match c {
        'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' | 'Ā' | 'Ă' | 'Ą' => "A",
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'Æ' => "AE",
        'æ' => "ae",
        'Ç' | 'Ć' | 'Ĉ' | 'Ċ' | 'Č' => "C",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'Ð' | 'Ď' | 'Đ' => "D",
        'ð' | 'ď' | 'đ' => "d",
        'È' | 'É' | 'Ê' | 'Ë' | 'Ē' | 'Ĕ' | 'Ė' | 'Ę' | 'Ě' => "E",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'Ĝ' | 'Ğ' | 'Ġ' | 'Ģ' => "G",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'Ĥ' | 'Ħ' => "H",
        'ĥ' | 'ħ' => "h",
        'Ì' | 'Í' | 'Î' | 'Ï' | 'Ĩ' | 'Ī' | 'Ĭ' | 'Į' | 'İ' => "I",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'Ĵ' => "J",
        'ĵ' => "j",
        'Ķ' => "K",
        'ķ' => "k",
        'Ĺ' | 'Ļ' | 'Ľ' | 'Ŀ' | 'Ł' => "L",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'Ñ' | 'Ń' | 'Ņ' | 'Ň' => "N",
        'ñ' | 'ń' | 'ņ' | 'ň' => "n",
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' | 'Ō' | 'Ŏ' | 'Ő' => "O",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
        'Œ' => "OE",
        'œ' => "oe",
        'Ŕ' | 'Ŗ' | 'Ř' => "R",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'Ś' | 'Ŝ' | 'Ş' | 'Š' | 'Ș' => "S",
        'ś' | 'ŝ' | 'ş' | 'š' | 'ș' => "s",
        'ß' => "ss",
        'Ţ' | 'Ť' | 'Ŧ' | 'Ț' => "T",
        'ţ' | 'ť' | 'ŧ' | 'ț' => "t",
        'Þ' => "TH",
        'þ' => "th",
        'Ù' | 'Ú' | 'Û' | 'Ü' | 'Ũ' | 'Ū' | 'Ŭ' | 'Ů' | 'Ű' | 'Ų' => "U",
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'Ŵ' => "W",
        'ŵ' => "w",
        'Ý' | 'Ÿ' | 'Ŷ' => "Y",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'Ź' | 'Ż' | 'Ž' => "Z",
        'ź' | 'ż' | 'ž' => "z",
        '’' | '‘' => "'",
        '–' | '—' => "-",
        _ => return None,
    })
}

/// A name/address value as VICIdial would store it, with accents folded instead of lost.
pub fn name_value(value: &str, keep_apostrophe: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if let Some(folded) = fold_latin(c) {
            out.push_str(folded);
        } else if c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.') {
            out.push(c);
        } else if c == '+' || c.is_whitespace() {
            out.push(' ');
        } else if c == '\'' {
            out.push(c);
        }
    }
    if !keep_apostrophe {
        out.retain(|c| c != '\'');
    }
    out.trim().to_owned()
}

/// Free text (`comments`, `source_id`): no `; # "` (VICIdial deletes them), no backslash (a
/// trailing one is an HTTP 500 with nothing inserted, others are MySQL escapes, §13.3), `+` is
/// a space as VICIdial would store it.
pub fn text_value(value: &str) -> String {
    value
        .chars()
        .filter(|c| !matches!(c, ';' | '#' | '"' | '\\'))
        .map(|c| if c == '+' { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// VICIdial stores `a+tag@x.com` as `a tag@x.com` (§1): drop the `+tag` sub-address, which
/// delivers to the same mailbox at the common providers, and the characters VICIdial deletes.
pub fn email_value(value: &str) -> String {
    let value = value.trim();
    let value = match value.split_once('@') {
        Some((local, domain)) => {
            let local = local.split('+').next().unwrap_or(local);
            format!("{local}@{domain}")
        }
        None => value.to_owned(),
    };
    value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '\'' | '.' | ':' | '/' | '@' | '%' | '_'))
        .collect()
}

/// `source`: ASCII letters and digits, 2..=20 (§1, §12).
pub fn source_value(value: &str) -> Result<String, DialerError> {
    let source: String = value.chars().filter(char::is_ascii_alphanumeric).take(SOURCE_MAX).collect();
    if source.len() < 2 {
        return Err(permanent(
            format!(
                "add_lead source '{value}' keeps fewer than 2 letters or digits once VICIdial filters it: set a \
                 source of 2-20 letters and digits"
            ),
            true,
        ));
    }
    Ok(source)
}

/// The CRM id, checked rather than altered: it is how the lead is found again (`lead_search`)
/// and linked to the CRM, so a silently changed id would break both.
pub fn vendor_lead_code(value: &str) -> Result<String, DialerError> {
    let len = value.chars().count();
    if len == 0 {
        return Err(permanent("vendor_lead_code (the CRM record id) is empty".to_owned(), false));
    }
    if len > VENDOR_LEAD_CODE_MAX {
        return Err(permanent(
            format!(
                "vendor_lead_code '{value}' has {len} characters; VICIdial keeps {VENDOR_LEAD_CODE_MAX}: the CRM id \
                 cannot be stored"
            ),
            false,
        ));
    }
    // `; # "` are deleted and `+` becomes a space (§1); `,` separates lead_search keys (§5);
    // a backslash is an SQL escape (§13.3).
    if let Some(bad) = value.chars().find(|c| matches!(c, ';' | '#' | '"' | '+' | ',' | '\\') || c.is_control()) {
        return Err(permanent(
            format!(
                "vendor_lead_code '{}' contains {bad:?}, which VICIdial would change or cannot search for",
                value.escape_debug()
            ),
            false,
        ));
    }
    if value.trim() != value {
        return Err(permanent(format!("vendor_lead_code '{value}' has surrounding spaces"), false));
    }
    Ok(value.to_owned())
}

fn digits(value: &str) -> String {
    value.chars().filter(char::is_ascii_digit).collect()
}

fn is_date(value: &str) -> bool {
    let b = value.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && (1..=12).contains(&value[5..7].parse::<u8>().unwrap_or(0))
        && (1..=31).contains(&value[8..10].parse::<u8>().unwrap_or(0))
}

/// The add_lead parameters (without `function`, `user`, `pass`), in a stable order.
pub fn add_lead_params(request: &AddLeadRequest) -> Result<Vec<(String, String)>, DialerError> {
    let phone_number = digits(&request.phone_number);
    if !(6..=16).contains(&phone_number.len()) {
        return Err(permanent(
            format!(
                "phone_number '{}' has {} digits; VICIdial add_lead needs 6 to 16",
                request.phone_number,
                phone_number.len()
            ),
            false,
        ));
    }
    let phone_code = match digits(&request.phone_code) {
        code if code.is_empty() => "1".to_owned(),
        code if code.len() > 10 => {
            return Err(permanent(format!("phone_code '{}' is longer than 10 digits", request.phone_code), false));
        }
        code => code,
    };
    // VICIdial silently puts a list_id shorter than 3 characters into list 999 (§2.1).
    let list_id = request.list_id.trim();
    if !(3..=14).contains(&list_id.len()) || !list_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(permanent(
            format!("list_id '{list_id}' must be 3 to 14 digits (see the lead injection config)"),
            true,
        ));
    }
    let duplicate_check = request.duplicate_check.as_deref().map(str::trim).unwrap_or("").to_ascii_uppercase();
    // A `'` in a name or title breaks the matching duplicate check's SQL: 500, nothing
    // inserted, on every retry (§13.2).
    let name_check = duplicate_check.contains("DUPNAMEPHONE");
    let title_check = duplicate_check.contains("DUPTITLEALTPHONE");

    let mut params = vec![
        ("source".to_owned(), source_value(&request.source)?),
        ("phone_code".to_owned(), phone_code),
        ("phone_number".to_owned(), phone_number),
        ("list_id".to_owned(), list_id.to_owned()),
        ("vendor_lead_code".to_owned(), vendor_lead_code(&request.vendor_lead_code)?),
    ];
    if !duplicate_check.is_empty() {
        params.push(("duplicate_check".to_owned(), duplicate_check));
    }
    for (key, value) in &request.fields {
        if RESERVED.contains(&key.as_str()) {
            tracing::warn!(field = %key, "lead field ignored: add_lead sets it itself");
            continue;
        }
        let value = if let Some((_, width)) = NAME_FIELDS.iter().find(|(k, _)| k == key) {
            let keep =
                !((name_check && (key == "first_name" || key == "last_name")) || (title_check && key == "title"));
            let value = name_value(value, keep);
            // A cut-down state or country ("Fl" for "Florida") is wrong data: leave it out.
            if matches!(key.as_str(), "state" | "country_code") && value.chars().count() > *width {
                String::new()
            } else {
                truncate(&value, *width)
            }
        } else if let Some((_, width)) = TEXT_FIELDS.iter().find(|(k, _)| k == key) {
            truncate(&text_value(value), *width)
        } else {
            match key.as_str() {
                "email" => email_value(value),
                "alt_phone" => digits(value),
                "gender" => match value.trim().chars().next().map(|c| c.to_ascii_uppercase()) {
                    Some(g @ ('M' | 'F' | 'U')) => g.to_string(),
                    _ => String::new(),
                },
                // Strict sql_mode rejects a malformed DATE with a 500.
                "date_of_birth" if !is_date(value.trim()) => String::new(),
                _ => value.trim().to_owned(),
            }
        };
        let value = match WIDTHS.iter().find(|(k, _)| k == key) {
            Some((_, width)) => truncate(&value, *width),
            None => value,
        };
        // Unset and empty are the same to add_lead; empty values only risk strict-mode errors.
        if !value.is_empty() {
            params.push((key.clone(), value));
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn request(fields: &[(&str, &str)]) -> AddLeadRequest {
        AddLeadRequest {
            phone_code: "1".into(),
            phone_number: "7275558888".into(),
            list_id: "999".into(),
            vendor_lead_code: "0061234".into(),
            source: "vicibridge".into(),
            duplicate_check: Some("duplist".into()),
            fields: fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        }
    }

    fn get(params: &[(String, String)], key: &str) -> Option<String> {
        params.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    #[test]
    fn the_basic_parameters() {
        let p = add_lead_params(&request(&[])).unwrap();
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["source", "phone_code", "phone_number", "list_id", "vendor_lead_code", "duplicate_check"]);
        assert_eq!(get(&p, "duplicate_check").as_deref(), Some("DUPLIST"));
    }

    #[test]
    fn names_fold_accents_and_keep_what_vicidial_keeps() {
        assert_eq!(name_value("José María", true), "Jose Maria");
        assert_eq!(name_value("O'Brien", true), "O'Brien");
        assert_eq!(name_value("O’Brien", false), "OBrien");
        assert_eq!(name_value("Anne+Marie <b>", true), "Anne Marie b");
        assert_eq!(name_value("Zoë Straße 5", true), "Zoe Strasse 5");
        assert_eq!(name_value("王小明", true), "");
    }

    #[test]
    fn apostrophes_go_only_under_a_name_duplicate_check() {
        let fields = [("first_name", "D'Arcy"), ("last_name", "O'Brien"), ("title", "M'r"), ("city", "L'Aquila")];
        let mut r = request(&fields);
        let p = add_lead_params(&r).unwrap();
        assert_eq!(get(&p, "last_name").as_deref(), Some("O'Brien"));
        r.duplicate_check = Some("DUPLIST-DUPNAMEPHONESYS90DAY".into());
        let p = add_lead_params(&r).unwrap();
        assert_eq!(get(&p, "first_name").as_deref(), Some("DArcy"));
        assert_eq!(get(&p, "last_name").as_deref(), Some("OBrien"));
        assert_eq!(get(&p, "title").as_deref(), Some("M'r"));
        assert_eq!(get(&p, "city").as_deref(), Some("L'Aquila"));
        r.duplicate_check = Some("DUPTITLEALTPHONELIST".into());
        let p = add_lead_params(&r).unwrap();
        assert_eq!(get(&p, "title").as_deref(), Some("Mr"));
        assert_eq!(get(&p, "last_name").as_deref(), Some("O'Brien"));
    }

    #[test]
    fn email_loses_its_plus_tag() {
        assert_eq!(email_value("a+b@x.com"), "a@x.com");
        assert_eq!(email_value(" Ann.Lee@Example.com "), "Ann.Lee@Example.com");
        assert_eq!(email_value("a<b>@x.com"), "ab@x.com");
    }

    #[test]
    fn text_loses_backslashes_and_what_vicidial_deletes() {
        assert_eq!(text_value("call me\\"), "call me");
        assert_eq!(text_value("a\\nb; c #1 \"q\" x+y"), "anb c 1 q x y");
        let p = add_lead_params(&request(&[("comments", "ends with \\"), ("source_id", "hubspot\\")])).unwrap();
        assert_eq!(get(&p, "comments").as_deref(), Some("ends with"));
        assert_eq!(get(&p, "source_id").as_deref(), Some("hubspot"));
    }

    #[test]
    fn source_is_alphanumeric_up_to_20() {
        assert_eq!(source_value("vici-bridge 2!").unwrap(), "vicibridge2");
        assert_eq!(source_value("abcdefghijklmnopqrstuvwxyz").unwrap(), "abcdefghijklmnopqrst");
        assert!(matches!(source_value("-x-"), Err(DialerError::Permanent { alert: true, .. })));
    }

    #[test]
    fn vendor_lead_code_is_checked_not_altered() {
        assert_eq!(vendor_lead_code("0031U00001abcdEFGH").unwrap(), "0031U00001abcdEFGH");
        assert_eq!(vendor_lead_code("CRM-123/abc").unwrap(), "CRM-123/abc");
        for bad in ["", "123456789012345678901", "a,b", "a+b", "abc\\", "a;b", " a", "a\"b", "a#b"] {
            assert!(matches!(vendor_lead_code(bad), Err(DialerError::Permanent { alert: false, .. })), "{bad}");
        }
        assert!(vendor_lead_code("12345678901234567890").is_ok());
        let mut r = request(&[]);
        r.vendor_lead_code = "x".repeat(21);
        assert!(matches!(add_lead_params(&r), Err(DialerError::Permanent { .. })));
    }

    #[test]
    fn phone_and_list_checks() {
        let mut r = request(&[]);
        r.phone_number = "12345".into();
        assert!(matches!(add_lead_params(&r), Err(DialerError::Permanent { alert: false, .. })));
        r.phone_number = "(727) 555-8888".into();
        assert_eq!(get(&add_lead_params(&r).unwrap(), "phone_number").as_deref(), Some("7275558888"));
        r.phone_code = String::new();
        assert_eq!(get(&add_lead_params(&r).unwrap(), "phone_code").as_deref(), Some("1"));
        r.list_id = "12".into();
        assert!(matches!(add_lead_params(&r), Err(DialerError::Permanent { alert: true, .. })));
        r.list_id = "99a".into();
        assert!(add_lead_params(&r).is_err());
    }

    #[test]
    fn reserved_keys_cannot_be_overridden_and_empty_values_are_not_sent() {
        let p =
            add_lead_params(&request(&[("user", "admin"), ("pass", "x"), ("function", "update_lead"), ("city", "")]))
                .unwrap();
        assert_eq!(get(&p, "user"), None);
        assert_eq!(get(&p, "pass"), None);
        assert_eq!(get(&p, "function"), None);
        assert_eq!(get(&p, "city"), None);
    }

    #[test]
    fn widths_and_typed_columns() {
        let p = add_lead_params(&request(&[
            ("state", "Florida"),
            ("first_name", &"a".repeat(40)),
            ("gender", "female"),
            ("date_of_birth", "12/31/1990"),
            ("alt_phone", "+1 (727) 555-0000"),
            ("add_to_hopper", "Y"),
        ]))
        .unwrap();
        assert_eq!(get(&p, "state"), None);
        assert_eq!(get(&p, "first_name").map(|v| v.len()), Some(30));
        assert_eq!(get(&p, "gender").as_deref(), Some("F"));
        assert_eq!(get(&p, "date_of_birth"), None);
        assert_eq!(get(&p, "alt_phone").as_deref(), Some("17275550000"));
        assert_eq!(get(&p, "add_to_hopper").as_deref(), Some("Y"));
        let p = add_lead_params(&request(&[("date_of_birth", "1990-12-31")])).unwrap();
        assert_eq!(get(&p, "date_of_birth").as_deref(), Some("1990-12-31"));
    }
}

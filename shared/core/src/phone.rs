//! Phone numbers from a CRM into VICIdial's `phone_code` + `phone_number`.
//!
//! CRMs hold whatever a person typed: E.164 (`+14155552671`), national formats
//! (`(415) 555-2671`), extensions (`x123`, `ext. 12`). VICIdial wants the country calling
//! code apart and the national number as digits (6–16 after its own filtering).

use phonenumber::country;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialerPhone {
    /// Country calling code, e.g. `1`, `44`.
    pub phone_code: String,
    /// National significant number, digits only.
    pub phone_number: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("no phone number")]
    Missing,
    #[error("phone number {0:?} cannot be parsed: {1}")]
    Unparseable(String, String),
    #[error("phone number {0:?} is not a valid number")]
    Invalid(String),
    #[error("default_country {0:?} is not an ISO 3166 region code such as \"US\" or \"GB\"")]
    UnknownRegion(String),
}

pub fn parse_region(code: &str) -> Result<country::Id, PhoneError> {
    code.to_ascii_uppercase().parse().map_err(|_| PhoneError::UnknownRegion(code.to_owned()))
}

/// Loads libphonenumber's metadata (every region's patterns, checked once: about 90 ms of CPU
/// in a release build), which the first [`normalise`] would otherwise pay. Callers that want
/// the first lead as fast as the next run it on a thread of its own at start; a parse that
/// comes first waits for it.
pub fn warm_up() {
    if let Ok(number) = phonenumber::parse(None, "+14155552671") {
        let _ = phonenumber::is_valid(&number);
    }
}

/// `default_region` reads national numbers (those without `+`/`00`).
pub fn normalise(raw: &str, default_region: country::Id) -> Result<DialerPhone, PhoneError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(PhoneError::Missing);
    }
    // libphonenumber reads "ext", "x" and ";ext=" itself; "#123" is a common CRM habit.
    let without_hash_ext = trimmed.split('#').next().unwrap_or(trimmed);
    let number = phonenumber::parse(Some(default_region), without_hash_ext)
        .map_err(|e| PhoneError::Unparseable(raw.to_owned(), e.to_string()))?;
    if !phonenumber::is_valid(&number) {
        return Err(PhoneError::Invalid(raw.to_owned()));
    }
    let national = number.national();
    let digits = format!("{}{}", "0".repeat(national.zeros() as usize), national.value());
    Ok(DialerPhone { phone_code: number.code().value().to_string(), phone_number: digits })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> country::Id {
        parse_region("us").unwrap()
    }

    fn ok(raw: &str, region: country::Id) -> (String, String) {
        let p = normalise(raw, region).unwrap_or_else(|e| panic!("{raw}: {e}"));
        (p.phone_code, p.phone_number)
    }

    #[test]
    fn e164_and_national_formats() {
        let want = ("1".to_owned(), "4155552671".to_owned());
        for raw in [
            "+14155552671",
            "(415) 555-2671",
            "415.555.2671",
            "1-415-555-2671",
            "+1 415 555 2671 x123",
            "415-555-2671 ext. 9",
            "4155552671#22",
        ] {
            assert_eq!(ok(raw, us()), want, "{raw}");
        }
        assert_eq!(ok("+44 20 7946 0958", us()), ("44".into(), "2079460958".into()));
        assert_eq!(ok("020 7946 0958", parse_region("GB").unwrap()), ("44".into(), "2079460958".into()));
        assert_eq!(
            ok("+39 06 6982 1234", us()),
            ("39".into(), "0669821234".into()),
            "Italian numbers keep their leading zero"
        );
    }

    #[test]
    fn invalid_numbers_say_why() {
        assert_eq!(normalise("  ", us()), Err(PhoneError::Missing));
        assert!(matches!(normalise("call me maybe", us()), Err(PhoneError::Unparseable(..))));
        assert!(matches!(normalise("123", us()), Err(PhoneError::Invalid(_) | PhoneError::Unparseable(..))));
        assert!(matches!(normalise("+1 000 555 2671", us()), Err(PhoneError::Invalid(_))));
        assert_eq!(
            parse_region("Atlantis").unwrap_err().to_string(),
            "default_country \"Atlantis\" is not an ISO 3166 region code such as \"US\" or \"GB\""
        );
    }
}

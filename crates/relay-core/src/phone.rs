//! Phone numbers to E.164 (issue 17 item 3), for pre-provisioning the
//! user's mobile phone in Duo from a mapped attribute (`DUO_PHONE_ATTRIBUTE`).
//!
//! A careful subset, not a numbering-plan database (the `phonenumber` crate
//! carries the whole of libphonenumber's metadata; too heavy for a
//! serverless relay): separators (spaces, `-`, `.`, `/`, parentheses) are
//! dropped; `+CC…` and `00CC…` are international; anything else is national
//! and needs `DUO_PHONE_DEFAULT_REGION` (an ISO 3166 region of the table
//! below, or a calling code like `+44`), whose calling code is put in front
//! after dropping one trunk `0` (or, in the North American plan, a leading
//! `1` on an 11-digit number). The result must be `+` and 8 to 15 digits
//! (E.164 allows at most 15), not starting with `0`. Extensions, letters
//! and anything else are refused with a reason; the phone is then not
//! provisioned (the user still is). Whether the number exists in its plan
//! is not checked: Duo's own phone create is the judge of that.

use crate::config::{ConfigError, RawConfig, optional};

/// Regions by ISO 3166-1 alpha-2 code and their calling codes (ITU-T
/// E.164 assignments), the ones a default region is most often set to;
/// any other is given as `+<code>`.
const REGIONS: &[(&str, &str)] = &[
    ("US", "1"),
    ("CA", "1"),
    ("GB", "44"),
    ("IE", "353"),
    ("DE", "49"),
    ("FR", "33"),
    ("ES", "34"),
    ("IT", "39"),
    ("NL", "31"),
    ("BE", "32"),
    ("CH", "41"),
    ("AT", "43"),
    ("SE", "46"),
    ("NO", "47"),
    ("DK", "45"),
    ("FI", "358"),
    ("PL", "48"),
    ("PT", "351"),
    ("AU", "61"),
    ("NZ", "64"),
    ("JP", "81"),
    ("IN", "91"),
    ("SG", "65"),
    ("BR", "55"),
    ("MX", "52"),
    ("ZA", "27"),
];

/// `DUO_PHONE_DEFAULT_REGION`: the calling code national numbers get.
pub fn default_code(raw: &RawConfig) -> Result<Option<String>, ConfigError> {
    const VAR: &str = "DUO_PHONE_DEFAULT_REGION";
    let Some(value) = optional(raw, VAR) else {
        return Ok(None);
    };
    if let Some(code) = value.strip_prefix('+') {
        if (1..=3).contains(&code.len())
            && code.bytes().all(|b| b.is_ascii_digit())
            && !code.starts_with('0')
        {
            return Ok(Some(code.to_owned()));
        }
        return Err(ConfigError::new(
            VAR,
            "a calling code must be + and 1 to 3 digits, like +44",
        ));
    }
    REGIONS
        .iter()
        .find(|(region, _)| region.eq_ignore_ascii_case(value))
        .map(|(_, code)| Some((*code).to_owned()))
        .ok_or_else(|| {
            let known: Vec<&str> = REGIONS.iter().map(|(r, _)| *r).collect();
            ConfigError::new(
                VAR,
                format!(
                    "is not a region of the table ({}); give its calling code instead, like +44",
                    known.join(", ")
                ),
            )
        })
}

/// `raw` as E.164 (`+15550100199`), or why it cannot be.
pub fn to_e164(raw: &str, default_code: Option<&str>) -> Result<String, &'static str> {
    let mut compact = String::with_capacity(raw.len());
    for c in raw.trim().chars() {
        match c {
            ' ' | '-' | '.' | '/' | '(' | ')' | '\u{a0}' => {}
            '+' if compact.is_empty() => compact.push('+'),
            '0'..='9' => compact.push(c),
            _ => return Err("not a phone number (letters, an extension or other characters)"),
        }
    }
    let international = if let Some(rest) = compact.strip_prefix('+') {
        rest.to_owned()
    } else if let Some(rest) = compact.strip_prefix("00") {
        rest.to_owned()
    } else {
        let Some(code) = default_code else {
            return Err("a national number, and DUO_PHONE_DEFAULT_REGION is not set");
        };
        let national = if code == "1" {
            match compact.strip_prefix('1') {
                Some(rest) if compact.len() == 11 => rest,
                _ => compact.as_str(),
            }
        } else {
            compact.strip_prefix('0').unwrap_or(&compact)
        };
        format!("{code}{national}")
    };
    if !(8..=15).contains(&international.len()) || international.starts_with('0') {
        return Err("not an E.164 number (8 to 15 digits with the country code)");
    }
    Ok(format!("+{international}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_pairs;

    #[test]
    fn numbers_normalize_to_e164() {
        let us = Some("1");
        let gb = Some("44");
        for (raw, region, want) in [
            ("+1 (555) 010-0199", None, "+15550100199"),
            ("0044 20 7946 0018", None, "+442079460018"),
            ("(555) 010-0199", us, "+15550100199"),
            ("1-555-010-0199", us, "+15550100199"),
            ("020 7946 0018", gb, "+442079460018"),
            ("+49 30 901820", gb, "+4930901820"),
        ] {
            assert_eq!(to_e164(raw, region).as_deref(), Ok(want), "{raw}");
        }
        for (raw, region) in [
            ("call me", us),
            ("+1 555 0100 x12", us),
            ("555-0100", None),
            ("+1 555", None),
            ("+1234567890123456", None),
            ("12+34", us),
            ("", us),
        ] {
            assert!(to_e164(raw, region).is_err(), "{raw}");
        }
    }

    #[test]
    fn default_region_by_table_or_calling_code() {
        let code = |v: &str| default_code(&from_pairs(&[("DUO_PHONE_DEFAULT_REGION", v)]));
        assert_eq!(code("gb").unwrap().as_deref(), Some("44"));
        assert_eq!(code("+358").unwrap().as_deref(), Some("358"));
        assert_eq!(default_code(&from_pairs(&[])).unwrap(), None);
        for bad in ["XX", "+0", "+1234", "44"] {
            assert_eq!(
                code(bad).unwrap_err().variable,
                "DUO_PHONE_DEFAULT_REGION",
                "{bad}"
            );
        }
    }
}

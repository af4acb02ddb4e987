//! RFC 3339 timestamps as Firestore's REST API writes them
//! (`2026-03-11T09:00:00Z`, `2026-03-11T09:00:00.288266Z`), to and from Unix
//! seconds. Firestore's output is always `Z`-normalized; offsets are accepted
//! on input anyway because its documentation allows them.

/// Unix seconds → `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn format_rfc3339(unix_secs: u64) -> String {
    let days = unix_secs / 86_400;
    let rem = unix_secs % 86_400;
    let (y, m, d) = duo_admin::date::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` → Unix seconds (the fraction
/// is dropped). `None` for anything else or a time before 1970.
pub(crate) fn parse_rfc3339(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u64> {
        let s = text.get(from..to)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // 60 is a leap second; count it as the last second of the minute.
    if second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset_secs: i64 = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = rest[1..].split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
            sign * (h * 3600 + m * 60)
        }
    };
    let days = days_from_civil(year, month, day)?;
    let local = days * 86_400 + (hour * 3600 + minute * 60 + second.min(59)) as i64;
    u64::try_from(local - offset_secs).ok()
}

/// (year, month, day) → days since 1970-01-01; `None` for dates before
/// 0000-03-01 (the start of the calendar's first era).
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<i64> {
    let year = i64::try_from(year).ok()?;
    if year - i64::from(month <= 2) < 0 {
        return None;
    }
    Some(duo_admin::date::days_from_civil(
        year,
        i64::try_from(month).ok()?,
        i64::try_from(day).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // Values cross-checked with `date -u -d @<secs> +%FT%TZ`.
    const KNOWN: &[(u64, &str)] = &[
        (0, "1970-01-01T00:00:00Z"),
        (951_782_400, "2000-02-29T00:00:00Z"),
        (1_773_219_600, "2026-03-11T09:00:00Z"),
        (1_795_432_292, "2026-11-23T11:11:32Z"),
        (4_107_542_399, "2100-02-28T23:59:59Z"),
    ];

    #[test]
    fn formats_and_parses_known_instants() {
        for (secs, text) in KNOWN {
            assert_eq!(format_rfc3339(*secs), *text);
            assert_eq!(parse_rfc3339(text), Some(*secs), "{text}");
        }
    }

    #[test]
    fn parses_what_firestore_writes() {
        // An emulator's updateTime and a documented example.
        assert_eq!(
            parse_rfc3339("2026-11-23T11:11:32.288266Z"),
            Some(1_795_432_292)
        );
        assert_eq!(
            parse_rfc3339("2014-10-02T15:01:23.045123456Z"),
            Some(1_412_262_083)
        );
        assert_eq!(
            parse_rfc3339("2014-10-02T15:01:23+05:30"),
            Some(1_412_262_083 - 5 * 3600 - 30 * 60)
        );
    }

    #[test]
    fn refuses_what_is_not_a_timestamp() {
        for bad in [
            "",
            "2026-03-11",
            "2026-03-11 09:00:00Z",
            "2026-13-11T09:00:00Z",
            "2026-03-11T24:00:00Z",
            "2026-03-11T09:00:00",
            "2026-03-11T09:00:00.Z",
            "2026-03-11T09:00:00+0530",
            "1969-12-31T23:59:59Z",
            "+026-03-11T09:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn round_trips_every_day_for_three_centuries() {
        let mut secs = 0;
        while secs < 10_000_000_000 {
            assert_eq!(parse_rfc3339(&format_rfc3339(secs)), Some(secs));
            secs += 86_400 * 7 + 3_601;
        }
    }
}

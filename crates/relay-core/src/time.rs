//! Times as text, on `jiff`'s calendar: the one place the relay reads and
//! writes RFC 3339 — IdP event times (for stale-event ordering), Firestore
//! and Pub/Sub timestamps, log lines, state files, reconcile run ids. Duo's
//! RFC 2822 signing date is `duo_admin::date`.
//!
//! Parsing is lenient the way IdPs need it: `T`, `t` or a space between date
//! and time, any number of fraction digits (cut to the millisecond),
//! `Z`/`z` or a numeric offset (`+02:00`, `+0200`), and no offset at all read
//! as UTC. A date alone, junk after the time, an empty fraction, out-of-range
//! fields or non-ASCII digits are `None`.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

/// Milliseconds since the Unix epoch of an RFC 3339 time (see the module
/// docs for what is accepted); `None` for anything else.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let time = match text.parse::<Timestamp>() {
        Ok(time) => time,
        // No offset: UTC. A date alone is not a time.
        Err(_) if text.len() > 10 && matches!(text.as_bytes()[10], b'T' | b't' | b' ') => {
            let civil = text.parse::<DateTime>().ok()?;
            TimeZone::UTC.to_timestamp(civil).ok()?
        }
        Err(_) => return None,
    };
    Some(time.as_millisecond())
}

/// Whole seconds since the Unix epoch of an RFC 3339 time (the fraction
/// dropped); `None` for anything else or a time before 1970.
pub fn parse_rfc3339_secs(text: &str) -> Option<u64> {
    u64::try_from(parse_rfc3339_ms(text)?.div_euclid(1000)).ok()
}

/// `2024-05-24T12:00:00.250Z`: milliseconds since the Unix epoch, UTC,
/// always three fraction digits. Beyond jiff's range (-9999-01-02T01:59:59Z
/// to 9999-12-30T22:00:00Z) it is the range's end.
pub fn rfc3339_millis(ms: i64) -> String {
    let time = Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    format!("{time:.3}")
}

/// `2026-03-11T09:00:00Z`: whole seconds since the Unix epoch, UTC, no
/// fraction (as Firestore's timestamps are written).
pub fn rfc3339_secs(secs: u64) -> String {
    let time = i64::try_from(secs)
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .unwrap_or(Timestamp::MAX);
    format!("{time:.0}")
}

/// `20240524T120000.250Z`: the basic (compact) form of `ms`, for ids.
pub fn compact_millis(ms: i64) -> String {
    let time = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    time.strftime("%Y%m%dT%H%M%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_idp_times() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(
            parse_rfc3339_ms("2024-03-01T12:00:00.123Z"),
            Some(1_709_294_400_123)
        );
        // The same instant with an offset, and with microseconds.
        assert_eq!(
            parse_rfc3339_ms("2024-03-01T14:00:00.123456+02:00"),
            Some(1_709_294_400_123)
        );
        assert_eq!(
            parse_rfc3339_ms("2000-02-29T00:00:00Z"),
            Some(951_782_400_000)
        );
        // Lenient: no offset is UTC; a space, lower case, an offset without
        // its colon, surrounding blanks.
        for same in [
            "2024-03-01T12:00:00.123",
            "2024-03-01 12:00:00.123Z",
            "2024-03-01t12:00:00.123z",
            "2024-03-01T14:00:00.123+0200",
            "  2024-03-01T12:00:00.123Z\n",
        ] {
            assert_eq!(parse_rfc3339_ms(same), Some(1_709_294_400_123), "{same}");
        }
        for bad in [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "2024-03-01T24:00:00Z",
            "2024-03-01",
            "2024-03-01T00:00:00Zjunk",
            "2024-03-01T00:00:00.Z",
            "２０２４-03-01T00:00:00Z",
            "+026-03-11T09:00:00Z",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    /// Firestore's timestamps (the seconds forms).
    const KNOWN: &[(u64, &str)] = &[
        (0, "1970-01-01T00:00:00Z"),
        (951_782_400, "2000-02-29T00:00:00Z"),
        (1_773_219_600, "2026-03-11T09:00:00Z"),
        (1_795_432_292, "2026-11-23T11:11:32Z"),
        (4_107_542_399, "2100-02-28T23:59:59Z"),
    ];

    #[test]
    fn formats_and_parses_firestore_seconds() {
        for (secs, text) in KNOWN {
            assert_eq!(rfc3339_secs(*secs), *text);
            assert_eq!(parse_rfc3339_secs(text), Some(*secs), "{text}");
        }
        // An emulator's updateTime and a documented example.
        assert_eq!(
            parse_rfc3339_secs("2026-11-23T11:11:32.288266Z"),
            Some(1_795_432_292)
        );
        assert_eq!(
            parse_rfc3339_secs("2014-10-02T15:01:23.045123456Z"),
            Some(1_412_262_083)
        );
        assert_eq!(
            parse_rfc3339_secs("2014-10-02T15:01:23+05:30"),
            Some(1_412_262_083 - 5 * 3600 - 30 * 60)
        );
        // Before 1970 there are no (unsigned) seconds.
        assert_eq!(parse_rfc3339_secs("1969-12-31T23:59:59Z"), None);
        assert_eq!(rfc3339_secs(u64::MAX), "9999-12-30T22:00:00Z");
        let mut secs = 0;
        while secs < 10_000_000_000 {
            assert_eq!(parse_rfc3339_secs(&rfc3339_secs(secs)), Some(secs));
            secs += 86_400 * 7 + 3_601;
        }
    }

    #[test]
    fn formats_milliseconds() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_716_552_000_250),
            "2024-05-24T12:00:00.250Z"
        );
        assert_eq!(rfc3339_millis(951_782_399_999), "2000-02-28T23:59:59.999Z");
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            parse_rfc3339_ms(&rfc3339_millis(1_716_552_000_250)),
            Some(1_716_552_000_250)
        );
        assert_eq!(rfc3339_millis(i64::MAX), "9999-12-30T22:00:00.999Z");
        assert_eq!(compact_millis(1_716_552_000_250), "20240524T120000.250Z");
    }
}

//! RFC 2822 dates for the `Date` / `X-Duo-Date` header, and the calendar
//! (with an RFC 3339 formatter) the other relay crates share.
//!
//! Written by hand (the civil-from-days conversion is a few lines) rather than
//! pulling in a date crate for one format. The output matches Python's
//! `email.utils.formatdate()`, which Duo's official clients use:
//! `Tue, 21 Aug 2012 17:29:18 -0000`.

use std::time::{SystemTime, UNIX_EPOCH};

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats `time` (UTC) as an RFC 2822 date. Times before 1970 are clamped to
/// the epoch: Duo would reject them anyway and the clock is never that wrong
/// on purpose.
pub fn rfc2822(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc2822_from_unix(secs)
}

/// Formats seconds since the Unix epoch (UTC) as an RFC 2822 date.
pub fn rfc2822_from_unix(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday; WEEKDAYS starts there.
    let weekday = WEEKDAYS[(days % 7) as usize];
    format!(
        "{weekday}, {day:02} {} {year:04} {:02}:{:02}:{:02} -0000",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Milliseconds since the Unix epoch as RFC 3339 UTC with milliseconds,
/// `2024-05-24T12:00:00.250Z`. Before 1970 the date is clamped to
/// 1970-01-01 (the time of day is kept).
pub fn rfc3339_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = u64::try_from(secs.div_euclid(86_400)).unwrap_or(0);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// Proleptic Gregorian (year, month 1-12, day 1-31) for a count of days since
/// 1970-01-01, using 400-year eras of 146 097 days whose years start in March
/// (so the leap day falls at the end of a year).
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let doe = z % 146_097; // day of era, 0..=146096
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 (negative before it) of a proleptic Gregorian date
/// (year, month 1-12, day 1-31): the inverse of [`civil_from_days`], with
/// the same March-based eras. Out-of-range months or days are not checked.
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // 0..=399
    let mp = (month + 9) % 12; // month from March, 0..=11
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc2822_from_unix(0), "Thu, 01 Jan 1970 00:00:00 -0000");
        // The date in Duo's documented signing example.
        assert_eq!(
            rfc2822_from_unix(1_345_570_158),
            "Tue, 21 Aug 2012 17:29:18 -0000"
        );
        // duo_hmac_python's test date.
        assert_eq!(
            rfc2822_from_unix(1_716_552_000),
            "Fri, 24 May 2024 12:00:00 -0000"
        );
        // A leap day and the turn of a century.
        assert_eq!(
            rfc2822_from_unix(951_782_400),
            "Tue, 29 Feb 2000 00:00:00 -0000"
        );
        assert_eq!(
            rfc2822_from_unix(4_133_980_799),
            "Fri, 31 Dec 2100 23:59:59 -0000"
        );
    }

    #[test]
    fn rfc3339_with_milliseconds() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_716_552_000_250),
            "2024-05-24T12:00:00.250Z"
        );
        assert_eq!(rfc3339_millis(951_782_399_999), "2000-02-28T23:59:59.999Z");
        assert_eq!(rfc3339_millis(-1), "1970-01-01T23:59:59.999Z");
    }

    #[test]
    fn before_epoch_clamps() {
        let t = UNIX_EPOCH - std::time::Duration::from_secs(10);
        assert_eq!(rfc2822(t), "Thu, 01 Jan 1970 00:00:00 -0000");
    }

    #[test]
    fn days_from_civil_inverts_civil_from_days() {
        for days in [0u64, 1, 59, 365, 10_957, 11_016, 19_783, 47_482, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            let back = days_from_civil(
                i64::try_from(y).expect("small"),
                i64::try_from(m).expect("small"),
                i64::try_from(d).expect("small"),
            );
            assert_eq!(back, i64::try_from(days).expect("small"), "{y}-{m}-{d}");
        }
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(1600, 3, 1), -135_080);
    }
}

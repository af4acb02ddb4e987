//! The RFC 2822 date of the `Date` / `X-Duo-Date` header Duo signs.
//!
//! The calendar is `jiff`'s; the format is Python's
//! `email.utils.formatdate()`, which Duo's official clients use: a two-digit
//! day and `-0000`, `Tue, 21 Aug 2012 17:29:18 -0000` (jiff's own RFC 2822
//! printer writes `5 Feb` for the day, so the format is spelled out here).

use std::time::SystemTime;

use jiff::Timestamp;

/// `strftime` spelling of `email.utils.formatdate()`.
const FORMATDATE: &str = "%a, %d %b %Y %H:%M:%S -0000";

/// Formats `time` (UTC) as an RFC 2822 date. Times before 1970 are clamped to
/// the epoch: Duo would reject them anyway and the clock is never that wrong
/// on purpose.
pub fn rfc2822(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc2822_from_unix(secs)
}

/// Formats seconds since the Unix epoch (UTC) as an RFC 2822 date; past
/// jiff's range (9999-12-30T22:00:00Z) it is that last instant.
pub fn rfc2822_from_unix(secs: u64) -> String {
    let time = i64::try_from(secs)
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .unwrap_or(Timestamp::MAX);
    time.strftime(FORMATDATE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

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
        // A one-digit day keeps its zero, as formatdate() writes it.
        assert_eq!(
            rfc2822_from_unix(1_707_129_285),
            "Mon, 05 Feb 2024 10:34:45 -0000"
        );
        // Beyond jiff's range: its last instant, no panic.
        assert_eq!(
            rfc2822_from_unix(u64::MAX),
            "Thu, 30 Dec 9999 22:00:00 -0000"
        );
    }

    #[test]
    fn before_epoch_clamps() {
        let t = UNIX_EPOCH - std::time::Duration::from_secs(10);
        assert_eq!(rfc2822(t), "Thu, 01 Jan 1970 00:00:00 -0000");
    }
}

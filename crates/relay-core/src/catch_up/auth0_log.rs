//! Reading Auth0's tenant logs (`GET /api/v2/logs`) for catch-up.
//!
//! Facts this relies on (sources in /work/coord/facts-16-catchup.md §2):
//! - **Checkpoint paging**: `from` (a `log_id`) and `take` return the logs
//!   *newer than* that id, ordered by `log_id` "rather than log generation
//!   time, to prevent skipping past records due to Auth0 system delays";
//!   "Any parameter other than `from` and `take` will be ignored"; an empty
//!   page answers `[]` and a `next` link equal to the request (`auth0-docs`
//!   `deploy-monitor/logs/retrieve-log-events-using-mgmt-api.mdx`).
//!   `take` is at most 100 (`auth0/node-auth0` `logs-manager.ts`).
//! - So no server-side filter is possible while catching up: every tenant
//!   log record (logins included) is read, and the Log Streams parser
//!   skips the types the relay does not act on.
//! - A first run has no `log_id` to start from: one search-mode request
//!   (`q=date:[SINCE TO *]`, `sort=date:1`, `per_page=1`; search mode is
//!   capped at 1,000 results, so it is used only to find the start) gives
//!   the oldest record of the window; that record is handled, then
//!   checkpoint paging continues from it.
//! - Records carry `log_id` and `date`; the Log Streams record has the
//!   same `log_id` (`oas/tenant-logs/logs-schema.json` requires it on every
//!   type) — the hook's idempotency key.
//! - Scope `read:logs` (`auth0-docs` `api/management/v2/logs/get-logs.mdx`).
//! - What `from` does with a `log_id` past retention is not documented: an
//!   error there falls back to a search from the last event − overlap.

use serde_json::Value;

use crate::idp::IdpError;

/// Auth0's largest checkpoint page (`take`: "Default 50, max 100").
pub const TAKE: u32 = 100;

/// Checkpoint paging from a `log_id`.
pub fn from_request(log_id: &str) -> String {
    format!("/api/v2/logs?from={}&take={TAKE}", encode(log_id))
}

/// The search that finds the oldest record at or after `since_ms`.
pub fn seed_request(since_ms: i64) -> String {
    let q = format!("date:[{} TO *]", crate::time::rfc3339_millis(since_ms));
    format!(
        "/api/v2/logs?q={}&sort=date%3A1&per_page=1&page=0",
        encode(&q)
    )
}

fn encode(value: &str) -> String {
    let mut url = reqwest::Url::parse("http://x.invalid/").unwrap_or_else(|_| {
        unreachable!("a constant URL parses");
    });
    url.query_pairs_mut().append_pair("v", value);
    url.query()
        .and_then(|q| q.strip_prefix("v="))
        .unwrap_or_default()
        .to_owned()
}

/// `date` of a tenant log record, ms since the epoch.
pub fn event_time_ms(record: &Value) -> Option<i64> {
    record
        .get("date")
        .or_else(|| record.get("data").and_then(|d| d.get("date")))
        .and_then(Value::as_str)
        .and_then(crate::order::parse_time_ms)
}

/// The `log_id` of a record (top level, or under `data` as streamed).
pub fn log_id(record: &Value) -> Option<&str> {
    record
        .get("log_id")
        .or_else(|| record.get("data").and_then(|d| d.get("log_id")))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
}

/// Whether an answer to checkpoint paging says the `log_id` is no good
/// (so the run reseeds by date), rather than Auth0 being unwell.
pub fn cursor_refused(e: &IdpError) -> bool {
    matches!(e, IdpError::Http { status: 400 } | IdpError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_encoded() {
        assert_eq!(
            from_request("9000|x"),
            "/api/v2/logs?from=9000%7Cx&take=100"
        );
        assert_eq!(
            seed_request(1_764_806_400_000),
            "/api/v2/logs?q=date%3A%5B2025-12-04T00%3A00%3A00.000Z+TO+*%5D&sort=date%3A1&per_page=1&page=0"
        );
    }

    #[test]
    fn ids_and_times_are_read_from_either_shape() {
        let bare = serde_json::json!({"log_id": "9001", "date": "2026-03-11T09:00:00.871Z"});
        let streamed = serde_json::json!({"log_id": "9002", "data": {"log_id": "9002", "date": "2026-03-11T09:00:01.000Z"}});
        assert_eq!(log_id(&bare), Some("9001"));
        assert_eq!(event_time_ms(&bare), Some(1_773_219_600_871));
        assert_eq!(log_id(&streamed), Some("9002"));
        assert_eq!(event_time_ms(&streamed), Some(1_773_219_601_000));
    }
}

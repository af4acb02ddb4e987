//! Reading Okta's System Log (`GET /api/v1/logs`) for catch-up.
//!
//! Facts this relies on (sources in /work/coord/facts-16-catchup.md §1):
//! - A **polling** request (no `until`, `sortOrder=ASCENDING`) returns
//!   every event in the order it was persisted, possibly out of order by
//!   `published`, and always has a `next` link, even on an empty page
//!   (`okta-dev-docs` `docs/reference/system-log-query/index.md`, "Request
//!   types"). So the checkpoint is the `next` link itself, and a run stops
//!   at the first empty page.
//! - `since` and `after` are mutually exclusive; `after` is opaque and must
//!   come from Okta's links; paging by hand with `since`/`until` "may lead
//!   to skipped or duplicated events" (same page).
//! - `limit` is 0..=1000 (default 100); `filter` takes SCIM expressions
//!   such as `eventType eq "…" or eventType eq "…"` (`okta-oas`
//!   `/api/v1/logs`; system-log-query "Filtering results").
//! - The events are the hook's own `LogEvent` objects ("This is the same
//!   object that the System Log API defines", `okta-dev-docs`
//!   `docs/concepts/event-hooks/index.md`), so they go through the hook's
//!   parser and keep the hook's idempotency key, the event's `uuid`.
//! - Data older than 90 days is not returned; `since` beyond 180 days is
//!   refused (system-log-query "Data retention", "Errors").
//! - How long an `after` cursor stays valid is not documented: a refused
//!   one (400/404) falls back to `since` = last event − overlap, and the
//!   idempotency keys absorb the overlap.

use reqwest::Url;
use serde_json::Value;

use crate::idp::IdpError;

/// Okta's largest System Log page (`okta-oas`: "Integer between 0 and 1000").
pub const PAGE_LIMIT: u32 = 1000;

/// The filter on the event types the relay acts on — the hook's own list
/// ([`crate::source::okta::hook::handled_event_types`]).
pub fn event_type_filter() -> String {
    crate::source::okta::hook::handled_event_types()
        .map(|t| format!("eventType eq \"{t}\""))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The first polling request: `since` (RFC 3339), ascending, the largest
/// page, the event-type filter. A path and query on the org.
pub fn polling_request(since_ms: i64) -> String {
    let mut url = Url::parse("http://org.invalid/api/v1/logs").unwrap_or_else(|_| {
        unreachable!("a constant URL parses");
    });
    url.query_pairs_mut()
        .append_pair("since", &crate::time::rfc3339_millis(since_ms))
        .append_pair("sortOrder", "ASCENDING")
        .append_pair("limit", &PAGE_LIMIT.to_string())
        .append_pair("filter", &event_type_filter());
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// `published` of a LogEvent, ms since the epoch.
pub fn event_time_ms(record: &Value) -> Option<i64> {
    record
        .get("published")
        .and_then(Value::as_str)
        .and_then(crate::order::parse_time_ms)
}

/// The hook envelope around one LogEvent, so the hook's parser reads it.
pub fn envelope(record: &Value) -> Vec<u8> {
    serde_json::json!({
        "eventType": "com.okta.event_hook",
        "source": "idp-duo-relay catch-up (GET /api/v1/logs)",
        "data": { "events": [record] },
    })
    .to_string()
    .into_bytes()
}

/// Whether an answer to a stored cursor says the cursor is no good (so
/// the run falls back to `since`), rather than Okta being unwell.
pub fn cursor_refused(e: &IdpError) -> bool {
    matches!(
        e,
        IdpError::Http { status: 400 } | IdpError::NotFound | IdpError::Decode(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_polling_request_filters_on_every_handled_type() {
        let request = polling_request(1_764_806_400_000);
        assert!(request.starts_with("/api/v1/logs?since=2025-12-04T00%3A00%3A00.000Z&sortOrder=ASCENDING&limit=1000&filter="), "{request}");
        let url = Url::parse(&format!("http://x{request}")).unwrap();
        let filter = url
            .query_pairs()
            .find(|(k, _)| k == "filter")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        assert_eq!(filter, event_type_filter());
        for t in crate::source::okta::hook::handled_event_types() {
            assert!(filter.contains(&format!("eventType eq \"{t}\"")), "{t}");
        }
        assert!(!request.contains("until"), "a polling request has no until");
    }

    #[test]
    fn a_log_event_in_an_envelope_keeps_its_uuid_as_the_key() {
        let record = serde_json::json!({
            "uuid": "a1b2c3d4-0001-11f0-9c2e-000000000001",
            "published": "2026-03-11T09:00:00.871Z",
            "eventType": "user.lifecycle.suspend",
            "outcome": {"result": "SUCCESS"},
            "target": [{"id": "00u1", "type": "User", "alternateId": "jane@example.com", "displayName": "Jane Doe"}]
        });
        let delivery = crate::verified::Verified::trusted_local_file(
            crate::event::Source::Okta,
            envelope(&record),
        );
        let parsed = crate::source::okta::hook::parse(&delivery).unwrap();
        assert_eq!(parsed.events.len(), 1);
        assert_eq!(
            parsed.events[0].id,
            crate::event::EventId::new(
                crate::event::Source::Okta,
                "a1b2c3d4-0001-11f0-9c2e-000000000001"
            )
        );
        assert_eq!(event_time_ms(&record), Some(1_773_219_600_871));
    }
}

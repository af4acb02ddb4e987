//! What the three source parsers (`source::okta::hook`, `source::auth0::events`,
//! `source::auth0::logs`)
//! share: [`ParseError`], and small readers that take a `serde_json::Value`
//! apart without trusting its shape.
//!
//! The readers treat every field as optional: a missing key, a `null`, a
//! value of the wrong JSON type and a blank string all read as "absent".
//! Real deliveries carry extra fields, nulls and odd casing (Okta previews
//! send `target: null` and `"Success"`), and a parser must never panic on
//! what a client sends.

use std::collections::HashSet;

use serde_json::Value;

use crate::event::{IdpEvent, Parsed, Skipped, Source};
use crate::limits::{
    MAX_EVENT_ID_BYTES, MAX_EVENT_TYPE_BYTES, check_event, check_record, truncated,
};
use crate::verified::Verified;

/// Why a whole delivery was refused.
///
/// `Display` names at most a field, never a value taken from the body: the
/// body holds personal data and error text ends up in logs. (That is also
/// why [`ParseError::WrongShape`] holds a `&'static str`: it cannot carry
/// anything read from the request.)
///
/// Events that are merely unusable (unknown type, failed outcome, no
/// target…) are not errors: they land in [`crate::event::Parsed::skipped`]
/// and the delivery is answered 200, so the IdP does not retry them forever.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The body is not JSON (for Auth0 log streams: no line of it is).
    /// The server answers 400.
    #[error("body is not JSON")]
    NotJson,
    /// The body is JSON but not shaped like a delivery from this source,
    /// e.g. an Okta body without `data.events`. The server answers 400.
    #[error("body does not have the expected shape: {0}")]
    WrongShape(&'static str),
    /// A well-formed delivery with nothing in it: an Okta envelope whose
    /// `data.events` is empty, an Auth0 log batch with zero records, an
    /// empty JSON array. The server answers 400: an IdP calls only when
    /// something happened and never sends an empty batch, whereas a tool
    /// probing the endpoint does — and a 200 would tell that tool the
    /// integration works.
    #[error("delivery holds no events")]
    EmptyBatch,
    /// A batch none of whose records is well-formed: each is not an
    /// object, lacks its id or type, or holds a value over the length
    /// limits ([`crate::limits`]) — `[null]`, `[{}]`, `{"type":"x"}`. The
    /// server answers 400, as for an empty batch. A batch with at least one
    /// well-formed record is answered as before (its malformed records are
    /// skipped and logged).
    #[error("delivery holds no well-formed event")]
    NoWellFormedRecord,
    /// The delivery was verified for another source than the parser it was
    /// handed to. No client can cause this; it is a wiring bug in the caller
    /// (router → parser), so the server should log it loudly.
    #[error("delivery verified for {actual} was handed to the {expected} parser")]
    WrongSource { expected: Source, actual: Source },
}

/// Refuses a delivery verified for another source.
pub(crate) fn expect_source(delivery: &Verified, expected: Source) -> Result<(), ParseError> {
    let actual = delivery.source();
    if actual == expected {
        Ok(())
    } else {
        Err(ParseError::WrongSource { expected, actual })
    }
}

/// The body as JSON. The serde error is dropped on purpose: its text can
/// quote the body.
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, ParseError> {
    serde_json::from_slice(body).map_err(|_| ParseError::NotJson)
}

/// The value at `path`, walking through objects. `None` when a step is
/// missing or not an object, or when the value is `null`.
pub(crate) fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut current = value;
    for key in path {
        current = current.as_object()?.get(*key)?;
    }
    (!current.is_null()).then_some(current)
}

/// A non-blank string at `path`, trimmed. Numbers and other types are not
/// coerced: an id that arrives as a number is not the id we know.
pub(crate) fn text<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(value, path)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// [`text`], owned.
pub(crate) fn owned_text(value: &Value, path: &[&str]) -> Option<String> {
    text(value, path).map(str::to_owned)
}

/// A boolean at `path`; also accepts the strings `"true"` / `"false"` in
/// any case, which some proxies and log pipelines produce.
pub(crate) fn flag(value: &Value, path: &[&str]) -> Option<bool> {
    match at(value, path)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if eq_ci(s.trim(), "true") => Some(true),
        Value::String(s) if eq_ci(s.trim(), "false") => Some(false),
        _ => None,
    }
}

/// An integer at `path`, as a JSON number or a numeric string.
pub(crate) fn integer(value: &Value, path: &[&str]) -> Option<i64> {
    match at(value, path)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The non-blank strings of the array at `path`, trimmed, first occurrence
/// only (a repeated id would give two events the same idempotency key).
pub(crate) fn text_list(value: &Value, path: &[&str]) -> Vec<String> {
    let mut seen = SeenIds::default();
    at(value, path)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty() && seen.first_time(s))
        .map(str::to_owned)
        .collect()
}

/// ASCII case-insensitive equality (IdP enums arrive as `SUCCESS`,
/// `Success`, `success`…).
pub(crate) fn eq_ci(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// ASCII case-insensitive substring test.
pub(crate) fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack
        .to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

/// `s` without `prefix`, compared case-insensitively; `s` itself when it
/// does not start with it.
pub(crate) fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> &'a str {
    match s.get(..prefix.len()) {
        Some(head) if eq_ci(head, prefix) => s.get(prefix.len()..).unwrap_or(s),
        _ => s,
    }
}

/// Decodes `%XX` escapes in one URL path segment (`auth0%7C65f0…` →
/// `auth0|65f0…`). A `%` not followed by two hex digits is kept as is; `+`
/// stays `+` (it means a space only in query strings). `None` when the
/// decoded bytes are not UTF-8: such a segment cannot be an id we know.
pub(crate) fn percent_decode(segment: &str) -> Option<String> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let Some(&[hi, lo]) = bytes.get(i + 1..i + 3)
            && let (Some(hi), Some(lo)) = (hex(hi), hex(lo))
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Ids already seen in this delivery, to skip a second copy of an event.
#[derive(Debug, Default)]
pub(crate) struct SeenIds(HashSet<String>);

impl SeenIds {
    /// `true` the first time `id` is offered, `false` afterwards.
    pub(crate) fn first_time(&mut self, id: &str) -> bool {
        self.0.insert(id.to_owned())
    }
}

/// A [`Skipped`] entry for a well-formed record the relay does not act
/// on. `reason` is a fixed phrase so that one log query finds every event
/// skipped for the same reason. Id and type are cut to their limits (a
/// skip is logged).
pub(crate) fn skip(
    id: Option<&str>,
    event_type: Option<&str>,
    reason: impl Into<String>,
) -> Skipped {
    Skipped {
        id: id.map(|id| truncated(id, MAX_EVENT_ID_BYTES).into_owned()),
        event_type: event_type.map(|t| truncated(t, MAX_EVENT_TYPE_BYTES).into_owned()),
        reason: reason.into(),
        malformed: false,
    }
}

/// A [`Skipped`] entry for a record that is not well-formed.
pub(crate) fn reject(
    id: Option<&str>,
    event_type: Option<&str>,
    reason: impl Into<String>,
) -> Skipped {
    Skipped {
        malformed: true,
        ..skip(id, event_type, reason)
    }
}

/// A record's id and type: both present and within the limits, or the
/// reason the record is not well-formed.
pub(crate) fn record_head<'a>(
    id: Option<&'a str>,
    event_type: Option<&'a str>,
    no_id: &'static str,
    no_type: &'static str,
) -> Result<(&'a str, &'a str), Skipped> {
    let Some(id) = id else {
        return Err(reject(None, event_type, no_id));
    };
    if let Err(reason) = check_record(id, event_type) {
        return Err(reject(Some(id), event_type, reason));
    }
    let Some(event_type) = event_type else {
        return Err(reject(Some(id), None, no_type));
    };
    Ok((id, event_type))
}

/// The events of one record, if every one of them is within the limits;
/// else the record is not well-formed.
pub(crate) fn within_limits(
    id: &str,
    event_type: &str,
    events: Vec<IdpEvent>,
) -> Result<Vec<IdpEvent>, Skipped> {
    for event in &events {
        check_event(event).map_err(|reason| reject(Some(id), Some(event_type), reason))?;
    }
    Ok(events)
}

/// `Ok(parsed)` when the delivery held a well-formed record.
pub(crate) fn require_well_formed(parsed: Parsed) -> Result<Parsed, ParseError> {
    if parsed.has_well_formed() {
        Ok(parsed)
    } else {
        Err(ParseError::NoWellFormedRecord)
    }
}

/// Reason for the second copy of an event id within one delivery.
pub(crate) const DUPLICATE_IN_BATCH: &str = "duplicate in batch";
/// Reason for an event type the relay does not act on.
pub(crate) const UNHANDLED_EVENT_TYPE: &str = "unhandled event type";
/// Reason for an event that names no user or group the relay could act on.
pub(crate) const NO_USABLE_TARGET: &str = "no usable target";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn readers_treat_missing_null_wrong_type_and_blank_as_absent() {
        let v =
            json!({"a": {"b": null, "c": 3, "d": "  ", "e": " x ", "f": [1, "y", " ", "y", null]}});
        assert_eq!(at(&v, &["a", "b"]), None);
        assert_eq!(at(&v, &["a", "zz"]), None);
        assert_eq!(at(&v, &["a", "c", "deeper"]), None);
        assert_eq!(text(&v, &["a", "c"]), None);
        assert_eq!(text(&v, &["a", "d"]), None);
        assert_eq!(text(&v, &["a", "e"]), Some("x"));
        assert_eq!(text_list(&v, &["a", "f"]), vec!["y".to_owned()]);
        assert!(text_list(&v, &["a", "e"]).is_empty());
        assert_eq!(text(&json!("top"), &[]), Some("top"));
    }

    #[test]
    fn flag_and_integer_accept_strings() {
        let v = json!({"t": true, "s": "FALSE", "n": 1, "i": 404, "is": " 201 ", "f": 2.5});
        assert_eq!(flag(&v, &["t"]), Some(true));
        assert_eq!(flag(&v, &["s"]), Some(false));
        assert_eq!(flag(&v, &["n"]), None);
        assert_eq!(integer(&v, &["i"]), Some(404));
        assert_eq!(integer(&v, &["is"]), Some(201));
        assert_eq!(integer(&v, &["f"]), None);
    }

    #[test]
    fn case_insensitive_helpers() {
        assert!(eq_ci("Success", "SUCCESS"));
        assert!(contains_ci("User reset DUO_SECURITY factor", "duo"));
        assert!(!contains_ci("User reset OKTA_VERIFY_PUSH factor", "duo"));
        assert_eq!(
            strip_prefix_ci("COM.auth0.user.created", "com.auth0."),
            "user.created"
        );
        assert_eq!(
            strip_prefix_ci("user.created", "com.auth0."),
            "user.created"
        );
        // A multi-byte character straddling the prefix length must not panic.
        assert_eq!(strip_prefix_ci("ééééé", "com.a"), "ééééé");
    }

    #[test]
    fn percent_decode_handles_escapes_and_garbage() {
        assert_eq!(
            percent_decode("auth0%7C65f0").as_deref(),
            Some("auth0|65f0")
        );
        assert_eq!(
            percent_decode("auth0%7c65f0").as_deref(),
            Some("auth0|65f0")
        );
        assert_eq!(percent_decode("a+b").as_deref(), Some("a+b"));
        assert_eq!(percent_decode("100%").as_deref(), Some("100%"));
        assert_eq!(percent_decode("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(percent_decode("%FF"), None);
    }

    #[test]
    fn error_display_names_no_value() {
        assert_eq!(ParseError::NotJson.to_string(), "body is not JSON");
        assert_eq!(
            ParseError::WrongShape("data.events is missing").to_string(),
            "body does not have the expected shape: data.events is missing"
        );
        assert_eq!(
            ParseError::EmptyBatch.to_string(),
            "delivery holds no events"
        );
        assert_eq!(
            ParseError::WrongSource {
                expected: Source::Okta,
                actual: Source::Auth0Logs
            }
            .to_string(),
            "delivery verified for auth0-logs was handed to the okta parser"
        );
    }
}

/// The parsers face whatever a client sends: none of them may panic, and
/// what they produce must keep the promises `event.rs` makes.
#[cfg(test)]
mod never_panic {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::ParseError;
    use crate::event::{Change, GroupRef, Parsed, Source, UserRef};
    use crate::verified::Verified;

    /// Planted in bodies: no error text and no skip reason may repeat it.
    const MARKER: &str = "PII-MARKER-7731";

    const WORDS: &[&str] = &[
        "SUCCESS",
        "Success",
        "FAILURE",
        "User",
        "UserGroup",
        "AuthenticatorEnrollment",
        "unknown",
        "duo",
        "DUO",
        "test",
        "true",
        "false",
        "",
        " ",
        "é",
        "%",
        "%FF",
        "#",
        "?",
        "auth0|1",
        "auth0%7C1",
        "rol_1",
        "00u1",
        "00g1",
        "a@example.com",
    ];
    const OKTA_TYPES: &[&str] = &[
        "user.lifecycle.create",
        "user.lifecycle.activate",
        "user.lifecycle.reactivate",
        "user.lifecycle.unsuspend",
        "user.lifecycle.deactivate",
        "user.lifecycle.suspend",
        "user.lifecycle.delete.initiated",
        "user.account.update_profile",
        "group.user_membership.add",
        "GROUP.USER_MEMBERSHIP.REMOVE",
        "group.lifecycle.create",
        "group.lifecycle.delete",
        "group.profile.update",
        "user.mfa.factor.reset_all",
        "user.mfa.factor.deactivate",
        "user.session.start",
    ];
    const AUTH0_TYPES: &[&str] = &[
        "user.created",
        "user.updated",
        "user.deleted",
        "com.auth0.user.updated",
        "COM.AUTH0.USER.DELETED",
        "group.created",
        "organization.member.added",
    ];
    const PATHS: &[&str] = &[
        "/api/v2/users",
        "/api/v2/users/",
        "/api/v2/users/auth0%7C1",
        "/api/v2/users/%20",
        "/api/v2/users/a/roles",
        "/api/v2/roles/rol_1/users",
        "/api/v2/users/%FF/roles",
        "/api/v2/users/a/authenticators",
        "/api/v2/users/a/authentication-methods",
        "/api/v2/users/a/authentication-methods/m%7C1",
        "/api/v2/users/a/multifactor/duo",
        "/api/v2/users/a/multifactor/DUO",
        "/api/v2/roles",
        "/api/v2/roles/rol_1?x=1",
        "/API/V2/ROLES/rol_1",
        "/api/v2/guardian/enrollments/dev_1",
        "/api/v2/clients",
        "api/v2/users",
        "/",
        "//api//v2//users//a",
    ];

    fn word() -> BoxedStrategy<String> {
        prop_oneof![
            4 => prop::sample::select(WORDS).prop_map(str::to_owned),
            2 => ".{0,16}",
            1 => Just(MARKER.to_owned()),
        ]
        .boxed()
    }

    /// Any JSON value, keys mostly drawn from the fields the parsers read.
    fn json() -> BoxedStrategy<Value> {
        const KEYS: &[&str] = &[
            "uuid",
            "eventType",
            "outcome",
            "result",
            "reason",
            "target",
            "type",
            "id",
            "alternateId",
            "displayName",
            "data",
            "events",
            "object",
            "previous_object",
            "user_id",
            "email",
            "name",
            "blocked",
            "a0purpose",
            "log_id",
            "details",
            "request",
            "response",
            "method",
            "path",
            "body",
            "statusCode",
            "roles",
            "users",
        ];
        let key = prop_oneof![
            4 => prop::sample::select(KEYS).prop_map(str::to_owned),
            1 => word(),
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            word().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..8)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
            ]
        })
        .boxed()
    }

    /// A string from `good` (or any word).
    fn s(good: &'static [&'static str]) -> BoxedStrategy<Value> {
        prop_oneof![
            8 => prop::sample::select(good).prop_map(Value::from),
            1 => word().prop_map(Value::String),
        ]
        .boxed()
    }

    fn list(item: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
        prop::collection::vec(item, 0..5)
            .prop_map(Value::Array)
            .boxed()
    }

    type Field = BoxedStrategy<Option<(&'static str, Value)>>;

    /// An optional field holding a plausible value, or sometimes any JSON.
    fn field(name: &'static str, good: BoxedStrategy<Value>) -> Field {
        prop::option::weighted(0.92, prop_oneof![12 => good, 1 => json()])
            .prop_map(move |v| v.map(|v| (name, v)))
            .boxed()
    }

    fn object(fields: Vec<Field>) -> BoxedStrategy<Value> {
        fields
            .prop_map(|fields| {
                Value::Object(
                    fields
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                )
            })
            .boxed()
    }

    fn okta_body() -> BoxedStrategy<Value> {
        let target = object(vec![
            field(
                "type",
                s(&["User", "user", "UserGroup", "AuthenticatorEnrollment"]),
            ),
            field("id", s(&["00u1", "00u2", "00g1"])),
            field("alternateId", s(&["a@example.com", "unknown", "duo"])),
            field("displayName", s(&["Duo Security", "Jane", "duo-users"])),
        ]);
        let event = object(vec![
            field("uuid", s(&["u1", "u2", "u3"])),
            field("eventType", s(OKTA_TYPES)),
            field("published", s(&["2026-03-11T09:00:00.871Z"])),
            field(
                "outcome",
                object(vec![
                    field("result", s(&["SUCCESS", "Success", "FAILURE"])),
                    field("reason", s(&["User reset DUO_SECURITY factor", "x"])),
                ]),
            ),
            field("target", list(target)),
        ]);
        object(vec![
            field("eventType", s(&["com.okta.event_hook"])),
            field("data", object(vec![field("events", list(event))])),
        ])
    }

    fn auth0_event_body() -> BoxedStrategy<Value> {
        let flag = prop_oneof![any::<bool>().prop_map(Value::Bool), s(&["true", "FALSE"])].boxed();
        let user = object(vec![
            field("user_id", s(&["auth0|1", "auth0|2"])),
            field("email", s(&["a@example.com", "b@example.com"])),
            field("name", s(&["A", "B"])),
            field("given_name", s(&["A"])),
            field("family_name", s(&["B"])),
            field("blocked", flag),
        ]);
        let event = object(vec![
            field("id", s(&["evt_1", "evt_2", "evt_1#state"])),
            field("type", s(AUTH0_TYPES)),
            field("time", s(&["2026-03-11T09:00:00.573Z"])),
            field("a0purpose", s(&["TEST", "live", "live", "live"])),
            field("specversion", s(&["1.0"])),
            field(
                "data",
                object(vec![
                    field("object", user.clone()),
                    field("previous_object", user),
                ]),
            ),
        ]);
        prop_oneof![3 => event.clone(), 1 => list(event)].boxed()
    }

    fn auth0_log_records() -> BoxedStrategy<Vec<Value>> {
        let ids = s(&["rol_1", "rol_2", "auth0|1", "", " "]);
        let body = object(vec![
            field("roles", list(ids.clone())),
            field("users", list(ids)),
            field(
                "blocked",
                prop_oneof![any::<bool>().prop_map(Value::Bool), s(&["true"])].boxed(),
            ),
            field("email", s(&["a@example.com"])),
            field("name", s(&["A", "rol"])),
            field("given_name", s(&["A"])),
            field("user_id", s(&["auth0|1"])),
            field("id", s(&["rol_1"])),
        ]);
        let status = prop_oneof![(100i64..600).prop_map(Value::from), s(&["204", "abc"])].boxed();
        let log = object(vec![
            field("type", s(&["sapi", "sdu", "SAPI", "s"])),
            field("date", s(&["2026-03-11T10:00:00.120Z"])),
            field("user_id", s(&["auth0|1"])),
            field("user_name", s(&["a@example.com"])),
            field("log_id", s(&["9001", "9002"])),
            field(
                "details",
                object(vec![
                    field(
                        "request",
                        object(vec![
                            field("method", s(&["post", "patch", "delete", "PUT", "DELETE"])),
                            field("path", s(PATHS)),
                            field("body", body.clone()),
                        ]),
                    ),
                    field(
                        "response",
                        object(vec![field("statusCode", status), field("body", body)]),
                    ),
                ]),
            ),
        ]);
        let record = prop_oneof![
            3 => object(vec![field("log_id", s(&["9001", "9002", "9003"])), field("data", log.clone())]),
            1 => log,
        ];
        prop::collection::vec(record, 0..6).boxed()
    }

    /// Auth0 log records as JSON lines (with blank and broken lines), an
    /// array, or one object.
    fn auth0_logs_body() -> BoxedStrategy<Vec<u8>> {
        (
            auth0_log_records(),
            0u8..3,
            prop::collection::vec(0u8..4, 0..6),
        )
            .prop_map(|(records, format, noise)| {
                let text = match format {
                    0 => {
                        let mut lines: Vec<String> = records.iter().map(Value::to_string).collect();
                        for (i, n) in noise.into_iter().enumerate() {
                            let at = i.min(lines.len());
                            match n {
                                0 => lines.insert(at, String::new()),
                                1 => lines.insert(at, "{\"log_id\":".to_owned()),
                                2 => lines.insert(at, format!("\r{MARKER}\r")),
                                _ => {}
                            }
                        }
                        lines.join("\n")
                    }
                    1 => Value::Array(records).to_string(),
                    _ => records
                        .into_iter()
                        .next()
                        .unwrap_or(Value::Null)
                        .to_string(),
                };
                text.into_bytes()
            })
            .boxed()
    }

    fn named(user: &UserRef) -> bool {
        user.idp_id.is_some() || user.login.is_some()
    }

    fn named_group(group: &GroupRef) -> bool {
        group.idp_id.is_some() || group.name.is_some()
    }

    /// Runs the parser for `source` and checks what it promises.
    fn check(source: Source, body: Vec<u8>) -> Result<(), TestCaseError> {
        let delivery = Verified::for_tests(source, body);
        let result: Result<Parsed, ParseError> = crate::source::parse(&delivery);
        let parsed = match result {
            Ok(parsed) => parsed,
            Err(error) => {
                let shown = format!("{error} {error:?}");
                prop_assert!(!shown.contains(MARKER));
                return Ok(());
            }
        };
        let mut ids = std::collections::HashSet::new();
        for event in &parsed.events {
            prop_assert_eq!(event.source, source);
            prop_assert!(ids.insert(event.id.clone()), "duplicate id {}", event.id);
            let (users, groups): (Vec<&UserRef>, Vec<&GroupRef>) = match &event.change {
                Change::UserUpserted { user, .. }
                | Change::UserStateChanged { user, .. }
                | Change::UserProfileChanged { user, .. }
                | Change::UserDeleted { user }
                | Change::MfaReset { user, .. } => (vec![user], vec![]),
                Change::MembershipAdded { user, group }
                | Change::MembershipRemoved { user, group } => (vec![user], vec![group]),
                Change::GroupCreated { group }
                | Change::GroupRenamed { group, .. }
                | Change::GroupDeleted { group } => (vec![], vec![group]),
                Change::SubscriptionLifecycle { .. } => (vec![], vec![]),
            };
            prop_assert!(users.into_iter().all(named), "{:?}", event);
            prop_assert!(groups.into_iter().all(named_group), "{:?}", event);
        }
        for skipped in &parsed.skipped {
            prop_assert!(!skipped.reason.contains(MARKER));
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
            for &source in Source::ALL {
                check(source, body.clone())?;
            }
        }

        #[test]
        fn arbitrary_json(value in json()) {
            for &source in Source::ALL {
                check(source, value.to_string().into_bytes())?;
            }
        }

        #[test]
        fn okta_shaped(body in okta_body()) {
            check(Source::Okta, body.to_string().into_bytes())?;
        }

        #[test]
        fn auth0_event_shaped(body in auth0_event_body()) {
            check(Source::Auth0Events, body.to_string().into_bytes())?;
        }

        #[test]
        fn auth0_log_shaped(body in auth0_logs_body()) {
            check(Source::Auth0Logs, body)?;
        }

        #[test]
        fn string_helpers(s in ".{0,24}", prefix in ".{0,8}") {
            let _ = super::percent_decode(&s);
            let _ = super::strip_prefix_ci(&s, &prefix);
            prop_assert!(super::contains_ci(&s, ""));
        }
    }
}

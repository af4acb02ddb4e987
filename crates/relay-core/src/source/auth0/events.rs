//! Auth0 Event Streams webhook (`POST /auth0`): CloudEvents 1.0.
//!
//! Auth0 sends one CloudEvent per request (REFERENCE §2a). A JSON array of
//! CloudEvents (the CloudEvents "batch" form) is accepted too: refusing it
//! would be a 4xx, which Auth0 never retries, so events would be lost.
//!
//! Only user events are acted on: Event Streams carry no tenant-role events
//! (roles arrive through Log Streams, see `super::logs`), and `group.*` /
//! `organization.*` events concern connection groups and organizations the
//! relay does not sync. Blocking has no event of its own: it is a flip of
//! `blocked` between `data.previous_object` and `data.object` on
//! `user.updated`.

use serde_json::Value;

use crate::event::{
    Change, EventId, IdpEvent, Parsed, Skipped, Source, UserProfile, UserRef, UserState,
};
use crate::parse_util::{
    DUPLICATE_IN_BATCH, ParseError, SeenIds, UNHANDLED_EVENT_TYPE, at, eq_ci, expect_source, flag,
    owned_text, parse_json, record_head, require_well_formed, skip, strip_prefix_ci, text,
    within_limits,
};
use crate::verified::Verified;

/// Parses one Auth0 Event Streams delivery.
///
/// Errors: [`ParseError::NotJson`]; [`ParseError::WrongShape`] when the body
/// is neither an object nor an array, or is an object with neither `type`
/// nor `specversion` (not a CloudEvent at all — e.g. a Log Stream pointed at
/// the wrong route); [`ParseError::EmptyBatch`] for an empty array;
/// [`ParseError::NoWellFormedRecord`] when no CloudEvent in it is
/// well-formed (an object with an `id` and a `type`, every value within
/// [`crate::limits`]).
/// The registration of Auth0 Event Streams: `POST /auth0`.
pub const SOURCE: crate::source::SourceSpec = crate::source::SourceSpec {
    source: Source::Auth0Events,
    path: "/auth0",
    verification_get: false,
    validation_query: None,
    extra_content_types: &[],
    parse,
    recognizes,
};

/// An Event Streams delivery is one CloudEvents object (`specversion`).
fn recognizes(body: &str) -> bool {
    body.trim_start().starts_with('{') && body.contains("\"specversion\"")
}

pub fn parse(delivery: &Verified) -> Result<Parsed, ParseError> {
    expect_source(delivery, Source::Auth0Events)?;
    let body = parse_json(delivery.body())?;
    let events: Vec<&Value> = match &body {
        Value::Object(_) => {
            if at(&body, &["type"]).is_none() && at(&body, &["specversion"]).is_none() {
                return Err(ParseError::WrongShape(
                    "not a CloudEvent: neither type nor specversion",
                ));
            }
            vec![&body]
        }
        Value::Array(items) if items.is_empty() => return Err(ParseError::EmptyBatch),
        Value::Array(items) => items.iter().collect(),
        _ => {
            return Err(ParseError::WrongShape(
                "top level is neither an object nor an array",
            ));
        }
    };

    let mut parsed = Parsed::default();
    let mut seen = SeenIds::default();
    for event in events {
        match read_event(event, &mut seen) {
            Ok(events) => parsed.events.extend(events),
            Err(skipped) => parsed.skipped.push(skipped),
        }
    }
    require_well_formed(parsed)
}

/// The 1 or 2 events one CloudEvent yields, or why it yields none.
fn read_event(event: &Value, seen: &mut SeenIds) -> Result<Vec<IdpEvent>, Skipped> {
    let (id, event_type) = record_head(
        text(event, &["id"]),
        text(event, &["type"]),
        "no event id",
        "no event type",
    )?;
    let skipped = |reason: &str| skip(Some(id), Some(event_type), reason);
    if !seen.first_time(id) {
        return Err(skipped(DUPLICATE_IN_BATCH));
    }
    // Auth0's "Test" button sends a realistic user.created with
    // `a0purpose: "test"`; applying it would create a fake user in Duo.
    if text(event, &["a0purpose"]).is_some_and(|p| eq_ci(p, "test")) {
        return Err(skipped("test delivery"));
    }
    // The schema and real payloads say `user.created`; the docs' prose says
    // `com.auth0.user.created` (REFERENCE §2a ⚠). Accept both.
    let kind = strip_prefix_ci(event_type, "com.auth0.").to_ascii_lowercase();
    if !matches!(
        kind.as_str(),
        "user.created" | "user.updated" | "user.deleted"
    ) {
        return Err(skipped(UNHANDLED_EVENT_TYPE));
    }
    let Some(object) = at(event, &["data", "object"]).filter(|o| o.is_object()) else {
        return Err(skipped("no data.object"));
    };
    let Some(user_id) = text(object, &["user_id"]) else {
        return Err(skipped("no user id"));
    };
    let user = UserRef {
        idp_id: Some(user_id.to_owned()),
        login: owned_text(object, &["email"]),
    };
    let new_event = |suffix: &str, change: Change| IdpEvent {
        id: EventId::with_suffix(Source::Auth0Events, id, suffix),
        source: Source::Auth0Events,
        event_type: event_type.to_owned(),
        occurred_at: owned_text(event, &["time"]),
        change,
    };

    let mut out = Vec::new();
    match kind.as_str() {
        "user.created" => out.push(new_event(
            "",
            Change::UserUpserted {
                user,
                profile: profile_of(object),
                // Absent `blocked` means not blocked, but "not said" is left
                // to the planner's default rather than forced to Active.
                state: (flag(object, &["blocked"]) == Some(true)).then_some(UserState::Disabled),
            },
        )),
        "user.deleted" => out.push(new_event("", Change::UserDeleted { user })),
        _ => {
            // user.updated. Both halves always carry their suffix, whether
            // one or both are produced, so an event's key does not depend on
            // what else the same record said.
            let previous = at(event, &["data", "previous_object"]).filter(|p| p.is_object());
            let changes = updated_changes(object, previous, user);
            if changes.is_empty() {
                return Err(skipped("no relevant change"));
            }
            out.extend(
                changes
                    .into_iter()
                    .map(|(suffix, change)| new_event(suffix, change)),
            );
        }
    }
    within_limits(id, event_type, out)
}

/// The profile fields Duo keeps, as `data.object` has them. Duo's username
/// is the Auth0 email by default, hence `login` = `email`.
fn profile_of(object: &Value) -> UserProfile {
    UserProfile {
        login: owned_text(object, &["email"]),
        email: owned_text(object, &["email"]),
        display_name: owned_text(object, &["name"]),
        first_name: owned_text(object, &["given_name"]),
        last_name: owned_text(object, &["family_name"]),
        aliases: Default::default(),
        phone: None,
        // The whole user object (attribute mapping reads it).
        attributes: Some(object.clone()),
    }
}

const PROFILE_FIELDS: [&str; 4] = ["email", "name", "given_name", "family_name"];

/// Fields of the user object only attribute mapping may use
/// (`super::ATTRIBUTES`). A `user.updated` that changes only these is passed
/// on as a profile change with the id suffix [`ATTRIBUTES_SUFFIX`]; the
/// planner skips it unless a `DUO_*_ATTRIBUTE` setting names an Auth0
/// attribute (without one, as before: no Duo call).
const MAPPABLE_FIELDS: [&str; 5] = [
    "username",
    "nickname",
    "phone_number",
    "app_metadata",
    "user_metadata",
];

/// The id suffix of a `user.updated` that changed only [`MAPPABLE_FIELDS`].
pub const ATTRIBUTES_SUFFIX: &str = "#attributes";

/// What a `user.updated` says, profile first: if the record both renames and
/// blocks, the rename (which carries `previous_login`) is what lets the
/// planner find the old Duo user; the state change can then find it by the
/// new login too.
fn updated_changes(
    object: &Value,
    previous: Option<&Value>,
    user: UserRef,
) -> Vec<(&'static str, Change)> {
    let blocked_now = flag(object, &["blocked"]);
    let attributes_changed = previous.is_some_and(|previous| {
        MAPPABLE_FIELDS
            .iter()
            .any(|field| object.get(field) != previous.get(field))
    });
    let (profile_changed, state_changed, previous_login) = match previous {
        Some(previous) => {
            let profile_changed = PROFILE_FIELDS
                .iter()
                .any(|field| text(object, &[field]) != text(previous, &[field]));
            // Auth0 omits `blocked` on users never blocked, so a missing
            // previous value reads as false. A missing *new* value says
            // nothing: it must not unblock anyone.
            let blocked_before = flag(previous, &["blocked"]).unwrap_or(false);
            let state_changed = blocked_now.is_some_and(|now| now != blocked_before);
            let email_before = text(previous, &["email"]);
            let previous_login = email_before
                .filter(|before| Some(*before) != text(object, &["email"]))
                .map(str::to_owned);
            (profile_changed, state_changed, previous_login)
        }
        // No previous object to compare with: pass on everything the event
        // holds; applying it again is harmless.
        None => (
            PROFILE_FIELDS.iter().any(|f| text(object, &[f]).is_some()),
            blocked_now.is_some(),
            None,
        ),
    };

    let mut changes = Vec::new();
    if profile_changed || attributes_changed {
        changes.push((
            if profile_changed {
                "#profile"
            } else {
                ATTRIBUTES_SUFFIX
            },
            Change::UserProfileChanged {
                user: user.clone(),
                profile: Some(profile_of(object)),
                previous_login,
            },
        ));
    }
    if state_changed && let Some(blocked) = blocked_now {
        changes.push((
            "#state",
            Change::UserStateChanged {
                user,
                state: if blocked {
                    UserState::Disabled
                } else {
                    UserState::Active
                },
            },
        ));
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_str(body: &str) -> Result<Parsed, ParseError> {
        parse(&Verified::for_tests(Source::Auth0Events, body.to_owned()))
    }

    /// Parsed, with the carried user objects checked and set aside (the
    /// expected events below list the mapped fields only).
    fn parse_fixture(body: &str) -> Parsed {
        without_attributes(parse_str(body).expect("fixture parses"))
    }

    fn parse_json_value(body: Value) -> Parsed {
        without_attributes(parse_str(&body.to_string()).unwrap())
    }

    fn without_attributes(mut parsed: Parsed) -> Parsed {
        for event in &mut parsed.events {
            if let Change::UserUpserted { profile, .. }
            | Change::UserProfileChanged {
                profile: Some(profile),
                ..
            } = &mut event.change
            {
                let object = profile
                    .attributes
                    .take()
                    .expect("the user object is carried");
                assert!(object.get("user_id").is_some(), "{object}");
            }
        }
        parsed
    }

    fn event(id: &str, event_type: &str, time: &str, change: Change) -> IdpEvent {
        IdpEvent {
            // Tests write "evt_x#state" for the suffixed ids.
            id: match id.split_once('#') {
                Some((base, rest)) => {
                    EventId::with_suffix(Source::Auth0Events, base, &format!("#{rest}"))
                }
                None => EventId::new(Source::Auth0Events, id),
            },
            source: Source::Auth0Events,
            event_type: event_type.to_owned(),
            occurred_at: Some(time.to_owned()),
            change,
        }
    }

    const JANE_ID: &str = "auth0|65f0c0ffee0000000000a001";

    fn jane(login: &str) -> UserRef {
        UserRef {
            idp_id: Some(JANE_ID.to_owned()),
            login: Some(login.to_owned()),
        }
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn user_created() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/auth0/user-created.json"
        ));
        assert!(parsed.skipped.is_empty());
        assert_eq!(
            parsed.events,
            vec![event(
                "evt_6SfwXrtm8nVcjzzNCFFH1L",
                "user.created",
                "2026-03-11T09:00:00.573Z",
                Change::UserUpserted {
                    user: jane("jane.doe@example.com"),
                    profile: UserProfile {
                        login: s("jane.doe@example.com"),
                        email: s("jane.doe@example.com"),
                        display_name: s("Jane Doe"),
                        first_name: s("Jane"),
                        last_name: s("Doe"),
                        ..UserProfile::default()
                    },
                    state: None,
                }
            )]
        );
    }

    #[test]
    fn user_updated_blocked() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/auth0/user-updated-blocked.json"
        ));
        assert!(parsed.skipped.is_empty());
        assert_eq!(
            parsed.events,
            vec![event(
                "evt_9ViaAuwp1qYfmCCQEIIK4P#state",
                "user.updated",
                "2026-03-11T09:10:00.000Z",
                Change::UserStateChanged {
                    user: jane("jane.doe@example.com"),
                    state: UserState::Disabled,
                }
            )]
        );
    }

    #[test]
    fn user_updated_email() {
        // The REFERENCE sample: renamed and blocked in one record, with the
        // `com.auth0.` prefix the docs' prose uses.
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/auth0/user-updated-email.json"
        ));
        assert!(parsed.skipped.is_empty());
        let new_login = "jane.smith@example.com";
        assert_eq!(
            parsed.events,
            vec![
                event(
                    "evt_7TgxYsun9oWdkAAODGGI2M#profile",
                    "com.auth0.user.updated",
                    "2026-03-11T09:05:00.101Z",
                    Change::UserProfileChanged {
                        user: jane(new_login),
                        profile: Some(UserProfile {
                            login: s(new_login),
                            email: s(new_login),
                            display_name: s("Jane Smith"),
                            first_name: s("Jane"),
                            last_name: s("Smith"),
                            ..UserProfile::default()
                        }),
                        previous_login: s("jane.doe@example.com"),
                    }
                ),
                event(
                    "evt_7TgxYsun9oWdkAAODGGI2M#state",
                    "com.auth0.user.updated",
                    "2026-03-11T09:05:00.101Z",
                    Change::UserStateChanged {
                        user: jane(new_login),
                        state: UserState::Disabled,
                    }
                ),
            ]
        );
    }

    #[test]
    fn user_deleted() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/auth0/user-deleted.json"
        ));
        assert!(parsed.skipped.is_empty());
        assert_eq!(
            parsed.events,
            vec![event(
                "evt_8UhyZtvo0pXelBBPEHHJ3N",
                "user.deleted",
                "2026-03-11T10:00:00.000Z",
                Change::UserDeleted {
                    user: jane("jane.smith@example.com"),
                }
            )]
        );
    }

    #[test]
    fn test_delivery() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/auth0/test-delivery.json"
        ));
        assert!(parsed.events.is_empty());
        assert_eq!(
            parsed.skipped,
            vec![skip(
                Some("evt_0TESTDELIVERY000000001"),
                Some("user.created"),
                "test delivery"
            )]
        );
    }

    #[test]
    fn whole_delivery_errors() {
        assert_eq!(parse_str(""), Err(ParseError::NotJson));
        assert_eq!(parse_str("{"), Err(ParseError::NotJson));
        assert_eq!(parse_str("[]"), Err(ParseError::EmptyBatch));
        assert_eq!(
            parse_str("\"user.created\""),
            Err(ParseError::WrongShape(
                "top level is neither an object nor an array"
            ))
        );
        assert_eq!(
            parse_str(r#"{"log_id": "900", "data": {"type": "sapi"}}"#),
            Err(ParseError::WrongShape(
                "not a CloudEvent: neither type nor specversion"
            ))
        );
    }

    #[test]
    fn a_batch_array_is_accepted_and_deduplicated() {
        let created = json!({"id": "evt_1", "type": "user.deleted", "time": "t",
            "data": {"object": {"user_id": "auth0|1"}}});
        let parsed = parse_json_value(
            json!([created, created, 7, {"id": "evt_2", "type": "organization.created"}]),
        );
        assert_eq!(parsed.events.len(), 1);
        let reasons: Vec<_> = parsed.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(
            reasons,
            ["duplicate in batch", "no event id", "unhandled event type"]
        );
    }

    #[test]
    fn missing_user_id_or_object_is_skipped() {
        let parsed = parse_json_value(json!({"id": "evt_3", "type": "user.created",
            "data": {"object": {"email": "x@example.com", "user_id": null}}}));
        assert_eq!(parsed.skipped[0].reason, "no user id");
        let parsed = parse_json_value(json!({"id": "evt_4", "type": "user.created", "data": null}));
        assert_eq!(parsed.skipped[0].reason, "no data.object");
        // A CloudEvent without a type is not well-formed: alone, it is 400.
        assert_eq!(
            parse_str(&json!({"id": "evt_5", "specversion": "1.0"}).to_string()),
            Err(ParseError::NoWellFormedRecord)
        );
    }

    /// Issue 13 item 5: a delivery with no well-formed CloudEvent is 400;
    /// one with a well-formed event beside junk keeps the event.
    #[test]
    fn junk_only_deliveries_are_refused() {
        for junk in [r#"[{}]"#, "[null]", r#"{"type":"x"}"#, r#"[1,"x",[]]"#] {
            assert_eq!(
                parse_str(junk),
                Err(ParseError::NoWellFormedRecord),
                "{junk}"
            );
        }
        let mixed = json!([null, {}, {"id": "evt_9", "type": "user.deleted",
            "data": {"object": {"user_id": "auth0|9"}}}]);
        let parsed = parse_json_value(mixed);
        assert_eq!(parsed.events.len(), 1);
        assert_eq!(parsed.skipped.len(), 2);
        assert!(parsed.skipped.iter().all(|s| s.malformed));
        // Well-formed but unhandled: skipped, and the delivery is fine.
        let parsed = parse_json_value(json!({"id": "evt_10", "type": "group.created"}));
        assert_eq!(parsed.skipped[0].reason, "unhandled event type");
    }

    /// Issue 13 item 3: values over the length limits make a record not
    /// well-formed (never sent to Duo).
    #[test]
    fn values_over_the_limits_are_refused() {
        let huge = "x".repeat(70_000);
        let created = |user_id: &str, email: &str| {
            json!({"id": "evt_11", "type": "user.created",
                "data": {"object": {"user_id": user_id, "email": email}}})
            .to_string()
        };
        assert_eq!(
            parse_str(&created(&huge, "a@example.com")),
            Err(ParseError::NoWellFormedRecord)
        );
        assert_eq!(
            parse_str(&created("auth0|1", &format!("{huge}@example.com"))),
            Err(ParseError::NoWellFormedRecord)
        );
        let id = json!({"id": huge, "type": "user.deleted",
            "data": {"object": {"user_id": "auth0|1"}}});
        assert_eq!(
            parse_str(&id.to_string()),
            Err(ParseError::NoWellFormedRecord)
        );
        let batch = json!([
            {"id": "evt_12", "type": "user.created", "data": {"object": {"user_id": "auth0|1", "name": huge}}},
            {"id": "evt_13", "type": "user.deleted", "data": {"object": {"user_id": "auth0|2"}}}
        ]);
        let parsed = parse_json_value(batch);
        assert_eq!(parsed.events.len(), 1);
        assert_eq!(parsed.skipped[0].reason, "name longer than 1024 bytes");
        assert!(parsed.skipped[0].malformed);
    }

    #[test]
    fn update_without_relevant_change_is_skipped() {
        let parsed = parse_json_value(json!({"id": "evt_6", "type": "user.updated",
        "data": {
            "object": {"user_id": "auth0|1", "email": "a@example.com", "logins_count": 9, "blocked": false},
            "previous_object": {"user_id": "auth0|1", "email": "a@example.com", "logins_count": 8}
        }}));
        assert!(parsed.events.is_empty());
        assert_eq!(parsed.skipped[0].reason, "no relevant change");
    }

    #[test]
    fn update_without_previous_object_passes_everything_on() {
        let parsed = parse_json_value(json!({"id": "evt_7", "type": "USER.UPDATED", "time": "t",
            "data": {"object": {"user_id": "auth0|1", "email": "a@example.com", "blocked": "false"}}}));
        let user = UserRef {
            idp_id: s("auth0|1"),
            login: s("a@example.com"),
        };
        assert_eq!(
            parsed.events,
            vec![
                event(
                    "evt_7#profile",
                    "USER.UPDATED",
                    "t",
                    Change::UserProfileChanged {
                        user: user.clone(),
                        profile: Some(UserProfile {
                            login: s("a@example.com"),
                            email: s("a@example.com"),
                            ..UserProfile::default()
                        }),
                        previous_login: None,
                    }
                ),
                event(
                    "evt_7#state",
                    "USER.UPDATED",
                    "t",
                    Change::UserStateChanged {
                        user,
                        state: UserState::Active
                    }
                ),
            ]
        );
    }

    #[test]
    fn unblock_is_active_and_missing_new_blocked_changes_nothing() {
        let parsed = parse_json_value(json!({"id": "evt_8", "type": "user.updated",
            "data": {"object": {"user_id": "auth0|1", "blocked": false},
                     "previous_object": {"user_id": "auth0|1", "blocked": true}}}));
        assert_eq!(
            parsed.events[0].change,
            Change::UserStateChanged {
                user: UserRef {
                    idp_id: s("auth0|1"),
                    login: None
                },
                state: UserState::Active
            }
        );
        let parsed = parse_json_value(json!({"id": "evt_9", "type": "user.updated",
            "data": {"object": {"user_id": "auth0|1"},
                     "previous_object": {"user_id": "auth0|1", "blocked": true}}}));
        assert_eq!(parsed.skipped[0].reason, "no relevant change");
    }

    #[test]
    fn created_blocked_user_is_disabled() {
        let parsed = parse_json_value(json!({"id": "evt_10", "type": "user.created",
            "data": {"object": {"user_id": "auth0|1", "blocked": true}}}));
        let Change::UserUpserted { state, .. } = &parsed.events[0].change else {
            panic!("{:?}", parsed.events);
        };
        assert_eq!(*state, Some(UserState::Disabled));
    }
}

//! Auth0 Log Streams custom webhook (`POST /auth0/logs`).
//!
//! A delivery is a batch of tenant log records in whichever
//! `httpContentFormat` the stream was set up with: JSON lines, a JSON array,
//! or a single JSON object (REFERENCE §2b). Each record is `{"log_id": …,
//! "data": {tenant log event}}`; a bare tenant log event (no `data` object,
//! `log_id` at top level) is accepted too. Records are keyed by `log_id`.
//!
//! Two log types matter:
//! - `sdu` (Success User Deletion);
//! - `sapi` (Success API Operation), emitted for every Management API write.
//!   It is not subject-specific: the record is routed on
//!   `(details.request.method, details.request.path)`, and the subject is
//!   taken from the path and the request/response bodies — never from
//!   `data.user_id`, which names the *caller* (the admin or M2M client).
//!
//! Log Streams are the only Auth0 channel that sees tenant roles (the relay's
//! groups) and admin MFA resets; Event Streams have no event for either.

use serde_json::Value;

use crate::event::{
    Change, EventId, GroupRef, IdpEvent, MfaScope, Parsed, Skipped, Source, UserProfile, UserRef,
    UserState,
};
use crate::parse_util::{
    DUPLICATE_IN_BATCH, NO_USABLE_TARGET, ParseError, SeenIds, at, eq_ci, expect_source, flag,
    integer, owned_text, percent_decode, record_head, reject, require_well_formed, skip, text,
    text_list, within_limits,
};
use crate::verified::Verified;

/// Parses one Auth0 Log Streams delivery.
///
/// Errors: [`ParseError::NotJson`] when neither the whole body nor any line
/// of it is JSON; [`ParseError::WrongShape`] when the body is JSON but a bare
/// string, number, boolean or null; [`ParseError::EmptyBatch`] when it holds
/// no record (blank body, `[]`) — Auth0 never sends one, a probe does;
/// [`ParseError::NoWellFormedRecord`] when no record is well-formed (an
/// object with a `log_id` and a `type`, every value within
/// [`crate::limits`]) — `{}`, `[null]`, `[1,2,3]`, `{"data":"x"}`.
///
/// A JSON line that does not parse is skipped ("unparseable line N"), not
/// fatal: failing the batch would make Auth0 retry the good records with it.
/// The registration of Auth0 Log Streams: `POST /auth0/logs`. Log Streams
/// send whatever `httpContentType` was configured — JSON, JSON lines or
/// plain text.
pub const SOURCE: crate::source::SourceSpec = crate::source::SourceSpec {
    source: Source::Auth0Logs,
    path: "/auth0/logs",
    verification_get: false,
    validation_query: None,
    extra_content_types: &[
        "application/x-ndjson",
        "application/jsonl",
        "application/json-lines",
        "text/plain",
    ],
    parse,
    recognizes,
};

/// Log Streams batches have no shape of their own to look for: the last
/// source asked, they take whatever the others did not recognize.
fn recognizes(_body: &str) -> bool {
    true
}

pub fn parse(delivery: &Verified) -> Result<Parsed, ParseError> {
    expect_source(delivery, Source::Auth0Logs)?;
    let (records, skipped_lines) = split_records(delivery.body())?;
    let mut parsed = Parsed {
        events: Vec::new(),
        skipped: skipped_lines,
    };
    let mut seen = SeenIds::default();
    for record in &records {
        match read_record(record, &mut seen) {
            Ok(events) => parsed.events.extend(events),
            Err(skipped) => parsed.skipped.push(skipped),
        }
    }
    require_well_formed(parsed)
}

/// The records of a batch, and a skip entry per JSON line that did not parse.
fn split_records(body: &[u8]) -> Result<(Vec<Value>, Vec<Skipped>), ParseError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.trim_ascii().is_empty() {
        return Err(ParseError::EmptyBatch);
    }
    // JSONARRAY, JSONOBJECT, and JSONLINES with a single line.
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        return match value {
            Value::Array(items) if items.is_empty() => Err(ParseError::EmptyBatch),
            Value::Array(items) => Ok((items, Vec::new())),
            Value::Object(_) => Ok((vec![value], Vec::new())),
            _ => Err(ParseError::WrongShape(
                "top level is not an object, an array or JSON lines",
            )),
        };
    }
    // JSONLINES. Line numbers count blank lines too, so "line N" points at
    // the body as received.
    let mut records = Vec::new();
    let mut skipped = Vec::new();
    for (index, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Value>(line) {
            Ok(record) => records.push(record),
            Err(_) => skipped.push(reject(
                None,
                None,
                format!("unparseable line {}", index + 1),
            )),
        }
    }
    if records.is_empty() {
        return Err(ParseError::NotJson);
    }
    Ok((records, skipped))
}

/// The events one record yields (several for a role assignment listing
/// several roles), or why it yields none.
fn read_record(record: &Value, seen: &mut SeenIds) -> Result<Vec<IdpEvent>, Skipped> {
    if !record.is_object() {
        return Err(reject(None, None, "record is not an object"));
    }
    let log = at(record, &["data"])
        .filter(|data| data.is_object())
        .unwrap_or(record);
    // `data.log_id` repeats the record's id; either will do.
    let (log_id, log_type) = record_head(
        text(record, &["log_id"]).or_else(|| text(log, &["log_id"])),
        text(log, &["type"]),
        "no log id",
        "no log type",
    )?;
    if !seen.first_time(log_id) {
        return Err(skip(Some(log_id), Some(log_type), DUPLICATE_IN_BATCH));
    }

    let (event_type, outcome) = if eq_ci(log_type, "sdu") {
        (log_type.to_owned(), deleted_user(log))
    } else if eq_ci(log_type, "sapi") {
        management_call(log)
    } else {
        return Err(skip(Some(log_id), Some(log_type), "unhandled log type"));
    };
    let changes = outcome.map_err(|reason| skip(Some(log_id), Some(&event_type), reason))?;
    let occurred_at = owned_text(log, &["date"]);
    let events = changes
        .into_iter()
        .map(|(suffix, change)| IdpEvent {
            id: EventId::with_suffix(Source::Auth0Logs, log_id, &suffix),
            source: Source::Auth0Logs,
            event_type: event_type.clone(),
            occurred_at: occurred_at.clone(),
            change,
        })
        .collect();
    within_limits(log_id, &event_type, events)
}

/// Changes with the suffix each one's event id gets, or a skip reason.
type Outcome = Result<Vec<(String, Change)>, &'static str>;

fn one(change: Change) -> Outcome {
    Ok(vec![(String::new(), change)])
}

/// `sdu`: `data.user_id` is the deleted user here (not a caller).
fn deleted_user(log: &Value) -> Outcome {
    let user = UserRef {
        idp_id: owned_text(log, &["user_id"]),
        login: owned_text(log, &["user_name"]),
    };
    if user.idp_id.is_none() && user.login.is_none() {
        return Err("no user id");
    }
    one(Change::UserDeleted { user })
}

/// `sapi`: the event type (`sapi <method> <path template>`) and what the
/// Management API call did.
fn management_call(log: &Value) -> (String, Outcome) {
    let method = text(log, &["details", "request", "method"])
        .unwrap_or_default()
        .to_ascii_lowercase();
    let raw_path = text(log, &["details", "request", "path"]).unwrap_or_default();
    // The path may carry a query string (`?send_verification_email=false`);
    // it can hold search terms or emails, so it goes nowhere.
    let path = raw_path.split(['?', '#']).next().unwrap_or_default();
    let as_sent = || {
        ["sapi", method.as_str(), path]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };

    // Ids in paths are URL-encoded (`auth0%7C65f0…`).
    let Some(segments) = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect::<Option<Vec<String>>>()
    else {
        return (as_sent(), Err("malformed path"));
    };
    let rest = match segments.as_slice() {
        [api, v2, rest @ ..] if eq_ci(api, "api") && eq_ci(v2, "v2") => rest,
        _ => return (as_sent(), Err("unhandled management API call")),
    };
    let words: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    // The decoded id at position `i` of `rest`; the arms below only ask for
    // positions their pattern has.
    let id = |i: usize| rest.get(i).map(|s| s.trim()).unwrap_or_default();

    let (template, outcome) = match (method.as_str(), words.as_slice()) {
        ("post", ["users"]) => ("/api/v2/users", created_user(log)),
        ("patch", ["users", _]) => ("/api/v2/users/{id}", patched_user(log, id(1))),
        ("delete", ["users", _]) => (
            "/api/v2/users/{id}",
            user_by_id(id(1)).and_then(|user| one(Change::UserDeleted { user })),
        ),
        ("post" | "delete", ["users", _, "roles"]) => (
            "/api/v2/users/{id}/roles",
            memberships(log, method == "post", MembershipPath::UserRoles(id(1))),
        ),
        ("post" | "delete", ["roles", _, "users"]) => (
            // A delete here is not in the Management API today; if it ever
            // appears, its meaning is unambiguous.
            "/api/v2/roles/{id}/users",
            memberships(log, method == "post", MembershipPath::RoleUsers(id(1))),
        ),
        ("delete", ["users", _, "authenticators"]) => (
            "/api/v2/users/{id}/authenticators",
            mfa_reset(id(1), MfaScope::All),
        ),
        ("delete", ["users", _, "authentication-methods"]) => (
            "/api/v2/users/{id}/authentication-methods",
            mfa_reset(id(1), MfaScope::All),
        ),
        // Removing one method still makes the user enroll that method again,
        // and the log does not say which method it was, so the relay cannot
        // tell which Duo device (if any) it maps to: reset them all.
        ("delete", ["users", _, "authentication-methods", _]) => (
            "/api/v2/users/{id}/authentication-methods/{method_id}",
            mfa_reset(id(1), MfaScope::All),
        ),
        // The legacy per-provider endpoint (`duo`, `google-authenticator`).
        // Here the log does say which factor went: like an Okta non-Duo
        // factor reset, a non-Duo provider leaves the Duo devices alone.
        ("delete", ["users", _, "multifactor", provider]) => (
            "/api/v2/users/{id}/multifactor/{provider}",
            if *provider == "duo" {
                mfa_reset(id(1), MfaScope::Duo)
            } else {
                Err("factor is not Duo")
            },
        ),
        ("post", ["roles"]) => ("/api/v2/roles", created_role(log)),
        ("patch", ["roles", _]) => ("/api/v2/roles/{id}", renamed_role(log, id(1))),
        ("delete", ["roles", _]) => (
            "/api/v2/roles/{id}",
            role_by_id(id(1)).and_then(|group| one(Change::GroupDeleted { group })),
        ),
        ("delete", ["guardian", "enrollments", _]) => (
            "/api/v2/guardian/enrollments/{id}",
            Err("guardian enrollment delete carries no user id"),
        ),
        _ => return (as_sent(), Err("unhandled management API call")),
    };
    let event_type = format!("sapi {method} {template}");
    // `sapi` means success, but a non-2xx answer recorded in the same
    // record wins: the call changed nothing.
    if integer(log, &["details", "response", "statusCode"]).is_some_and(|status| status >= 300) {
        return (event_type, Err("api call failed"));
    }
    (event_type, outcome)
}

fn user_by_id(id: &str) -> Result<UserRef, &'static str> {
    if id.is_empty() {
        return Err("no user id");
    }
    Ok(UserRef {
        idp_id: Some(id.to_owned()),
        login: None,
    })
}

fn role_by_id(id: &str) -> Result<GroupRef, &'static str> {
    if id.is_empty() {
        return Err("no role id");
    }
    Ok(GroupRef {
        idp_id: Some(id.to_owned()),
        name: None,
    })
}

fn mfa_reset(user_id: &str, scope: MfaScope) -> Outcome {
    user_by_id(user_id).and_then(|user| one(Change::MfaReset { user, scope }))
}

/// A field of the request body, else of the response body. What the admin
/// sent is what changed; the response (the whole user after the call) fills
/// in the rest.
fn request_or_response(log: &Value, field: &str) -> Option<String> {
    owned_text(log, &["details", "request", "body", field])
        .or_else(|| owned_text(log, &["details", "response", "body", field]))
}

/// A field of the response body, else of the request body: for creations,
/// where only the response holds what Auth0 assigned (the `user_id`).
fn response_or_request(log: &Value, field: &str) -> Option<String> {
    owned_text(log, &["details", "response", "body", field])
        .or_else(|| owned_text(log, &["details", "request", "body", field]))
}

fn profile_with(log: &Value, field: impl Fn(&Value, &str) -> Option<String>) -> UserProfile {
    UserProfile {
        login: field(log, "email"),
        email: field(log, "email"),
        display_name: field(log, "name"),
        first_name: field(log, "given_name"),
        last_name: field(log, "family_name"),
        // A log record holds a request's fields, not the user object.
        aliases: Default::default(),
        phone: None,
        attributes: None,
    }
}

/// `post /api/v2/users`.
fn created_user(log: &Value) -> Outcome {
    let user = UserRef {
        idp_id: response_or_request(log, "user_id"),
        login: response_or_request(log, "email"),
    };
    if user.idp_id.is_none() && user.login.is_none() {
        return Err("no user id");
    }
    let blocked = flag(log, &["details", "response", "body", "blocked"])
        .or_else(|| flag(log, &["details", "request", "body", "blocked"]));
    one(Change::UserUpserted {
        user,
        profile: profile_with(log, response_or_request),
        state: (blocked == Some(true)).then_some(UserState::Disabled),
    })
}

/// `patch /api/v2/users/{id}`: a block/unblock, a profile change, or both
/// (profile first, as for Event Streams). Both always carry their suffix.
fn patched_user(log: &Value, user_id: &str) -> Outcome {
    let mut user = user_by_id(user_id)?;
    user.login = request_or_response(log, "email");
    let request_has = |field: &str| text(log, &["details", "request", "body", field]).is_some();

    let mut changes = Vec::new();
    if ["email", "name", "given_name", "family_name"]
        .into_iter()
        .any(request_has)
    {
        changes.push((
            "#profile".to_owned(),
            Change::UserProfileChanged {
                user: user.clone(),
                profile: Some(profile_with(log, request_or_response)),
                previous_login: None,
            },
        ));
    }
    if let Some(blocked) = flag(log, &["details", "request", "body", "blocked"]) {
        let state = if blocked {
            UserState::Disabled
        } else {
            UserState::Active
        };
        changes.push((
            "#state".to_owned(),
            Change::UserStateChanged { user, state },
        ));
    }
    if changes.is_empty() {
        return Err("no relevant change");
    }
    Ok(changes)
}

/// Which side of a role assignment the path names.
#[derive(Debug, Clone, Copy)]
enum MembershipPath<'a> {
    /// `/users/{id}/roles` with `body.roles: [role ids]`.
    UserRoles(&'a str),
    /// `/roles/{id}/users` with `body.users: [user ids]`.
    RoleUsers(&'a str),
}

/// One membership change per listed id, each with the id as suffix so that
/// each is idempotent on its own.
fn memberships(log: &Value, added: bool, path: MembershipPath<'_>) -> Outcome {
    let (list_field, empty_reason) = match path {
        MembershipPath::UserRoles(_) => ("roles", "no roles in request body"),
        MembershipPath::RoleUsers(_) => ("users", "no users in request body"),
    };
    let listed = text_list(log, &["details", "request", "body", list_field]);
    if listed.is_empty() {
        return Err(empty_reason);
    }
    let mut changes = Vec::with_capacity(listed.len());
    for listed_id in &listed {
        let (user, group) = match path {
            MembershipPath::UserRoles(user_id) => (user_by_id(user_id)?, role_by_id(listed_id)?),
            MembershipPath::RoleUsers(role_id) => (user_by_id(listed_id)?, role_by_id(role_id)?),
        };
        let change = if added {
            Change::MembershipAdded { user, group }
        } else {
            Change::MembershipRemoved { user, group }
        };
        changes.push((format!("#{listed_id}"), change));
    }
    Ok(changes)
}

/// `post /api/v2/roles`: the new id is only in the response.
fn created_role(log: &Value) -> Outcome {
    let group = GroupRef {
        idp_id: owned_text(log, &["details", "response", "body", "id"]),
        name: request_or_response(log, "name"),
    };
    if group.idp_id.is_none() && group.name.is_none() {
        return Err(NO_USABLE_TARGET);
    }
    one(Change::GroupCreated { group })
}

/// `patch /api/v2/roles/{id}`: a rename when the body sets `name` (a
/// description-only update changes nothing in Duo).
fn renamed_role(log: &Value, role_id: &str) -> Outcome {
    let group = role_by_id(role_id)?;
    let Some(new_name) = owned_text(log, &["details", "request", "body", "name"]) else {
        return Err("no relevant change");
    };
    one(Change::GroupRenamed {
        group,
        new_name: Some(new_name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_str(body: &str) -> Result<Parsed, ParseError> {
        parse(&Verified::for_tests(Source::Auth0Logs, body.to_owned()))
    }

    fn parse_fixture(body: &str) -> Parsed {
        parse_str(body).expect("fixture parses")
    }

    fn event(id: &str, event_type: &str, date: &str, change: Change) -> IdpEvent {
        IdpEvent {
            // Tests write "9005#state" for the suffixed ids.
            id: match id.split_once('#') {
                Some((base, rest)) => {
                    EventId::with_suffix(Source::Auth0Logs, base, &format!("#{rest}"))
                }
                None => EventId::new(Source::Auth0Logs, id),
            },
            source: Source::Auth0Logs,
            event_type: event_type.to_owned(),
            occurred_at: Some(date.to_owned()),
            change,
        }
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    fn user_id(id: &str) -> UserRef {
        UserRef {
            idp_id: s(id),
            login: None,
        }
    }

    fn role(id: &str) -> GroupRef {
        GroupRef {
            idp_id: s(id),
            name: None,
        }
    }

    const JANE_ID: &str = "auth0|65f0c0ffee0000000000a001";
    const OMAR_ID: &str = "auth0|65f0c0ffee0000000000a002";

    #[test]
    fn logs_jsonl() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/auth0/logs-jsonl.txt"
        ));
        let omar = UserRef {
            idp_id: s(OMAR_ID),
            login: s("omar.haddad@example.com"),
        };
        assert_eq!(
            parsed.events,
            vec![
                event(
                    "90020260311100000000000000000000000000000000000001",
                    "sapi post /api/v2/users",
                    "2026-03-11T10:00:00.120Z",
                    Change::UserUpserted {
                        user: omar.clone(),
                        profile: UserProfile {
                            login: s("omar.haddad@example.com"),
                            email: s("omar.haddad@example.com"),
                            display_name: s("Omar Haddad"),
                            first_name: s("Omar"),
                            last_name: s("Haddad"),
                            ..UserProfile::default()
                        },
                        state: None,
                    }
                ),
                event(
                    "90020260311100500000000000000000000000000000000002#state",
                    "sapi patch /api/v2/users/{id}",
                    "2026-03-11T10:05:00.310Z",
                    Change::UserStateChanged {
                        user: omar.clone(),
                        state: UserState::Disabled,
                    }
                ),
                event(
                    "90020260311101000000000000000000000000000000000003#profile",
                    "sapi patch /api/v2/users/{id}",
                    "2026-03-11T10:10:00.000Z",
                    Change::UserProfileChanged {
                        user: UserRef {
                            idp_id: s(JANE_ID),
                            login: s("jane.smith@example.com"),
                        },
                        profile: Some(UserProfile {
                            login: s("jane.smith@example.com"),
                            email: s("jane.smith@example.com"),
                            display_name: s("Jane Smith"),
                            first_name: s("Jane"),
                            last_name: s("Smith"),
                            ..UserProfile::default()
                        }),
                        previous_login: None,
                    }
                ),
                event(
                    "90020260311101000000000000000000000000000000000003#state",
                    "sapi patch /api/v2/users/{id}",
                    "2026-03-11T10:10:00.000Z",
                    Change::UserStateChanged {
                        user: UserRef {
                            idp_id: s(JANE_ID),
                            login: s("jane.smith@example.com"),
                        },
                        state: UserState::Active,
                    }
                ),
                event(
                    "90020260311102000000000000000000000000000000000004",
                    "sapi delete /api/v2/users/{id}",
                    "2026-03-11T10:20:00.000Z",
                    Change::UserDeleted {
                        user: user_id(OMAR_ID),
                    }
                ),
                event(
                    "90020260311102000000000000000000000000000000000005",
                    "sdu",
                    "2026-03-11T10:20:00.050Z",
                    Change::UserDeleted { user: omar },
                ),
            ]
        );
        assert_eq!(
            parsed.skipped,
            vec![
                reject(None, None, "unparseable line 8"),
                skip(
                    Some("90020260311102000000000000000000000000000000000005"),
                    Some("sdu"),
                    "duplicate in batch"
                ),
                skip(
                    Some("90020260311103000000000000000000000000000000000006"),
                    Some("s"),
                    "unhandled log type"
                ),
                skip(
                    Some("90020260311103500000000000000000000000000000000007"),
                    Some("sapi patch /api/v2/users/{id}"),
                    "api call failed"
                ),
            ]
        );
    }

    #[test]
    fn logs_array() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/auth0/logs-array.json"
        ));
        assert_eq!(
            parsed.events,
            vec![
                event(
                    "90020260312080000000000000000000000000000000000011",
                    "sapi post /api/v2/users",
                    "2026-03-12T08:00:00.000Z",
                    Change::UserUpserted {
                        user: UserRef {
                            idp_id: s("auth0|65f0c0ffee0000000000a003"),
                            login: s("lee.chen@example.com"),
                        },
                        // The response body lacks the names: request body.
                        profile: UserProfile {
                            login: s("lee.chen@example.com"),
                            email: s("lee.chen@example.com"),
                            display_name: s("Lee Chen"),
                            first_name: s("Lee"),
                            last_name: s("Chen"),
                            ..UserProfile::default()
                        },
                        state: Some(UserState::Disabled),
                    }
                ),
                // A bare tenant log event, no `data` wrapper.
                event(
                    "90020260312081000000000000000000000000000000000012",
                    "sdu",
                    "2026-03-12T08:10:00.000Z",
                    Change::UserDeleted {
                        user: user_id("auth0|65f0c0ffee0000000000a004"),
                    }
                ),
            ]
        );
        assert_eq!(
            parsed.skipped,
            vec![
                skip(
                    Some("90020260312082000000000000000000000000000000000013"),
                    Some("sapi patch /api/v2/users/{id}"),
                    "no relevant change"
                ),
                skip(
                    Some("90020260312083000000000000000000000000000000000014"),
                    Some("sapi post /api/v2/clients"),
                    "unhandled management API call"
                ),
                skip(
                    Some("90020260312084000000000000000000000000000000000015"),
                    Some("gd_unenroll"),
                    "unhandled log type"
                ),
            ]
        );
    }

    #[test]
    fn logs_object() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/auth0/logs-object.json"
        ));
        assert!(parsed.skipped.is_empty());
        assert_eq!(
            parsed.events,
            vec![event(
                "90020260313090000000000000000000000000000000000021",
                "sdu",
                "2026-03-13T09:00:00.000Z",
                Change::UserDeleted {
                    user: UserRef {
                        idp_id: s(JANE_ID),
                        login: s("jane.smith@example.com"),
                    },
                }
            )]
        );
    }

    #[test]
    fn logs_roles() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/auth0/logs-roles.json"
        ));
        let duo_users = "rol_DuoUsers00000001";
        let add = |id: &str, user: &str| {
            event(
                id,
                "sapi post /api/v2/users/{id}/roles",
                "2026-03-14T08:03:00.000Z",
                Change::MembershipAdded {
                    user: user_id(user),
                    group: role(if id.ends_with("rol_Admins0000000002") {
                        "rol_Admins0000000002"
                    } else {
                        duo_users
                    }),
                },
            )
        };
        assert_eq!(
            parsed.events,
            vec![
                event(
                    "90020260314080000000000000000000000000000000000031",
                    "sapi post /api/v2/roles",
                    "2026-03-14T08:00:00.000Z",
                    Change::GroupCreated {
                        group: GroupRef {
                            idp_id: s(duo_users),
                            name: s("duo-users"),
                        },
                    }
                ),
                event(
                    "90020260314080100000000000000000000000000000000032",
                    "sapi patch /api/v2/roles/{id}",
                    "2026-03-14T08:01:00.000Z",
                    Change::GroupRenamed {
                        group: role(duo_users),
                        new_name: s("Duo Users"),
                    }
                ),
                add(
                    "90020260314080300000000000000000000000000000000033#rol_DuoUsers00000001",
                    JANE_ID
                ),
                add(
                    "90020260314080300000000000000000000000000000000033#rol_Admins0000000002",
                    JANE_ID
                ),
                event(
                    "90020260314080400000000000000000000000000000000034#auth0|65f0c0ffee0000000000a002",
                    "sapi post /api/v2/roles/{id}/users",
                    "2026-03-14T08:04:00.000Z",
                    Change::MembershipAdded {
                        user: user_id(OMAR_ID),
                        group: role(duo_users),
                    }
                ),
                event(
                    "90020260314080400000000000000000000000000000000034#google-oauth2|110000000000000000001",
                    "sapi post /api/v2/roles/{id}/users",
                    "2026-03-14T08:04:00.000Z",
                    Change::MembershipAdded {
                        user: user_id("google-oauth2|110000000000000000001"),
                        group: role(duo_users),
                    }
                ),
                event(
                    "90020260314080500000000000000000000000000000000035#rol_Admins0000000002",
                    "sapi delete /api/v2/users/{id}/roles",
                    "2026-03-14T08:05:00.000Z",
                    Change::MembershipRemoved {
                        user: user_id(JANE_ID),
                        group: role("rol_Admins0000000002"),
                    }
                ),
                event(
                    "90020260314080600000000000000000000000000000000036#auth0|65f0c0ffee0000000000a002",
                    "sapi delete /api/v2/roles/{id}/users",
                    "2026-03-14T08:06:00.000Z",
                    Change::MembershipRemoved {
                        user: user_id(OMAR_ID),
                        group: role(duo_users),
                    }
                ),
                event(
                    "90020260314080900000000000000000000000000000000039",
                    "sapi delete /api/v2/roles/{id}",
                    "2026-03-14T08:09:00.000Z",
                    Change::GroupDeleted {
                        group: role(duo_users),
                    }
                ),
            ]
        );
        assert_eq!(
            parsed.skipped,
            vec![
                skip(
                    Some("90020260314080700000000000000000000000000000000037"),
                    Some("sapi patch /api/v2/roles/{id}"),
                    "no relevant change"
                ),
                skip(
                    Some("90020260314080800000000000000000000000000000000038"),
                    Some("sapi post /api/v2/users/{id}/roles"),
                    "no roles in request body"
                ),
            ]
        );
    }

    #[test]
    fn logs_mfa_reset() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/auth0/logs-mfa-reset.json"
        ));
        let reset = |id: &str, template: &str, minute: u8, scope: MfaScope| {
            event(
                id,
                &format!("sapi delete {template}"),
                &format!("2026-03-15T08:{minute:02}:00.000Z"),
                Change::MfaReset {
                    user: user_id(JANE_ID),
                    scope,
                },
            )
        };
        assert_eq!(
            parsed.events,
            vec![
                reset(
                    "90020260315080000000000000000000000000000000000041",
                    "/api/v2/users/{id}/authenticators",
                    0,
                    MfaScope::All
                ),
                reset(
                    "90020260315080100000000000000000000000000000000042",
                    "/api/v2/users/{id}/authentication-methods",
                    1,
                    MfaScope::All
                ),
                reset(
                    "90020260315080200000000000000000000000000000000043",
                    "/api/v2/users/{id}/authentication-methods/{method_id}",
                    2,
                    MfaScope::All
                ),
                reset(
                    "90020260315080300000000000000000000000000000000044",
                    "/api/v2/users/{id}/multifactor/{provider}",
                    3,
                    MfaScope::Duo
                ),
            ]
        );
        assert_eq!(
            parsed.skipped,
            vec![
                skip(
                    Some("90020260315080400000000000000000000000000000000045"),
                    Some("sapi delete /api/v2/users/{id}/multifactor/{provider}"),
                    "factor is not Duo"
                ),
                skip(
                    Some("90020260315080500000000000000000000000000000000046"),
                    Some("sapi delete /api/v2/guardian/enrollments/{id}"),
                    "guardian enrollment delete carries no user id"
                ),
            ]
        );
    }

    #[test]
    fn whole_delivery_errors() {
        assert_eq!(parse_str(""), Err(ParseError::EmptyBatch));
        assert_eq!(parse_str(" \n\r\n "), Err(ParseError::EmptyBatch));
        assert_eq!(parse_str("[]"), Err(ParseError::EmptyBatch));
        assert_eq!(parse_str("nope\n{oops\n"), Err(ParseError::NotJson));
        assert_eq!(
            parse_str("42"),
            Err(ParseError::WrongShape(
                "top level is not an object, an array or JSON lines"
            ))
        );
    }

    /// Issue 13 item 5: a delivery with no well-formed record is 400; one
    /// with a well-formed record beside junk keeps it.
    #[test]
    fn junk_only_deliveries_are_refused() {
        for junk in [
            "{}",
            "[null]",
            "[1,2,3]",
            r#"{"data":"x"}"#,
            r#"{"log_id":"1"}"#,
            "{\"x\":1}\nnot json\n[]",
        ] {
            assert_eq!(
                parse_str(junk),
                Err(ParseError::NoWellFormedRecord),
                "{junk}"
            );
        }
        // Well-formed, unhandled: 200 as before.
        let parsed = parse_str(r#"{"log_id":"1","data":{"type":"s"}}"#).unwrap();
        assert_eq!(parsed.skipped[0].reason, "unhandled log type");
    }

    /// Issue 13 item 3: a value over the length limits makes the record
    /// not well-formed, whichever event of it holds the value.
    #[test]
    fn values_over_the_limits_are_refused() {
        let huge = "r".repeat(70_000);
        let roles = json!({"log_id": "9100", "data": {"type": "sapi", "details": {"request":
            {"method": "POST", "path": "/api/v2/users/auth0%7C1/roles",
             "body": {"roles": ["rol_1", huge]}}}}});
        assert_eq!(
            parse_str(&roles.to_string()),
            Err(ParseError::NoWellFormedRecord)
        );
        let path = json!({"log_id": "9101", "data": {"type": "sapi", "details": {"request":
            {"method": "DELETE", "path": format!("/api/v2/users/{huge}")}}}});
        let sdu = json!({"log_id": "9102", "data": {"type": "sdu", "user_id": "auth0|2"}});
        let parsed = parse_str(&format!("{path}\n{sdu}")).unwrap();
        assert_eq!(parsed.events.len(), 1);
        assert_eq!(
            parsed.skipped,
            vec![reject(
                Some("9101"),
                Some("sapi delete /api/v2/users/{id}"),
                "user id longer than 512 bytes"
            )]
        );
    }

    #[test]
    fn odd_records_are_skipped() {
        let body = [
            json!(7),
            json!({"data": {"type": "sdu", "user_id": "auth0|1"}}),
            json!({"log_id": "9001", "data": {"date": "d"}}),
            json!({"log_id": "9002", "data": {"type": "SDU"}}),
            json!({"log_id": "9003", "data": {"type": "sapi"}}),
            json!({"log_id": "9004", "data": {"type": "sapi", "details": {"request":
                {"method": "DELETE", "path": "/api/v2/users/%FF"}}}}),
            json!({"log_id": "9005", "data": {"type": "sapi", "details": {"request":
                {"method": "PATCH", "path": "/api/v2/users/auth0%7C1/?fields=x", "body": {"blocked": "true"}},
                "response": {"statusCode": "200"}}}}),
        ]
        .map(|v| v.to_string())
        .join("\n");
        let parsed = parse_str(&body).unwrap();
        assert_eq!(
            parsed.events,
            vec![IdpEvent {
                id: EventId::with_suffix(Source::Auth0Logs, "9005", "#state"),
                source: Source::Auth0Logs,
                event_type: "sapi patch /api/v2/users/{id}".to_owned(),
                occurred_at: None,
                change: Change::UserStateChanged {
                    user: user_id("auth0|1"),
                    state: UserState::Disabled
                },
            }]
        );
        assert_eq!(
            parsed.skipped,
            vec![
                reject(None, None, "record is not an object"),
                reject(None, Some("sdu"), "no log id"),
                reject(Some("9001"), None, "no log type"),
                skip(Some("9002"), Some("SDU"), "no user id"),
                skip(Some("9003"), Some("sapi"), "unhandled management API call"),
                skip(
                    Some("9004"),
                    Some("sapi delete /api/v2/users/%FF"),
                    "malformed path"
                ),
            ]
        );
    }
}

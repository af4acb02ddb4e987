//! Okta event hooks (`POST /okta`).
//!
//! A delivery is an envelope `{"eventType": "com.okta.event_hook", "data":
//! {"events": [LogEvent, …]}}`; Okta batches events that happen close
//! together, so one delivery may hold many. Each System Log event becomes at
//! most one [`IdpEvent`] keyed by its `uuid` (REFERENCE §1.4: `uuid` names the
//! event, the envelope's `eventId` names the delivery).
//!
//! Targets are selected by `type` (`User`, `UserGroup`,
//! `AuthenticatorEnrollment`), never by position: Okta documents no order.
//! Okta events carry ids and logins, not profiles; where the new values are
//! missing (`user.account.update_profile`, `group.profile.update`) the event
//! says so with `None` and the planner fetches them.

use serde_json::Value;

use crate::event::{
    Change, EventId, GroupRef, IdpEvent, MfaScope, Parsed, Skipped, Source, UserProfile, UserRef,
    UserState,
};
use crate::parse_util::{
    DUPLICATE_IN_BATCH, NO_USABLE_TARGET, ParseError, SeenIds, UNHANDLED_EVENT_TYPE, at,
    contains_ci, eq_ci, expect_source, owned_text, parse_json, record_head, require_well_formed,
    skip, text, within_limits,
};
use crate::verified::Verified;

/// Parses one Okta event hook delivery.
///
/// Errors: [`ParseError::NotJson`]; [`ParseError::WrongShape`] when the body
/// is not an object with a `data.events` array; [`ParseError::EmptyBatch`]
/// when that array is empty (Okta never sends one; a probe does);
/// [`ParseError::NoWellFormedRecord`] when no event in it is well-formed (an
/// object with a `uuid` and an `eventType`, every value within
/// [`crate::limits`]). Every other problem skips the one event it concerns.
/// The registration of Okta's event hook: `POST /okta`, with the one-time
/// verification `GET` on the same path.
pub const SOURCE: crate::source::SourceSpec = crate::source::SourceSpec {
    source: Source::Okta,
    path: "/okta",
    verification_get: true,
    validation_query: None,
    extra_content_types: &[],
    parse,
    recognizes,
};

/// An Okta event hook delivery names its event type or nests `data.events`.
fn recognizes(body: &str) -> bool {
    body.contains("\"com.okta.event_hook\"") || body.contains("\"data\":{\"events\"")
}

pub fn parse(delivery: &Verified) -> Result<Parsed, ParseError> {
    expect_source(delivery, Source::Okta)?;
    let body = parse_json(delivery.body())?;
    if !body.is_object() {
        return Err(ParseError::WrongShape("top level is not an object"));
    }
    // The envelope's own `eventType` ("com.okta.event_hook") is not checked:
    // it says nothing the shape does not, and refusing a delivery over it
    // would drop real events if Okta ever revised the string.
    let events = match at(&body, &["data", "events"]) {
        Some(Value::Array(events)) => events,
        Some(_) => return Err(ParseError::WrongShape("data.events is not an array")),
        None => return Err(ParseError::WrongShape("data.events is missing")),
    };
    if events.is_empty() {
        return Err(ParseError::EmptyBatch);
    }

    let mut parsed = Parsed::default();
    let mut seen = SeenIds::default();
    for event in events {
        match read_event(event, &mut seen) {
            Ok(event) => parsed.events.push(event),
            Err(skipped) => parsed.skipped.push(skipped),
        }
    }
    require_well_formed(parsed)
}

/// The System Log event types the relay acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    UserCreated,
    UserState(UserState),
    UserDeleteInitiated,
    ProfileUpdated,
    MembershipAdded,
    MembershipRemoved,
    GroupCreated,
    GroupDeleted,
    GroupProfileUpdated,
    FactorResetAll,
    FactorDeactivated,
}

/// Every Okta event type the relay acts on — the one list. The event hook
/// registration (Terraform, `terraform/idp/okta-event-types.json`) is
/// generated from it and a test keeps the two equal.
const KINDS: &[(&str, Kind)] = &[
    ("user.lifecycle.create", Kind::UserCreated),
    (
        "user.lifecycle.activate",
        Kind::UserState(UserState::Active),
    ),
    (
        "user.lifecycle.reactivate",
        Kind::UserState(UserState::Active),
    ),
    (
        "user.lifecycle.unsuspend",
        Kind::UserState(UserState::Active),
    ),
    (
        "user.lifecycle.deactivate",
        Kind::UserState(UserState::Disabled),
    ),
    (
        "user.lifecycle.suspend",
        Kind::UserState(UserState::Disabled),
    ),
    ("user.lifecycle.delete.initiated", Kind::UserDeleteInitiated),
    ("user.account.update_profile", Kind::ProfileUpdated),
    ("group.user_membership.add", Kind::MembershipAdded),
    ("group.user_membership.remove", Kind::MembershipRemoved),
    ("group.lifecycle.create", Kind::GroupCreated),
    ("group.lifecycle.delete", Kind::GroupDeleted),
    ("group.profile.update", Kind::GroupProfileUpdated),
    ("user.mfa.factor.reset_all", Kind::FactorResetAll),
    ("user.mfa.factor.deactivate", Kind::FactorDeactivated),
];

/// The Okta event types to subscribe the event hook to.
pub fn handled_event_types() -> impl Iterator<Item = &'static str> {
    KINDS.iter().map(|(name, _)| *name)
}

impl Kind {
    fn of(event_type: &str) -> Option<Self> {
        KINDS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(event_type))
            .map(|(_, kind)| *kind)
    }
}

fn read_event(event: &Value, seen: &mut SeenIds) -> Result<IdpEvent, Skipped> {
    let (uuid, event_type) = record_head(
        text(event, &["uuid"]),
        text(event, &["eventType"]),
        "no event id",
        "no event type",
    )?;
    let skipped = |reason: &str| skip(Some(uuid), Some(event_type), reason);
    if !seen.first_time(uuid) {
        return Err(skipped(DUPLICATE_IN_BATCH));
    }
    let Some(kind) = Kind::of(event_type) else {
        return Err(skipped(UNHANDLED_EVENT_TYPE));
    };
    let Some(result) = text(event, &["outcome", "result"]) else {
        return Err(skipped("no outcome"));
    };
    if !eq_ci(result, "SUCCESS") {
        return Err(skipped("outcome not success"));
    }

    let targets = Targets::of(event);
    let change = match kind {
        Kind::UserCreated => {
            let (user, display_name) = targets.user().map_err(skipped)?;
            Change::UserUpserted {
                profile: UserProfile {
                    login: user.login.clone(),
                    // The event carries no email; the login usually is one,
                    // but guessing would put a wrong address into Duo for
                    // orgs whose logins are not emails.
                    email: None,
                    display_name,
                    first_name: None,
                    last_name: None,
                    aliases: Default::default(),
                    phone: None,
                    attributes: None,
                },
                user,
                state: None,
            }
        }
        Kind::UserState(state) => Change::UserStateChanged {
            user: targets.user().map_err(skipped)?.0,
            state,
        },
        Kind::UserDeleteInitiated => Change::UserDeleted {
            user: targets.user().map_err(skipped)?.0,
        },
        Kind::ProfileUpdated => Change::UserProfileChanged {
            user: targets.user().map_err(skipped)?.0,
            profile: None,
            previous_login: None,
        },
        Kind::MembershipAdded => Change::MembershipAdded {
            user: targets.user().map_err(skipped)?.0,
            group: targets.group().map_err(skipped)?,
        },
        Kind::MembershipRemoved => Change::MembershipRemoved {
            user: targets.user().map_err(skipped)?.0,
            group: targets.group().map_err(skipped)?,
        },
        Kind::GroupCreated => Change::GroupCreated {
            group: targets.group().map_err(skipped)?,
        },
        Kind::GroupDeleted => Change::GroupDeleted {
            group: targets.group().map_err(skipped)?,
        },
        Kind::GroupProfileUpdated => Change::GroupRenamed {
            group: targets.group().map_err(skipped)?,
            new_name: None,
        },
        Kind::FactorResetAll => Change::MfaReset {
            user: targets.user().map_err(skipped)?.0,
            scope: MfaScope::All,
        },
        Kind::FactorDeactivated => {
            if !is_duo_factor(event, &targets) {
                return Err(skipped("factor is not Duo"));
            }
            Change::MfaReset {
                user: targets.user().map_err(skipped)?.0,
                scope: MfaScope::Duo,
            }
        }
    };

    let event = IdpEvent {
        id: EventId::new(Source::Okta, uuid),
        source: Source::Okta,
        event_type: event_type.to_owned(),
        occurred_at: owned_text(event, &["published"]),
        change,
    };
    let mut events = within_limits(uuid, event_type, vec![event])?;
    events.pop().ok_or_else(|| skipped(NO_USABLE_TARGET))
}

/// Whether a `user.mfa.factor.deactivate` concerns the Duo factor.
///
/// REFERENCE §1.8: the reason reads "User reset <FACTOR> factor", but the
/// exact Duo factor name is unverified (`DUO_SECURITY` is folklore), so any
/// "duo" in the reason counts, and so does an `AuthenticatorEnrollment`
/// target (OIE) whose name or alternate id mentions Duo. Okta Verify,
/// WebAuthn, SMS… resets leave the Duo devices alone.
fn is_duo_factor(event: &Value, targets: &Targets<'_>) -> bool {
    let reason_says_duo =
        text(event, &["outcome", "reason"]).is_some_and(|r| contains_ci(r, "duo"));
    let enrollment_says_duo = targets.of_type("AuthenticatorEnrollment").any(|t| {
        [text(t, &["displayName"]), text(t, &["alternateId"])]
            .into_iter()
            .flatten()
            .any(|name| contains_ci(name, "duo"))
    });
    reason_says_duo || enrollment_says_duo
}

/// The `target[]` objects of one event (`target` may be `null` in previews).
struct Targets<'a>(Vec<&'a Value>);

impl<'a> Targets<'a> {
    fn of(event: &'a Value) -> Self {
        let list = at(event, &["target"])
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|t| t.is_object())
            .collect();
        Self(list)
    }

    fn of_type(&self, wanted: &'static str) -> impl Iterator<Item = &'a Value> + '_ {
        self.0
            .iter()
            .copied()
            .filter(move |t| text(t, &["type"]).is_some_and(|ty| eq_ci(ty, wanted)))
    }

    /// The one `User` target, with its display name. Two different users is
    /// ambiguous: acting on the wrong one (a delete, a suspend) is worse than
    /// skipping, so that skips too.
    fn user(&self) -> Result<(UserRef, Option<String>), &'static str> {
        let users = self.of_type("User").filter_map(|t| {
            let user = UserRef {
                idp_id: owned_text(t, &["id"]),
                login: known(t, "alternateId"),
            };
            (user.idp_id.is_some() || user.login.is_some())
                .then(|| (user, owned_text(t, &["displayName"])))
        });
        exactly_one(users)
    }

    /// The one `UserGroup` target: `id` and `displayName` (its `alternateId`
    /// is the literal "unknown" in real records).
    fn group(&self) -> Result<GroupRef, &'static str> {
        let groups = self.of_type("UserGroup").filter_map(|t| {
            let group = GroupRef {
                idp_id: owned_text(t, &["id"]),
                name: known(t, "displayName"),
            };
            (group.idp_id.is_some() || group.name.is_some()).then_some(group)
        });
        exactly_one(groups)
    }
}

/// A text field, except Okta's placeholder "unknown".
fn known(target: &Value, field: &str) -> Option<String> {
    text(target, &[field])
        .filter(|v| !eq_ci(v, "unknown"))
        .map(str::to_owned)
}

/// The single distinct item, or why there is none.
fn exactly_one<T: PartialEq>(items: impl Iterator<Item = T>) -> Result<T, &'static str> {
    let mut found: Option<T> = None;
    for item in items {
        match &found {
            None => found = Some(item),
            Some(first) if *first == item => {}
            Some(_) => return Err("ambiguous target"),
        }
    }
    found.ok_or(NO_USABLE_TARGET)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_util::reject;

    fn parse_str(body: &str) -> Result<Parsed, ParseError> {
        parse(&Verified::for_tests(Source::Okta, body.to_owned()))
    }

    fn parse_fixture(body: &str) -> Parsed {
        parse_str(body).expect("fixture parses")
    }

    fn event(uuid: &str, event_type: &str, published: &str, change: Change) -> IdpEvent {
        IdpEvent {
            id: EventId::new(Source::Okta, uuid),
            source: Source::Okta,
            event_type: event_type.to_owned(),
            occurred_at: Some(published.to_owned()),
            change,
        }
    }

    fn skipped(uuid: Option<&str>, event_type: Option<&str>, reason: &str) -> Skipped {
        skip(uuid, event_type, reason)
    }

    fn user(id: &str, login: &str) -> UserRef {
        UserRef {
            idp_id: Some(id.to_owned()),
            login: Some(login.to_owned()),
        }
    }

    fn group(id: &str, name: &str) -> GroupRef {
        GroupRef {
            idp_id: Some(id.to_owned()),
            name: Some(name.to_owned()),
        }
    }

    fn only_event(parsed: Parsed) -> IdpEvent {
        assert!(
            parsed.skipped.is_empty(),
            "unexpected skips: {:?}",
            parsed.skipped
        );
        assert_eq!(parsed.events.len(), 1, "{:?}", parsed.events);
        parsed.events.into_iter().next().expect("one event")
    }

    const JANE: (&str, &str) = ("00uNEWUSER0000000001", "jane.doe@example.com");

    fn jane() -> UserRef {
        user(JANE.0, JANE.1)
    }

    #[test]
    fn user_lifecycle_create() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/okta/user-lifecycle-create.json"
        ));
        assert_eq!(
            only_event(parsed),
            event(
                "a1b2c3d4-0001-11f0-9c2e-000000000001",
                "user.lifecycle.create",
                "2026-03-11T09:00:00.871Z",
                Change::UserUpserted {
                    user: jane(),
                    profile: UserProfile {
                        login: Some(JANE.1.to_owned()),
                        email: None,
                        display_name: Some("Jane Doe".to_owned()),
                        first_name: None,
                        last_name: None,
                        ..UserProfile::default()
                    },
                    state: None,
                }
            )
        );
    }

    #[test]
    fn batch_mixed() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/okta/batch-mixed.json"
        ));
        let ben = user("00uBENUSER0000000002", "ben.ito@example.com");
        assert_eq!(
            parsed.events,
            vec![
                event(
                    "c3d4e5f6-0003-11f0-9c2e-000000000101",
                    "user.lifecycle.create",
                    "2026-03-11T11:00:00.101Z",
                    Change::UserUpserted {
                        user: ben.clone(),
                        profile: UserProfile {
                            login: ben.login.clone(),
                            display_name: Some("Ben Ito".to_owned()),
                            ..UserProfile::default()
                        },
                        state: None,
                    }
                ),
                event(
                    "c3d4e5f6-0003-11f0-9c2e-000000000102",
                    "user.lifecycle.activate",
                    "2026-03-11T11:00:00.388Z",
                    Change::UserStateChanged {
                        user: ben.clone(),
                        state: UserState::Active,
                    }
                ),
                // Targets listed group-first: selection is by type.
                event(
                    "c3d4e5f6-0003-11f0-9c2e-000000000103",
                    "group.user_membership.add",
                    "2026-03-11T11:00:01.020Z",
                    Change::MembershipAdded {
                        user: ben.clone(),
                        group: group("00gDUOUSERS000000001", "duo-users"),
                    }
                ),
                // Mixed-case "Success", event type in upper case, extra fields.
                event(
                    "c3d4e5f6-0003-11f0-9c2e-000000000107",
                    "USER.LIFECYCLE.SUSPEND",
                    "2026-03-11T11:00:03.000Z",
                    Change::UserStateChanged {
                        user: UserRef {
                            idp_id: Some("00uCARLA000000000003".to_owned()),
                            login: Some("carla.diaz@example.com".to_owned()),
                        },
                        state: UserState::Disabled,
                    }
                ),
            ]
        );
        assert_eq!(
            parsed.skipped,
            vec![
                skipped(
                    Some("c3d4e5f6-0003-11f0-9c2e-000000000104"),
                    Some("group.user_membership.add"),
                    "outcome not success"
                ),
                skipped(
                    Some("c3d4e5f6-0003-11f0-9c2e-000000000105"),
                    Some("user.session.start"),
                    "unhandled event type"
                ),
                skipped(
                    Some("c3d4e5f6-0003-11f0-9c2e-000000000106"),
                    Some("user.lifecycle.deactivate"),
                    "no usable target"
                ),
                skipped(
                    Some("c3d4e5f6-0003-11f0-9c2e-000000000102"),
                    Some("user.lifecycle.activate"),
                    "duplicate in batch"
                ),
                reject(None, Some("user.lifecycle.create"), "no event id"),
                skipped(
                    Some("c3d4e5f6-0003-11f0-9c2e-000000000108"),
                    Some("user.lifecycle.activate"),
                    "no outcome"
                ),
            ]
        );
    }

    #[test]
    fn membership_add() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/okta/membership-add.json"
        ));
        assert_eq!(
            only_event(parsed),
            event(
                "b2c3d4e5-0002-11f0-9c2e-000000000002",
                "group.user_membership.add",
                "2026-03-11T09:15:00.936Z",
                Change::MembershipAdded {
                    user: jane(),
                    group: group("00gDUOUSERS000000001", "duo-users"),
                }
            )
        );
    }

    #[test]
    fn membership_remove() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/okta/membership-remove.json"
        ));
        assert_eq!(
            only_event(parsed),
            event(
                "d4e5f6a7-0004-11f0-9c2e-000000000004",
                "group.user_membership.remove",
                "2026-03-11T12:30:00.500Z",
                Change::MembershipRemoved {
                    user: jane(),
                    group: group("00gFINANCE0000000002", "Finance"),
                }
            )
        );
    }

    fn state_fixture(body: &str, uuid: &str, event_type: &str, published: &str, state: UserState) {
        assert_eq!(
            only_event(parse_fixture(body)),
            event(
                uuid,
                event_type,
                published,
                Change::UserStateChanged {
                    user: jane(),
                    state
                }
            )
        );
    }

    #[test]
    fn suspend() {
        state_fixture(
            include_str!("../../../../../tests/fixtures/okta/suspend.json"),
            "e5f6a7b8-0005-11f0-9c2e-000000000005",
            "user.lifecycle.suspend",
            "2026-03-12T08:00:00.000Z",
            UserState::Disabled,
        );
    }

    #[test]
    fn unsuspend() {
        state_fixture(
            include_str!("../../../../../tests/fixtures/okta/unsuspend.json"),
            "e5f6a7b8-0006-11f0-9c2e-000000000006",
            "user.lifecycle.unsuspend",
            "2026-03-12T09:00:00.000Z",
            UserState::Active,
        );
    }

    #[test]
    fn deactivate() {
        state_fixture(
            include_str!("../../../../../tests/fixtures/okta/deactivate.json"),
            "e5f6a7b8-0007-11f0-9c2e-000000000007",
            "user.lifecycle.deactivate",
            "2026-03-12T10:00:00.000Z",
            UserState::Disabled,
        );
    }

    #[test]
    fn reactivate() {
        state_fixture(
            include_str!("../../../../../tests/fixtures/okta/reactivate.json"),
            "e5f6a7b8-0008-11f0-9c2e-000000000008",
            "user.lifecycle.reactivate",
            "2026-03-12T11:00:00.000Z",
            UserState::Active,
        );
    }

    #[test]
    fn delete_initiated() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/okta/delete-initiated.json"
        ));
        assert_eq!(
            only_event(parsed),
            event(
                "e5f6a7b8-0009-11f0-9c2e-000000000009",
                "user.lifecycle.delete.initiated",
                "2026-03-12T12:00:00.000Z",
                Change::UserDeleted { user: jane() }
            )
        );
    }

    #[test]
    fn update_profile() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/okta/update-profile.json"
        ));
        assert_eq!(
            only_event(parsed),
            event(
                "f6a7b8c9-0010-11f0-9c2e-000000000010",
                "user.account.update_profile",
                "2026-03-12T13:00:00.000Z",
                Change::UserProfileChanged {
                    user: jane(),
                    profile: None,
                    previous_login: None,
                }
            )
        );
    }

    #[test]
    fn group_create() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/okta/group-create.json"
        ));
        assert_eq!(
            only_event(parsed),
            event(
                "a7b8c9d0-0011-11f0-9c2e-000000000011",
                "group.lifecycle.create",
                "2026-03-13T08:00:00.000Z",
                Change::GroupCreated {
                    group: group("00gENGINEERS00000003", "Engineering"),
                }
            )
        );
    }

    #[test]
    fn group_delete() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/okta/group-delete.json"
        ));
        assert_eq!(
            only_event(parsed),
            event(
                "a7b8c9d0-0012-11f0-9c2e-000000000012",
                "group.lifecycle.delete",
                "2026-03-13T09:00:00.000Z",
                Change::GroupDeleted {
                    group: group("00gENGINEERS00000003", "Engineering"),
                }
            )
        );
    }

    #[test]
    fn group_profile_update() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/okta/group-profile-update.json"
        ));
        assert_eq!(
            only_event(parsed),
            event(
                "a7b8c9d0-0013-11f0-9c2e-000000000013",
                "group.profile.update",
                "2026-03-13T10:00:00.000Z",
                Change::GroupRenamed {
                    group: group("00gENGINEERS00000003", "Engineering"),
                    new_name: None,
                }
            )
        );
    }

    #[test]
    fn factor_reset_all() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/okta/factor-reset-all.json"
        ));
        assert_eq!(
            only_event(parsed),
            event(
                "b8c9d0e1-0014-11f0-9c2e-000000000014",
                "user.mfa.factor.reset_all",
                "2026-03-14T08:00:00.000Z",
                Change::MfaReset {
                    user: jane(),
                    scope: MfaScope::All,
                }
            )
        );
    }

    #[test]
    fn factor_deactivate_duo() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/okta/factor-deactivate-duo.json"
        ));
        let duo_reset = |uuid: &str, published: &str| {
            event(
                uuid,
                "user.mfa.factor.deactivate",
                published,
                Change::MfaReset {
                    user: jane(),
                    scope: MfaScope::Duo,
                },
            )
        };
        // One found by the reason text, one (OIE, service-app reason) by
        // the AuthenticatorEnrollment target.
        assert_eq!(
            parsed.events,
            vec![
                duo_reset(
                    "b8c9d0e1-0015-11f0-9c2e-000000000015",
                    "2026-03-14T09:00:00.000Z"
                ),
                duo_reset(
                    "b8c9d0e1-0016-11f0-9c2e-000000000016",
                    "2026-03-14T09:05:00.000Z"
                ),
            ]
        );
        assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
    }

    #[test]
    fn factor_deactivate_other() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/okta/factor-deactivate-other.json"
        ));
        assert!(parsed.events.is_empty(), "{:?}", parsed.events);
        assert_eq!(
            parsed.skipped,
            vec![skipped(
                Some("b8c9d0e1-0017-11f0-9c2e-000000000017"),
                Some("user.mfa.factor.deactivate"),
                "factor is not Duo"
            )]
        );
    }

    #[test]
    fn preview_null_target() {
        let parsed = parse_fixture(include_str!(
            "../../../../../tests/fixtures/okta/preview-null-target.json"
        ));
        assert!(parsed.events.is_empty(), "{:?}", parsed.events);
        assert_eq!(
            parsed.skipped,
            vec![skipped(
                Some("9f3c2a1e-0000-11f0-9c2e-00000000beef"),
                Some("user.lifecycle.create"),
                "no usable target"
            )]
        );
    }

    #[test]
    fn whole_delivery_errors() {
        assert_eq!(parse_str(""), Err(ParseError::NotJson));
        assert_eq!(parse_str("not json"), Err(ParseError::NotJson));
        assert_eq!(
            parse_str("[]"),
            Err(ParseError::WrongShape("top level is not an object"))
        );
        assert_eq!(
            parse_str("{}"),
            Err(ParseError::WrongShape("data.events is missing"))
        );
        assert_eq!(
            parse_str(r#"{"data": {"events": null}}"#),
            Err(ParseError::WrongShape("data.events is missing"))
        );
        assert_eq!(
            parse_str(r#"{"data": {"events": {}}}"#),
            Err(ParseError::WrongShape("data.events is not an array"))
        );
        assert_eq!(
            parse_str(r#"{"eventType": "com.okta.event_hook", "data": {"events": []}}"#),
            Err(ParseError::EmptyBatch)
        );
    }

    #[test]
    fn a_delivery_for_another_source_is_refused() {
        let delivery = Verified::for_tests(Source::Auth0Events, r#"{"data":{"events":[]}}"#);
        assert_eq!(
            parse(&delivery),
            Err(ParseError::WrongSource {
                expected: Source::Okta,
                actual: Source::Auth0Events
            })
        );
    }

    #[test]
    fn events_that_are_not_objects_are_skipped() {
        // Alone, they make a delivery with nothing well-formed: 400
        // (issue 13 item 5).
        for junk in [
            r#"{"data": {"events": [null, 3, "x", []]}}"#,
            r#"{"data": {"events": [null]}}"#,
            r#"{"data": {"events": [{}]}}"#,
            r#"{"data": {"events": [{"uuid": "u9"}]}}"#,
        ] {
            assert_eq!(
                parse_str(junk),
                Err(ParseError::NoWellFormedRecord),
                "{junk}"
            );
        }
        // Beside a well-formed event, they are skipped as before.
        let parsed = parse_str(
            r#"{"data": {"events": [null, 3, {"uuid": "u1", "eventType": "user.session.start"}]}}"#,
        )
        .unwrap();
        assert!(parsed.events.is_empty());
        assert_eq!(parsed.skipped.len(), 3);
        assert_eq!(parsed.skipped[2].reason, "unhandled event type");
        assert!(
            parsed.skipped[..2]
                .iter()
                .all(|s| s.reason == "no event id" && s.malformed)
        );
    }

    /// Issue 13 item 3: an id or login over the length limits makes the
    /// event not well-formed; it never reaches Duo.
    #[test]
    fn values_over_the_limits_are_refused() {
        let huge = "x".repeat(70_000);
        let suspend = |uuid: &str, id: &str, login: &str| {
            serde_json::json!({
                "uuid": uuid, "eventType": "user.lifecycle.suspend",
                "outcome": {"result": "SUCCESS"},
                "target": [{"id": id, "type": "User", "alternateId": login}]
            })
        };
        for event in [
            suspend("u1", &huge, "a@example.com"),
            suspend("u1", "00uA", &huge),
            suspend(&huge, "00uA", "a@example.com"),
        ] {
            let body = serde_json::json!({"data": {"events": [event]}}).to_string();
            assert_eq!(parse_str(&body), Err(ParseError::NoWellFormedRecord));
        }
        let body = serde_json::json!({"data": {"events": [
            suspend("u1", "00uA", &huge),
            suspend("u2", "00uB", "b@example.com"),
        ]}});
        let parsed = parse_str(&body.to_string()).unwrap();
        assert_eq!(parsed.events.len(), 1);
        assert_eq!(
            parsed.skipped,
            vec![reject(
                Some("u1"),
                Some("user.lifecycle.suspend"),
                "login longer than 512 bytes"
            )]
        );
        // At the limits, accepted.
        let body = serde_json::json!({"data": {"events": [
            suspend(&"u".repeat(256), &"i".repeat(512), &"l".repeat(512)),
        ]}});
        assert_eq!(parse_str(&body.to_string()).unwrap().events.len(), 1);
    }

    fn one_event(event: serde_json::Value) -> Parsed {
        let body = serde_json::json!({"data": {"events": [event]}}).to_string();
        parse_str(&body).unwrap()
    }

    #[test]
    fn two_different_users_are_ambiguous() {
        let parsed = one_event(serde_json::json!({
            "uuid": "u1", "eventType": "user.lifecycle.delete.initiated",
            "outcome": {"result": "SUCCESS"},
            "target": [
                {"id": "00uA", "type": "User", "alternateId": "a@example.com"},
                {"id": "00uB", "type": "user", "alternateId": "b@example.com"}
            ]
        }));
        assert!(parsed.events.is_empty());
        assert_eq!(parsed.skipped[0].reason, "ambiguous target");
    }

    #[test]
    fn membership_needs_both_targets() {
        let parsed = one_event(serde_json::json!({
            "uuid": "u2", "eventType": "group.user_membership.remove",
            "outcome": {"result": "SUCCESS"},
            "target": [{"id": "00uA", "type": "User", "alternateId": "a@example.com"}]
        }));
        assert!(parsed.events.is_empty());
        assert_eq!(parsed.skipped[0].reason, "no usable target");
    }

    #[test]
    fn placeholder_alternate_id_is_not_a_login() {
        let parsed = one_event(serde_json::json!({
            "uuid": "u3", "eventType": "user.lifecycle.suspend",
            "outcome": {"result": "success"},
            "target": [{"id": "00uA", "type": "User", "alternateId": "unknown", "displayName": null}]
        }));
        assert_eq!(
            parsed.events[0].change,
            Change::UserStateChanged {
                user: UserRef {
                    idp_id: Some("00uA".to_owned()),
                    login: None
                },
                state: UserState::Disabled
            }
        );
        assert_eq!(parsed.events[0].occurred_at, None);
    }

    #[test]
    fn a_missing_event_type_is_skipped() {
        let body = serde_json::json!({"data": {"events": [
            {"uuid": "u4", "outcome": {"result": "SUCCESS"}},
            {"uuid": "u5", "eventType": "user.session.start"}
        ]}});
        let parsed = parse_str(&body.to_string()).unwrap();
        assert_eq!(
            parsed.skipped,
            vec![
                reject(Some("u4"), None, "no event type"),
                skipped(
                    Some("u5"),
                    Some("user.session.start"),
                    "unhandled event type"
                )
            ]
        );
    }
}

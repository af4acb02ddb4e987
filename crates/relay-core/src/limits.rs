//! Length limits on what a delivery may name, and a bound on what a log
//! line may repeat.
//!
//! Every value an event carries ends up in a Duo request (a URL parameter
//! or a JSON body), an idempotency key, a queue message and a log line. The
//! IdPs bound them far below these limits (Okta: login and email ≤ 100
//! characters, group names ≤ 255; Auth0: email ≤ 64 + 1 + 256 characters;
//! ids are tens of characters), so a record over a limit was not written by
//! the IdP: it is refused as not well-formed (skipped with its reason, and a
//! delivery with nothing else in it is 400), never sent to Duo — where an id
//! or login over ~64 KB made a request the HTTP client could not even build.
//! Limits are in UTF-8 bytes, after trimming.

use std::borrow::Cow;

use crate::event::{Change, GroupRef, IdpEvent, UserProfile, UserRef};

/// An IdP event or log record id (Okta `uuid`, Auth0 `id`, `log_id`).
pub const MAX_EVENT_ID_BYTES: usize = 256;
/// An event type (`user.lifecycle.create`, `sapi`).
pub const MAX_EVENT_TYPE_BYTES: usize = 256;
/// An event time (`2026-03-11T09:00:00.871Z`).
pub const MAX_EVENT_TIME_BYTES: usize = 64;
/// An IdP user, group or role id (`00u…`, `auth0|…`, `rol_…`).
pub const MAX_IDP_ID_BYTES: usize = 512;
/// A login or an email address.
pub const MAX_LOGIN_BYTES: usize = 512;
/// A display, first, last, group or role name.
pub const MAX_NAME_BYTES: usize = 1024;
/// The most of one value a log line repeats ([`bounded`]).
pub const MAX_LOGGED_VALUE_BYTES: usize = 1024;

/// Why an event is not well-formed: a fixed phrase naming the field and
/// its limit, never the value.
pub fn check_event(event: &IdpEvent) -> Result<(), &'static str> {
    within(
        Some(event.event_type.as_str()),
        MAX_EVENT_TYPE_BYTES,
        "event type longer than 256 bytes",
    )?;
    within(
        event.occurred_at.as_deref(),
        MAX_EVENT_TIME_BYTES,
        "event time longer than 64 bytes",
    )?;
    match &event.change {
        Change::UserUpserted { user, profile, .. } => {
            check_user(user)?;
            check_profile(profile)
        }
        Change::UserStateChanged { user, .. }
        | Change::UserDeleted { user }
        | Change::MfaReset { user, .. } => check_user(user),
        Change::UserProfileChanged {
            user,
            profile,
            previous_login,
        } => {
            check_user(user)?;
            if let Some(profile) = profile {
                check_profile(profile)?;
            }
            within(
                previous_login.as_deref(),
                MAX_LOGIN_BYTES,
                "previous login longer than 512 bytes",
            )
        }
        Change::MembershipAdded { user, group } | Change::MembershipRemoved { user, group } => {
            check_user(user)?;
            check_group(group)
        }
        Change::GroupCreated { group } | Change::GroupDeleted { group } => check_group(group),
        // Parsers keep subscription ids to 64 bytes.
        Change::SubscriptionLifecycle { subscription, .. } => within(
            Some(subscription.as_str()),
            64,
            "subscription id longer than 64 bytes",
        ),
        Change::GroupRenamed { group, new_name } => {
            check_group(group)?;
            within(
                new_name.as_deref(),
                MAX_NAME_BYTES,
                "group name longer than 1024 bytes",
            )
        }
    }
}

/// A record's own id and type, before anything is read from it.
pub fn check_record(id: &str, event_type: Option<&str>) -> Result<(), &'static str> {
    within(
        Some(id),
        MAX_EVENT_ID_BYTES,
        "event id longer than 256 bytes",
    )?;
    within(
        event_type,
        MAX_EVENT_TYPE_BYTES,
        "event type longer than 256 bytes",
    )
}

fn check_user(user: &UserRef) -> Result<(), &'static str> {
    within(
        user.idp_id.as_deref(),
        MAX_IDP_ID_BYTES,
        "user id longer than 512 bytes",
    )?;
    within(
        user.login.as_deref(),
        MAX_LOGIN_BYTES,
        "login longer than 512 bytes",
    )
}

fn check_profile(profile: &UserProfile) -> Result<(), &'static str> {
    within(
        profile.login.as_deref(),
        MAX_LOGIN_BYTES,
        "login longer than 512 bytes",
    )?;
    within(
        profile.email.as_deref(),
        MAX_LOGIN_BYTES,
        "email longer than 512 bytes",
    )?;
    for name in [
        &profile.display_name,
        &profile.first_name,
        &profile.last_name,
    ] {
        within(
            name.as_deref(),
            MAX_NAME_BYTES,
            "name longer than 1024 bytes",
        )?;
    }
    Ok(())
}

fn check_group(group: &GroupRef) -> Result<(), &'static str> {
    within(
        group.idp_id.as_deref(),
        MAX_IDP_ID_BYTES,
        "group id longer than 512 bytes",
    )?;
    within(
        group.name.as_deref(),
        MAX_NAME_BYTES,
        "group name longer than 1024 bytes",
    )
}

fn within(value: Option<&str>, max: usize, reason: &'static str) -> Result<(), &'static str> {
    match value {
        Some(value) if value.len() > max => Err(reason),
        _ => Ok(()),
    }
}

/// `value`, or its first [`MAX_LOGGED_VALUE_BYTES`] (cut at a character
/// boundary) and a marker saying how much was left out: what a log line
/// may repeat of any one value, so a 900 KB field cannot make a megabyte
/// log line.
pub fn bounded(value: &str) -> Cow<'_, str> {
    truncated(value, MAX_LOGGED_VALUE_BYTES)
}

/// [`bounded`] with another limit.
pub fn truncated(value: &str, max: usize) -> Cow<'_, str> {
    if value.len() <= max {
        return Cow::Borrowed(value);
    }
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!(
        "{}…[{} more bytes]",
        &value[..end],
        value.len() - end
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventId, Source, UserState};

    fn event(change: Change) -> IdpEvent {
        IdpEvent {
            id: EventId::new(Source::Okta, "e1"),
            source: Source::Okta,
            event_type: "user.lifecycle.suspend".into(),
            occurred_at: None,
            change,
        }
    }

    fn user(id: &str, login: &str) -> UserRef {
        UserRef {
            idp_id: Some(id.into()),
            login: Some(login.into()),
        }
    }

    #[test]
    fn values_at_the_limit_pass_and_one_byte_more_does_not() {
        let at = |n: usize| "a".repeat(n);
        let state = |user| {
            event(Change::UserStateChanged {
                user,
                state: UserState::Disabled,
            })
        };
        assert_eq!(check_event(&state(user(&at(512), &at(512)))), Ok(()));
        assert_eq!(
            check_event(&state(user(&at(513), "a"))),
            Err("user id longer than 512 bytes")
        );
        assert_eq!(
            check_event(&state(user("a", &at(513)))),
            Err("login longer than 512 bytes")
        );
        let renamed = |name: usize| {
            event(Change::GroupRenamed {
                group: GroupRef {
                    idp_id: Some("00g".into()),
                    name: None,
                },
                new_name: Some(at(name)),
            })
        };
        assert_eq!(check_event(&renamed(1024)), Ok(()));
        assert_eq!(
            check_event(&renamed(1025)),
            Err("group name longer than 1024 bytes")
        );
        assert_eq!(check_record(&at(256), Some("t")), Ok(()));
        assert_eq!(
            check_record(&at(257), Some("t")),
            Err("event id longer than 256 bytes")
        );
        // A 900 KB login is refused without being quoted.
        let huge = state(user("a", &"x".repeat(900_000)));
        assert!(!check_event(&huge).unwrap_err().contains('x'));
    }

    #[test]
    fn bounded_cuts_at_a_character_boundary_with_a_marker() {
        assert_eq!(bounded("short"), "short");
        let long = "é".repeat(600); // 1,200 bytes
        let cut = bounded(&long);
        assert!(cut.len() < 1100, "{}", cut.len());
        assert!(cut.ends_with("…[176 more bytes]"), "{cut}");
        assert_eq!(truncated("abcdef", 3), "abc…[3 more bytes]");
    }
}

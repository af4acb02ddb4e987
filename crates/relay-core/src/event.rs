//! What the IdP said happened, in one vocabulary for every source.
//!
//! Parsers (`source::okta::hook`, `source::auth0::{events, logs}`) turn a verified delivery
//! into [`IdpEvent`]s; the planner turns those into Duo operations. An event
//! carries only what the IdP sent: fields it did not send are `None`, and the
//! planner decides whether to fetch them from the IdP or skip.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Declares [`Source`], one line per source: its variant (the serialized
/// name in queue messages is the variant in kebab-case), its name (event
/// ids, logs, `--source`) and its IdP. What the relay does with a source —
/// route, parser, inbound auth — is registered in `crate::source`.
macro_rules! sources {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal, idp $idp:ident;)+) => {
        /// Where a delivery came from.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum Source {
            $($(#[doc = $doc])* $variant,)+
        }

        impl Source {
            /// Every source, in declaration order (the order of
            /// `crate::source::SOURCES`, checked when it compiles).
            pub const ALL: &'static [Source] = &[$(Self::$variant,)+];

            /// `okta`, `auth0`, `auth0-logs`: the prefix of event ids, the
            /// `source` log field and the CLI's `--source`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }

            /// The IdP whose channel this is.
            pub fn idp(self) -> IdpKind {
                match self {
                    $(Self::$variant => IdpKind::$idp,)+
                }
            }
        }
    };
}

sources! {
    /// Okta event hook (`POST /okta`).
    Okta = "okta", idp Okta;
    /// Auth0 Event Streams webhook (`POST /auth0`).
    Auth0Events = "auth0", idp Auth0;
    /// Auth0 Log Streams custom webhook (`POST /auth0/logs`).
    Auth0Logs = "auth0-logs", idp Auth0;
    /// Microsoft Graph change notifications on Entra ID users and groups
    /// (`POST /entra`).
    Entra = "entra", idp Entra;
}

impl Source {
    /// The source named `name` (as [`Source::as_str`] spells it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.as_str() == name)
    }

    /// The prefix of ids this IdP owns, as stored on Duo objects
    /// (`okta:00u…`, `auth0:auth0|…`). Both Auth0 channels share it.
    pub fn idp_prefix(self) -> &'static str {
        self.idp().as_str()
    }
}

/// An IdP: its channels ([`Source`]s) share one shared secret, the prefix
/// of ids on Duo objects and one API client (lookups, reconcile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IdpKind {
    Okta,
    Auth0,
    Entra,
}

impl IdpKind {
    /// Every IdP (the order of `crate::source::IDPS`, checked when it
    /// compiles).
    pub const ALL: &'static [IdpKind] = &[Self::Okta, Self::Auth0, Self::Entra];

    /// `okta` / `auth0`, as `--source` spells it.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim().to_ascii_lowercase();
        Self::ALL.iter().copied().find(|k| k.as_str() == value)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Okta => "okta",
            Self::Auth0 => "auth0",
            Self::Entra => "entra",
        }
    }

    /// The event source whose ids (alias and group-tag prefix) this IdP
    /// shares: its first channel (both Auth0 channels use `auth0:`).
    pub fn source(self) -> Source {
        Source::ALL
            .iter()
            .copied()
            .find(|s| s.idp() == self)
            .unwrap_or(Source::ALL[0])
    }

    /// The IdP an event came from.
    pub fn of(source: Source) -> Self {
        source.idp()
    }
}

impl fmt::Display for IdpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The idempotency key of one event: the source plus the IdP's own event id
/// (Okta `uuid`, Auth0 event `id`, Auth0 log `log_id`), e.g. `okta:a1b2…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    pub fn new(source: Source, idp_event_id: &str) -> Self {
        Self(format!("{}:{}", source.as_str(), escape_id(idp_event_id)))
    }

    /// The id of one of several events read from one IdP record: the
    /// record's id, then `suffix` (which starts with `#`, e.g. `#state`).
    /// The record id is escaped so it never contains `#` itself: an IdP id
    /// that happens to end in `#state` cannot collide with a suffixed one.
    pub fn with_suffix(source: Source, idp_event_id: &str, suffix: &str) -> Self {
        Self(format!(
            "{}:{}{suffix}",
            source.as_str(),
            escape_id(idp_event_id)
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `%` and `#` percent-encoded, so `#` only ever separates a suffix.
fn escape_id(id: &str) -> std::borrow::Cow<'_, str> {
    if id.contains(['%', '#']) {
        std::borrow::Cow::Owned(id.replace('%', "%25").replace('#', "%23"))
    } else {
        std::borrow::Cow::Borrowed(id)
    }
}

/// A user as an event names it: the IdP's immutable id, its login, or both.
/// Parsers never build one with neither (such events are skipped).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    /// Okta `00u…` / Auth0 `auth0|…`.
    pub idp_id: Option<String>,
    /// Okta login / Auth0 email: the Duo username by default.
    pub login: Option<String>,
}

/// Profile values an event carried. `None` = not in the event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfile {
    pub login: Option<String>,
    pub email: Option<String>,
    /// Full name (Duo `realname`).
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Duo aliases 1-3 from attribute mapping (`crate::mapping`); `None`
    /// leaves a slot as Duo has it. Slot 4 is the relay's IdP id.
    #[serde(default, skip_serializing_if = "no_aliases")]
    pub aliases: [Option<String>; 3],
    /// The mobile phone from attribute mapping (`DUO_PHONE_ATTRIBUTE`), in
    /// E.164 once mapped; `None`: no phone is provisioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The user object as the IdP's API shapes it (Okta `{"id", "status",
    /// "profile": {…}}`, Auth0 `{"user_id", "email", "app_metadata": {…}}`),
    /// when the delivery or the API read carried it whole: what attribute
    /// mapping reads. `None`: only the fields above are known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<serde_json::Value>,
}

fn no_aliases(aliases: &[Option<String>; 3]) -> bool {
    aliases.iter().all(Option::is_none)
}

/// A group (Okta group, Auth0 role) as an event names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRef {
    /// Okta `00g…` / Auth0 `rol_…`.
    pub idp_id: Option<String>,
    pub name: Option<String>,
}

/// Whether a user may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserState {
    Active,
    /// Suspended, deactivated or blocked in the IdP.
    Disabled,
}

/// Which authenticators an MFA reset concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MfaScope {
    /// Every factor was reset in the IdP.
    All,
    /// Only the Duo factor was reset.
    Duo,
}

/// What happened, in the relay's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// Created, or seen with a full profile (Auth0 `user.created`). `state`
    /// is set when the event also says whether the user may sign in.
    UserUpserted {
        user: UserRef,
        profile: UserProfile,
        state: Option<UserState>,
    },
    /// Activated, reactivated, unsuspended, unblocked → `Active`;
    /// suspended, deactivated, blocked → `Disabled`.
    UserStateChanged {
        user: UserRef,
        state: UserState,
    },
    /// The profile changed. `profile` is `None` when the event does not carry
    /// the new values (Okta `user.account.update_profile`): the planner must
    /// fetch them from the IdP. `previous_login` is set when known, so a
    /// rename finds the old Duo user.
    UserProfileChanged {
        user: UserRef,
        profile: Option<UserProfile>,
        previous_login: Option<String>,
    },
    UserDeleted {
        user: UserRef,
    },
    MembershipAdded {
        user: UserRef,
        group: GroupRef,
    },
    MembershipRemoved {
        user: UserRef,
        group: GroupRef,
    },
    GroupCreated {
        group: GroupRef,
    },
    /// `new_name` is `None` when the event does not carry it (Okta
    /// `group.profile.update`).
    GroupRenamed {
        group: GroupRef,
        new_name: Option<String>,
    },
    GroupDeleted {
        group: GroupRef,
    },
    MfaReset {
        user: UserRef,
        scope: MfaScope,
    },
    /// Something happened to the relay's subscription at the IdP, not to a
    /// user or group (Microsoft Graph's lifecycle notifications): nothing
    /// to change in Duo, an action towards the IdP (`crate::idp_sync`).
    SubscriptionLifecycle {
        /// The IdP's subscription id.
        subscription: String,
        lifecycle: Lifecycle,
    },
}

/// Microsoft Graph's lifecycle events (learn.microsoft.com/graph/change-notifications-lifecycle-events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lifecycle {
    /// The subscription's authorization runs out: reauthorize it.
    #[serde(rename = "reauthorizationRequired")]
    ReauthorizationRequired,
    /// Graph removed the subscription: create it again.
    #[serde(rename = "subscriptionRemoved")]
    SubscriptionRemoved,
    /// Graph dropped notifications: catch up.
    #[serde(rename = "missed")]
    Missed,
}

impl Lifecycle {
    /// Graph's `lifecycleEvent` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReauthorizationRequired => "reauthorizationRequired",
            Self::SubscriptionRemoved => "subscriptionRemoved",
            Self::Missed => "missed",
        }
    }

    /// The lifecycle event named `value` (Graph's spelling, any case).
    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::ReauthorizationRequired,
            Self::SubscriptionRemoved,
            Self::Missed,
        ]
        .into_iter()
        .find(|l| l.as_str().eq_ignore_ascii_case(value.trim()))
    }
}

/// One event from one delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpEvent {
    pub id: EventId,
    pub source: Source,
    /// The IdP's event type as sent (`user.lifecycle.create`,
    /// `user.updated`, or for log streams `sapi patch /api/v2/users/{id}`).
    pub event_type: String,
    /// When it happened, as the IdP wrote it (ISO-8601), for ordering.
    pub occurred_at: Option<String>,
    pub change: Change,
}

/// An event a parser read but will not act on, and why — logged, answered
/// 200 (unless nothing in the delivery was well-formed: see [`Parsed`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The IdP's event id when there was one (at most 256 bytes shown).
    pub id: Option<String>,
    pub event_type: Option<String>,
    pub reason: String,
    /// Not a well-formed record at all (not an object, no id or type, a
    /// value over [`crate::limits`]), as opposed to a well-formed one the
    /// relay does not act on (an unhandled type, a failed outcome…).
    #[serde(skip)]
    pub malformed: bool,
}

/// What a parser made of one delivery. A delivery holds at least one
/// well-formed record (an event, or a skip that is not malformed): the
/// parsers refuse one that does not with
/// [`crate::parse_util::ParseError::NoWellFormedRecord`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Parsed {
    pub events: Vec<IdpEvent>,
    pub skipped: Vec<Skipped>,
}

impl Parsed {
    /// Whether any record of the delivery was well-formed.
    pub fn has_well_formed(&self) -> bool {
        !self.events.is_empty() || self.skipped.iter().any(|s| !s.malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixed_ids_cannot_collide_with_plain_ones() {
        // Regression (found by the parser property test): a record whose id
        // is literally "evt_1#state" next to a user.updated "evt_1".
        let plain = EventId::new(Source::Auth0Events, "evt_1#state");
        let suffixed = EventId::with_suffix(Source::Auth0Events, "evt_1", "#state");
        assert_ne!(plain, suffixed);
        assert_eq!(suffixed.as_str(), "auth0:evt_1#state");
        assert_eq!(plain.as_str(), "auth0:evt_1%23state");
        assert_eq!(EventId::new(Source::Okta, "a%b").as_str(), "okta:a%25b");
        assert_eq!(EventId::new(Source::Okta, "uuid-1").as_str(), "okta:uuid-1");
    }
}

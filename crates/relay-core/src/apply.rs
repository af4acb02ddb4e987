//! Operations → Duo calls, idempotently.
//!
//! [`Directory`] is what the apply stage needs from Duo; [`DuoDirectory`]
//! implements it with the Admin API client, and a dry run implements it by
//! recording. Every operation reads before it writes, so applying one twice
//! changes nothing the second time.
//!
//! Minimum Duo calls per operation, with a warm group index (the reasoning the
//! benchmark issue counts against; how the index avoids listing every Duo
//! group is in [`crate::group_index`]):
//! - upsert user: 1 lookup (+1 create or +1 modify when something differs)
//! - set state: 1 lookup (+1 modify when different)
//! - membership add: 1 user lookup (its answer embeds the user's groups) + 1 add
//! - membership remove: 1 user lookup + 1 remove
//! - reset MFA: 1 lookup (phones, tokens, WebAuthn and U2F are embedded in the
//!   user) + 1 bypass-code list + 1 call per device or code removed
//! - delete: 1 lookup + 1 delete
//!
//! A user is found with **one** lookup whatever the event carries: the login,
//! the IdP id alias and, for a rename, the earlier login go in one
//! `username_list` (Duo matches each against usernames and aliases), and
//! [`crate::identity`] picks this identity's account from the answer. An
//! account found by its login that carries no IdP id yet is adopted: the
//! first write links the id — in the modify a state or profile change makes
//! anyway, else in one modify before a membership, reset or device write —
//! so an account without our alias pays one extra call, once.
//!
//! While a login is held by an account bound to another identity (a login
//! deleted and re-created in the IdP, the old account not yet deleted), an
//! operation that would create this identity's account fails with
//! [`ApplyError::LoginHeld`]. The pipeline decides from event times which
//! identity is the older one: a late event of the old identity is skipped as
//! stale; the new identity's event is transient, so queue mode retries it
//! with backoff and sync mode answers 503 (the IdP retries) until the old
//! account's delete (or rename) has applied. Operations that need no account
//! of their own (delete, membership removal, MFA reset) find none and change
//! nothing: the other identity's account is never touched.

use std::sync::Arc;

use duo_admin::{DuoClient, DuoError, GroupFields, User, UserFields, UserStatus};

pub use crate::group_index::managed_tag;
use crate::group_index::{GroupEntry, GroupIndex, GroupIndexStore};

pub use crate::effect::Effect;
use crate::event::UserState;
use crate::identity::{self, Resolution};
use crate::operation::{GroupKey, Operation, UserAttrs, UserKey};
use crate::target::{TargetReader, Unreadable};

/// The alias slot (1-4) that holds the IdP's user id. Slot 4, because admins
/// who use aliases by hand fill them from slot 1.
pub const IDP_ALIAS_SLOT: usize = 4;

/// How one operation ended, and what it did (worded once, by
/// [`Effect`]'s `Display`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpOutcome {
    /// Duo was changed.
    Changed(Effect),
    /// Duo already matched; nothing was written.
    Unchanged(Effect),
}

impl OpOutcome {
    /// What the operation did, or found already done.
    pub fn effect(&self) -> &Effect {
        match self {
            Self::Changed(effect) | Self::Unchanged(effect) => effect,
        }
    }
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Retrying later may succeed (429, 5xx, timeouts).
    #[error("transient: {0}")]
    Transient(DuoError),
    /// Another event has to apply first: an account deleted between its
    /// lookup and its change, a rename onto a name another account still
    /// answers to. A retry re-resolves, so this is transient too.
    #[error("waiting: {0}")]
    Waiting(String),
    /// The operation needs this identity's account, and the login belongs
    /// to an account bound to another IdP id (`owner`). Transient: the
    /// older of the two identities is on its way out (see
    /// `crate::pipeline`, which skips the event instead when it is the
    /// older one).
    #[error("waiting: {detail}")]
    LoginHeld { owner: String, detail: String },
    /// Retrying cannot help until someone changes something.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<DuoError> for ApplyError {
    fn from(e: DuoError) -> Self {
        if e.is_transient() {
            Self::Transient(e)
        } else {
            Self::Permanent(e.to_string())
        }
    }
}

impl ApplyError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Transient(_) | Self::Waiting(_) | Self::LoginHeld { .. }
        )
    }
}

/// Where operations are applied.
pub trait Directory: Send + Sync {
    fn apply(
        &self,
        op: &Operation,
    ) -> impl std::future::Future<Output = Result<OpOutcome, ApplyError>> + Send;

    /// What planners read the target's current state through.
    type Reader: TargetReader;

    /// The reader, if this directory can read its target: planners that
    /// compare with it (reconcile, per-user on the event path) read through
    /// it, and only read. A dry run has none (its events are planned from
    /// the event as sent).
    fn reader(&self) -> Option<&Self::Reader>;

    /// The pace the target's calls are held to, if any: queue workers wait
    /// for it before taking a message.
    fn pacer(&self) -> Option<&duo_admin::Pacer> {
        None
    }
}

fn group_desc(tag: &str) -> String {
    format!("{tag} synced by idp-duo-relay")
}

/// Whether a membership add failed because Duo no longer has the group:
/// 404, or (as the simulator and, we assume, Duo answer an unknown id in a
/// parameter) 40002 naming `group_id`.
fn names_a_gone_group(e: &DuoError) -> bool {
    match e {
        DuoError::NotFound(_) => true,
        DuoError::InvalidParameter(f) => f.detail.as_deref() == Some("group_id"),
        _ => false,
    }
}

/// [`Directory`] on the Duo Admin API.
#[derive(Debug)]
pub struct DuoDirectory {
    duo: DuoClient,
    groups: GroupIndex,
    group_filter: Option<regex_lite::Regex>,
    exclusions: crate::exclude::Exclusions,
    /// `DUO_PHONE_READD` ([`crate::mapping::Mapping::phone_readd`]).
    phone_readd: bool,
}

/// The `name` of the phones the relay creates: how it tells its own phones
/// (which it may detach when the IdP's number changes) from the user's.
pub const RELAY_PHONE_NAME: &str = "idp-duo-relay";

impl DuoDirectory {
    /// With the default exclusions (accounts of Duo's directory sync).
    pub fn new(duo: DuoClient, group_filter: Option<regex_lite::Regex>) -> Self {
        Self {
            duo,
            groups: GroupIndex::default(),
            group_filter,
            exclusions: crate::exclude::Exclusions::default(),
            phone_readd: false,
        }
    }

    /// With these exclusions (`DUO_EXCLUDE_*`) instead of the default ones.
    /// (`DuoDirectory::from_rules`, in `crate::plan`, sets them from the
    /// rules: apply does not import plan.)
    #[must_use]
    pub fn with_exclusions(mut self, exclusions: crate::exclude::Exclusions) -> Self {
        self.exclusions = exclusions;
        self
    }

    /// `DUO_PHONE_READD` (`crate::mapping::Mapping::phone_readd`).
    #[must_use]
    pub fn with_phone_readd(mut self, phone_readd: bool) -> Self {
        self.phone_readd = phone_readd;
        self
    }

    /// Keeps the group index in `store` (the platform's state store), so a
    /// restart loads it instead of listing Duo's groups again.
    #[must_use]
    pub fn with_group_index(mut self, store: Arc<dyn GroupIndexStore>) -> Self {
        self.groups = GroupIndex::new(Some(store));
        self
    }

    /// One lookup for everything the key (and an earlier login) names, then
    /// the identity rule ([`identity::resolve`]).
    ///
    /// An account found that is excluded (`DUO_EXCLUDE_*`, Duo's directory
    /// sync) is never this identity's to change: [`Resolved::Excluded`].
    async fn resolve(
        &self,
        key: &UserKey,
        previous_username: Option<&str>,
    ) -> Result<Resolved, DuoError> {
        let names = identity::lookup_names(key, previous_username);
        if names.is_empty() {
            return Ok(Resolved::Mine(Resolution::Absent));
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let candidates = self.duo.find_users_by_names(&names).await?;
        let resolution = identity::resolve(key, previous_username, &candidates);
        if let Resolution::Found { user, .. } = &resolution
            && let Some(why) = self.exclusions.reason(user)
        {
            return Ok(Resolved::Excluded(OpOutcome::Unchanged(
                Effect::UserExcluded {
                    username: user.username.clone(),
                    why: why.to_string(),
                },
            )));
        }
        Ok(Resolved::Mine(resolution))
    }

    async fn find_group(&self, key: &GroupKey) -> Result<Option<GroupEntry>, DuoError> {
        self.groups.find(&self.duo, key).await
    }

    fn group_allowed(&self, name: &str) -> bool {
        self.group_filter.as_ref().is_none_or(|f| f.is_match(name))
    }

    /// This identity's account: found (with whether it was adopted), or
    /// created when its username is known and free.
    async fn ensure_user(
        &self,
        key: &UserKey,
        attrs: &UserAttrs,
        state: Option<UserState>,
    ) -> Result<Result<(Mine, bool), OpOutcome>, ApplyError> {
        match self.resolve(key, None).await? {
            Resolved::Excluded(outcome) => Ok(Err(outcome)),
            Resolved::Mine(Resolution::Found { user, adopted }) => {
                Ok(Ok((Mine { user, adopted }, false)))
            }
            Resolved::Mine(Resolution::Held { user, owner }) => Err(held(key, &user, &owner)),
            Resolved::Mine(Resolution::Absent) => self.create_user(key, attrs, state).await.map(Ok),
        }
    }

    /// Creates this identity's account (its IdP id in the alias slot).
    async fn create_user(
        &self,
        key: &UserKey,
        attrs: &UserAttrs,
        state: Option<UserState>,
    ) -> Result<(Mine, bool), ApplyError> {
        let Some(username) = &key.username else {
            return Err(ApplyError::Permanent(format!(
                "user {key} is not in Duo and the event carries no login to create it with"
            )));
        };
        let mut fields = fields_from(attrs);
        fields.username = Some(username.clone());
        if let Some(alias) = &key.idp_alias {
            fields.aliases[IDP_ALIAS_SLOT - 1] = Some(alias.clone());
        }
        fields.status = state.map(duo_status);
        match self.duo.create_user(&fields).await {
            Ok(user) => Ok((
                Mine {
                    user,
                    adopted: false,
                },
                true,
            )),
            // Lost a race with a concurrent create (or a lost answer), or
            // the login is taken: look again, by the same rule.
            Err(DuoError::InvalidParameter(_)) => match self.resolve(key, None).await? {
                Resolved::Mine(Resolution::Found { user, adopted }) => {
                    Ok((Mine { user, adopted }, false))
                }
                Resolved::Mine(Resolution::Held { user, owner }) => Err(held(key, &user, &owner)),
                Resolved::Excluded(outcome) => Err(ApplyError::Permanent(format!(
                    "cannot create user {username}: {}",
                    outcome.effect()
                ))),
                Resolved::Mine(Resolution::Absent) => Err(ApplyError::Permanent(format!(
                    "Duo refused to create user {username} (invalid parameter)"
                ))),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Links this identity's id to an adopted account before a write that
    /// is not a user modify (membership, device removal).
    async fn bind(&self, mine: &Mine, key: &UserKey) -> Result<(), ApplyError> {
        let Some(alias) = &key.idp_alias else {
            return Ok(());
        };
        if !mine.adopted || identity::carries(&mine.user, alias) {
            return Ok(());
        }
        let mut fields = UserFields::default();
        fields.aliases[alias_slot(&mine.user)] = Some(alias.clone());
        self.modify_user(&mine.user, &fields).await.map(drop)
    }

    /// `modify_user`, with a 404 read as "deleted since it was looked up":
    /// a retry resolves the identity again.
    async fn modify_user(&self, user: &User, fields: &UserFields) -> Result<User, ApplyError> {
        match self.duo.modify_user(&user.user_id, fields).await {
            Err(e) if e.is_not_found() => Err(ApplyError::Waiting(format!(
                "Duo user {} ({}) was deleted after it was looked up; a retry looks again",
                user.username, user.user_id
            ))),
            other => other.map_err(ApplyError::from),
        }
    }

    async fn ensure_group(&self, key: &GroupKey) -> Result<(GroupEntry, bool), ApplyError> {
        if let Some(group) = self.find_group(key).await? {
            return Ok((group, false));
        }
        let Some(name) = &key.name else {
            return Err(ApplyError::Permanent(format!(
                "group {key} is not in Duo and the event carries no name to create it with"
            )));
        };
        if !self.group_allowed(name) {
            return Err(ApplyError::Permanent(format!(
                "group {name} does not match GROUP_FILTER"
            )));
        }
        let fields = GroupFields {
            name: Some(name.clone()),
            desc: key.idp_tag.as_deref().map(group_desc),
        };
        match self.duo.create_group(&fields).await {
            Ok(group) => {
                let entry = GroupEntry::from_group(&group);
                self.groups.insert(&entry).await;
                Ok((entry, true))
            }
            // Duo has that name already: created meanwhile by another
            // delivery, or by an admin after the index was complete.
            // Search for it (paging stops at its page).
            Err(DuoError::InvalidParameter(_)) => {
                let found = self.groups.search(&self.duo, key).await?;
                let found = found.ok_or_else(|| {
                    ApplyError::Permanent(format!("Duo refused to create group {name}"))
                })?;
                Ok((found, false))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Adds the user to the group; a group id Duo no longer knows (an admin
    /// deleted the group after the index learnt it) is forgotten and the
    /// group found or created again, once.
    async fn add_to_group(
        &self,
        user: &User,
        group: &GroupKey,
        entry: GroupEntry,
    ) -> Result<GroupEntry, ApplyError> {
        match self
            .duo
            .add_user_to_group(&user.user_id, &entry.group_id)
            .await
        {
            Ok(()) => Ok(entry),
            Err(e) if names_a_gone_group(&e) => {
                tracing::info!(group_id = %entry.group_id, group = %entry.name, "group index: Duo no longer has this group; finding it again");
                self.groups.forget(&entry.group_id).await;
                let (again, _) = self.ensure_group(group).await?;
                self.duo
                    .add_user_to_group(&user.user_id, &again.group_id)
                    .await?;
                Ok(again)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn update_user(
        &self,
        user: &User,
        key: &UserKey,
        attrs: &UserAttrs,
        state: Option<UserState>,
    ) -> Result<OpOutcome, ApplyError> {
        let mut fields = UserFields::default();
        let differs = |current: &Option<String>, wanted: &Option<String>| {
            wanted
                .as_ref()
                .filter(|w| current.as_ref() != Some(*w))
                .cloned()
        };
        fields.realname = differs(&user.realname, &attrs.realname);
        fields.firstname = differs(&user.firstname, &attrs.firstname);
        fields.lastname = differs(&user.lastname, &attrs.lastname);
        fields.email = differs(&user.email, &attrs.email);
        let current_aliases = user.aliases();
        for (i, wanted) in attrs.aliases.iter().enumerate() {
            // Never over a slot holding an IdP id (an admin may have moved
            // the relay's alias there).
            if let Some(wanted) = wanted
                && !current_aliases[i].is_some_and(|c| identity::same_name(c, wanted))
                && !current_aliases[i].is_some_and(identity::is_idp_id)
            {
                fields.aliases[i] = Some(wanted.clone());
            }
        }
        if let Some(username) = &key.username
            && !username.eq_ignore_ascii_case(&user.username)
        {
            fields.username = Some(username.clone());
        }
        if let Some(alias) = &key.idp_alias
            && !identity::carries(user, alias)
        {
            let mut slot = alias_slot(user);
            if slot < 3 && fields.aliases[slot].is_some() {
                slot = IDP_ALIAS_SLOT - 1;
            }
            fields.aliases[slot] = Some(alias.clone());
        }
        if let Some(state) = state
            && !status_matches(&user.status, state)
        {
            fields.status = Some(duo_status(state));
        }
        if fields.is_empty() {
            return Ok(OpOutcome::Unchanged(Effect::UserUpToDate {
                username: user.username.clone(),
            }));
        }
        match self.modify_user(user, &fields).await {
            Ok(_) => {}
            // A rename onto a login another account answers to: that
            // account's own events (its rename or delete) free it.
            Err(ApplyError::Permanent(why)) if fields.username.is_some() => {
                let wanted = fields.username.as_deref().unwrap_or_default();
                let holder = self
                    .duo
                    .find_users_by_names(&[wanted])
                    .await?
                    .into_iter()
                    .find(|u| u.user_id != user.user_id);
                return Err(match holder {
                    Some(other) => ApplyError::Waiting(format!(
                        "cannot rename Duo user {} to {wanted}: Duo user {} ({}) answers to that name; waiting until it is renamed or deleted",
                        user.username,
                        other.user_id,
                        identity::bound_to(&other).unwrap_or("no IdP id")
                    )),
                    None => ApplyError::Permanent(why),
                });
            }
            Err(e) => return Err(e),
        }
        Ok(OpOutcome::Changed(Effect::ModifiedUser {
            username: user.username.clone(),
        }))
    }

    /// The mapped mobile phone (issue 17 item 3), after the user's own write:
    /// nothing when the user has a phone of that number; else, when the
    /// relay just created the user, or the user has a phone of the relay's
    /// (its number changed in the IdP), or `DUO_PHONE_READD`: the phone of
    /// that number (found by `GET /admin/v1/phones?number=`, created with
    /// `POST /admin/v1/phones` when Duo has none) is attached
    /// (`POST /admin/v1/users/{id}/phones`) and the relay's phones of other
    /// numbers detached. The user's own phones are never detached; after an
    /// MFA reset (which detached the relay's phone too) nothing is re-added
    /// unless `DUO_PHONE_READD`. `user` is the account as looked up (its
    /// phones embedded), or as just created. Answers the number attached.
    async fn ensure_phone(
        &self,
        user: &User,
        number: Option<&str>,
        created: bool,
    ) -> Result<Option<String>, ApplyError> {
        let Some(number) = number else {
            return Ok(None);
        };
        if user
            .phones
            .iter()
            .any(|p| p.number.as_deref() == Some(number))
        {
            return Ok(None);
        }
        let ours: Vec<&duo_admin::Phone> = user
            .phones
            .iter()
            .filter(|p| p.name.as_deref() == Some(RELAY_PHONE_NAME))
            .collect();
        if !created && ours.is_empty() && !self.phone_readd {
            return Ok(None);
        }
        let phone = match self
            .duo
            .find_phones_by_number(number)
            .await?
            .into_iter()
            .next()
        {
            Some(phone) => phone,
            None => {
                self.duo
                    .create_phone(number, "mobile", RELAY_PHONE_NAME)
                    .await?
            }
        };
        self.duo
            .attach_phone(&user.user_id, &phone.phone_id)
            .await?;
        for old in ours {
            deleted(self.duo.detach_phone(&user.user_id, &old.phone_id).await)?;
        }
        Ok(Some(number.to_owned()))
    }

    async fn reset_mfa(&self, mine: &Mine, key: &UserKey) -> Result<OpOutcome, ApplyError> {
        let user = &mine.user;
        let id = &user.user_id;
        let mut removed = 0usize;
        // Duo answers 404 for a device already gone: that is the goal state.
        let gone = deleted;
        // An adopted account gets its IdP id before the first removal.
        if user.phones.len()
            + user.tokens.len()
            + user.webauthncredentials.len()
            + user.u2ftokens.len()
            > 0
        {
            self.bind(mine, key).await?;
        }
        for phone in &user.phones {
            removed += usize::from(gone(self.duo.detach_phone(id, &phone.phone_id).await)?);
        }
        for token in &user.tokens {
            removed += usize::from(gone(self.duo.detach_token(id, &token.token_id).await)?);
        }
        for cred in &user.webauthncredentials {
            removed += usize::from(gone(self.duo.delete_webauthn(&cred.webauthnkey).await)?);
        }
        for u2f in &user.u2ftokens {
            removed += usize::from(gone(self.duo.delete_u2f(&u2f.registration_id).await)?);
        }
        let codes = self.duo.list_user_bypass_codes(id).await?;
        if removed == 0 && !codes.is_empty() {
            self.bind(mine, key).await?;
        }
        for code in codes {
            removed += usize::from(gone(
                self.duo.delete_bypass_code(&code.bypass_code_id).await,
            )?);
        }
        Ok(if removed == 0 {
            OpOutcome::Unchanged(Effect::NoDevices {
                username: user.username.clone(),
            })
        } else {
            OpOutcome::Changed(Effect::RemovedDevices {
                username: user.username.clone(),
                count: removed,
            })
        })
    }
}

/// What a lookup found: an account the identity rule gives this identity
/// (or none), or one that is excluded (and what the operation answers).
/// Short-lived, on the stack of one operation: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Resolved {
    Mine(Resolution),
    Excluded(OpOutcome),
}

/// The resolution of a lookup, or the early answer of an operation that
/// found an excluded account.
macro_rules! mine {
    ($resolved:expr) => {
        match $resolved {
            Resolved::Mine(resolution) => resolution,
            Resolved::Excluded(outcome) => return Ok(outcome),
        }
    };
}

/// This identity's Duo account, and whether it was just adopted (found by
/// its login, no IdP id linked yet).
#[derive(Debug)]
struct Mine {
    user: User,
    adopted: bool,
}

/// The failure of an operation whose login another identity's account
/// holds: transient, so it is retried until that account is gone.
fn held(key: &UserKey, holder: &User, owner: &str) -> ApplyError {
    ApplyError::LoginHeld {
        owner: owner.to_owned(),
        detail: format!(
            "login {} is held by Duo user {} bound to {owner}, another identity than {}; waiting until that account is deleted or renamed",
            holder.username,
            holder.user_id,
            key.idp_alias.as_deref().unwrap_or("this event's")
        ),
    }
}

/// The alias slot (0-based) to write the IdP id into: slot 4, unless it
/// holds an admin's own alias (not an IdP id) and another slot is free.
fn alias_slot(user: &User) -> usize {
    let aliases = user.aliases();
    let fourth = IDP_ALIAS_SLOT - 1;
    match aliases[fourth] {
        Some(a) if identity::is_idp_id(a) => fourth,
        Some(_) => aliases.iter().position(Option::is_none).unwrap_or(fourth),
        None => fourth,
    }
}

/// An operation's outcome, and the phone number it attached (which makes
/// it a change).
fn with_phone(outcome: OpOutcome, phone: Option<String>) -> OpOutcome {
    match (outcome, phone) {
        (outcome, None) => outcome,
        (OpOutcome::Changed(effect) | OpOutcome::Unchanged(effect), Some(number)) => {
            OpOutcome::Changed(Effect::PhoneAttached {
                effect: Box::new(effect),
                number,
            })
        }
    }
}

/// A delete's answer: `true` when it removed something, `false` when Duo
/// answered 404 — already gone, which is the goal state. A DELETE whose
/// earlier answer was lost (a 500, a body cut short) meets exactly that on
/// its retry, and must not end as a failure.
fn deleted(result: Result<(), DuoError>) -> Result<bool, ApplyError> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn fields_from(attrs: &UserAttrs) -> UserFields {
    UserFields {
        realname: attrs.realname.clone(),
        firstname: attrs.firstname.clone(),
        lastname: attrs.lastname.clone(),
        email: attrs.email.clone(),
        aliases: [
            attrs.aliases[0].clone(),
            attrs.aliases[1].clone(),
            attrs.aliases[2].clone(),
            None,
        ],
        ..UserFields::default()
    }
}

fn duo_status(state: UserState) -> UserStatus {
    match state {
        UserState::Active => UserStatus::Active,
        UserState::Disabled => UserStatus::Disabled,
    }
}

/// `bypass` and `locked out` count as active: the relay does not override an
/// admin's bypass or Duo's own lockout when the IdP says "active".
fn status_matches(current: &UserStatus, wanted: UserState) -> bool {
    match wanted {
        UserState::Active => !matches!(current, UserStatus::Disabled),
        UserState::Disabled => matches!(current, UserStatus::Disabled),
    }
}

impl Directory for DuoDirectory {
    type Reader = DuoClient;

    fn reader(&self) -> Option<&DuoClient> {
        Some(&self.duo)
    }

    fn pacer(&self) -> Option<&duo_admin::Pacer> {
        self.duo.pacer().map(Arc::as_ref)
    }

    async fn apply(&self, op: &Operation) -> Result<OpOutcome, ApplyError> {
        match op {
            Operation::UpsertUser { user, attrs, state } => {
                let (mine, created) = match self.ensure_user(user, attrs, *state).await? {
                    Ok(mine) => mine,
                    Err(outcome) => return Ok(outcome),
                };
                if created {
                    let phone = self
                        .ensure_phone(&mine.user, attrs.phone.as_deref(), true)
                        .await?;
                    return Ok(with_phone(
                        OpOutcome::Changed(Effect::CreatedUser {
                            username: mine.user.username.clone(),
                            disabled: false,
                        }),
                        phone,
                    ));
                }
                let outcome = self.update_user(&mine.user, user, attrs, *state).await?;
                let phone = self
                    .ensure_phone(&mine.user, attrs.phone.as_deref(), false)
                    .await?;
                Ok(with_phone(outcome, phone))
            }
            Operation::SetUserState { user, state, attrs } => {
                match mine!(self.resolve(user, None).await?) {
                    Resolution::Found { user: found, .. } => {
                        // Only the state (and the IdP id of an adopted
                        // account): a state event must not rename.
                        let key = UserKey {
                            idp_alias: user.idp_alias.clone(),
                            username: None,
                        };
                        self.update_user(&found, &key, attrs, Some(*state)).await
                    }
                    // Not in Duo and no username to create it with.
                    Resolution::Absent
                        if *state == UserState::Disabled && user.username.is_none() =>
                    {
                        Ok(OpOutcome::Unchanged(Effect::UserNotInDuoNothingToDisable {
                            user: user.clone(),
                        }))
                    }
                    // A suspension that arrived before the user's creation
                    // (IdPs deliver out of order): the IdP has this user, so
                    // create it disabled rather than lose the state.
                    Resolution::Absent => {
                        let (mine, _) = self.create_user(user, attrs, Some(*state)).await?;
                        Ok(OpOutcome::Changed(Effect::CreatedUser {
                            username: mine.user.username.clone(),
                            disabled: *state == UserState::Disabled,
                        }))
                    }
                    Resolution::Held {
                        user: holder,
                        owner,
                    } => Err(held(user, &holder, &owner)),
                }
            }
            Operation::UpdateUser {
                user,
                attrs,
                previous_username,
            } => match mine!(self.resolve(user, previous_username.as_deref()).await?) {
                Resolution::Found { user: found, .. } => {
                    let outcome = self.update_user(&found, user, attrs, None).await?;
                    let phone = self
                        .ensure_phone(&found, attrs.phone.as_deref(), false)
                        .await?;
                    Ok(with_phone(outcome, phone))
                }
                Resolution::Absent => {
                    let (mine, _) = self.create_user(user, attrs, None).await?;
                    let phone = self
                        .ensure_phone(&mine.user, attrs.phone.as_deref(), true)
                        .await?;
                    Ok(with_phone(
                        OpOutcome::Changed(Effect::CreatedUser {
                            username: mine.user.username.clone(),
                            disabled: false,
                        }),
                        phone,
                    ))
                }
                Resolution::Held {
                    user: holder,
                    owner,
                } => Err(held(user, &holder, &owner)),
            },
            Operation::DeleteUser { user } => match mine!(self.resolve(user, None).await?) {
                Resolution::Found { user: found, .. } => {
                    if !deleted(self.duo.delete_user(&found.user_id).await)? {
                        return Ok(OpOutcome::Unchanged(Effect::UserAlreadyGone {
                            username: found.username,
                        }));
                    }
                    Ok(OpOutcome::Changed(Effect::DeletedUser {
                        username: found.username,
                    }))
                }
                Resolution::Absent => Ok(OpOutcome::Unchanged(Effect::UserNotInDuo {
                    user: user.clone(),
                })),
                // Never the other identity's account.
                Resolution::Held {
                    user: holder,
                    owner,
                } => Ok(OpOutcome::Unchanged(Effect::UserNotInDuoHeld {
                    user: user.clone(),
                    holder: holder.username,
                    owner,
                })),
            },
            Operation::AddMembership { user, group } => {
                let (mine, _) = match self.ensure_user(user, &UserAttrs::default(), None).await? {
                    Ok(mine) => mine,
                    Err(outcome) => return Ok(outcome),
                };
                self.groups.learn(&mine.user.groups).await;
                let (g, _) = self.ensure_group(group).await?;
                if !self.group_allowed(&g.name) {
                    return Ok(OpOutcome::Unchanged(Effect::GroupFiltered {
                        group: g.name.clone(),
                    }));
                }
                let found = &mine.user;
                if found.groups.iter().any(|m| m.group_id == g.group_id) {
                    return Ok(OpOutcome::Unchanged(Effect::AlreadyMember {
                        username: found.username.clone(),
                        group: g.name.clone(),
                    }));
                }
                self.bind(&mine, user).await?;
                let g = self.add_to_group(found, group, g).await?;
                Ok(OpOutcome::Changed(Effect::AddedMember {
                    username: found.username.clone(),
                    group: g.name.clone(),
                }))
            }
            Operation::RemoveMembership { user, group } => {
                let Resolution::Found {
                    user: found,
                    adopted,
                } = mine!(self.resolve(user, None).await?)
                else {
                    return Ok(OpOutcome::Unchanged(Effect::UserNotInDuo {
                        user: user.clone(),
                    }));
                };
                self.groups.learn(&found.groups).await;
                let member = found.groups.iter().find(|m| {
                    group
                        .idp_tag
                        .as_deref()
                        .is_some_and(|t| m.desc.as_deref().and_then(managed_tag) == Some(t))
                        || group
                            .name
                            .as_deref()
                            .is_some_and(|n| m.name.eq_ignore_ascii_case(n))
                });
                match member {
                    Some(m) => {
                        let mine = Mine {
                            user: found.clone(),
                            adopted,
                        };
                        self.bind(&mine, user).await?;
                        let removal = self
                            .duo
                            .remove_user_from_group(&found.user_id, &m.group_id)
                            .await;
                        if !deleted(removal)? {
                            return Ok(OpOutcome::Unchanged(Effect::AlreadyOut {
                                username: found.username.clone(),
                                group: m.name.clone(),
                            }));
                        }
                        Ok(OpOutcome::Changed(Effect::RemovedMember {
                            username: found.username.clone(),
                            group: m.name.clone(),
                        }))
                    }
                    None => Ok(OpOutcome::Unchanged(Effect::NotInGroup {
                        username: found.username.clone(),
                        group: group.clone(),
                    })),
                }
            }
            Operation::CreateGroup { group } => {
                let (g, created) = self.ensure_group(group).await?;
                Ok(if created {
                    OpOutcome::Changed(Effect::CreatedGroup { name: g.name })
                } else {
                    OpOutcome::Unchanged(Effect::GroupExists { name: g.name })
                })
            }
            Operation::RenameGroup { group, new_name } => {
                let Some(g) = self.find_group(group).await? else {
                    let key = GroupKey {
                        idp_tag: group.idp_tag.clone(),
                        name: Some(new_name.clone()),
                    };
                    let (g, _) = self.ensure_group(&key).await?;
                    return Ok(OpOutcome::Changed(Effect::CreatedGroup { name: g.name }));
                };
                if g.name == *new_name {
                    return Ok(OpOutcome::Unchanged(Effect::GroupAlreadyNamed {
                        name: new_name.clone(),
                    }));
                }
                let renamed = self
                    .duo
                    .modify_group(
                        &g.group_id,
                        &GroupFields {
                            name: Some(new_name.clone()),
                            desc: None,
                        },
                    )
                    .await?;
                self.groups.insert(&GroupEntry::from_group(&renamed)).await;
                Ok(OpOutcome::Changed(Effect::RenamedGroup {
                    from: g.name,
                    to: new_name.clone(),
                }))
            }
            Operation::DeleteGroup { group } => match self.find_group(group).await? {
                Some(g) => {
                    let deletion = deleted(self.duo.delete_group(&g.group_id).await);
                    // Gone either way unless the call failed: the index
                    // must not keep a group Duo no longer has.
                    if deletion.is_ok() {
                        self.groups.forget(&g.group_id).await;
                    }
                    Ok(if deletion? {
                        OpOutcome::Changed(Effect::DeletedGroup { name: g.name })
                    } else {
                        OpOutcome::Unchanged(Effect::GroupAlreadyGone { name: g.name })
                    })
                }
                None => Ok(OpOutcome::Unchanged(Effect::GroupNotInDuo {
                    group: group.clone(),
                })),
            },
            Operation::ResetMfa { user: key, .. } => match mine!(self.resolve(key, None).await?) {
                Resolution::Found { user, adopted } => {
                    self.reset_mfa(&Mine { user, adopted }, key).await
                }
                Resolution::Absent | Resolution::Held { .. } => {
                    Ok(OpOutcome::Unchanged(Effect::UserNotInDuo {
                        user: key.clone(),
                    }))
                }
            },
        }
    }
}

/// A [`Directory`] that applies nothing and records what it would do
/// (`idp-duo-relay replay --dry-run`).
#[derive(Debug, Default)]
pub struct DryRun {
    planned: std::sync::Mutex<Vec<Operation>>,
}

impl DryRun {
    /// Every operation seen, in order.
    pub fn planned(&self) -> Vec<Operation> {
        self.planned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Directory for DryRun {
    type Reader = Unreadable;

    fn reader(&self) -> Option<&Unreadable> {
        None
    }

    async fn apply(&self, op: &Operation) -> Result<OpOutcome, ApplyError> {
        self.planned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(op.clone());
        Ok(OpOutcome::Unchanged(Effect::WouldApply {
            operation: Box::new(op.clone()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_tags_are_read_from_descriptions() {
        assert_eq!(
            managed_tag("okta:00g1 synced by idp-duo-relay"),
            Some("okta:00g1")
        );
        assert_eq!(managed_tag(&group_desc("auth0:rol_9")), Some("auth0:rol_9"));
        assert_eq!(managed_tag("Engineering team"), None);
        assert_eq!(managed_tag("http://x"), None);
        assert_eq!(managed_tag(""), None);
    }
}

//! The simulated tenant: users, groups and devices, and the Admin API
//! operations on them. Pure (no HTTP, no clock: `now` is passed in), so every
//! rule can be unit-tested; `server` only maps routes onto these calls.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// Duo's one-to-many limit of groups per user (duo.com/docs/rate-limits);
/// going over it is answered with 500 / 50001, as Duo does.
pub(crate) const MAX_GROUPS_PER_USER: usize = 100;

/// A Duo group as the simulator holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimGroup {
    pub group_id: String,
    pub name: String,
    pub desc: String,
    /// "Active", "Bypass" or "Disabled", as Duo shows it.
    pub status: String,
    pub push_enabled: bool,
    pub sms_enabled: bool,
    pub voice_enabled: bool,
    pub mobile_otp_enabled: bool,
}

/// A phone (may be shared by several users, as in Duo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimPhone {
    pub phone_id: String,
    pub number: String,
    /// The phone's name (`name` on create); empty when none was given.
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub platform: String,
    pub activated: bool,
}

/// An OTP hardware token (may be shared by several users, as in Duo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimToken {
    pub token_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub serial: String,
}

/// A legacy U2F registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimU2fToken {
    pub registration_id: String,
    pub date_added: i64,
}

/// A WebAuthn credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimWebauthnCredential {
    pub webauthnkey: String,
    pub credential_name: String,
    pub date_added: i64,
}

/// A bypass code (the code itself is never shown, as in Duo's list call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimBypassCode {
    pub bypass_code_id: String,
    pub created: i64,
}

/// A user with its groups (by name) and devices, as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimUser {
    pub user_id: String,
    pub username: String,
    /// `alias1..alias4`; `None` when the slot is unset.
    pub aliases: [Option<String>; 4],
    pub realname: String,
    pub firstname: String,
    pub lastname: String,
    pub email: String,
    pub status: String,
    pub notes: String,
    pub created: i64,
    /// Group names, in the order the user joined them.
    pub groups: Vec<String>,
    pub phones: Vec<SimPhone>,
    pub tokens: Vec<SimToken>,
    pub u2ftokens: Vec<SimU2fToken>,
    pub webauthncredentials: Vec<SimWebauthnCredential>,
    pub bypass_codes: Vec<SimBypassCode>,
}

/// The whole tenant, serializable (also served at `GET /_sim/state`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// In creation order.
    pub users: Vec<SimUser>,
    /// In creation order.
    pub groups: Vec<SimGroup>,
    /// Every phone, including phones no user holds any more.
    pub phones: Vec<SimPhone>,
    /// Every token, including tokens no user holds any more.
    pub tokens: Vec<SimToken>,
}

/// Initial data for a test or the demo (also `POST /_sim/seed`, `--seed FILE`).
/// Seeding adds to the tenant; a user or group whose username/name exists is skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Seed {
    pub groups: Vec<SeedGroup>,
    pub users: Vec<SeedUser>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeedGroup {
    /// A fixed id (`DG…`); random when absent.
    pub group_id: Option<String>,
    pub name: String,
    pub desc: String,
}

/// A seeded user; devices are given as counts and generated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeedUser {
    /// A fixed id (`DU…`); random when absent.
    pub user_id: Option<String>,
    pub username: String,
    /// Filled into alias1, alias2, … (at most four are kept).
    pub aliases: Vec<String>,
    pub realname: String,
    pub firstname: String,
    pub lastname: String,
    pub email: String,
    /// Default `active`.
    pub status: Option<String>,
    pub notes: String,
    /// As if Duo's own directory sync manages the user: `last_directory_sync`
    /// (Unix seconds) in every answer about it.
    pub last_directory_sync: Option<i64>,
    /// Group names; missing groups are created.
    pub groups: Vec<String>,
    pub phones: u32,
    pub tokens: u32,
    pub webauthn: u32,
    pub u2f: u32,
    pub bypass_codes: u32,
}

/// Request parameters after verification (query, form body or JSON body).
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(pub(crate) Vec<(String, String)>);

impl Params {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What an operation answers: one object, or one page of a list.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    One(Value),
    Page { items: Vec<Value>, meta: PageMeta },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageMeta {
    pub(crate) total: usize,
    pub(crate) next_offset: Option<usize>,
    pub(crate) prev_offset: Option<usize>,
}

/// Reads `limit`/`offset` and returns the index range of the page. A limit
/// above `max` is clamped to `max`; zero, negative or non-numeric values are
/// refused with 40002 naming the parameter.
pub(crate) fn page_range(
    p: &Params,
    total: usize,
    default: usize,
    max: usize,
) -> Result<(std::ops::Range<usize>, PageMeta), ApiError> {
    let number = |name: &str| -> Result<Option<usize>, ApiError> {
        match p.get(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<usize>()
                .map(Some)
                .map_err(|_| ApiError::invalid(name)),
        }
    };
    let limit = match number("limit")? {
        None => default,
        Some(0) => return Err(ApiError::invalid("limit")),
        Some(n) => n.min(max),
    };
    let offset = number("offset")?.unwrap_or(0);
    let end = offset.saturating_add(limit);
    let meta = PageMeta {
        total,
        next_offset: (end < total).then_some(end),
        prev_offset: (offset > 0).then(|| offset.saturating_sub(limit).min(total)),
    };
    Ok((offset.min(total)..end.min(total), meta))
}

#[derive(Debug, Clone, Default)]
struct User {
    user_id: String,
    username: String,
    aliases: [Option<String>; 4],
    realname: String,
    firstname: String,
    lastname: String,
    email: String,
    status: String,
    notes: String,
    created: i64,
    last_directory_sync: Option<i64>,
    group_ids: Vec<String>,
    phone_ids: Vec<String>,
    token_ids: Vec<String>,
    u2f: Vec<SimU2fToken>,
    webauthn: Vec<SimWebauthnCredential>,
    bypass: Vec<SimBypassCode>,
}

impl User {
    fn answers_to(&self, name: &str) -> bool {
        same_name(&self.username, name) || self.aliases.iter().flatten().any(|a| same_name(a, name))
    }
}

/// Duo usernames and aliases are compared case-insensitively here. No
/// allocation: this runs over every user on each lookup, and the load
/// harness seeds 20 000 of them.
fn same_name(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// Device lists a user has; used by the list and delete routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceKind {
    Phones,
    Tokens,
    Webauthn,
    U2f,
    BypassCodes,
}

/// The simulated tenant.
#[derive(Debug)]
pub(crate) struct Tenant {
    users: Vec<User>,
    groups: Vec<SimGroup>,
    phones: Vec<SimPhone>,
    tokens: Vec<SimToken>,
    ids: HashSet<String>,
    rng: fastrand::Rng,
    /// Test hook: what the API changed that a snapshot no longer shows.
    history: History,
}

/// What the API did to users that a snapshot cannot show afterwards (a test
/// hook, not part of Duo's API): every user deleted, as it was just before,
/// every alias that was replaced by another value, and every phone or token
/// a user held that was detached from it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub deleted_users: Vec<SimUser>,
    pub alias_changes: Vec<AliasChange>,
    pub detached: Vec<Detached>,
}

/// A phone or token detached from a user that held it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detached {
    pub user_id: String,
    pub device_id: String,
}

/// An alias slot of one user going from one value to another (not from or
/// to empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasChange {
    pub user_id: String,
    pub username: String,
    /// 1-4.
    pub slot: usize,
    pub from: String,
    pub to: String,
}

impl Default for Tenant {
    fn default() -> Self {
        Self::new(fastrand::Rng::new())
    }
}

fn parse_bool(p: &Params, name: &str) -> Result<Option<bool>, ApiError> {
    match p.get(name).map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("true" | "1") => Ok(Some(true)),
        Some("false" | "0") => Ok(Some(false)),
        Some(_) => Err(ApiError::invalid(name)),
    }
}

fn parse_user_status(s: &str) -> Result<String, ApiError> {
    match s.to_ascii_lowercase().as_str() {
        st @ ("active" | "bypass" | "disabled") => Ok(st.to_owned()),
        _ => Err(ApiError::invalid("status")),
    }
}

fn parse_group_status(s: &str) -> Result<String, ApiError> {
    match s.to_ascii_lowercase().as_str() {
        "active" => Ok("Active".into()),
        "bypass" => Ok("Bypass".into()),
        "disabled" => Ok("Disabled".into()),
        _ => Err(ApiError::invalid("status")),
    }
}

fn json_list(p: &Params, name: &str) -> Result<Option<Vec<String>>, ApiError> {
    p.get(name)
        .map(|raw| serde_json::from_str::<Vec<String>>(raw).map_err(|_| ApiError::invalid(name)))
        .transpose()
}

fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl Tenant {
    pub(crate) fn new(rng: fastrand::Rng) -> Self {
        Self {
            users: Vec::new(),
            groups: Vec::new(),
            phones: Vec::new(),
            tokens: Vec::new(),
            ids: HashSet::new(),
            rng,
            history: History::default(),
        }
    }

    pub(crate) fn history(&self) -> History {
        self.history.clone()
    }

    /// A fresh id: `prefix` + uppercase alphanumerics up to 20 characters, unique.
    fn new_id(&mut self, prefix: &str) -> String {
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        loop {
            let mut id = prefix.to_owned();
            while id.len() < 20 {
                id.push(char::from(CHARS[self.rng.usize(..CHARS.len())]));
            }
            if self.ids.insert(id.clone()) {
                return id;
            }
        }
    }

    fn user_idx(&self, id: &str) -> Result<usize, ApiError> {
        self.users
            .iter()
            .position(|u| u.user_id == id)
            .ok_or_else(ApiError::not_found)
    }

    fn group(&self, id: &str) -> Option<&SimGroup> {
        self.groups.iter().find(|g| g.group_id == id)
    }

    fn user_json(&self, u: &User) -> Value {
        let aliases: Map<String, Value> = u
            .aliases
            .iter()
            .enumerate()
            .filter_map(|(i, a)| Some((format!("alias{}", i + 1), Value::String(a.clone()?))))
            .collect();
        let groups: Vec<Value> = u
            .group_ids
            .iter()
            .filter_map(|g| self.group(g))
            .map(to_json)
            .collect();
        let phones: Vec<Value> = self
            .user_phones(u)
            .iter()
            .map(|p| self.phone_json(p))
            .collect();
        let is_enrolled = !(u.phone_ids.is_empty()
            && u.token_ids.is_empty()
            && u.webauthn.is_empty()
            && u.u2f.is_empty());
        json!({
            "user_id": u.user_id, "username": u.username,
            "alias1": u.aliases[0], "alias2": u.aliases[1], "alias3": u.aliases[2], "alias4": u.aliases[3],
            "aliases": aliases,
            "realname": u.realname, "firstname": u.firstname, "lastname": u.lastname,
            "email": u.email, "status": u.status, "notes": u.notes, "created": u.created,
            "last_login": null, "last_directory_sync": u.last_directory_sync, "is_enrolled": is_enrolled,
            "groups": groups, "phones": phones,
            "tokens": self.user_tokens(u).iter().map(to_json).collect::<Vec<_>>(),
            "u2ftokens": u.u2f.iter().map(to_json).collect::<Vec<_>>(),
            "webauthncredentials": u.webauthn.iter().map(to_json).collect::<Vec<_>>(),
        })
    }

    fn phone_json(&self, p: &SimPhone) -> Value {
        let mut v = to_json(p);
        if let Value::Object(m) = &mut v {
            m.insert("extension".into(), "".into());
            m.insert(
                "capabilities".into(),
                json!(["auto", "push", "sms", "phone", "mobile_otp"]),
            );
            m.insert("sms_passcodes_sent".into(), false.into());
        }
        v
    }

    fn user_phones(&self, u: &User) -> Vec<SimPhone> {
        u.phone_ids
            .iter()
            .filter_map(|id| self.phones.iter().find(|p| &p.phone_id == id))
            .cloned()
            .collect()
    }

    fn user_tokens(&self, u: &User) -> Vec<SimToken> {
        u.token_ids
            .iter()
            .filter_map(|id| self.tokens.iter().find(|t| &t.token_id == id))
            .cloned()
            .collect()
    }

    fn sim_user(&self, u: &User) -> SimUser {
        SimUser {
            user_id: u.user_id.clone(),
            username: u.username.clone(),
            aliases: u.aliases.clone(),
            realname: u.realname.clone(),
            firstname: u.firstname.clone(),
            lastname: u.lastname.clone(),
            email: u.email.clone(),
            status: u.status.clone(),
            notes: u.notes.clone(),
            created: u.created,
            groups: u
                .group_ids
                .iter()
                .filter_map(|g| self.group(g))
                .map(|g| g.name.clone())
                .collect(),
            phones: self.user_phones(u),
            tokens: self.user_tokens(u),
            u2ftokens: u.u2f.clone(),
            webauthncredentials: u.webauthn.clone(),
            bypass_codes: u.bypass.clone(),
        }
    }

    // ---- test hooks ------------------------------------------------------

    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            users: self.users.iter().map(|u| self.sim_user(u)).collect(),
            groups: self.groups.clone(),
            phones: self.phones.clone(),
            tokens: self.tokens.clone(),
        }
    }

    pub(crate) fn user_by_username(&self, username: &str) -> Option<SimUser> {
        self.users
            .iter()
            .find(|u| same_name(&u.username, username))
            .map(|u| self.sim_user(u))
    }

    pub(crate) fn group_by_name(&self, name: &str) -> Option<SimGroup> {
        self.groups.iter().find(|g| g.name == name).cloned()
    }

    fn insert_group(&mut self, id: Option<String>, name: &str, desc: &str) -> String {
        let group_id = match id {
            Some(id) if self.ids.insert(id.clone()) => id,
            _ => self.new_id("DG"),
        };
        self.groups.push(SimGroup {
            group_id: group_id.clone(),
            name: name.to_owned(),
            desc: desc.to_owned(),
            status: "Active".into(),
            push_enabled: true,
            sms_enabled: true,
            voice_enabled: true,
            mobile_otp_enabled: true,
        });
        group_id
    }

    pub(crate) fn seed(&mut self, seed: Seed, now: i64) {
        // Names already taken, looked up by hash: the load harness seeds
        // 20,000 users and 5,000 groups, and a scan of every user per seeded
        // user took seconds.
        let mut group_ids: HashMap<String, String> = self
            .groups
            .iter()
            .map(|g| (g.name.clone(), g.group_id.clone()))
            .collect();
        let mut taken: HashSet<String> = self
            .users
            .iter()
            .flat_map(|u| std::iter::once(&u.username).chain(u.aliases.iter().flatten()))
            .map(|n| n.to_lowercase())
            .collect();
        for g in seed.groups {
            if let std::collections::hash_map::Entry::Vacant(slot) = group_ids.entry(g.name.clone())
            {
                slot.insert(self.insert_group(g.group_id, &g.name, &g.desc));
            }
        }
        for s in seed.users {
            if s.username.is_empty() || taken.contains(&s.username.to_lowercase()) {
                tracing::warn!(username = %s.username, "seed: user skipped (empty or existing username)");
                continue;
            }
            taken.insert(s.username.to_lowercase());
            for alias in s.aliases.iter().filter(|a| !a.is_empty()) {
                taken.insert(alias.to_lowercase());
            }
            let user_id = match s.user_id {
                Some(id) if self.ids.insert(id.clone()) => id,
                _ => self.new_id("DU"),
            };
            let mut u = User {
                user_id,
                username: s.username,
                realname: s.realname,
                firstname: s.firstname,
                lastname: s.lastname,
                email: s.email,
                status: s.status.unwrap_or_else(|| "active".into()),
                notes: s.notes,
                created: now,
                last_directory_sync: s.last_directory_sync,
                ..User::default()
            };
            // An empty string leaves the slot unset, as Duo's API treats it.
            for (slot, alias) in u.aliases.iter_mut().zip(s.aliases) {
                *slot = (!alias.is_empty()).then_some(alias);
            }
            for name in s.groups {
                let gid = match group_ids.get(&name) {
                    Some(id) => id.clone(),
                    None => {
                        let id = self.insert_group(None, &name, "");
                        group_ids.insert(name, id.clone());
                        id
                    }
                };
                if !u.group_ids.contains(&gid) {
                    u.group_ids.push(gid);
                }
            }
            for _ in 0..s.phones {
                let phone_id = self.new_id("DP");
                let number = format!("+1555{:07}", self.rng.u32(..10_000_000));
                let phone = SimPhone {
                    phone_id: phone_id.clone(),
                    number,
                    name: String::new(),
                    kind: "Mobile".into(),
                    platform: "Apple iOS".into(),
                    activated: true,
                };
                self.phones.push(phone);
                u.phone_ids.push(phone_id);
            }
            for _ in 0..s.tokens {
                let token_id = self.new_id("DH");
                let serial = format!("{:08}", self.rng.u32(..100_000_000));
                self.tokens.push(SimToken {
                    token_id: token_id.clone(),
                    kind: "h6".into(),
                    serial,
                });
                u.token_ids.push(token_id);
            }
            for i in 0..s.webauthn {
                let key = self.new_id("WA");
                u.webauthn.push(SimWebauthnCredential {
                    webauthnkey: key,
                    credential_name: format!("Security Key {}", i + 1),
                    date_added: now,
                });
            }
            for _ in 0..s.u2f {
                let registration_id = self.new_id("D2");
                u.u2f.push(SimU2fToken {
                    registration_id,
                    date_added: now,
                });
            }
            for _ in 0..s.bypass_codes {
                let bypass_code_id = self.new_id("DB");
                u.bypass.push(SimBypassCode {
                    bypass_code_id,
                    created: now,
                });
            }
            self.users.push(u);
        }
    }

    // ---- users -------------------------------------------------------------

    /// `GET /admin/v1/users`: every filter given narrows the list —
    /// `username` (one name, matching a username or an alias), `email`,
    /// `user_id_list` and `username_list` (JSON lists; each name of the
    /// latter matches a username or an alias, as `duo_client_python`'s
    /// `get_users_by_names` documents).
    pub(crate) fn list_users(&self, p: &Params) -> Result<Reply, ApiError> {
        let mut found: Vec<&User> = self.users.iter().collect();
        if let Some(name) = p.get("username") {
            found.retain(|u| u.answers_to(name));
        }
        if let Some(email) = p.get("email") {
            found.retain(|u| u.email.eq_ignore_ascii_case(email));
        }
        if let Some(ids) = json_list(p, "user_id_list")? {
            found.retain(|u| ids.contains(&u.user_id));
        }
        if let Some(names) = json_list(p, "username_list")? {
            found.retain(|u| names.iter().any(|n| u.answers_to(n)));
        }
        let (range, meta) = page_range(p, found.len(), 100, 300)?;
        let items = found[range].iter().map(|u| self.user_json(u)).collect();
        Ok(Reply::Page { items, meta })
    }

    pub(crate) fn get_user(&self, id: &str) -> Result<Reply, ApiError> {
        let i = self.user_idx(id)?;
        Ok(Reply::One(self.user_json(&self.users[i])))
    }

    /// Applies the writable fields of `p` to `u` (no conflict checks here).
    fn apply_user_fields(u: &mut User, p: &Params) -> Result<(), ApiError> {
        if let Some(name) = p.get("username") {
            if name.is_empty() {
                return Err(ApiError::invalid("username"));
            }
            u.username = name.to_owned();
        }
        for (field, slot) in [
            ("realname", &mut u.realname),
            ("firstname", &mut u.firstname),
            ("lastname", &mut u.lastname),
            ("email", &mut u.email),
            ("notes", &mut u.notes),
        ] {
            if let Some(v) = p.get(field) {
                *slot = v.to_owned();
            }
        }
        if let Some(st) = p.get("status") {
            u.status = parse_user_status(st)?;
        }
        for (i, slot) in u.aliases.iter_mut().enumerate() {
            if let Some(a) = p.get(&format!("alias{}", i + 1)) {
                *slot = (!a.is_empty()).then(|| a.to_owned());
            }
        }
        Ok(())
    }

    /// Refuses a username or alias that another user already answers to, and
    /// aliases that repeat each other or the user's own username.
    fn check_names(&self, u: &User) -> Result<(), ApiError> {
        let others = || self.users.iter().filter(|o| o.user_id != u.user_id);
        if others().any(|o| o.answers_to(&u.username)) {
            return Err(ApiError::invalid("username"));
        }
        let aliases: Vec<&String> = u.aliases.iter().flatten().collect();
        for (i, a) in aliases.iter().enumerate() {
            let repeated =
                same_name(a, &u.username) || aliases[..i].iter().any(|b| same_name(a, b));
            if repeated || others().any(|o| o.answers_to(a)) {
                return Err(ApiError::invalid("aliases"));
            }
        }
        Ok(())
    }

    pub(crate) fn create_user(&mut self, p: &Params, now: i64) -> Result<Reply, ApiError> {
        if p.get("username").is_none_or(str::is_empty) {
            return Err(ApiError::invalid("username"));
        }
        let mut u = User {
            status: "active".into(),
            created: now,
            ..User::default()
        };
        Self::apply_user_fields(&mut u, p)?;
        self.check_names(&u)?;
        u.user_id = self.new_id("DU");
        let reply = Reply::One(self.user_json(&u));
        self.users.push(u);
        Ok(reply)
    }

    pub(crate) fn modify_user(&mut self, id: &str, p: &Params) -> Result<Reply, ApiError> {
        let i = self.user_idx(id)?;
        let mut u = self.users[i].clone();
        Self::apply_user_fields(&mut u, p)?;
        self.check_names(&u)?;
        let reply = Reply::One(self.user_json(&u));
        for (slot, (before, after)) in self.users[i].aliases.iter().zip(&u.aliases).enumerate() {
            if let (Some(from), Some(to)) = (before, after)
                && from != to
            {
                self.history.alias_changes.push(AliasChange {
                    user_id: u.user_id.clone(),
                    username: u.username.clone(),
                    slot: slot + 1,
                    from: from.clone(),
                    to: to.clone(),
                });
            }
        }
        self.users[i] = u;
        Ok(reply)
    }

    /// Deleting an absent user succeeds ("If the user is already deleted, does
    /// nothing"). Phones and tokens are not deleted with the user.
    pub(crate) fn delete_user(&mut self, id: &str) -> Reply {
        if let Some(i) = self.users.iter().position(|u| u.user_id == id) {
            let gone = self.sim_user(&self.users[i]);
            self.history.deleted_users.push(gone);
            self.users.remove(i);
        }
        Reply::One(json!(""))
    }

    // ---- memberships ------------------------------------------------------

    pub(crate) fn user_groups(&self, id: &str, p: &Params) -> Result<Reply, ApiError> {
        let u = &self.users[self.user_idx(id)?];
        let groups: Vec<&SimGroup> = u.group_ids.iter().filter_map(|g| self.group(g)).collect();
        let (range, meta) = page_range(p, groups.len(), 100, 500)?;
        Ok(Reply::Page {
            items: groups[range].iter().map(to_json).collect(),
            meta,
        })
    }

    pub(crate) fn add_user_group(&mut self, id: &str, p: &Params) -> Result<Reply, ApiError> {
        let i = self.user_idx(id)?;
        let gid = p
            .get("group_id")
            .ok_or_else(|| ApiError::invalid("group_id"))?;
        if self.group(gid).is_none() {
            return Err(ApiError::invalid("group_id"));
        }
        let u = &mut self.users[i];
        if !u.group_ids.iter().any(|g| g == gid) {
            if u.group_ids.len() >= MAX_GROUPS_PER_USER {
                return Err(ApiError::internal(Some("too many groups for this user")));
            }
            u.group_ids.push(gid.to_owned());
        }
        Ok(Reply::One(json!("")))
    }

    /// 404 unless the user exists and is a member of the group.
    pub(crate) fn check_member(&self, id: &str, gid: &str) -> Result<(), ApiError> {
        let i = self.user_idx(id)?;
        if self.users[i].group_ids.iter().any(|g| g == gid) {
            Ok(())
        } else {
            Err(ApiError::not_found())
        }
    }

    pub(crate) fn remove_user_group(&mut self, id: &str, gid: &str) -> Result<Reply, ApiError> {
        let i = self.user_idx(id)?;
        self.users[i].group_ids.retain(|g| g != gid);
        Ok(Reply::One(json!("")))
    }

    // ---- groups -------------------------------------------------------------

    /// `GET /admin/v1/phones`: every phone, or with `number` the 0 or 1
    /// phones of that number.
    pub(crate) fn list_phones(&self, p: &Params) -> Result<Reply, ApiError> {
        let found: Vec<&SimPhone> = self
            .phones
            .iter()
            .filter(|ph| p.get("number").is_none_or(|n| ph.number == n))
            .collect();
        let (range, meta) = page_range(p, found.len(), 100, 500)?;
        Ok(Reply::Page {
            items: found[range].iter().map(|ph| self.phone_json(ph)).collect(),
            meta,
        })
    }

    /// `POST /admin/v1/phones`: `number` must be E.164 (`+` and 7-15
    /// digits; the simulator's rule, so a relay sending anything else is
    /// caught), `type` `mobile` or `landline` (any case), `name` optional.
    pub(crate) fn create_phone(&mut self, p: &Params) -> Result<Reply, ApiError> {
        let number = p.get("number").unwrap_or_default();
        let digits = number.strip_prefix('+').unwrap_or_default();
        if !(7..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::invalid("number"));
        }
        let kind = match p.get("type").map(str::to_ascii_lowercase).as_deref() {
            None | Some("mobile") => "Mobile",
            Some("landline") => "Landline",
            Some(_) => return Err(ApiError::invalid("type")),
        };
        let phone = SimPhone {
            phone_id: self.new_id("DP"),
            number: number.to_owned(),
            name: p.get("name").unwrap_or_default().to_owned(),
            kind: kind.into(),
            platform: "Unknown".into(),
            activated: false,
        };
        let json = self.phone_json(&phone);
        self.phones.push(phone);
        Ok(Reply::One(json))
    }

    /// `POST /admin/v1/users/{user_id}/phones` with `phone_id`.
    pub(crate) fn attach_phone(&mut self, id: &str, p: &Params) -> Result<Reply, ApiError> {
        let i = self.user_idx(id)?;
        let phone_id = p
            .get("phone_id")
            .filter(|pid| self.phones.iter().any(|ph| ph.phone_id == *pid))
            .ok_or_else(|| ApiError::invalid("phone_id"))?
            .to_owned();
        let u = &mut self.users[i];
        if !u.phone_ids.contains(&phone_id) {
            if u.phone_ids.len() >= 100 {
                return Err(ApiError::internal(Some("too many phones for this user")));
            }
            u.phone_ids.push(phone_id);
        }
        Ok(Reply::One(json!("")))
    }

    pub(crate) fn list_groups(&self, p: &Params) -> Result<Reply, ApiError> {
        let mut found: Vec<&SimGroup> = self.groups.iter().collect();
        if let Some(ids) = json_list(p, "group_id_list")? {
            found.retain(|g| ids.contains(&g.group_id));
        }
        let (range, meta) = page_range(p, found.len(), 100, 100)?;
        Ok(Reply::Page {
            items: found[range].iter().map(to_json).collect(),
            meta,
        })
    }

    pub(crate) fn get_group(&self, gid: &str) -> Result<Reply, ApiError> {
        self.group(gid)
            .map(|g| Reply::One(to_json(g)))
            .ok_or_else(ApiError::not_found)
    }

    fn apply_group_fields(&self, g: &mut SimGroup, p: &Params) -> Result<(), ApiError> {
        if let Some(name) = p.get("name") {
            // Decision: duplicate group names are refused (40002 "name"), so a
            // relay that creates a group twice is caught in tests.
            if name.is_empty()
                || self
                    .groups
                    .iter()
                    .any(|o| o.name == name && o.group_id != g.group_id)
            {
                return Err(ApiError::invalid("name"));
            }
            g.name = name.to_owned();
        }
        if let Some(desc) = p.get("desc") {
            g.desc = desc.to_owned();
        }
        if let Some(st) = p.get("status") {
            g.status = parse_group_status(st)?;
        }
        for (field, slot) in [
            ("push_enabled", &mut g.push_enabled),
            ("sms_enabled", &mut g.sms_enabled),
            ("voice_enabled", &mut g.voice_enabled),
            ("mobile_otp_enabled", &mut g.mobile_otp_enabled),
        ] {
            if let Some(b) = parse_bool(p, field)? {
                *slot = b;
            }
        }
        Ok(())
    }

    pub(crate) fn create_group(&mut self, p: &Params) -> Result<Reply, ApiError> {
        if p.get("name").is_none_or(str::is_empty) {
            return Err(ApiError::invalid("name"));
        }
        let mut g = SimGroup {
            group_id: String::new(),
            name: String::new(),
            desc: String::new(),
            status: "Active".into(),
            push_enabled: true,
            sms_enabled: true,
            voice_enabled: true,
            mobile_otp_enabled: true,
        };
        self.apply_group_fields(&mut g, p)?;
        g.group_id = self.new_id("DG");
        let reply = Reply::One(to_json(&g));
        self.groups.push(g);
        Ok(reply)
    }

    pub(crate) fn modify_group(&mut self, gid: &str, p: &Params) -> Result<Reply, ApiError> {
        let i = self
            .groups
            .iter()
            .position(|g| g.group_id == gid)
            .ok_or_else(ApiError::not_found)?;
        let mut g = self.groups[i].clone();
        self.apply_group_fields(&mut g, p)?;
        let reply = Reply::One(to_json(&g));
        self.groups[i] = g;
        Ok(reply)
    }

    /// Removes the group and every membership in it; absent → still OK.
    pub(crate) fn delete_group(&mut self, gid: &str) -> Reply {
        self.groups.retain(|g| g.group_id != gid);
        for u in &mut self.users {
            u.group_ids.retain(|g| g != gid);
        }
        Reply::One(json!(""))
    }

    pub(crate) fn group_users(&self, gid: &str, p: &Params) -> Result<Reply, ApiError> {
        if self.group(gid).is_none() {
            return Err(ApiError::not_found());
        }
        let members: Vec<&User> = self
            .users
            .iter()
            .filter(|u| u.group_ids.iter().any(|g| g == gid))
            .collect();
        let (range, meta) = page_range(p, members.len(), 100, 500)?;
        let items = members[range]
            .iter()
            .map(|u| json!({"user_id": u.user_id, "username": u.username}))
            .collect();
        Ok(Reply::Page { items, meta })
    }

    // ---- devices -------------------------------------------------------------

    pub(crate) fn user_devices(
        &self,
        id: &str,
        kind: DeviceKind,
        p: &Params,
    ) -> Result<Reply, ApiError> {
        let u = &self.users[self.user_idx(id)?];
        let all: Vec<Value> = match kind {
            DeviceKind::Phones => self
                .user_phones(u)
                .iter()
                .map(|ph| self.phone_json(ph))
                .collect(),
            DeviceKind::Tokens => self.user_tokens(u).iter().map(to_json).collect(),
            DeviceKind::Webauthn => u.webauthn.iter().map(to_json).collect(),
            DeviceKind::U2f => u.u2f.iter().map(to_json).collect(),
            DeviceKind::BypassCodes => u.bypass.iter().map(to_json).collect(),
        };
        let (range, meta) = page_range(p, all.len(), 100, 500)?;
        Ok(Reply::Page {
            items: all[range].to_vec(),
            meta,
        })
    }

    /// 404 unless the user exists and holds this phone or token.
    pub(crate) fn check_holds(
        &self,
        id: &str,
        kind: DeviceKind,
        device_id: &str,
    ) -> Result<(), ApiError> {
        let u = &self.users[self.user_idx(id)?];
        let held = match kind {
            DeviceKind::Phones => &u.phone_ids,
            _ => &u.token_ids,
        };
        if held.iter().any(|d| d == device_id) {
            Ok(())
        } else {
            Err(ApiError::not_found())
        }
    }

    /// Disassociates a phone or token from a user. The user must exist and the
    /// device must exist (else 404); a device the user does not hold is a no-op.
    pub(crate) fn disassociate(
        &mut self,
        id: &str,
        kind: DeviceKind,
        device_id: &str,
    ) -> Result<Reply, ApiError> {
        let i = self.user_idx(id)?;
        let (exists, list) = match kind {
            DeviceKind::Phones => (
                self.phones.iter().any(|p| p.phone_id == device_id),
                &mut self.users[i].phone_ids,
            ),
            _ => (
                self.tokens.iter().any(|t| t.token_id == device_id),
                &mut self.users[i].token_ids,
            ),
        };
        if !exists {
            return Err(ApiError::not_found());
        }
        let held = list.len();
        list.retain(|d| d != device_id);
        if list.len() < held {
            self.history.detached.push(Detached {
                user_id: id.to_owned(),
                device_id: device_id.to_owned(),
            });
        }
        Ok(Reply::One(json!("")))
    }

    /// Deletes a device everywhere (`DELETE /admin/v1/phones/{id}` and the
    /// webauthn, u2f and bypass-code equivalents); absent → 404.
    pub(crate) fn delete_device(
        &mut self,
        kind: DeviceKind,
        device_id: &str,
    ) -> Result<Reply, ApiError> {
        let before = self.device_count();
        match kind {
            DeviceKind::Phones => {
                self.phones.retain(|p| p.phone_id != device_id);
                self.users
                    .iter_mut()
                    .for_each(|u| u.phone_ids.retain(|d| d != device_id));
            }
            DeviceKind::Tokens => {
                self.tokens.retain(|t| t.token_id != device_id);
                self.users
                    .iter_mut()
                    .for_each(|u| u.token_ids.retain(|d| d != device_id));
            }
            DeviceKind::Webauthn => self
                .users
                .iter_mut()
                .for_each(|u| u.webauthn.retain(|w| w.webauthnkey != device_id)),
            DeviceKind::U2f => self
                .users
                .iter_mut()
                .for_each(|u| u.u2f.retain(|t| t.registration_id != device_id)),
            DeviceKind::BypassCodes => self
                .users
                .iter_mut()
                .for_each(|u| u.bypass.retain(|b| b.bypass_code_id != device_id)),
        }
        if self.device_count() == before {
            return Err(ApiError::not_found());
        }
        Ok(Reply::One(json!("")))
    }

    fn device_count(&self) -> usize {
        self.phones.len()
            + self.tokens.len()
            + self
                .users
                .iter()
                .map(|u| u.webauthn.len() + u.u2f.len() + u.bypass.len())
                .sum::<usize>()
    }

    /// `GET /admin/v1/info/summary`, with Duo's field names.
    pub(crate) fn summary(&self) -> Reply {
        Reply::One(json!({
            "admin_count": 1,
            "integration_count": 1,
            "telephony_credits_remaining": 0,
            "user_count": self.users.len(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        )
    }

    fn one(r: Result<Reply, ApiError>) -> Value {
        match r.expect("ok") {
            Reply::One(v) => v,
            Reply::Page { .. } => panic!("expected one object"),
        }
    }

    fn page(r: Result<Reply, ApiError>) -> (Vec<Value>, PageMeta) {
        match r.expect("ok") {
            Reply::Page { items, meta } => (items, meta),
            Reply::One(_) => panic!("expected a page"),
        }
    }

    fn tenant() -> Tenant {
        Tenant::new(fastrand::Rng::with_seed(7))
    }

    #[test]
    fn paging_math() {
        let p = params(&[]);
        let (r, m) = page_range(&p, 250, 100, 300).expect("ok");
        assert_eq!((r, m.next_offset, m.prev_offset), (0..100, Some(100), None));
        let p = params(&[("limit", "100"), ("offset", "200")]);
        let (r, m) = page_range(&p, 250, 100, 300).expect("ok");
        assert_eq!(
            (r, m.next_offset, m.prev_offset),
            (200..250, None, Some(100))
        );
        let p = params(&[("limit", "1000"), ("offset", "18446744073709551615")]);
        let (r, m) = page_range(&p, 5, 100, 300).expect("ok");
        assert_eq!((r, m.next_offset, m.prev_offset), (5..5, None, Some(5)));
        for (k, v) in [
            ("limit", "-1"),
            ("limit", "0"),
            ("limit", "x"),
            ("offset", "-5"),
            ("offset", "1e3"),
        ] {
            assert_eq!(
                page_range(&params(&[(k, v)]), 5, 100, 300).map(|_| ()),
                Err(ApiError::invalid(k))
            );
        }
    }

    #[test]
    fn user_lifecycle_and_name_conflicts() {
        let mut t = tenant();
        let u = one(t.create_user(
            &params(&[("username", "ann"), ("alias1", "okta-1"), ("email", "a@x")]),
            5,
        ));
        let id = u["user_id"].as_str().expect("id").to_owned();
        assert!(id.starts_with("DU") && id.len() == 20);
        assert_eq!(
            (
                u["alias1"].as_str(),
                u["alias2"].is_null(),
                u["created"].as_i64()
            ),
            (Some("okta-1"), true, Some(5))
        );
        assert_eq!(u["aliases"], json!({"alias1": "okta-1"}));
        for dup in [("username", "ANN"), ("username", "okta-1")] {
            assert_eq!(
                t.create_user(&params(&[dup]), 0).map(|_| ()),
                Err(ApiError::invalid("username"))
            );
        }
        let clash = params(&[("username", "bob"), ("alias2", "ann")]);
        assert_eq!(
            t.create_user(&clash, 0).map(|_| ()),
            Err(ApiError::invalid("aliases"))
        );
        assert_eq!(
            t.create_user(&params(&[("username", "")]), 0).map(|_| ()),
            Err(ApiError::invalid("username"))
        );
        let bad = params(&[("username", "c"), ("status", "locked out")]);
        assert_eq!(
            t.create_user(&bad, 0).map(|_| ()),
            Err(ApiError::invalid("status"))
        );
        let (found, _) = page(t.list_users(&params(&[("username", "okta-1")])));
        assert_eq!(found.len(), 1);
        // username_list (a JSON list, as Duo's official clients send it):
        // each name matches a username or an alias; a user matching two
        // names comes back once.
        let list = params(&[("username_list", r#"["ANN", "okta-1", "nobody"]"#)]);
        let (found, _) = page(t.list_users(&list));
        assert_eq!(found.len(), 1);
        assert_eq!(
            t.list_users(&params(&[("username_list", "ann")]))
                .map(|_| ()),
            Err(ApiError::invalid("username_list"))
        );
        let m = one(t.modify_user(
            &id,
            &params(&[("username", "anna"), ("alias1", ""), ("status", "disabled")]),
        ));
        assert_eq!(
            (
                m["username"].as_str(),
                m["alias1"].is_null(),
                m["status"].as_str()
            ),
            (Some("anna"), true, Some("disabled"))
        );
        assert_eq!(
            t.modify_user("DUNOPE", &params(&[])).map(|_| ()),
            Err(ApiError::not_found())
        );
        t.delete_user(&id);
        t.delete_user(&id);
        assert_eq!(t.get_user(&id).map(|_| ()), Err(ApiError::not_found()));
        // The history keeps what a snapshot no longer shows: the user as it
        // was when deleted (once), and an alias replaced by another value.
        let bob = one(t.create_user(&params(&[("username", "bob2")]), 0))["user_id"]
            .as_str()
            .expect("id")
            .to_owned();
        one(t.modify_user(&bob, &params(&[("alias4", "okta:1")])));
        one(t.modify_user(&bob, &params(&[("alias4", "okta:2")])));
        one(t.modify_user(&bob, &params(&[("alias4", "")])));
        let history = t.history();
        assert_eq!(
            history
                .deleted_users
                .iter()
                .map(|u| u.username.as_str())
                .collect::<Vec<_>>(),
            ["anna"]
        );
        assert_eq!(
            history.alias_changes,
            [AliasChange {
                user_id: bob.clone(),
                username: "bob2".into(),
                slot: 4,
                from: "okta:1".into(),
                to: "okta:2".into(),
            }]
        );
    }

    #[test]
    fn memberships_groups_and_the_100_group_limit() {
        let mut t = tenant();
        let uid = one(t.create_user(&params(&[("username", "u")]), 0))["user_id"]
            .as_str()
            .expect("id")
            .to_owned();
        let mut gids = Vec::new();
        for i in 0..=MAX_GROUPS_PER_USER {
            let g = one(t.create_group(&params(&[("name", &format!("g{i}"))])));
            gids.push(g["group_id"].as_str().expect("id").to_owned());
        }
        assert_eq!(
            t.create_group(&params(&[("name", "g0")])).map(|_| ()),
            Err(ApiError::invalid("name"))
        );
        for gid in &gids[..MAX_GROUPS_PER_USER] {
            one(t.add_user_group(&uid, &params(&[("group_id", gid)])));
        }
        one(t.add_user_group(&uid, &params(&[("group_id", &gids[0])])));
        let over = t.add_user_group(&uid, &params(&[("group_id", &gids[MAX_GROUPS_PER_USER])]));
        assert_eq!(
            over.map(|_| ()).map_err(|e| (e.status, e.code)),
            Err((500, 50001))
        );
        let unknown = t.add_user_group(&uid, &params(&[("group_id", "DGNOPE")]));
        assert_eq!(unknown.map(|_| ()), Err(ApiError::invalid("group_id")));
        let (items, meta) =
            page(t.user_groups(&uid, &params(&[("limit", "30"), ("offset", "90")])));
        assert_eq!((items.len(), meta.total, meta.next_offset), (10, 100, None));
        t.delete_group(&gids[0]);
        one(t.remove_user_group(&uid, &gids[1]));
        one(t.remove_user_group(&uid, &gids[1]));
        assert_eq!(t.snapshot().users[0].groups.len(), 98);
        let (members, _) = page(t.group_users(&gids[2], &params(&[])));
        assert_eq!(members, vec![json!({"user_id": uid, "username": "u"})]);
    }

    #[test]
    fn names_compare_case_insensitively_including_unicode() {
        assert!(same_name("Jane.Doe@Example.com", "jane.doe@example.com"));
        assert!(same_name("ZOË", "zoë"));
        assert!(!same_name("zoe", "zoë"));
        assert!(!same_name("a", "ab"));
    }

    #[test]
    fn empty_seed_aliases_leave_the_slot_unset() {
        // Regression (found by relay-bench): seeding aliases ["", "", "", x]
        // stored three empty aliases, which then "repeated each other" and
        // made every later modify of that user fail with 40002.
        let mut t = Tenant::default();
        t.seed(
            Seed {
                groups: vec![],
                users: vec![SeedUser {
                    username: "u".into(),
                    aliases: vec![String::new(), String::new(), String::new(), "okta:1".into()],
                    ..SeedUser::default()
                }],
            },
            0,
        );
        let id = t.users[0].user_id.clone();
        assert_eq!(
            t.users[0].aliases,
            [None, None, None, Some("okta:1".to_owned())]
        );
        assert!(
            t.modify_user(&id, &params(&[("status", "disabled")]))
                .is_ok()
        );
    }

    #[test]
    fn seeded_devices_can_be_listed_and_deleted() {
        let mut t = tenant();
        let seed: Seed =
            serde_json::from_value(json!({"users": [{"username": "d", "groups": ["ops"],
            "phones": 2, "tokens": 1, "webauthn": 1, "u2f": 1, "bypass_codes": 3}]}))
            .expect("seed json");
        t.seed(seed.clone(), 9);
        t.seed(seed, 9);
        let snap = t.snapshot();
        assert_eq!((snap.users.len(), snap.groups.len()), (1, 1));
        let u = &snap.users[0];
        assert_eq!(
            (u.phones.len(), u.bypass_codes.len(), u.groups.clone()),
            (2, 3, vec!["ops".to_owned()])
        );
        assert_eq!(one(t.get_user(&u.user_id))["is_enrolled"], json!(true));
        let (phones, _) = page(t.user_devices(&u.user_id, DeviceKind::Phones, &params(&[])));
        assert_eq!(
            phones[0]["phone_id"].as_str(),
            Some(u.phones[0].phone_id.as_str())
        );
        one(t.disassociate(&u.user_id, DeviceKind::Phones, &u.phones[0].phone_id));
        // Again: a no-op, and not a second detach in the history.
        one(t.disassociate(&u.user_id, DeviceKind::Phones, &u.phones[0].phone_id));
        assert_eq!(t.history().detached.len(), 1);
        one(t.delete_device(DeviceKind::Phones, &u.phones[1].phone_id));
        one(t.disassociate(&u.user_id, DeviceKind::Tokens, &u.tokens[0].token_id));
        one(t.delete_device(DeviceKind::Webauthn, &u.webauthncredentials[0].webauthnkey));
        one(t.delete_device(DeviceKind::U2f, &u.u2ftokens[0].registration_id));
        for b in &u.bypass_codes {
            one(t.delete_device(DeviceKind::BypassCodes, &b.bypass_code_id));
        }
        assert_eq!(
            t.delete_device(DeviceKind::Phones, "DPNOPE").map(|_| ()),
            Err(ApiError::not_found())
        );
        let after = t.user_by_username("D").expect("user");
        assert!(
            after.phones.is_empty() && after.tokens.is_empty() && after.bypass_codes.is_empty()
        );
        assert_eq!(one(t.get_user(&u.user_id))["is_enrolled"], json!(false));
        // A disassociated phone still exists in the tenant.
        assert_eq!(t.snapshot().phones.len(), 1);
    }
}

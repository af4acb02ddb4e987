//! Attribute mapping (issue 17 item 1): which IdP attribute becomes which
//! Duo field, configured once and applied on every path — events,
//! reconcile, catch-up (which runs events through the same pipeline).
//!
//! Each IdP declares the attributes it offers ([`AttributeSpec`], in its
//! `source::IdpSpec`): named ones (Okta `login`, Auth0 `email`…) at a path
//! of the user object its API returns, and free paths under declared
//! prefixes (Okta `profile.<attr>`, Auth0 `app_metadata.<path>`). A new
//! source (Entra ID) declares its own and needs nothing here.
//!
//! Settings, per Duo field (`USERNAME`, `REALNAME`, `FIRSTNAME`,
//! `LASTNAME`, `EMAIL`, `ALIAS1`..`ALIAS3`):
//! - `DUO_<FIELD>_ATTRIBUTE`: `email`, `profile.employeeNumber`, or per IdP
//!   `okta:profile.employeeNumber,auth0:app_metadata.duo_user`. An entry
//!   without an IdP applies to every IdP that offers that attribute;
//! - `DUO_<FIELD>_LOWERCASE`, `DUO_<FIELD>_STRIP_DOMAIN` (`true`/`false`;
//!   username, email (lower-case only) and aliases).
//!
//! Unset, a field keeps what the relay always did (Okta `login`, Auth0
//! `email`; the names and email the sources carry), so a relay without these
//! settings behaves exactly as before. Alias slot 4 stays the relay's IdP id
//! (`okta:00u…`, [`crate::apply::IDP_ALIAS_SLOT`]); a mapped alias that
//! looks like an IdP id is dropped, as it would bind the account to
//! another identity ([`crate::identity`]).

use std::fmt;

use serde_json::Value;

use crate::config::{ConfigError, RawConfig, optional};
use crate::event::{IdpKind, UserProfile};

pub use crate::attributes::AttributeSpec;

/// A Duo user field the mapping can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuoField {
    Username,
    Realname,
    Firstname,
    Lastname,
    Email,
    Alias1,
    Alias2,
    Alias3,
    /// The user's mobile phone (pre-provisioned, `crate::phone`).
    Phone,
}

impl DuoField {
    pub const ALL: [DuoField; 9] = [
        Self::Username,
        Self::Realname,
        Self::Firstname,
        Self::Lastname,
        Self::Email,
        Self::Alias1,
        Self::Alias2,
        Self::Alias3,
        Self::Phone,
    ];

    /// Duo's name of the field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::Realname => "realname",
            Self::Firstname => "firstname",
            Self::Lastname => "lastname",
            Self::Email => "email",
            Self::Alias1 => "alias1",
            Self::Alias2 => "alias2",
            Self::Alias3 => "alias3",
            Self::Phone => "phone",
        }
    }

    /// `(ATTRIBUTE, LOWERCASE, STRIP_DOMAIN)` variables; `None` where the
    /// transform makes no sense for the field.
    fn variables(self) -> (&'static str, Option<&'static str>, Option<&'static str>) {
        match self {
            Self::Username => (
                "DUO_USERNAME_ATTRIBUTE",
                Some("DUO_USERNAME_LOWERCASE"),
                Some("DUO_USERNAME_STRIP_DOMAIN"),
            ),
            Self::Realname => ("DUO_REALNAME_ATTRIBUTE", None, None),
            Self::Firstname => ("DUO_FIRSTNAME_ATTRIBUTE", None, None),
            Self::Lastname => ("DUO_LASTNAME_ATTRIBUTE", None, None),
            Self::Email => ("DUO_EMAIL_ATTRIBUTE", Some("DUO_EMAIL_LOWERCASE"), None),
            Self::Alias1 => (
                "DUO_ALIAS1_ATTRIBUTE",
                Some("DUO_ALIAS1_LOWERCASE"),
                Some("DUO_ALIAS1_STRIP_DOMAIN"),
            ),
            Self::Alias2 => (
                "DUO_ALIAS2_ATTRIBUTE",
                Some("DUO_ALIAS2_LOWERCASE"),
                Some("DUO_ALIAS2_STRIP_DOMAIN"),
            ),
            Self::Alias3 => (
                "DUO_ALIAS3_ATTRIBUTE",
                Some("DUO_ALIAS3_LOWERCASE"),
                Some("DUO_ALIAS3_STRIP_DOMAIN"),
            ),
            Self::Phone => ("DUO_PHONE_ATTRIBUTE", None, None),
        }
    }

    /// The variable naming the field's attribute (for messages).
    pub fn attribute_variable(self) -> &'static str {
        self.variables().0
    }

    fn alias_index(self) -> Option<usize> {
        match self {
            Self::Alias1 => Some(0),
            Self::Alias2 => Some(1),
            Self::Alias3 => Some(2),
            _ => None,
        }
    }
}

/// An attribute as written in a setting, and its JSON path in the IdP's
/// user object.
pub type Attribute = (String, Vec<String>);

/// How one Duo field is filled for one IdP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldRule {
    /// The attribute as written (`profile.employeeNumber`) and its JSON
    /// path; `None`: the value the relay always used.
    pub attribute: Option<Attribute>,
    pub lowercase: bool,
    pub strip_domain: bool,
}

impl FieldRule {
    fn is_default(&self) -> bool {
        self.attribute.is_none() && !self.lowercase && !self.strip_domain
    }

    fn transform(&self, value: &str) -> String {
        let mut value = value.trim();
        if self.strip_domain {
            // `jane@example.com` → `jane`; `EXAMPLE\jane` → `jane`.
            if let Some((local, _)) = value.rsplit_once('@') {
                value = local;
            }
            if let Some((_, user)) = value.rsplit_once('\\') {
                value = user;
            }
        }
        if self.lowercase {
            value.to_lowercase()
        } else {
            value.to_owned()
        }
    }
}

/// A mapped attribute the relay does not have for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub field: DuoField,
    pub attribute: String,
    /// The source read carried the whole user object: the user really
    /// lacks the attribute (else the event did not carry it).
    pub user_lacks_it: bool,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.user_lacks_it {
            write!(
                f,
                "the user has no `{}` (the Duo {} per {})",
                self.attribute,
                self.field.as_str(),
                self.field.attribute_variable()
            )
        } else {
            write!(
                f,
                "the event does not carry `{}` (the Duo {} per {})",
                self.attribute,
                self.field.as_str(),
                self.field.attribute_variable()
            )
        }
    }
}

/// The mapping of one IdP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdpMapping {
    /// Per [`DuoField::ALL`], in order.
    pub rules: [FieldRule; 9],
    /// The calling code of national phone numbers
    /// (`DUO_PHONE_DEFAULT_REGION`, [`crate::phone`]).
    pub phone_code: Option<String>,
}

impl IdpMapping {
    /// No setting: the relay's fixed fields, untouched.
    pub fn is_default(&self) -> bool {
        self.rules.iter().all(FieldRule::is_default)
    }

    pub fn rule(&self, field: DuoField) -> &FieldRule {
        &self.rules[field as usize]
    }

    /// Whether the username comes from an attribute other than the one an
    /// event's login holds (so an event carrying only the login cannot say
    /// what the Duo username is).
    pub fn username_needs_attributes(&self, spec: &AttributeSpec) -> bool {
        self.rule(DuoField::Username)
            .attribute
            .as_ref()
            .is_some_and(|(name, _)| name != spec.login)
    }

    /// The Duo username an event's login stands for: the login,
    /// transformed; `None` when the username comes from another attribute.
    pub fn username_of_login(&self, spec: &AttributeSpec, login: &str) -> Option<String> {
        if self.username_needs_attributes(spec) {
            return None;
        }
        Some(self.rule(DuoField::Username).transform(login))
    }

    /// `profile` (the fields as the relay always read them, plus the user
    /// object in `profile.attributes` when the read carried it) with the
    /// mapping applied. A field whose attribute is not there is left unset
    /// (Duo keeps what it has); for the username that is an error.
    pub fn apply(
        &self,
        spec: &AttributeSpec,
        profile: &UserProfile,
    ) -> Result<UserProfile, Missing> {
        match self.apply_lenient(spec, profile) {
            (_, Some(missing)) => Err(missing),
            (out, None) => Ok(out),
        }
    }

    /// [`Self::apply`], answering the profile even when the username is
    /// missing (`login` unset then) and what is missing.
    pub fn apply_lenient(
        &self,
        spec: &AttributeSpec,
        profile: &UserProfile,
    ) -> (UserProfile, Option<Missing>) {
        let mut out = profile.clone();
        let mut missing = None;
        for field in DuoField::ALL {
            let rule = self.rule(field);
            if rule.is_default() {
                continue;
            }
            let current = match field {
                DuoField::Username => profile.login.clone(),
                DuoField::Realname => profile.display_name.clone(),
                DuoField::Firstname => profile.first_name.clone(),
                DuoField::Lastname => profile.last_name.clone(),
                DuoField::Email => profile.email.clone(),
                DuoField::Alias1 | DuoField::Alias2 | DuoField::Alias3 => None,
                DuoField::Phone => profile.phone.clone(),
            };
            let value = match &rule.attribute {
                None => current,
                Some((name, _)) if name == spec.login && profile.attributes.is_none() => {
                    profile.login.clone()
                }
                Some((_, path)) => match &profile.attributes {
                    Some(object) => text_at(object, path),
                    None => None,
                },
            };
            let value = value.map(|v| rule.transform(&v)).filter(|v| !v.is_empty());
            if field == DuoField::Username && value.is_none() {
                missing = Some(Missing {
                    field,
                    attribute: rule
                        .attribute
                        .as_ref()
                        .map_or_else(|| spec.login.to_owned(), |(n, _)| n.clone()),
                    user_lacks_it: profile.attributes.is_some(),
                });
            }
            match field {
                DuoField::Username => out.login = value,
                DuoField::Realname => out.display_name = value,
                DuoField::Firstname => out.first_name = value,
                DuoField::Lastname => out.last_name = value,
                DuoField::Email => out.email = value,
                DuoField::Phone => {
                    out.phone = value.and_then(|raw| {
                        crate::phone::to_e164(&raw, self.phone_code.as_deref())
                            .map_err(|why| {
                                tracing::warn!(
                                    reason = why,
                                    "mapped phone number not provisioned (DUO_PHONE_ATTRIBUTE): {why}"
                                );
                            })
                            .ok()
                    });
                }
                DuoField::Alias1 | DuoField::Alias2 | DuoField::Alias3 => {
                    if let Some(i) = field.alias_index() {
                        out.aliases[i] = value;
                    }
                }
            }
        }
        drop_unusable_aliases(&mut out);
        (out, missing)
    }
}

/// Aliases Duo would refuse or the relay must not write: one that repeats
/// the username or an earlier alias (Duo refuses), or looks like an IdP id
/// (it would bind the account to that identity).
fn drop_unusable_aliases(profile: &mut UserProfile) {
    let username = profile.login.clone();
    let mut kept: Vec<String> = Vec::new();
    for slot in &mut profile.aliases {
        let Some(alias) = slot.as_deref() else {
            continue;
        };
        let repeats = username
            .as_deref()
            .is_some_and(|u| crate::identity::same_name(u, alias))
            || kept.iter().any(|k| crate::identity::same_name(k, alias));
        if repeats || crate::identity::is_idp_id(alias) {
            tracing::warn!(
                alias_bytes = alias.len(),
                "mapped alias dropped: it repeats the username or another alias, or looks like an IdP id"
            );
            *slot = None;
        } else {
            kept.push(alias.to_owned());
        }
    }
}

/// A string (or number) at `path` of a JSON object.
fn text_at(object: &Value, path: &[String]) -> Option<String> {
    let mut at = object;
    for part in path {
        at = at.get(part)?;
    }
    match at {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The mapping of every IdP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping {
    /// Per [`IdpKind::ALL`], in order.
    per_idp: Vec<IdpMapping>,
    /// `DUO_PHONE_READD`: provision the mapped phone on an account that has
    /// none of the relay's (after an MFA reset removed it, or an account
    /// the relay did not create). Default `false`.
    pub phone_readd: bool,
}

impl Mapping {
    /// From the `DUO_<FIELD>_*` variables, validated against what each IdP
    /// offers; every error names the variable.
    pub fn from_config(raw: &RawConfig) -> Result<Self, ConfigError> {
        let phone_code = crate::phone::default_code(raw)?;
        let mut per_idp = vec![
            IdpMapping {
                phone_code,
                ..IdpMapping::default()
            };
            IdpKind::ALL.len()
        ];
        for field in DuoField::ALL {
            let (attribute_var, lowercase_var, strip_var) = field.variables();
            let lowercase = flag(raw, lowercase_var)?;
            let strip_domain = flag(raw, strip_var)?;
            let attributes = match optional(raw, attribute_var) {
                Some(value) => parse_attribute(attribute_var, value)?,
                None => vec![None; IdpKind::ALL.len()],
            };
            for (i, attribute) in attributes.into_iter().enumerate() {
                let rule = &mut per_idp[i].rules[field as usize];
                rule.attribute = attribute;
                rule.lowercase = lowercase;
                rule.strip_domain = strip_domain;
            }
            if field.alias_index().is_some()
                && (lowercase || strip_domain)
                && optional(raw, attribute_var).is_none()
            {
                return Err(ConfigError::new(
                    lowercase_var
                        .filter(|_| lowercase)
                        .or(strip_var)
                        .unwrap_or(attribute_var),
                    format!(
                        "is set but {attribute_var} is not: name the attribute the alias comes from"
                    ),
                ));
            }
        }
        let phone_readd = flag(raw, Some("DUO_PHONE_READD"))?;
        Ok(Self {
            per_idp,
            phone_readd,
        })
    }

    /// The mapping of `idp`.
    pub fn of(&self, idp: IdpKind) -> &IdpMapping {
        static DEFAULT: std::sync::OnceLock<IdpMapping> = std::sync::OnceLock::new();
        self.per_idp
            .get(idp as usize)
            .unwrap_or_else(|| DEFAULT.get_or_init(IdpMapping::default))
    }

    /// No setting for any IdP.
    pub fn is_default(&self) -> bool {
        self.per_idp.iter().all(IdpMapping::is_default)
    }
}

/// The attributes an IdP offers (its registration in `crate::source`).
pub fn spec(idp: IdpKind) -> &'static AttributeSpec {
    crate::source::idp(idp).attributes
}

fn flag(raw: &RawConfig, variable: Option<&'static str>) -> Result<bool, ConfigError> {
    variable.map_or(Ok(false), |variable| crate::config::flag(raw, variable))
}

/// `attr` or `idp:attr,idp:attr` → per IdP (in [`IdpKind::ALL`] order) the
/// attribute and its path, `None` where the IdP keeps its default.
fn parse_attribute(
    variable: &'static str,
    value: &str,
) -> Result<Vec<Option<Attribute>>, ConfigError> {
    let mut out: Vec<Option<Attribute>> = vec![None; IdpKind::ALL.len()];
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let qualified = entry
            .split_once(':')
            .and_then(|(idp, attr)| Some((IdpKind::parse(idp)?, attr.trim())));
        match qualified {
            Some((idp, attribute)) => {
                let path = spec(idp).path_of(attribute).ok_or_else(|| {
                    ConfigError::new(
                        variable,
                        format!(
                            "`{attribute}` is not a {idp} attribute; {idp} offers {}",
                            spec(idp).accepted()
                        ),
                    )
                })?;
                if out[idp as usize]
                    .replace((attribute.to_owned(), path))
                    .is_some()
                {
                    return Err(ConfigError::new(variable, format!("names {idp} twice")));
                }
            }
            None => {
                if entry.contains(':') {
                    return Err(ConfigError::new(
                        variable,
                        format!(
                            "`{entry}` names no known IdP before `:` (one of {})",
                            IdpKind::ALL
                                .iter()
                                .map(|k| k.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                let mut offered = false;
                for idp in IdpKind::ALL {
                    if let Some(path) = spec(*idp).path_of(entry) {
                        offered = true;
                        let slot = &mut out[*idp as usize];
                        if slot.is_none() {
                            *slot = Some((entry.to_owned(), path));
                        }
                    }
                }
                if !offered {
                    let offers: Vec<String> = IdpKind::ALL
                        .iter()
                        .map(|k| format!("{k}: {}", spec(*k).accepted()))
                        .collect();
                    return Err(ConfigError::new(
                        variable,
                        format!(
                            "`{entry}` is not an attribute any IdP offers ({})",
                            offers.join("; ")
                        ),
                    ));
                }
            }
        }
    }
    if out.iter().all(Option::is_none) {
        return Err(ConfigError::new(variable, "names no attribute"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_pairs;
    use serde_json::json;

    fn mapping(pairs: &[(&str, &str)]) -> Mapping {
        Mapping::from_config(&from_pairs(pairs)).unwrap()
    }

    fn error(pairs: &[(&str, &str)]) -> ConfigError {
        Mapping::from_config(&from_pairs(pairs)).unwrap_err()
    }

    #[test]
    fn unset_is_the_default_everywhere() {
        let m = mapping(&[]);
        assert!(m.is_default());
        let p = UserProfile {
            login: Some("Jane@X".into()),
            ..UserProfile::default()
        };
        assert_eq!(
            m.of(IdpKind::Okta).apply(spec(IdpKind::Okta), &p).unwrap(),
            p
        );
    }

    #[test]
    fn bad_settings_name_their_variable() {
        for (pairs, variable, needle) in [
            (
                vec![("DUO_USERNAME_ATTRIBUTE", "shoe_size")],
                "DUO_USERNAME_ATTRIBUTE",
                "not an attribute any IdP offers",
            ),
            (
                vec![("DUO_USERNAME_ATTRIBUTE", "okta:app_metadata.x")],
                "DUO_USERNAME_ATTRIBUTE",
                "okta offers login, email",
            ),
            (
                vec![("DUO_EMAIL_ATTRIBUTE", "ldap:mail")],
                "DUO_EMAIL_ATTRIBUTE",
                "names no known IdP",
            ),
            (
                vec![("DUO_ALIAS1_ATTRIBUTE", "profile.")],
                "DUO_ALIAS1_ATTRIBUTE",
                "not an attribute",
            ),
            (
                vec![("DUO_USERNAME_LOWERCASE", "yes please")],
                "DUO_USERNAME_LOWERCASE",
                "true or false",
            ),
            (
                vec![("DUO_ALIAS2_STRIP_DOMAIN", "true")],
                "DUO_ALIAS2_STRIP_DOMAIN",
                "DUO_ALIAS2_ATTRIBUTE",
            ),
            (
                vec![("DUO_USERNAME_ATTRIBUTE", "okta:login,okta:email")],
                "DUO_USERNAME_ATTRIBUTE",
                "twice",
            ),
        ] {
            let e = error(&pairs);
            assert_eq!(e.variable, variable, "{e}");
            assert!(e.problem.contains(needle), "{e}");
        }
    }

    #[test]
    fn attributes_per_idp_and_unqualified() {
        let m = mapping(&[(
            "DUO_USERNAME_ATTRIBUTE",
            "okta:profile.employeeNumber, auth0:app_metadata.duo.name",
        )]);
        let okta = m.of(IdpKind::Okta).rule(DuoField::Username);
        assert_eq!(
            okta.attribute,
            Some((
                "profile.employeeNumber".into(),
                vec!["profile".into(), "employeeNumber".into()]
            ))
        );
        let auth0 = m.of(IdpKind::Auth0).rule(DuoField::Username);
        assert_eq!(
            auth0.attribute.as_ref().unwrap().1,
            ["app_metadata", "duo", "name"]
        );
        // `email` is offered by both, at their own paths.
        let m = mapping(&[("DUO_USERNAME_ATTRIBUTE", "email")]);
        assert_eq!(
            m.of(IdpKind::Okta)
                .rule(DuoField::Username)
                .attribute
                .as_ref()
                .unwrap()
                .1,
            ["profile", "email"]
        );
        assert_eq!(
            m.of(IdpKind::Auth0)
                .rule(DuoField::Username)
                .attribute
                .as_ref()
                .unwrap()
                .1,
            ["email"]
        );
        // An Okta-only path leaves Auth0 on its default.
        let m = mapping(&[("DUO_USERNAME_ATTRIBUTE", "profile.employeeNumber")]);
        assert!(m.of(IdpKind::Auth0).is_default());
    }

    #[test]
    fn values_are_read_and_transformed() {
        let m = mapping(&[
            ("DUO_USERNAME_ATTRIBUTE", "okta:profile.samAccountName"),
            ("DUO_USERNAME_LOWERCASE", "true"),
            ("DUO_USERNAME_STRIP_DOMAIN", "true"),
            ("DUO_ALIAS1_ATTRIBUTE", "okta:profile.employeeNumber"),
            ("DUO_ALIAS2_ATTRIBUTE", "okta:login"),
            ("DUO_ALIAS2_STRIP_DOMAIN", "true"),
            ("DUO_REALNAME_ATTRIBUTE", "okta:profile.nickName"),
        ]);
        let okta = m.of(IdpKind::Okta);
        let profile = UserProfile {
            login: Some("jane.doe@example.com".into()),
            display_name: Some("Jane Doe".into()),
            attributes: Some(json!({"id": "00u1", "profile": {
                "login": "jane.doe@example.com", "samAccountName": "CORP\\JDoe",
                "employeeNumber": 4711, "nickName": null}})),
            ..UserProfile::default()
        };
        let mapped = okta.apply(spec(IdpKind::Okta), &profile).unwrap();
        assert_eq!(mapped.login.as_deref(), Some("jdoe"));
        assert_eq!(
            mapped.aliases,
            [Some("4711".into()), Some("jane.doe".into()), None]
        );
        // Mapped to an attribute the user lacks: left unset, not the
        // default's value.
        assert_eq!(mapped.display_name, None);
        // Without the user object, the username cannot be known.
        let bare = UserProfile {
            login: Some("jane.doe@example.com".into()),
            ..UserProfile::default()
        };
        let missing = okta.apply(spec(IdpKind::Okta), &bare).unwrap_err();
        assert_eq!(missing.field, DuoField::Username);
        assert!(!missing.user_lacks_it);
        assert!(missing.to_string().contains("DUO_USERNAME_ATTRIBUTE"));
        assert_eq!(okta.username_of_login(spec(IdpKind::Okta), "jane@x"), None);
    }

    #[test]
    fn transforms_of_the_login_need_no_user_object() {
        let m = mapping(&[
            ("DUO_USERNAME_STRIP_DOMAIN", "true"),
            ("DUO_USERNAME_LOWERCASE", "true"),
        ]);
        let okta = m.of(IdpKind::Okta);
        assert_eq!(
            okta.username_of_login(spec(IdpKind::Okta), "Jane.Doe@Example.com")
                .as_deref(),
            Some("jane.doe")
        );
        let p = UserProfile {
            login: Some("Jane.Doe@Example.com".into()),
            ..UserProfile::default()
        };
        let mapped = okta.apply(spec(IdpKind::Okta), &p).unwrap();
        assert_eq!(mapped.login.as_deref(), Some("jane.doe"));
    }

    #[test]
    fn aliases_that_would_clash_or_bind_are_dropped() {
        let m = mapping(&[
            ("DUO_ALIAS1_ATTRIBUTE", "auth0:app_metadata.a"),
            ("DUO_ALIAS2_ATTRIBUTE", "auth0:app_metadata.b"),
            ("DUO_ALIAS3_ATTRIBUTE", "auth0:app_metadata.c"),
        ]);
        let p = UserProfile {
            login: Some("ann@x".into()),
            attributes: Some(json!({"app_metadata": {
                "a": "ANN@x", "b": "okta:00u9", "c": "annie"}})),
            ..UserProfile::default()
        };
        let mapped = m
            .of(IdpKind::Auth0)
            .apply(spec(IdpKind::Auth0), &p)
            .unwrap();
        assert_eq!(mapped.aliases, [None, None, Some("annie".into())]);
    }
}

//! Typed Duo objects and ids.
//!
//! Parsing is lenient on purpose: Duo adds fields over time and fills some
//! with `null`, so every field that is not an id is optional or defaulted, and
//! unknown fields are ignored.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

id_type!(
    /// A Duo user id (`DU…`).
    DuoUserId
);
id_type!(
    /// A Duo group id (`DG…`).
    DuoGroupId
);
id_type!(
    /// A Duo phone id (`DP…`).
    DuoPhoneId
);
id_type!(
    /// A Duo hardware token id (`DH…`).
    DuoTokenId
);
id_type!(
    /// A WebAuthn credential key.
    WebAuthnKey
);
id_type!(
    /// A U2F token registration id.
    U2fRegistrationId
);
id_type!(
    /// A bypass code id.
    BypassCodeId
);

/// A Duo user's status.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserStatus {
    Active,
    Bypass,
    Disabled,
    /// Set by Duo itself after too many failed attempts; cannot be set by API.
    LockedOut,
    /// A value this client does not know (Duo may add some).
    Other(String),
}

impl UserStatus {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Active => "active",
            Self::Bypass => "bypass",
            Self::Disabled => "disabled",
            Self::LockedOut => "locked out",
            Self::Other(s) => s,
        }
    }
}

impl From<&str> for UserStatus {
    fn from(value: &str) -> Self {
        match value.to_ascii_lowercase().as_str() {
            "active" => Self::Active,
            "bypass" => Self::Bypass,
            "disabled" => Self::Disabled,
            "locked out" | "locked_out" => Self::LockedOut,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl<'de> Deserialize<'de> for UserStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ok(Self::from(s.as_str()))
    }
}

impl Serialize for UserStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A Duo user as `GET /admin/v1/users/{id}` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub user_id: DuoUserId,
    pub username: String,
    #[serde(default)]
    pub alias1: Option<String>,
    #[serde(default)]
    pub alias2: Option<String>,
    #[serde(default)]
    pub alias3: Option<String>,
    #[serde(default)]
    pub alias4: Option<String>,
    #[serde(default)]
    pub realname: Option<String>,
    #[serde(default)]
    pub firstname: Option<String>,
    #[serde(default)]
    pub lastname: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default = "default_status")]
    pub status: UserStatus,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub created: Option<i64>,
    #[serde(default)]
    pub is_enrolled: Option<bool>,
    /// When Duo's own directory sync (AD, Entra ID, OpenLDAP, Google, SCIM)
    /// last updated the user, Unix seconds; `null` for a user no directory
    /// sync manages. The field as Duo's Go client models it
    /// (`duosecurity/duo_api_golang` `admin/admin.go`, `User.LastDirectorySync
    /// *uint64`, and its `admin_test.go` answers: a listed user with
    /// `1508789163`, a user just created through the API with `null`).
    #[serde(default)]
    pub last_directory_sync: Option<i64>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub groups: Vec<Group>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub phones: Vec<Phone>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub tokens: Vec<HardwareToken>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub webauthncredentials: Vec<WebAuthnCredential>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub u2ftokens: Vec<U2fToken>,
}

fn default_status() -> UserStatus {
    UserStatus::Active
}

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

impl User {
    /// The four alias slots, in order.
    pub fn aliases(&self) -> [Option<&str>; 4] {
        [
            self.alias1.as_deref(),
            self.alias2.as_deref(),
            self.alias3.as_deref(),
            self.alias4.as_deref(),
        ]
    }
}

/// A Duo group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub group_id: DuoGroupId,
    pub name: String,
    #[serde(default)]
    pub desc: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

/// A phone attached to a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phone {
    pub phone_id: DuoPhoneId,
    #[serde(default)]
    pub number: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub platform: Option<String>,
}

/// A hardware (OTP) token attached to a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HardwareToken {
    pub token_id: DuoTokenId,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
}

/// A WebAuthn credential (security key, platform authenticator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebAuthnCredential {
    pub webauthnkey: WebAuthnKey,
    #[serde(default)]
    pub credential_name: Option<String>,
    #[serde(default)]
    pub date_added: Option<i64>,
}

/// A legacy U2F token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct U2fToken {
    pub registration_id: U2fRegistrationId,
    #[serde(default)]
    pub date_added: Option<i64>,
}

/// A bypass code (the code itself is never returned by list calls).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BypassCode {
    pub bypass_code_id: BypassCodeId,
    #[serde(default)]
    pub expiration: Option<i64>,
    #[serde(default)]
    pub reuse_count: Option<i64>,
}

/// Fields of a user to create or change. `None` leaves a field as it is;
/// `Some("")` clears it (Duo's convention for aliases and text fields).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFields {
    /// Required on create; on modify it renames the user.
    pub username: Option<String>,
    pub realname: Option<String>,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub email: Option<String>,
    pub status: Option<UserStatus>,
    pub notes: Option<String>,
    /// Alias slots 1-4; `aliases[0]` is `alias1`.
    pub aliases: [Option<String>; 4],
}

impl UserFields {
    pub(crate) fn to_params(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut push = |key: &str, value: &Option<String>| {
            if let Some(v) = value {
                out.push((key.to_owned(), v.clone()));
            }
        };
        push("username", &self.username);
        push("realname", &self.realname);
        push("firstname", &self.firstname);
        push("lastname", &self.lastname);
        push("email", &self.email);
        push("notes", &self.notes);
        for (i, alias) in self.aliases.iter().enumerate() {
            push(&format!("alias{}", i + 1), alias);
        }
        if let Some(status) = &self.status {
            out.push(("status".to_owned(), status.as_str().to_owned()));
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.to_params().is_empty()
    }
}

/// Fields of a group to create or change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupFields {
    /// Required on create; on modify it renames the group.
    pub name: Option<String>,
    pub desc: Option<String>,
}

impl GroupFields {
    pub(crate) fn to_params(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(name) = &self.name {
            out.push(("name".to_owned(), name.clone()));
        }
        if let Some(desc) = &self.desc {
            out.push(("desc".to_owned(), desc.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_parses_nulls_and_unknown_fields() {
        let json = r#"{"user_id":"DU123","username":"jane","alias1":null,"status":"locked out",
            "groups":null,"phones":[{"phone_id":"DP1","number":"+15555550100","type":"Mobile","extra":1}],
            "webauthncredentials":[{"webauthnkey":"WA1","credential_name":"YubiKey"}],
            "brand_new_field":{"x":1}}"#;
        let user: User = serde_json::from_str(json).unwrap();
        assert_eq!(user.user_id, DuoUserId::new("DU123"));
        assert_eq!(user.status, UserStatus::LockedOut);
        assert!(user.groups.is_empty());
        assert_eq!(user.phones[0].kind.as_deref(), Some("Mobile"));
        assert_eq!(user.webauthncredentials.len(), 1);
        assert_eq!(user.aliases(), [None, None, None, None]);
    }

    #[test]
    fn unknown_status_is_kept() {
        assert_eq!(
            UserStatus::from("pending deletion"),
            UserStatus::Other("pending deletion".into())
        );
        assert_eq!(UserStatus::from("Disabled"), UserStatus::Disabled);
    }

    #[test]
    fn user_fields_to_params() {
        let f = UserFields {
            username: Some("jane".into()),
            status: Some(UserStatus::Disabled),
            aliases: [None, Some("okta:00u1".into()), None, Some(String::new())],
            ..UserFields::default()
        };
        assert_eq!(
            f.to_params(),
            vec![
                ("username".to_owned(), "jane".to_owned()),
                ("alias2".to_owned(), "okta:00u1".to_owned()),
                ("alias4".to_owned(), String::new()),
                ("status".to_owned(), "disabled".to_owned()),
            ]
        );
        assert!(UserFields::default().is_empty());
    }

    #[test]
    fn ids_debug_and_display() {
        let id = DuoGroupId::new("DG1");
        assert_eq!(id.to_string(), "DG1");
        assert_eq!(format!("{id:?}"), "DuoGroupId(\"DG1\")");
    }
}

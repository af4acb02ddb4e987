//! One method per Admin API endpoint the relay uses.
//!
//! Endpoints and parameters follow Duo's Admin API documentation as mirrored
//! by the official `duo_client_python` (`admin.py`). Each method states
//! whether it is safe to retry after an unknown outcome (see
//! [`Idempotency`]).

use std::marker::PhantomData;

use reqwest::Method;
use serde::de::DeserializeOwned;

use crate::client::DuoClient;
use crate::error::DuoError;
use crate::model::{
    BypassCode, BypassCodeId, DuoGroupId, DuoPhoneId, DuoTokenId, DuoUserId, Group, GroupFields,
    HardwareToken, Phone, U2fRegistrationId, U2fToken, User, UserFields, WebAuthnCredential,
    WebAuthnKey,
};
use crate::retry::Idempotency::{Safe, Unsafe};
use crate::sign::percent_encode;

/// The largest page Duo serves for users (and the default used for every
/// list here; endpoints with a smaller maximum cap it themselves).
pub const USERS_PAGE_LIMIT: u32 = 300;
/// The largest page of `GET /admin/v1/groups`.
pub const GROUPS_PAGE_LIMIT: u32 = 100;

/// Encodes an id for use as one path segment, so an id can never change
/// which endpoint is called. Empty, `.` and `..` are refused: URL
/// normalization would turn them (even percent-encoded) into another path.
fn seg(id: &str) -> Result<String, DuoError> {
    if id.is_empty() || id == "." || id == ".." {
        return Err(DuoError::InvalidRequest(format!("{id:?} is not a Duo id")));
    }
    let mut out = String::with_capacity(id.len());
    percent_encode(id, &mut out);
    Ok(out)
}

fn decode<T: DeserializeOwned>(value: serde_json::Value, what: &str) -> Result<T, DuoError> {
    serde_json::from_value(value).map_err(|e| DuoError::Decode {
        status: 200,
        reason: format!("{what}: {e}"),
    })
}

fn param(key: &str, value: &str) -> (String, String) {
    (key.to_owned(), value.to_owned())
}

/// Pages through a list endpoint (`limit`/`offset`, following
/// `metadata.next_offset`) one request at a time.
#[derive(Debug)]
pub struct Pager<T> {
    client: DuoClient,
    path: String,
    params: Vec<(String, String)>,
    limit: u32,
    next_offset: Option<u64>,
    pages: u32,
    _item: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Pager<T> {
    pub fn new(client: DuoClient, path: String, params: Vec<(String, String)>, limit: u32) -> Self {
        Self {
            client,
            path,
            params,
            limit,
            next_offset: Some(0),
            pages: 0,
            _item: PhantomData,
        }
    }

    /// The next page, or `None` after the last one.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>, DuoError> {
        let Some(offset) = self.next_offset else {
            return Ok(None);
        };
        let mut params = self.params.clone();
        params.push(param("limit", &self.limit.to_string()));
        params.push(param("offset", &offset.to_string()));
        let answer = self
            .client
            .call(Method::GET, &self.path, &params, Safe)
            .await?;
        let items: Vec<T> = decode(answer.response, &self.path)?;
        self.pages += 1;
        self.next_offset = match answer.metadata.next_offset {
            // A server that does not move forward would page forever.
            Some(next) if next <= offset => {
                return Err(DuoError::Decode {
                    status: 200,
                    reason: format!("paging did not advance ({offset} -> {next})"),
                });
            }
            other => other,
        };
        Ok(Some(items))
    }

    /// Starts at `offset` instead of the first item (to resume a listing
    /// where an earlier one stopped).
    #[must_use]
    pub fn from_offset(mut self, offset: u64) -> Self {
        self.next_offset = Some(offset);
        self
    }

    /// Where the next page starts; `None` after the last page.
    pub fn next_offset(&self) -> Option<u64> {
        self.next_offset
    }

    /// Pages requested so far.
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// Every item of every page.
    pub async fn collect_all(mut self) -> Result<Vec<T>, DuoError> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }
}

impl DuoClient {
    fn pager<T: DeserializeOwned>(&self, path: String, limit: u32) -> Pager<T> {
        Pager::new(self.clone(), path, Vec::new(), limit)
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(String, String)],
    ) -> Result<T, DuoError> {
        let answer = self.call(Method::GET, path, params, Safe).await?;
        decode(answer.response, path)
    }

    async fn delete(&self, path: &str) -> Result<(), DuoError> {
        self.call(Method::DELETE, path, &[], Safe).await.map(drop)
    }

    // ----- users -----

    /// The user whose username **or alias** is `username`, if any.
    pub async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, DuoError> {
        let users: Vec<User> = self
            .get("/admin/v1/users", &[param("username", username)])
            .await?;
        Ok(users.into_iter().next())
    }

    /// The users whose username **or alias** is one of `names`, in one call:
    /// `GET /admin/v1/users?username_list=["a","b"]` (a JSON list, as
    /// `duo_client_python`'s `get_users_by_names` and `duo_api_ruby`'s
    /// `get_users` send it; both document that it matches aliases too).
    /// Usernames and aliases are unique across a Duo account, so at most one
    /// user per name; paged all the same, as the official clients do.
    pub async fn find_users_by_names(&self, names: &[&str]) -> Result<Vec<User>, DuoError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let list = serde_json::to_string(names).map_err(|e| {
            DuoError::InvalidRequest(format!("username_list could not be written: {e}"))
        })?;
        Pager::new(
            self.clone(),
            "/admin/v1/users".into(),
            vec![param("username_list", &list)],
            USERS_PAGE_LIMIT,
        )
        .collect_all()
        .await
    }

    /// Users with this email (Duo does not require emails to be unique).
    pub async fn find_users_by_email(&self, email: &str) -> Result<Vec<User>, DuoError> {
        self.get("/admin/v1/users", &[param("email", email)]).await
    }

    pub async fn get_user(&self, id: &DuoUserId) -> Result<User, DuoError> {
        self.get(&format!("/admin/v1/users/{}", seg(id.as_str())?), &[])
            .await
    }

    /// All users, [`USERS_PAGE_LIMIT`] per page.
    pub fn list_users(&self) -> Pager<User> {
        self.pager("/admin/v1/users".into(), USERS_PAGE_LIMIT)
    }

    /// Creates a user; `fields.username` is required. Not retried on 5xx: a
    /// lost answer is resolved by looking the user up, not by creating twice.
    pub async fn create_user(&self, fields: &UserFields) -> Result<User, DuoError> {
        if fields.username.as_deref().is_none_or(str::is_empty) {
            return Err(DuoError::InvalidRequest(
                "a new user needs a username".into(),
            ));
        }
        let answer = self
            .call(Method::POST, "/admin/v1/users", &fields.to_params(), Unsafe)
            .await?;
        decode(answer.response, "create user")
    }

    /// Changes the given fields (a `username` renames the user).
    pub async fn modify_user(&self, id: &DuoUserId, fields: &UserFields) -> Result<User, DuoError> {
        let path = format!("/admin/v1/users/{}", seg(id.as_str())?);
        let answer = self
            .call(Method::POST, &path, &fields.to_params(), Safe)
            .await?;
        decode(answer.response, "modify user")
    }

    /// Deletes a user — permanently: API deletes skip Duo's trash. Duo
    /// documents that deleting a user already gone does nothing; a 404
    /// (`DuoError::NotFound`) must be read the same way, "gone" — which is
    /// what a retry meets after an answer was lost.
    pub async fn delete_user(&self, id: &DuoUserId) -> Result<(), DuoError> {
        self.delete(&format!("/admin/v1/users/{}", seg(id.as_str())?))
            .await
    }

    // ----- a user's groups -----

    pub fn list_user_groups(&self, id: &DuoUserId) -> Result<Pager<Group>, DuoError> {
        Ok(self.pager(
            format!("/admin/v1/users/{}/groups", seg(id.as_str())?),
            GROUPS_PAGE_LIMIT,
        ))
    }

    /// Adds the user to the group. Not retried on 5xx: Duo answers 50001 when
    /// the user already has 100 groups, and repeating cannot help.
    pub async fn add_user_to_group(
        &self,
        user: &DuoUserId,
        group: &DuoGroupId,
    ) -> Result<(), DuoError> {
        let path = format!("/admin/v1/users/{}/groups", seg(user.as_str())?);
        self.call(
            Method::POST,
            &path,
            &[param("group_id", group.as_str())],
            Unsafe,
        )
        .await
        .map(drop)
    }

    pub async fn remove_user_from_group(
        &self,
        user: &DuoUserId,
        group: &DuoGroupId,
    ) -> Result<(), DuoError> {
        self.delete(&format!(
            "/admin/v1/users/{}/groups/{}",
            seg(user.as_str())?,
            seg(group.as_str())?
        ))
        .await
    }

    // ----- groups -----

    /// All groups, [`GROUPS_PAGE_LIMIT`] per page.
    pub fn list_groups(&self) -> Pager<Group> {
        self.pager("/admin/v1/groups".into(), GROUPS_PAGE_LIMIT)
    }

    /// One group (`/admin/v2/groups/{id}`; the v1 single-group call is
    /// deprecated).
    pub async fn get_group(&self, id: &DuoGroupId) -> Result<Group, DuoError> {
        self.get(&format!("/admin/v2/groups/{}", seg(id.as_str())?), &[])
            .await
    }

    pub async fn create_group(&self, fields: &GroupFields) -> Result<Group, DuoError> {
        if fields.name.as_deref().is_none_or(str::is_empty) {
            return Err(DuoError::InvalidRequest("a new group needs a name".into()));
        }
        let answer = self
            .call(
                Method::POST,
                "/admin/v1/groups",
                &fields.to_params(),
                Unsafe,
            )
            .await?;
        decode(answer.response, "create group")
    }

    pub async fn modify_group(
        &self,
        id: &DuoGroupId,
        fields: &GroupFields,
    ) -> Result<Group, DuoError> {
        let path = format!("/admin/v1/groups/{}", seg(id.as_str())?);
        let answer = self
            .call(Method::POST, &path, &fields.to_params(), Safe)
            .await?;
        decode(answer.response, "modify group")
    }

    pub async fn delete_group(&self, id: &DuoGroupId) -> Result<(), DuoError> {
        self.delete(&format!("/admin/v1/groups/{}", seg(id.as_str())?))
            .await
    }

    // ----- devices and codes -----

    pub async fn list_user_phones(&self, id: &DuoUserId) -> Result<Vec<Phone>, DuoError> {
        self.pager(format!("/admin/v1/users/{}/phones", seg(id.as_str())?), 500)
            .collect_all()
            .await
    }

    /// Detaches a phone from the user (the phone object stays in Duo, which
    /// matters when several users share it).
    pub async fn detach_phone(&self, user: &DuoUserId, phone: &DuoPhoneId) -> Result<(), DuoError> {
        self.delete(&format!(
            "/admin/v1/users/{}/phones/{}",
            seg(user.as_str())?,
            seg(phone.as_str())?
        ))
        .await
    }

    /// The phones whose number is `number` (0 or 1): `GET /admin/v1/phones`
    /// with `number`, as `duo_client_python` `Admin.get_phones_by_number`
    /// ("Returns list of 0 or 1 phone objects").
    pub async fn find_phones_by_number(&self, number: &str) -> Result<Vec<Phone>, DuoError> {
        self.get("/admin/v1/phones", &[param("number", number)])
            .await
    }

    /// Creates a phone: `POST /admin/v1/phones` with `number`, `type`,
    /// `name` (`duo_client_python` `Admin.add_phone`).
    pub async fn create_phone(
        &self,
        number: &str,
        kind: &str,
        name: &str,
    ) -> Result<Phone, DuoError> {
        let params = [
            param("number", number),
            param("type", kind),
            param("name", name),
        ];
        let answer = self
            .call(Method::POST, "/admin/v1/phones", &params, Unsafe)
            .await?;
        decode(answer.response, "create phone")
    }

    /// Associates a phone with a user: `POST /admin/v1/users/{id}/phones`
    /// with `phone_id` (`duo_client_python` `Admin.add_user_phone`).
    pub async fn attach_phone(&self, user: &DuoUserId, phone: &DuoPhoneId) -> Result<(), DuoError> {
        let path = format!("/admin/v1/users/{}/phones", seg(user.as_str())?);
        self.call(
            Method::POST,
            &path,
            &[param("phone_id", phone.as_str())],
            Safe,
        )
        .await
        .map(drop)
    }

    /// Deletes the phone object for everyone.
    pub async fn delete_phone(&self, phone: &DuoPhoneId) -> Result<(), DuoError> {
        self.delete(&format!("/admin/v1/phones/{}", seg(phone.as_str())?))
            .await
    }

    pub async fn list_user_tokens(&self, id: &DuoUserId) -> Result<Vec<HardwareToken>, DuoError> {
        self.pager(format!("/admin/v1/users/{}/tokens", seg(id.as_str())?), 500)
            .collect_all()
            .await
    }

    pub async fn detach_token(&self, user: &DuoUserId, token: &DuoTokenId) -> Result<(), DuoError> {
        self.delete(&format!(
            "/admin/v1/users/{}/tokens/{}",
            seg(user.as_str())?,
            seg(token.as_str())?
        ))
        .await
    }

    pub async fn list_user_webauthn(
        &self,
        id: &DuoUserId,
    ) -> Result<Vec<WebAuthnCredential>, DuoError> {
        self.pager(
            format!("/admin/v1/users/{}/webauthncredentials", seg(id.as_str())?),
            500,
        )
        .collect_all()
        .await
    }

    pub async fn delete_webauthn(&self, key: &WebAuthnKey) -> Result<(), DuoError> {
        self.delete(&format!(
            "/admin/v1/webauthncredentials/{}",
            seg(key.as_str())?
        ))
        .await
    }

    pub async fn list_user_u2f(&self, id: &DuoUserId) -> Result<Vec<U2fToken>, DuoError> {
        self.pager(
            format!("/admin/v1/users/{}/u2ftokens", seg(id.as_str())?),
            500,
        )
        .collect_all()
        .await
    }

    pub async fn delete_u2f(&self, id: &U2fRegistrationId) -> Result<(), DuoError> {
        self.delete(&format!("/admin/v1/u2ftokens/{}", seg(id.as_str())?))
            .await
    }

    pub async fn list_user_bypass_codes(
        &self,
        id: &DuoUserId,
    ) -> Result<Vec<BypassCode>, DuoError> {
        self.pager(
            format!("/admin/v1/users/{}/bypass_codes", seg(id.as_str())?),
            500,
        )
        .collect_all()
        .await
    }

    pub async fn delete_bypass_code(&self, id: &BypassCodeId) -> Result<(), DuoError> {
        self.delete(&format!("/admin/v1/bypass_codes/{}", seg(id.as_str())?))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        assert_eq!(seg("DU123").unwrap(), "DU123");
        assert_eq!(seg("../phones/x?y").unwrap(), "..%2Fphones%2Fx%3Fy");
        for bad in ["", ".", ".."] {
            assert!(matches!(seg(bad), Err(DuoError::InvalidRequest(_))));
        }
    }
}

//! Reading the target (Duo) for the planners: [`TargetReader`] is all that
//! reconcile and the event path's planners (`crate::idp_sync`) may ask of
//! the target's current state, so a planner cannot write or reach the Admin
//! API client itself. A [`crate::apply::Directory`] hands its reader out
//! (`Directory::reader`); a dry run has none and plans from the event.
//! Below the planners and the apply stage: it imports neither.

use std::future::Future;

use duo_admin::{DuoClient, DuoError, DuoGroupId, DuoUserId, Group, Pager, User};
use serde::Deserialize;

use crate::group_index::{GroupEntry, GroupIndex};
use crate::identity::{self, Resolution};
use crate::operation::{GroupKey, UserKey};

/// Duo's page size for `GET /admin/v2/groups/{id}/users` (its maximum is 500).
const MEMBERS_PAGE: u32 = 100;

/// One member of a Duo group, as Duo lists them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupMember {
    pub user_id: DuoUserId,
    pub username: String,
}

/// What planning reads from the target: read-only.
pub trait TargetReader: Send + Sync {
    /// Every user, with its groups (Duo embeds them in the user object).
    fn list_users(&self) -> impl Future<Output = Result<Vec<User>, DuoError>> + Send;
    fn list_groups(&self) -> impl Future<Output = Result<Vec<Group>, DuoError>> + Send;
    /// This identity's Duo account by the rule the apply stage uses
    /// ([`crate::identity`]): the account carrying the key's IdP id, else
    /// the login's account unless it is bound to another IdP id (then the
    /// login is held).
    fn resolve_user(
        &self,
        key: &UserKey,
    ) -> impl Future<Output = Result<Resolution, DuoError>> + Send;
    /// The group `key` names (its tag first, else its name), if Duo has it.
    fn find_group(
        &self,
        key: &GroupKey,
    ) -> impl Future<Output = Result<Option<GroupEntry>, DuoError>> + Send;
    /// A group's members.
    fn group_members(
        &self,
        group: &DuoGroupId,
    ) -> impl Future<Output = Result<Vec<GroupMember>, DuoError>> + Send;
    /// One user by its Duo id.
    fn user(&self, id: &DuoUserId) -> impl Future<Output = Result<User, DuoError>> + Send;
}

/// The Duo Admin API read directly: what `crate::apply::DuoDirectory`
/// hands to planners.
impl TargetReader for DuoClient {
    /// 300 per page, Duo's maximum.
    async fn list_users(&self) -> Result<Vec<User>, DuoError> {
        DuoClient::list_users(self).collect_all().await
    }

    /// 100 per page, Duo's maximum.
    async fn list_groups(&self) -> Result<Vec<Group>, DuoError> {
        DuoClient::list_groups(self).collect_all().await
    }

    /// One lookup (`username_list`), as the apply stage makes it.
    async fn resolve_user(&self, key: &UserKey) -> Result<Resolution, DuoError> {
        let names = identity::lookup_names(key, None);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let candidates = self.find_users_by_names(&names).await?;
        Ok(identity::resolve(key, None, &candidates))
    }

    /// A search of Duo's groups with an index of its own (none stored), 1
    /// page per 100 groups until the group's: what a planner reading Duo
    /// now pays (the apply stage's index is the directory's).
    async fn find_group(&self, key: &GroupKey) -> Result<Option<GroupEntry>, DuoError> {
        GroupIndex::new(None).find(self, key).await
    }

    /// 1 page per 100 members.
    async fn group_members(&self, group: &DuoGroupId) -> Result<Vec<GroupMember>, DuoError> {
        let path = format!("/admin/v2/groups/{}/users", group.as_str());
        Pager::new(self.clone(), path, Vec::new(), MEMBERS_PAGE)
            .collect_all()
            .await
    }

    async fn user(&self, id: &DuoUserId) -> Result<User, DuoError> {
        self.get_user(id).await
    }
}

/// The reader of a directory that reads nothing (a dry run): it has no
/// value, so no read can be made through it.
#[derive(Debug, Clone, Copy)]
pub enum Unreadable {}

impl TargetReader for Unreadable {
    async fn list_users(&self) -> Result<Vec<User>, DuoError> {
        match *self {}
    }

    async fn list_groups(&self) -> Result<Vec<Group>, DuoError> {
        match *self {}
    }

    async fn resolve_user(&self, _: &UserKey) -> Result<Resolution, DuoError> {
        match *self {}
    }

    async fn find_group(&self, _: &GroupKey) -> Result<Option<GroupEntry>, DuoError> {
        match *self {}
    }

    async fn group_members(&self, _: &DuoGroupId) -> Result<Vec<GroupMember>, DuoError> {
        match *self {}
    }

    async fn user(&self, _: &DuoUserId) -> Result<User, DuoError> {
        match *self {}
    }
}

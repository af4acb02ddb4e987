//! Reading both sides: the IdP through [`IdpReader`] (Okta's Users/Groups
//! API, Auth0's Management API, or anything a test supplies) and Duo through
//! [`TargetReader`] (the Admin API client), into plain snapshots the planner
//! compares. Everything is read before anything is planned, so an error here
//! stops a run before Duo is touched.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use duo_admin::{DuoError, Group, User};

use super::IdpKind;
use crate::idp::{IdpError, IdpGroup, IdpUser};
use crate::plan::PlanRules;

/// Group member listings in flight at once: enough to hide latency, few
/// enough to stay inside the IdPs' concurrency limits (Okta counts
/// concurrent requests per org; the waits on 429 cover the rest).
const MEMBER_LISTINGS_IN_FLIGHT: usize = 4;

pub use crate::idp::IdpReader;
pub use crate::target::TargetReader;

/// An [`IdpReader`] whose users come out with attribute mapping applied
/// (`crate::mapping`): `profile.login` is the Duo username the mapping
/// makes (unset when the user lacks its attribute: reported, never
/// created), the other fields and aliases likewise. Reconcile and the
/// event path read through it, so both see what events see.
pub struct Mapped<'a, I> {
    inner: &'a I,
    mapping: &'a crate::mapping::IdpMapping,
    spec: &'static crate::mapping::AttributeSpec,
}

impl<I: IdpReader> std::fmt::Debug for Mapped<'_, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapped")
            .field("kind", &self.inner.kind())
            .field("mapping", self.mapping)
            .finish_non_exhaustive()
    }
}

impl<'a, I: IdpReader> Mapped<'a, I> {
    pub fn new(inner: &'a I, mapping: &'a crate::mapping::Mapping) -> Self {
        let kind = inner.kind();
        Self {
            inner,
            mapping: mapping.of(kind),
            spec: crate::mapping::spec(kind),
        }
    }

    fn map(&self, mut user: IdpUser) -> IdpUser {
        if self.mapping.is_default() {
            return user;
        }
        let (profile, missing) = self.mapping.apply_lenient(self.spec, &user.profile);
        if let Some(missing) = missing {
            tracing::warn!(idp_id = %user.idp_id, "{missing}: the user is not created in Duo");
        }
        user.profile = profile;
        user
    }
}

impl<I: IdpReader> IdpReader for Mapped<'_, I> {
    fn kind(&self) -> IdpKind {
        self.inner.kind()
    }

    async fn list_users(&self) -> Result<Vec<IdpUser>, IdpError> {
        let users = self.inner.list_users().await?;
        Ok(users.into_iter().map(|u| self.map(u)).collect())
    }

    async fn list_groups(&self) -> Result<Vec<IdpGroup>, IdpError> {
        self.inner.list_groups().await
    }

    async fn list_member_ids(&self, group_id: &str) -> Result<Vec<String>, IdpError> {
        self.inner.list_member_ids(group_id).await
    }

    async fn user(&self, idp_id: &str) -> Result<Option<IdpUser>, IdpError> {
        Ok(self.inner.user(idp_id).await?.map(|u| self.map(u)))
    }

    async fn users_by_login(&self, login: &str) -> Result<Vec<IdpUser>, IdpError> {
        let users = self.inner.users_by_login(login).await?;
        Ok(users.into_iter().map(|u| self.map(u)).collect())
    }

    async fn user_groups(&self, idp_id: &str) -> Result<Vec<IdpGroup>, IdpError> {
        self.inner.user_groups(idp_id).await
    }

    fn calls(&self) -> u64 {
        self.inner.calls()
    }
}

/// The IdP as a reconcile sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdpSnapshot {
    pub users: Vec<IdpUser>,
    /// Every syncable group, before `GROUP_FILTER`.
    pub groups: Vec<IdpGroup>,
    /// The member ids of each group that passes `GROUP_FILTER`, by group id.
    pub members: HashMap<String, Vec<String>>,
}

/// Duo as a reconcile sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DuoSnapshot {
    pub users: Vec<User>,
    pub groups: Vec<Group>,
}

/// Reads the whole IdP: users and groups at once, then the members of each
/// group in scope, a few listings at a time. Any error aborts the read.
pub async fn read_idp<I: IdpReader>(idp: &I, rules: &PlanRules) -> Result<IdpSnapshot, IdpError> {
    let (users, groups) = tokio::join!(idp.list_users(), idp.list_groups());
    let (users, groups) = (users?, groups?);
    // Owned ids: futures that borrow through a closure's argument are not
    // provably `Send`, and callers spawn this on multi-threaded runtimes.
    // The members of the synced groups, and of the SCOPE_GROUPS (which
    // decide who is synced, GROUP_FILTER or not).
    let in_scope: Vec<String> = groups
        .iter()
        .filter(|g| {
            rules.group_allowed(Some(&g.name)) || rules.scope.as_ref().is_some_and(|s| s.names(g))
        })
        .map(|g| g.idp_id.clone())
        .collect();
    let listings = in_scope.into_iter().map(|group_id| async move {
        let ids = idp.list_member_ids(&group_id).await?;
        Ok::<_, IdpError>((group_id, ids))
    });
    let members = try_join_bounded(listings, MEMBER_LISTINGS_IN_FLIGHT)
        .await?
        .into_iter()
        .collect();
    Ok(IdpSnapshot {
        users,
        groups,
        members,
    })
}

/// Reads every Duo user (with their groups) and every Duo group.
pub async fn read_duo<R: TargetReader>(duo: &R) -> Result<DuoSnapshot, DuoError> {
    let (users, groups) = tokio::join!(duo.list_users(), duo.list_groups());
    Ok(DuoSnapshot {
        users: users?,
        groups: groups?,
    })
}

/// Runs `futures` with at most `limit` in flight, on the current task (so
/// task-local call counting sees them), returning their outputs in order or
/// the first error (the others are dropped unfinished).
pub(crate) async fn try_join_bounded<T, E, F>(
    futures: impl IntoIterator<Item = F>,
    limit: usize,
) -> Result<Vec<T>, E>
where
    F: Future<Output = Result<T, E>>,
{
    let mut pending = futures.into_iter().enumerate();
    let mut running: Vec<(usize, Pin<Box<F>>)> = Vec::new();
    let mut done: Vec<(usize, T)> = Vec::new();
    loop {
        while running.len() < limit.max(1) {
            match pending.next() {
                Some((i, f)) => running.push((i, Box::pin(f))),
                None => break,
            }
        }
        if running.is_empty() {
            break;
        }
        let (slot, index, output) = std::future::poll_fn(|cx| {
            for (slot, (index, future)) in running.iter_mut().enumerate() {
                if let Poll::Ready(output) = future.as_mut().poll(cx) {
                    return Poll::Ready((slot, *index, output));
                }
            }
            Poll::Pending
        })
        .await;
        // A finished future is never polled again.
        drop(running.swap_remove(slot));
        done.push((index, output?));
    }
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, t)| t).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn bounded_join_keeps_order_and_limit() {
        let in_flight = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let futures = (0..10u64).map(|i| {
            let (in_flight, peak) = (&in_flight, &peak);
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10 - i)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, ()>(i)
            }
        });
        let out = try_join_bounded(futures, 3).await.unwrap();
        assert_eq!(out, (0..10).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn bounded_join_stops_at_the_first_error() {
        let started = AtomicUsize::new(0);
        let futures = (0..10u32).map(|i| {
            let started = &started;
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                if i == 2 { Err(i) } else { Ok(i) }
            }
        });
        assert_eq!(try_join_bounded(futures, 2).await, Err(2));
        assert!(started.load(Ordering::SeqCst) < 10);
    }
}

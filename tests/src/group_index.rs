//! The group index (issue 14 item 2) as every store must keep it: one
//! contract ([`contract`]) that the file store (`tests/duo_calls.rs`) and
//! the cloud stores (DynamoDB on moto, Table Storage on Azurite, Firestore
//! on its emulator) all run, and the 5,000-group tenant the call counts are
//! measured on.

use std::sync::Arc;

use duo_sim::{DuoSim, Seed, SeedGroup, SeedUser};
use relay_core::apply::DuoDirectory;
use relay_core::group_index::{GroupEntry, GroupIndexStore, GroupSnapshot, SHARDS, shard_of};
use relay_core::pipeline::{Relay, Route, duo_relay};
use relay_core::store::MemoryStore;

/// The user every scenario moves between groups.
pub const JANE: &str = "jane.doe@example.com";

/// Groups in the big tenant: 50 pages of 100.
pub const GROUPS: usize = 5_000;

pub fn group_name(j: usize) -> String {
    format!("g-{j:05}")
}

pub fn group_tag(j: usize) -> String {
    format!("00gG{j:016}")
}

/// 5,000 managed groups (50 pages of 100) and Jane (carrying her Okta id),
/// a member of the groups `member_of`.
pub fn big_tenant(sim: &DuoSim, member_of: &[usize]) {
    sim.seed(Seed {
        groups: (0..GROUPS)
            .map(|j| SeedGroup {
                name: group_name(j),
                desc: format!("okta:{} synced by idp-duo-relay", group_tag(j)),
                ..SeedGroup::default()
            })
            .collect(),
        users: vec![SeedUser {
            username: JANE.into(),
            aliases: vec![
                String::new(),
                String::new(),
                String::new(),
                "okta:00uNEWUSER0000000001".into(),
            ],
            groups: member_of.iter().map(|j| group_name(*j)).collect(),
            ..SeedUser::default()
        }],
    });
}

/// A relay on `sim` whose group index lives in `groups` (a restart, or a
/// cold start of another instance, is a new relay on the same store).
pub fn relay_on(
    sim: &DuoSim,
    groups: Arc<dyn GroupIndexStore>,
) -> Relay<DuoDirectory, MemoryStore> {
    let mut raw = crate::duo_env(sim);
    raw.insert("OKTA_AUTH_SECRET".into(), crate::SECRET.into());
    let retry = duo_admin::RetryPolicy::none();
    duo_relay(
        &raw,
        MemoryStore::default(),
        retry,
        std::time::Duration::from_secs(5),
    )
    .unwrap()
    .with_group_index(groups)
}

/// Delivers an Okta membership add of Jane to the group named `name`
/// (IdP id `tag`) as event `n`; answers the Duo calls it made.
pub async fn add_jane(
    sim: &DuoSim,
    relay: &Relay<DuoDirectory, MemoryStore>,
    n: usize,
    tag: &str,
    name: &str,
) -> usize {
    let body = crate::fixture_text("okta/membership-add.json")
        .replace(
            "b2c3d4e5-0002-11f0-9c2e-000000000002",
            &format!("b2c3d4e5-0002-11f0-9c2e-{n:012}"),
        )
        .replace("00gDUOUSERS000000001", tag)
        .replace("\"duo-users\"", &format!("\"{name}\""));
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("authorization", crate::SECRET.parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    sim.reset_calls();
    let answer = relay
        .handle(
            Route::Delivery(relay_core::event::Source::Okta),
            &headers,
            body.into(),
        )
        .await;
    assert_eq!(relay_server::respond(answer).status(), 200);
    sim.total_calls()
}

/// Whether Jane is in the Duo group `group`.
pub fn jane_in(sim: &DuoSim, group: &str) -> bool {
    sim.user_by_username(JANE)
        .unwrap()
        .groups
        .iter()
        .any(|g| g == group)
}

fn entry(id: &str, name: &str, tag: Option<&str>) -> GroupEntry {
    GroupEntry {
        group_id: duo_admin::DuoGroupId::new(id),
        name: name.into(),
        tag: tag.map(str::to_owned),
    }
}

async fn load(store: &Arc<dyn GroupIndexStore>) -> GroupSnapshot {
    let mut snapshot = store.load().await.unwrap();
    snapshot
        .entries
        .sort_by(|a, b| a.group_id.as_str().cmp(b.group_id.as_str()));
    snapshot
}

/// A group id whose shard is (or is not) `shard`.
fn id_in_shard(prefix: &str, same_as: Option<usize>) -> String {
    (0..)
        .map(|i| format!("{prefix}{i:04}"))
        .find(|id| {
            let shard = shard_of(&duo_admin::DuoGroupId::new(id.as_str()));
            same_as.is_none_or(|s| s == shard)
        })
        .unwrap()
}

/// What every [`GroupIndexStore`] must do. `open` answers a new handle on
/// the same, initially empty, storage — what another process (a restart, a
/// second instance, a Lambda cold start) would open. Answers the Duo calls
/// of the first membership add after a restart at 5,000 groups, once a
/// listing of everything was stored (the target: at most 3).
pub async fn contract<F>(open: F) -> usize
where
    F: Fn() -> Arc<dyn GroupIndexStore>,
{
    // Nothing stored: empty and not complete.
    assert_eq!(load(&open()).await, GroupSnapshot::default());

    // Puts (the groups of one user object, over several shards, two of
    // them sharing one) are seen by the next process; awkward names
    // survive.
    let a = id_in_shard("DGA", None);
    let a_shard = shard_of(&duo_admin::DuoGroupId::new(a.as_str()));
    let b = id_in_shard("DGB", Some((a_shard + 1) % SHARDS));
    let c = id_in_shard("DGC", Some(a_shard));
    let store = open();
    store
        .put(&[
            entry(&a, "Finance \"EU\" / ünïcødé", Some("okta:00gA")),
            entry(&b, "line\nbreak", None),
            entry(&c, "c", Some("auth0:rol_C")),
        ])
        .await
        .unwrap();
    // A rename replaces the entry; a remove forgets it.
    store
        .put(&[entry(&a, "Finance EU", Some("okta:00gA"))])
        .await
        .unwrap();
    store
        .remove(&duo_admin::DuoGroupId::new(b.as_str()))
        .await
        .unwrap();
    drop(store);
    assert_eq!(
        load(&open()).await,
        GroupSnapshot {
            entries: vec![
                entry(&a, "Finance EU", Some("okta:00gA")),
                entry(&c, "c", Some("auth0:rol_C")),
            ],
            complete: false,
        }
    );

    // The relay on this store: the first instance lists once (the group
    // Duo lacks), a second instance's first membership add knows every
    // group.
    let sim = DuoSim::start().await;
    big_tenant(&sim, &[]);
    let first = relay_on(&sim, open());
    assert_eq!(
        add_jane(&sim, &first, 1, "00gNEW0000000000001", "g-new-1").await,
        53,
        "lookup + 50 pages + create + add"
    );
    drop(first);
    let stored = load(&open()).await;
    assert!(stored.complete);
    // Every Duo group and g-new-1 (and what the store held before: a
    // cache, healed when Duo answers 404 for a group).
    for name in [group_name(0), group_name(GROUPS - 1), "g-new-1".into()] {
        assert!(
            stored.entries.iter().any(|e| e.name == name),
            "{name} stored"
        );
    }
    assert!(stored.entries.len() > GROUPS);
    let second = relay_on(&sim, open());
    let after_restart = add_jane(&sim, &second, 2, &group_tag(4_321), &group_name(4_321)).await;
    assert!(jane_in(&sim, &group_name(4_321)));
    drop(second);

    // A complete listing of 5,000 groups replaces everything (what the
    // relay stored too) and marks the index complete.
    let listing: Vec<GroupEntry> = (0..GROUPS)
        .map(|j| {
            entry(
                &format!("DG{j:018}"),
                &format!("{} — a longer, realistic group name", group_name(j)),
                Some(&format!("okta:{}", group_tag(j))),
            )
        })
        .collect();
    open().replace_all(&listing).await.unwrap();
    let loaded = load(&open()).await;
    assert!(loaded.complete);
    assert_eq!(
        loaded.entries.len(),
        GROUPS,
        "what was stored before is gone"
    );
    assert_eq!(loaded.entries, listing);

    // Later puts and removes keep the complete mark.
    let store = open();
    store
        .put(&[entry("DGNEW", "created later", Some("okta:00gNEW"))])
        .await
        .unwrap();
    store.remove(&listing[7].group_id).await.unwrap();
    drop(store);
    let loaded = load(&open()).await;
    assert!(loaded.complete);
    assert_eq!(loaded.entries.len(), GROUPS);
    assert!(loaded.entries.iter().any(|e| e.name == "created later"));
    assert!(!loaded.entries.contains(&listing[7]));

    after_restart
}

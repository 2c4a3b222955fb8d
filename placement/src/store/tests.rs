//! Tests of the sled storage: openraft's own storage suite, plus what the suite cannot see —
//! that everything survives closing and reopening the data dir.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    BasicNode, CommittedLeaderId, EntryPayload, LogId, Membership, RaftLogReader,
    RaftSnapshotBuilder, StorageError, StorageIOError, StoredMembership, Vote,
};
use tempfile::TempDir;

use super::*;
use crate::raft_types::{NodeId, TypeConfig};
use crate::state::{Command, CommandResponse, PlacementState};
use rookery_core::table::{HostInfo, TableVersion};

type Entry = openraft::Entry<TypeConfig>;

/// Opens a fresh sled db in a temporary dir, kept alive by the suite's guard, flushing as told.
struct TempStoreBuilder(FlushMode);

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for TempStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<NodeId>> {
        let dir = TempDir::new().map_err(|e| StorageIOError::write(&e))?;
        let db = open(dir.path()).map_err(|e| StorageIOError::write(&e))?;
        let (log, sm) = open_stores(&db, self.0).map_err(|e| StorageIOError::write(&e))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(TempStoreBuilder(FlushMode::Background)).expect("openraft storage suite");
}

/// The flush the simulator selects passes the same suite.
#[test]
fn openraft_storage_suite_inline_flush() {
    Suite::test_all(TempStoreBuilder(FlushMode::Inline)).expect("openraft storage suite");
}

fn log_id(term: u64, index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64, payload: EntryPayload<TypeConfig>) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload,
    }
}

fn membership(voters: &[NodeId]) -> Membership<NodeId, BasicNode> {
    let voters: BTreeSet<NodeId> = voters.iter().copied().collect();
    let nodes: BTreeMap<NodeId, BasicNode> = voters
        .iter()
        .map(|&id| (id, BasicNode::new(format!("127.0.0.1:{}", 7000 + id))))
        .collect();
    Membership::new(vec![voters], nodes)
}

fn register(host_id: &str) -> EntryPayload<TypeConfig> {
    EntryPayload::Normal(Command::ChangeMembership {
        upserts: vec![HostInfo {
            id: host_id.to_owned(),
            address: format!("{host_id}:5000"),
            app_id: "app".to_owned(),
            actor_types: vec!["counter".to_owned()],
        }],
        removals: vec![],
    })
}

/// Opens the data dir, waiting (up to a generous deadline) for a db of it dropped just before
/// to release its lock: a `flush_async` job on sled's own threads can hold the db a moment
/// after the flush it awaited has completed.
fn open_all(path: &Path) -> (sled::Db, LogStore, StateMachineStore) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let db = loop {
        match open(path) {
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            opened => break opened.expect("open data dir"),
        }
    };
    let (log, sm) = open_stores(&db, FlushMode::default()).expect("open stores");
    (db, log, sm)
}

#[tokio::test]
async fn state_survives_reopen() {
    let dir = TempDir::new().unwrap();
    let (db, _log, mut sm) = open_all(dir.path());
    let responses = sm
        .apply([
            entry(1, 1, EntryPayload::Blank),
            entry(1, 2, EntryPayload::Membership(membership(&[1, 2, 3]))),
            entry(1, 3, register("h1")),
            entry(1, 4, register("h1")),
            entry(1, 5, register("h2")),
        ])
        .await
        .unwrap();
    let versions: Vec<_> = responses
        .iter()
        .map(|r| (r.table_version.0, r.changed))
        .collect();
    assert_eq!(
        versions,
        [(0, false), (0, false), (1, true), (1, false), (2, true)]
    );
    let before = sm.current();
    let applied_before = sm.applied_state().await.unwrap();
    assert_eq!(before.last_applied, Some(log_id(1, 5)));
    assert_eq!(before.state.hosts.len(), 2);
    drop((db, _log, sm));

    let (_db, _log, mut sm) = open_all(dir.path());
    assert_eq!(sm.current(), before, "state loaded before any replay");
    assert_eq!(*sm.subscribe().borrow(), before);
    assert_eq!(sm.applied_state().await.unwrap(), applied_before);
    assert_eq!(
        applied_before.1,
        StoredMembership::new(Some(log_id(1, 2)), membership(&[1, 2, 3]))
    );
}

#[tokio::test]
async fn vote_and_log_survive_reopen() {
    let dir = TempDir::new().unwrap();
    let (db, mut log, _sm) = open_all(dir.path());
    let vote = Vote::new_committed(3, 2);
    log.save_vote(&vote).await.unwrap();
    log.blocking_append((1..=6).map(|i| entry(1, i, EntryPayload::Blank)))
        .await
        .unwrap();
    log.blocking_append([entry(2, 7, register("h1"))])
        .await
        .unwrap();
    log.truncate(log_id(2, 7)).await.unwrap();
    log.blocking_append([entry(3, 7, register("h2"))])
        .await
        .unwrap();
    log.purge(log_id(1, 2)).await.unwrap();
    log.save_committed(Some(log_id(1, 5))).await.unwrap();
    let entries_before = log.try_get_log_entries(..).await.unwrap();
    let state_before = log.get_log_state().await.unwrap();
    assert_eq!(entries_before.len(), 5);
    assert_eq!(state_before.last_purged_log_id, Some(log_id(1, 2)));
    assert_eq!(state_before.last_log_id, Some(log_id(3, 7)));
    drop((db, log, _sm));

    let (_db, mut log, _sm) = open_all(dir.path());
    assert_eq!(log.read_vote().await.unwrap(), Some(vote));
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 5)));
    assert_eq!(log.get_log_state().await.unwrap(), state_before);
    assert_eq!(log.try_get_log_entries(..).await.unwrap(), entries_before);
    assert_eq!(log.try_get_log_entries(3..5).await.unwrap().len(), 2);
}

#[tokio::test]
async fn limited_reads_stop_at_the_byte_bound() {
    let dir = TempDir::new().unwrap();
    let (_db, mut log, _sm) = open_all(dir.path());
    let big = |i| {
        entry(
            1,
            i,
            EntryPayload::Normal(Command::ChangeMembership {
                upserts: vec![],
                removals: vec!["x".repeat(600 * 1024)],
            }),
        )
    };
    log.blocking_append((1..=3).map(big)).await.unwrap();
    assert_eq!(log.limited_get_log_entries(1, 4).await.unwrap().len(), 2);
    assert_eq!(log.limited_get_log_entries(3, 4).await.unwrap().len(), 1);
    assert_eq!(log.try_get_log_entries(1..4).await.unwrap().len(), 3);
}

#[tokio::test]
async fn subscribers_see_each_apply_batch() {
    let dir = TempDir::new().unwrap();
    let (_db, _log, mut sm) = open_all(dir.path());
    let mut changes = sm.subscribe();
    assert_eq!(**changes.borrow_and_update(), AppliedState::default());

    sm.apply([entry(1, 1, register("h1")), entry(1, 2, register("h2"))])
        .await
        .unwrap();
    assert!(changes.has_changed().unwrap());
    let applied = changes.borrow_and_update().clone();
    assert_eq!(applied.last_applied, Some(log_id(1, 2)));
    assert_eq!(applied.state.table_version, TableVersion(2));

    // The snapshot builder is a clone and must publish to the same feed.
    let mut builder = sm.get_snapshot_builder().await;
    builder.build_snapshot().await.unwrap();
    let mut clone = sm.clone();
    clone.apply([entry(1, 3, register("h3"))]).await.unwrap();
    assert!(changes.has_changed().unwrap());
    assert_eq!(changes.borrow().state.hosts.len(), 3);
}

#[tokio::test]
async fn snapshot_install_survives_reopen() {
    let leader_dir = TempDir::new().unwrap();
    let (_leader_db, _leader_log, mut leader) = open_all(leader_dir.path());
    leader
        .apply([
            entry(1, 1, EntryPayload::Membership(membership(&[1, 2]))),
            entry(1, 2, register("h1")),
            entry(2, 3, register("h2")),
        ])
        .await
        .unwrap();
    let built = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(built.meta.last_log_id, Some(log_id(2, 3)));

    let follower_dir = TempDir::new().unwrap();
    let (db, _log, mut follower) = open_all(follower_dir.path());
    follower
        .apply([entry(1, 1, register("stale"))])
        .await
        .unwrap();
    let changes = follower.subscribe();
    let mut receiving = follower.begin_receiving_snapshot().await.unwrap();
    *receiving = *built.snapshot.clone();
    follower
        .install_snapshot(&built.meta, receiving)
        .await
        .unwrap();
    assert!(changes.has_changed().unwrap());
    assert_eq!(*changes.borrow(), leader.current());
    drop((db, _log, follower, changes));

    let (_db, _log, mut follower) = open_all(follower_dir.path());
    assert_eq!(follower.current(), leader.current());
    assert!(!follower.current().state.hosts.contains_key("stale"));
    assert_eq!(
        follower.applied_state().await.unwrap(),
        (
            Some(log_id(2, 3)),
            StoredMembership::new(Some(log_id(1, 1)), membership(&[1, 2]))
        )
    );
    let current = follower.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, built.meta);
    assert_eq!(current.snapshot.get_ref(), built.snapshot.get_ref());

    // The installed state keeps applying from where the snapshot ends.
    let responses = follower.apply([entry(2, 4, register("h3"))]).await.unwrap();
    assert_eq!(
        responses,
        [CommandResponse {
            table_version: TableVersion(3),
            changed: true,
            outcome: Default::default(),
            outcomes: Vec::new(),
        }]
    );
}

#[test]
fn identity_is_recorded_then_enforced() {
    let dir = TempDir::new().unwrap();
    {
        let db = open(dir.path()).unwrap();
        check_identity(&db, 1, "prod").unwrap();
        check_identity(&db, 1, "prod").unwrap();
    }
    let db = open(dir.path()).unwrap();
    check_identity(&db, 1, "prod").unwrap();

    let other_node = check_identity(&db, 2, "prod").unwrap_err();
    assert!(matches!(other_node, StoreError::IdentityMismatch { .. }));
    assert_eq!(
        other_node.to_string(),
        r#"data dir belongs to node 1 of cluster "prod", not node 2 of cluster "prod""#
    );
    let other_cluster = check_identity(&db, 1, "staging").unwrap_err();
    assert_eq!(
        other_cluster.to_string(),
        r#"data dir belongs to node 1 of cluster "prod", not node 1 of cluster "staging""#
    );
}

#[test]
fn a_data_dir_in_use_is_refused() {
    let dir = TempDir::new().unwrap();
    let _db = open(dir.path()).unwrap();
    let err = open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains("locked by another process"));
}

#[test]
fn an_unusable_data_dir_is_refused() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    let err = open(&file).unwrap_err();
    assert!(matches!(err, StoreError::Inaccessible { .. }), "{err:?}");
}

#[test]
fn empty_store_has_default_state() {
    let dir = TempDir::new().unwrap();
    let (_db, _log, sm) = open_all(dir.path());
    assert_eq!(sm.current().state, PlacementState::default());
    assert_eq!(sm.current().last_applied, None);
}

fn reminder(name: &str, due_ms: u64) -> rookery_core::reminders::Reminder {
    let key = rookery_core::reminders::ReminderKey {
        actor_type: "counter".into(),
        actor_id: "c1".into(),
        name: name.into(),
    };
    crate::reminder_index::one_shot(key, b"{}".to_vec(), due_ms)
}

/// Reminders are stored one key each, survive a reopen, refuse a duplicate unless asked to
/// overwrite, and go away when deleted or spent.
#[tokio::test]
async fn reminders_are_stored_and_survive_reopen() {
    use crate::reminder_index::{Firing, Outcome};
    let dir = TempDir::new().unwrap();
    let (db, _log, mut sm) = open_all(dir.path());
    let create = |name: &str, due: u64, overwrite: bool| {
        EntryPayload::Normal(Command::CreateReminder {
            reminder: reminder(name, due),
            overwrite,
        })
    };
    let responses = sm
        .apply([
            entry(1, 1, create("a", 100, false)),
            entry(1, 2, create("a", 200, false)),
            entry(1, 3, create("b", 50, false)),
            entry(1, 4, create("c", 70, true)),
        ])
        .await
        .unwrap();
    let outcomes: Vec<_> = responses.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Done,
            Outcome::AlreadyExists,
            Outcome::Done,
            Outcome::Done
        ]
    );
    // "b" fired and is spent; "c" is deleted; a stale report about "a" is ignored.
    sm.apply([
        entry(
            1,
            5,
            EntryPayload::Normal(Command::RecordFirings {
                firings: vec![
                    Firing {
                        key: reminder("b", 50).key,
                        fired_due_ms: 50,
                        next_due_ms: None,
                    },
                    Firing {
                        key: reminder("a", 100).key,
                        fired_due_ms: 99,
                        next_due_ms: Some(1),
                    },
                ],
            }),
        ),
        entry(
            1,
            6,
            EntryPayload::Normal(Command::DeleteReminder {
                key: reminder("c", 0).key,
            }),
        ),
    ])
    .await
    .unwrap();
    let names = |sm: &StateMachineStore| -> Vec<(String, u64)> {
        sm.reminders().read(|index| {
            index
                .all()
                .map(|r| (r.key.name.clone(), r.next_due_ms))
                .collect()
        })
    };
    assert_eq!(names(&sm), [("a".to_owned(), 100)]);
    drop((db, _log, sm));
    let (_db, _log, sm) = open_all(dir.path());
    assert_eq!(
        names(&sm),
        [("a".to_owned(), 100)],
        "reminders reloaded from sled"
    );
}

//! The embedded state store: sled in the host's data dir, for one host (and `rookery up`).
//!
//! Two sled trees: `state` (actor and key → expiry and value) and `handoff` (actor → timers
//! handed off by its last activation), written only by the store's writer thread after the
//! write is durable in the store's own log ([`super::group_commit`], [`super::sled_log`]);
//! sled is flushed only at checkpoints. On open, the log's complete records are replayed
//! into sled, sled is flushed and the log starts over.
//!
//! Claims are held in memory ([`super::sled_fence`]): only this process writes the store, a
//! new activation of an actor starts only after the previous one has ended, and a crash ends
//! every activation that claimed, so a claim that does not survive a restart can fence
//! nothing that still runs. Epochs therefore start over (above every epoch of this process)
//! after a restart. A claim takes the actor's handed-off timers: it removes them from sled
//! and queues that removal to the log without waiting for it (a crash before it is durable
//! may hand the same timers off once more, as a lost claim did before).
//!
//! Keys: the actor as `len(type) type len(id) id` (lengths as u32 big-endian), then the state
//! key's bytes, so one actor's keys are one prefix and no two actors' keys collide. Values:
//! expiry (u64 big-endian Unix-epoch ms, 0 for none) then the value's bytes.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;

use super::group_commit::{GroupCommit, Outcome, Shared, Trees, WriterOptions};
use super::sled_fence::{ActorHash, HandOffIndex, SledFences};
use super::sled_log::{LogOp, LogTree, SledLog};
use super::{expires_at_ms, now_ms, Claim, Epoch, StateError, StateOp, StateStore};
use crate::call::ActorKey;

/// sled's page cache for the state store, in bytes.
const CACHE_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;

pub struct SledStore {
    commit: GroupCommit,
    shared: Arc<Shared>,
    state: sled::Tree,
    handoff: sled::Tree,
}

fn unavailable(e: sled::Error) -> StateError {
    StateError::Unavailable(format!("sled: {e}"))
}

fn actor_prefix(actor: &ActorKey) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(8 + actor.actor_type.len() + actor.actor_id.len());
    for part in [&actor.actor_type, &actor.actor_id] {
        prefix.extend_from_slice(&(part.len() as u32).to_be_bytes());
        prefix.extend_from_slice(part.as_bytes());
    }
    prefix
}

/// The actor's type and id from a key that starts with [`actor_prefix`].
fn split_actor_prefix(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut rest = key;
    let mut part = || {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let (bytes, tail) = tail.split_at_checked(u32::from_be_bytes(*len) as usize)?;
        rest = tail;
        Some(bytes)
    };
    Some((part()?, part()?))
}

fn state_key(actor: &ActorKey, key: &str) -> Vec<u8> {
    let mut full = actor_prefix(actor);
    full.extend_from_slice(key.as_bytes());
    full
}

fn encode_value(value: &[u8], expires_at_ms: Option<u64>) -> Vec<u8> {
    let mut encoded = Vec::with_capacity(8 + value.len());
    encoded.extend_from_slice(&expires_at_ms.unwrap_or(0).to_be_bytes());
    encoded.extend_from_slice(value);
    encoded
}

/// The value, unless it has expired by `now_ms`.
fn decode_value(encoded: &[u8], now_ms: u64) -> Option<Bytes> {
    let (expiry, value) = encoded.split_at_checked(8)?;
    let expires_at_ms = u64::from_be_bytes(expiry.try_into().ok()?);
    (expires_at_ms == 0 || expires_at_ms > now_ms).then(|| Bytes::copy_from_slice(value))
}

/// A transaction's operations as absolute log records (expiry instants fixed now).
fn log_ops(actor: &ActorKey, operations: &[StateOp]) -> Vec<LogOp> {
    operations
        .iter()
        .map(|op| match op {
            StateOp::Upsert {
                key,
                value,
                ttl_seconds,
            } => LogOp {
                tree: LogTree::State,
                key: state_key(actor, key),
                value: Some(encode_value(value, expires_at_ms(*ttl_seconds))),
            },
            StateOp::Delete { key } => LogOp {
                tree: LogTree::State,
                key: state_key(actor, key),
                value: None,
            },
        })
        .collect()
}

impl SledStore {
    pub fn open(path: &Path) -> Result<SledStore, StateError> {
        Self::open_with(path, WriterOptions::default())
    }

    fn open_with(path: &Path, options: WriterOptions) -> Result<SledStore, StateError> {
        let config_error = |e: &dyn std::fmt::Display| {
            StateError::Config(format!("cannot open sled at {}: {e}", path.display()))
        };
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_CAPACITY_BYTES)
            // Durability comes from the store's log; sled is flushed at checkpoints.
            .flush_every_ms(None)
            .open()
            .map_err(|e| config_error(&e))?;
        let tree = |name: &str| db.open_tree(name).map_err(unavailable);
        let trees = Trees {
            state: tree("state")?,
            hand_off: tree("handoff")?,
            db: db.clone(),
        };
        // Epochs were kept in this tree before claims moved to memory.
        db.drop_tree("fences").map_err(unavailable)?;
        let (mut log, records) = SledLog::open(path).map_err(|e| config_error(&e))?;
        trees
            .apply(records.iter().map(Vec::as_slice))
            .map_err(unavailable)?;
        db.flush().map_err(unavailable)?;
        log.restart().map_err(|e| config_error(&e))?;
        let fences = SledFences::new();
        let mut hand_offs = HashSet::new();
        for entry in trees.hand_off.iter() {
            let (key, _) = entry.map_err(unavailable)?;
            if let Some((actor_type, actor_id)) = split_actor_prefix(&key) {
                hand_offs.insert(fences.hash_parts(actor_type, actor_id));
            }
        }
        let shared = Arc::new(Shared {
            fences,
            hand_offs: HandOffIndex::new(hand_offs),
        });
        Ok(SledStore {
            state: trees.state.clone(),
            handoff: trees.hand_off.clone(),
            commit: GroupCommit::start(trees, log, shared.clone(), options)?,
            shared,
        })
    }

    /// Writes `ops` under the fence; returns once durable.
    async fn commit(
        &self,
        actor: &ActorKey,
        epoch: Epoch,
        ops: Vec<LogOp>,
    ) -> Result<(), StateError> {
        let hash = self.shared.fences.hash(actor);
        match self.commit.commit(hash, epoch, ops).await {
            Outcome::Durable => Ok(()),
            Outcome::Fenced => Err(StateError::Fenced(actor.clone())),
            Outcome::Unavailable(reason) => Err(StateError::Unavailable(reason)),
        }
    }

    /// Takes the timers handed off to `actor`, if any.
    fn take_hand_off(
        &self,
        actor: &ActorKey,
        hash: ActorHash,
    ) -> Result<Option<Bytes>, StateError> {
        if !self.shared.hand_offs.take(hash) {
            return Ok(None);
        }
        let prefix = actor_prefix(actor);
        let timers = self.handoff.remove(&prefix).map_err(unavailable)?;
        match &timers {
            Some(_) => self.commit.record(
                hash,
                vec![LogOp {
                    tree: LogTree::HandOff,
                    key: prefix,
                    value: None,
                }],
            ),
            // Another actor with the same hash has the hand-off: keep it known.
            None => self.shared.hand_offs.insert(hash),
        }
        Ok(timers.map(|t| Bytes::copy_from_slice(&t)))
    }
}

impl StateStore for SledStore {
    fn kind(&self) -> &'static str {
        "sled"
    }

    fn claim(&self, actor: &ActorKey) -> BoxFuture<'_, Result<Claim, StateError>> {
        let hash = self.shared.fences.hash(actor);
        let actor = actor.clone();
        async move {
            // The epoch first, then the hand-off: one written under an earlier claim has been
            // applied by then (the claim waits for it), one written after is fenced.
            let epoch = self.shared.fences.claim(hash).await?;
            let handed_off_timers = self.take_hand_off(&actor, hash)?;
            Ok(Claim {
                epoch,
                handed_off_timers,
            })
        }
        .boxed()
    }

    fn release(&self, actor: &ActorKey, epoch: Epoch) {
        self.shared
            .fences
            .release(self.shared.fences.hash(actor), epoch);
    }

    fn get<'a>(
        &'a self,
        actor: &'a ActorKey,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Bytes>, StateError>> {
        let read = self
            .state
            .get(state_key(actor, key))
            .map_err(unavailable)
            .map(|v| v.and_then(|v| decode_value(&v, now_ms())));
        async move { read }.boxed()
    }

    fn transact<'a>(
        &'a self,
        actor: &'a ActorKey,
        epoch: Epoch,
        operations: &'a [StateOp],
    ) -> BoxFuture<'a, Result<(), StateError>> {
        async move { self.commit(actor, epoch, log_ops(actor, operations)).await }.boxed()
    }

    fn hand_off_timers<'a>(
        &'a self,
        actor: &'a ActorKey,
        epoch: Epoch,
        timers: Bytes,
    ) -> BoxFuture<'a, Result<(), StateError>> {
        async move {
            let op = LogOp {
                tree: LogTree::HandOff,
                key: actor_prefix(actor),
                value: Some(timers.to_vec()),
            };
            self.commit(actor, epoch, vec![op]).await
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::state::test_upsert as upsert;

    #[tokio::test]
    async fn a_superseded_activation_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("state")).unwrap();
        let actor = ActorKey::new("Counter", "c1");
        let first = store.claim(&actor).await.unwrap();
        store
            .transact(&actor, first.epoch, &[upsert("count", "1")])
            .await
            .unwrap();
        let second = store.claim(&actor).await.unwrap();
        assert!(second.epoch > first.epoch);
        let stale = store
            .transact(
                &actor,
                first.epoch,
                &[upsert("count", "99"), upsert("other", "x")],
            )
            .await;
        assert_eq!(stale, Err(StateError::Fenced(actor.clone())));
        assert_eq!(
            store.get(&actor, "count").await.unwrap(),
            Some(Bytes::from("1"))
        );
        assert_eq!(store.get(&actor, "other").await.unwrap(), None);
    }

    /// Many actors writing at once all get their acknowledgements (concurrent flushes once
    /// hung with `flush_async`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_transactions_all_complete() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(SledStore::open(&dir.path().join("state")).unwrap());
        let writers = (0..64).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let actor = ActorKey::new("T", format!("a{i}"));
                let claim = store.claim(&actor).await.unwrap();
                for n in 0..20 {
                    store
                        .transact(&actor, claim.epoch, &[upsert("n", &n.to_string())])
                        .await
                        .unwrap();
                }
            })
        });
        let all = futures::future::join_all(writers);
        let done = tokio::time::timeout(std::time::Duration::from_secs(120), all).await;
        assert!(done.is_ok(), "concurrent transactions did not complete");
        let actor = ActorKey::new("T", "a7");
        assert_eq!(
            store.get(&actor, "n").await.unwrap(),
            Some(Bytes::from("19"))
        );
    }

    /// State and hand-offs survive; epochs do not need to (claims are in memory, and every
    /// activation of the closed store has ended), but they still grow: they come from one
    /// counter for the whole process, so a claim after reopening in the same process is
    /// still greater than every earlier one.
    #[tokio::test]
    async fn state_and_hand_offs_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let actor = ActorKey::new("Counter", "c1");
        let epoch = {
            let store = SledStore::open(&path).unwrap();
            let claim = store.claim(&actor).await.unwrap();
            store
                .transact(&actor, claim.epoch, &[upsert("count", "7")])
                .await
                .unwrap();
            store
                .hand_off_timers(&actor, claim.epoch, Bytes::from_static(b"timers"))
                .await
                .unwrap();
            claim.epoch
        };
        let store = SledStore::open(&path).unwrap();
        assert_eq!(
            store.get(&actor, "count").await.unwrap(),
            Some(Bytes::from("7"))
        );
        let claim = store.claim(&actor).await.unwrap();
        assert!(claim.epoch > epoch);
        assert_eq!(claim.handed_off_timers, Some(Bytes::from_static(b"timers")));
        // Taken once.
        assert_eq!(store.claim(&actor).await.unwrap().handed_off_timers, None);
    }

    #[tokio::test]
    async fn actors_do_not_share_keys_and_ttls_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("state")).unwrap();
        // Without length prefixes these two would share the key "ab" + "c".
        let a = ActorKey::new("T", "ab");
        let b = ActorKey::new("T", "a");
        let claim_a = store.claim(&a).await.unwrap();
        store
            .transact(&a, claim_a.epoch, &[upsert("c", "from a")])
            .await
            .unwrap();
        assert_eq!(store.get(&b, "bc").await.unwrap(), None);
        assert_eq!(
            decode_value(&encode_value(b"v", Some(1_000)), 999),
            Some(Bytes::from("v"))
        );
        assert_eq!(decode_value(&encode_value(b"v", Some(1_000)), 1_000), None);
        assert_eq!(
            decode_value(&encode_value(b"v", None), u64::MAX),
            Some(Bytes::from("v"))
        );
    }

    /// The activation that wrote the log, and the actors it wrote (one with two keys, then one
    /// deleted; one with a hand-off).
    async fn write_some(store: &SledStore) -> (ActorKey, ActorKey) {
        let (a, b) = (ActorKey::new("T", "a"), ActorKey::new("T", "b"));
        let claim_a = store.claim(&a).await.unwrap();
        let claim_b = store.claim(&b).await.unwrap();
        store
            .transact(&a, claim_a.epoch, &[upsert("x", "1"), upsert("y", "2")])
            .await
            .unwrap();
        store
            .transact(
                &a,
                claim_a.epoch,
                &[StateOp::Delete { key: "y".into() }, upsert("x", "3")],
            )
            .await
            .unwrap();
        store
            .hand_off_timers(&b, claim_b.epoch, Bytes::from_static(b"timers"))
            .await
            .unwrap();
        (a, b)
    }

    fn copy_log(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        std::fs::copy(
            from.join(super::super::sled_log::LOG_FILE_NAME),
            to.join(super::super::sled_log::LOG_FILE_NAME),
        )
        .unwrap();
    }

    /// What a crash leaves when sled never flushed: the log alone. Opening a store over it
    /// (an empty sled and the copied log) replays every acknowledged transaction, in order.
    #[tokio::test]
    async fn acknowledged_transactions_are_replayed_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (written, crashed) = (dir.path().join("written"), dir.path().join("crashed"));
        let store = SledStore::open(&written).unwrap();
        let (a, b) = write_some(&store).await;
        copy_log(&written, &crashed);
        drop(store);
        let store = SledStore::open(&crashed).unwrap();
        assert_eq!(store.get(&a, "x").await.unwrap(), Some(Bytes::from("3")));
        assert_eq!(store.get(&a, "y").await.unwrap(), None);
        let claim = store.claim(&b).await.unwrap();
        assert_eq!(claim.handed_off_timers, Some(Bytes::from_static(b"timers")));
        drop(store);
        // Replayed into sled and checkpointed: the same after another reopening.
        let store = SledStore::open(&crashed).unwrap();
        assert_eq!(store.get(&a, "x").await.unwrap(), Some(Bytes::from("3")));
    }

    /// A crash during an append leaves a torn last record: it is ignored, the records
    /// before it are replayed, and the store takes new writes.
    #[tokio::test]
    async fn a_torn_last_record_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (written, crashed) = (dir.path().join("written"), dir.path().join("crashed"));
        let store = SledStore::open(&written).unwrap();
        let (a, _) = write_some(&store).await;
        let claim = store.claim(&a).await.unwrap();
        store
            .transact(&a, claim.epoch, &[upsert("x", "torn")])
            .await
            .unwrap();
        copy_log(&written, &crashed);
        drop(store);
        let log_bytes = super::super::sled_log::complete_bytes(&crashed);
        let log = std::fs::OpenOptions::new()
            .write(true)
            .open(crashed.join(super::super::sled_log::LOG_FILE_NAME))
            .unwrap();
        log.set_len(log_bytes - 3).unwrap();
        drop(log);
        let store = SledStore::open(&crashed).unwrap();
        assert_eq!(store.get(&a, "x").await.unwrap(), Some(Bytes::from("3")));
        let claim = store.claim(&a).await.unwrap();
        store
            .transact(&a, claim.epoch, &[upsert("x", "4")])
            .await
            .unwrap();
        assert_eq!(store.get(&a, "x").await.unwrap(), Some(Bytes::from("4")));
    }

    /// A store whose writer is held before the `fdatasync` of its first group: the receiver
    /// hears when it got there, and the sender lets it go on.
    fn store_held_at_first_sync(
        path: &Path,
    ) -> (
        std::sync::Arc<SledStore>,
        std::sync::mpsc::Receiver<()>,
        std::sync::mpsc::Sender<()>,
    ) {
        let (reached, at_sync) = std::sync::mpsc::channel::<()>();
        let (go, resume) = std::sync::mpsc::channel::<()>();
        let gate = std::sync::Mutex::new(Some((reached, resume)));
        let hook: crate::state::group_commit::BeforeSync = Box::new(move || {
            if let Some((reached, resume)) = gate.lock().unwrap().take() {
                reached.send(()).unwrap();
                resume.recv().unwrap();
            }
        });
        let options = WriterOptions {
            before_sync: Some(hook),
            ..WriterOptions::default()
        };
        let store = std::sync::Arc::new(SledStore::open_with(path, options).unwrap());
        (store, at_sync, go)
    }

    /// A write is visible to readers only once its record is synced: the writer is held
    /// between its append and its `fdatasync`, and a read then still sees the old value.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_is_visible_only_once_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (store, at_sync, go) = store_held_at_first_sync(&dir.path().join("state"));
        let actor = ActorKey::new("T", "a");
        let claim = store.claim(&actor).await.unwrap();
        let write = tokio::spawn({
            let (store, actor) = (store.clone(), actor.clone());
            async move {
                store
                    .transact(&actor, claim.epoch, &[upsert("x", "1")])
                    .await
            }
        });
        tokio::task::spawn_blocking(move || at_sync.recv().unwrap())
            .await
            .unwrap();
        assert_eq!(store.get(&actor, "x").await.unwrap(), None);
        assert!(!write.is_finished());
        go.send(()).unwrap();
        write.await.unwrap().unwrap();
        assert_eq!(
            store.get(&actor, "x").await.unwrap(),
            Some(Bytes::from("1"))
        );
    }

    /// A caller gives up on a write the writer has already admitted, and its activation
    /// ends: the write still lands, and the next activation's claim waits for it, so that
    /// activation reads it and its own writes come after.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_claim_waits_for_a_write_its_caller_gave_up_on() {
        let dir = tempfile::tempdir().unwrap();
        let (store, at_sync, go) = store_held_at_first_sync(&dir.path().join("state"));
        let actor = ActorKey::new("T", "a");
        let first = store.claim(&actor).await.unwrap().epoch;
        let write = tokio::spawn({
            let (store, actor) = (store.clone(), actor.clone());
            async move { store.transact(&actor, first, &[upsert("x", "1")]).await }
        });
        tokio::task::spawn_blocking(move || at_sync.recv().unwrap())
            .await
            .unwrap();
        write.abort();
        assert!(write.await.unwrap_err().is_cancelled());
        store.release(&actor, first);
        let claim = tokio::spawn({
            let (store, actor) = (store.clone(), actor.clone());
            async move { store.claim(&actor).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!claim.is_finished(), "claimed while a write was on its way");
        go.send(()).unwrap();
        let second = claim.await.unwrap().unwrap().epoch;
        assert!(second > first);
        assert_eq!(
            store.get(&actor, "x").await.unwrap(),
            Some(Bytes::from("1"))
        );
        store
            .transact(&actor, second, &[upsert("x", "2")])
            .await
            .unwrap();
        assert_eq!(
            store.get(&actor, "x").await.unwrap(),
            Some(Bytes::from("2"))
        );
        assert_eq!(
            store.transact(&actor, first, &[upsert("x", "3")]).await,
            Err(StateError::Fenced(actor.clone()))
        );
    }

    /// Released claims leave nothing behind, and a write under a released claim is fenced.
    #[tokio::test]
    async fn released_claims_are_forgotten_and_fence_their_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("state")).unwrap();
        let mut claims = Vec::new();
        for i in 0..1_000 {
            let actor = ActorKey::new("T", format!("a{i}"));
            let claim = store.claim(&actor).await.unwrap();
            claims.push((actor, claim.epoch));
        }
        let (first, first_epoch) = claims[0].clone();
        store
            .transact(&first, first_epoch, &[upsert("x", "1")])
            .await
            .unwrap();
        assert_eq!(store.shared.fences.len(), 1_000);
        for (actor, epoch) in &claims {
            store.release(actor, *epoch);
        }
        assert_eq!(store.shared.fences.len(), 0);
        assert_eq!(
            store
                .transact(&first, first_epoch, &[upsert("x", "2")])
                .await,
            Err(StateError::Fenced(first.clone()))
        );
        assert_eq!(
            store.get(&first, "x").await.unwrap(),
            Some(Bytes::from("1"))
        );
    }

    /// Past its size bound the log starts over (sled flushed first): it stays small, and
    /// what was written before and after each checkpoint is all there after reopening.
    #[tokio::test]
    async fn the_log_starts_over_at_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let checkpoint_log_bytes = 4 * 1024;
        let store = SledStore::open_with(
            &path,
            WriterOptions {
                checkpoint_log_bytes,
                ..WriterOptions::default()
            },
        )
        .unwrap();
        let actors: Vec<_> = (0..20)
            .map(|i| ActorKey::new("T", format!("a{i}")))
            .collect();
        let mut claims = Vec::new();
        for actor in &actors {
            claims.push(store.claim(actor).await.unwrap().epoch);
        }
        for n in 0..50 {
            for (actor, epoch) in actors.iter().zip(&claims) {
                store
                    .transact(actor, *epoch, &[upsert("n", &format!("{actor:?}{n}"))])
                    .await
                    .unwrap();
            }
        }
        // 1,000 records of over 40 bytes each: the log has started over many times.
        assert!(super::super::sled_log::complete_bytes(&path) < checkpoint_log_bytes + 256);
        drop(store);
        let store = SledStore::open(&path).unwrap();
        for actor in &actors {
            assert_eq!(
                store.get(actor, "n").await.unwrap(),
                Some(Bytes::from(format!("{actor:?}49")))
            );
        }
    }
}

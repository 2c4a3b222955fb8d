//! The embedded state store: sled in the host's data dir, for one host (and `rookery up`).
//!
//! Three trees: `fences` (actor → epoch of its latest claim), `state` (actor and key → expiry
//! and value) and `handoff` (actor → timers handed off by its last activation). A transaction
//! checks the epoch and applies its writes in one sled transaction, then waits for a flush
//! before it is acknowledged; concurrent transactions share one flush
//! ([`super::group_commit`]). Claims are neither transactions nor flushed: only this process
//! writes the store, a new activation of an actor starts only after the previous one has
//! ended, and a crash ends every activation that claimed, so a lost claim can fence nothing
//! that still runs.
//!
//! Keys: the actor as `len(type) type len(id) id` (lengths as u32 big-endian), then the state
//! key's bytes, so one actor's keys are one prefix and no two actors' keys collide. Values:
//! expiry (u64 big-endian Unix-epoch ms, 0 for none) then the value's bytes.

use std::path::Path;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::group_commit::GroupCommit;
use super::{expires_at_ms, now_ms, Claim, Epoch, StateError, StateOp, StateStore};
use crate::call::ActorKey;

/// sled's page cache for the state store, in bytes.
const CACHE_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;

pub struct SledStore {
    commit: GroupCommit,
    fences: sled::Tree,
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

fn decode_epoch(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

impl SledStore {
    pub fn open(path: &Path) -> Result<SledStore, StateError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_CAPACITY_BYTES)
            .open()
            .map_err(|e| {
                StateError::Config(format!("cannot open sled at {}: {e}", path.display()))
            })?;
        let tree = |name: &str| db.open_tree(name).map_err(unavailable);
        Ok(SledStore {
            fences: tree("fences")?,
            state: tree("state")?,
            handoff: tree("handoff")?,
            commit: GroupCommit::start(db)?,
        })
    }

    /// Makes every write so far durable: a blocking `flush` on the group-commit thread rather
    /// than sled's `flush_async` (with many transactions flushing at once, `flush_async`
    /// futures were seen never to complete: the state bench's 64-actor run hung).
    async fn flush(&self) -> Result<(), StateError> {
        self.commit.durable().await
    }

    /// Runs `body` in one sled transaction over the fence and state trees, after checking
    /// that `epoch` is the actor's latest claim.
    fn fenced<T>(
        &self,
        actor: &ActorKey,
        epoch: Epoch,
        body: impl Fn(
            &sled::transaction::TransactionalTree,
            &sled::transaction::TransactionalTree,
        ) -> Result<T, ConflictableTransactionError<StateError>>,
    ) -> Result<T, StateError> {
        let prefix = actor_prefix(actor);
        (&self.fences, &self.state, &self.handoff)
            .transaction(|(fences, state, handoff)| {
                let current = fences.get(&prefix)?.map(|v| decode_epoch(&v)).unwrap_or(0);
                if current != epoch.0 {
                    return Err(ConflictableTransactionError::Abort(StateError::Fenced(
                        actor.clone(),
                    )));
                }
                body(state, handoff)
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => unavailable(e),
            })
    }
}

impl StateStore for SledStore {
    fn kind(&self) -> &'static str {
        "sled"
    }

    fn claim(&self, actor: &ActorKey) -> BoxFuture<'_, Result<Claim, StateError>> {
        // Not a sled transaction (one per activation made claims the bulk of an activation's
        // cost): within this process a new activation of an actor starts only after the
        // previous one has ended, so no write of that actor runs concurrently with its claim.
        // The epoch goes up first, then the hand-off is taken: a hand-off written after the
        // bump is fenced, one written before it is taken here.
        let prefix = actor_prefix(actor);
        let claimed = (|| {
            let epoch = self
                .fences
                .update_and_fetch(&prefix, |old| {
                    let next = old.map(decode_epoch).unwrap_or(0) + 1;
                    Some(next.to_be_bytes().to_vec())
                })
                .map_err(unavailable)?
                .map(|v| decode_epoch(&v))
                .expect("update_and_fetch stores a value");
            let timers = if self.handoff.contains_key(&prefix).map_err(unavailable)? {
                self.handoff.remove(&prefix).map_err(unavailable)?
            } else {
                None
            };
            Ok(Claim {
                epoch: Epoch(epoch),
                handed_off_timers: timers.map(|t| Bytes::copy_from_slice(&t)),
            })
        })();
        async move { claimed }.boxed()
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
        async move {
            self.fenced(actor, epoch, |state, _| {
                for op in operations {
                    match op {
                        StateOp::Upsert {
                            key,
                            value,
                            ttl_seconds,
                        } => {
                            state.insert(
                                state_key(actor, key),
                                encode_value(value, expires_at_ms(*ttl_seconds)),
                            )?;
                        }
                        StateOp::Delete { key } => {
                            state.remove(state_key(actor, key))?;
                        }
                    }
                }
                Ok(())
            })?;
            self.flush().await
        }
        .boxed()
    }

    fn hand_off_timers<'a>(
        &'a self,
        actor: &'a ActorKey,
        epoch: Epoch,
        timers: Bytes,
    ) -> BoxFuture<'a, Result<(), StateError>> {
        async move {
            let prefix = actor_prefix(actor);
            self.fenced(actor, epoch, |_, handoff| {
                handoff.insert(prefix.as_slice(), timers.as_ref())?;
                Ok(())
            })?;
            self.flush().await
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

    #[tokio::test]
    async fn state_and_epochs_survive_reopening() {
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
}

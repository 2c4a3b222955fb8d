//! The sled store's activation fence, held in memory: which claim of each live actor is its
//! latest.
//!
//! Epochs need not be durable on sled: only this process writes the store, a new activation
//! of an actor starts only after the previous one has ended, and a crash ends every
//! activation that ever claimed. So epochs come from one process-wide counter (each claim's
//! is greater than every earlier one, in any store of the process), and the store keeps, per
//! actor with a live claim, the epoch of that claim. A write is admitted only if its actor's
//! entry holds the write's epoch; with no entry (never claimed, or released) it is fenced.
//!
//! An entry lives from a claim until its activation releases it ([`SledFences::release`]),
//! so the map holds one small entry per live activation and none for actors that are gone.
//!
//! **Writes admitted but not applied yet.** The group-commit writer admits a write (epoch
//! checked) before its log append and `fdatasync`, and applies it to sled only after. The
//! writer marks the entry with its group's number when it admits a write; a claim of that
//! actor waits until that group has settled (applied, or failed and never applied) before it
//! takes the entry over, and a released entry stays until then. So a new activation never
//! reads the actor's state while an admitted write of the previous one is still on its way
//! (its caller may have given up waiting), and that write lands before the new activation's
//! first read, as on PostgreSQL, where the claim waits for the row lock.
//!
//! [`HandOffIndex`] remembers which actors have timers handed off (loaded from sled at open),
//! so that a claim reads sled only for those.
//!
//! Keys are a 64-bit hash of the actor. Two live actors sharing a hash could only make one
//! of them fenced (each epoch belongs to one claim of one actor, so no write is ever admitted
//! under another actor's claim): a spurious failure, never a wrong write.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use super::{Epoch, StateError};
use crate::call::ActorKey;

/// Every claim of the process draws its epoch here (0 never names a claim).
static NEXT_EPOCH: AtomicU64 = AtomicU64::new(1);

/// An entry's epoch once its activation released it while a write was still on its way.
const RELEASED: u64 = 0;

const SHARDS: usize = 64;

/// One actor's live claim.
#[derive(Clone, Copy, Debug)]
struct Live {
    /// The latest claim's epoch, or [`RELEASED`].
    epoch: u64,
    /// The last writer group that admitted a write of this actor (0: none).
    group: u64,
}

/// The map's keys are already hashes: spread them over the buckets with one multiply.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        // The low bits chose the shard: take the rest.
        (self.0 >> 6).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8) | u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

type Shard = HashMap<u64, Live, BuildHasherDefault<PreHashed>>;

/// The latest claim of every actor with a live activation, and how far the writer has got.
pub struct SledFences {
    shards: Box<[Mutex<Shard>]>,
    hasher: std::collections::hash_map::RandomState,
    /// The last writer group that has settled (applied, or failed).
    settled: watch::Sender<u64>,
}

/// An actor as the fence (and the hand-off index) names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ActorHash(pub u64);

impl SledFences {
    pub fn new() -> SledFences {
        SledFences {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            settled: watch::Sender::new(0),
        }
    }

    pub fn hash(&self, actor: &ActorKey) -> ActorHash {
        self.hash_parts(actor.actor_type.as_bytes(), actor.actor_id.as_bytes())
    }

    /// The hash of the actor of this type and id (as bytes, as keys store them).
    pub fn hash_parts(&self, actor_type: &[u8], actor_id: &[u8]) -> ActorHash {
        let mut hasher = self.hasher.build_hasher();
        for part in [actor_type, actor_id] {
            hasher.write(&(part.len() as u32).to_be_bytes());
            hasher.write(part);
        }
        ActorHash(hasher.finish())
    }

    fn shard(&self, actor: ActorHash) -> MutexGuard<'_, Shard> {
        self.shards[(actor.0 as usize) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn settled_group(&self) -> u64 {
        *self.settled.borrow()
    }

    /// A new claim of `actor`: its epoch, once no admitted write of an earlier claim is still
    /// on its way to sled.
    pub async fn claim(&self, actor: ActorHash) -> Result<Epoch, StateError> {
        loop {
            let pending_group = {
                let mut shard = self.shard(actor);
                let pending_group = shard.get(&actor.0).map_or(0, |live| live.group);
                if pending_group <= self.settled_group() {
                    let epoch = NEXT_EPOCH.fetch_add(1, Ordering::Relaxed);
                    shard.insert(actor.0, Live { epoch, group: 0 });
                    return Ok(Epoch(epoch));
                }
                pending_group
            };
            self.settled
                .subscribe()
                .wait_for(|settled| *settled >= pending_group)
                .await
                .map_err(|_| StateError::Unavailable("sled writer has stopped".into()))?;
        }
    }

    /// The activation of `epoch` has ended: its entry goes (once no write of it is on its way).
    pub fn release(&self, actor: ActorHash, epoch: Epoch) {
        let mut shard = self.shard(actor);
        if let Some(live) = shard.get_mut(&actor.0) {
            if live.epoch == epoch.0 {
                if live.group <= self.settled_group() {
                    shard.remove(&actor.0);
                } else {
                    live.epoch = RELEASED;
                }
            }
        }
    }

    /// For the writer: admits a write of `actor` under `epoch` into group `group`, or not.
    pub fn admit(&self, actor: ActorHash, epoch: Epoch, group: u64) -> bool {
        let mut shard = self.shard(actor);
        match shard.get_mut(&actor.0) {
            Some(live) if live.epoch == epoch.0 && epoch.0 != RELEASED => {
                live.group = group;
                true
            }
            _ => false,
        }
    }

    /// For the writer: group `group` has been applied (or has failed), so claims waiting for
    /// it go on; `admitted` are the actors it admitted writes of (released entries among them
    /// go now).
    pub fn settle(&self, group: u64, admitted: impl IntoIterator<Item = ActorHash>) {
        self.settled.send_replace(group);
        for actor in admitted {
            let mut shard = self.shard(actor);
            if let Some(live) = shard.get(&actor.0) {
                if live.epoch == RELEASED && live.group <= group {
                    shard.remove(&actor.0);
                }
            }
        }
    }

    /// Live entries, for tests of the map's bound.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

/// Which actors have timers handed off, so that a claim reads sled only for those.
pub struct HandOffIndex {
    actors: Mutex<HashSet<ActorHash>>,
    /// How many: a claim checks this first, without the lock.
    count: AtomicUsize,
}

impl HandOffIndex {
    pub fn new(actors: HashSet<ActorHash>) -> HandOffIndex {
        HandOffIndex {
            count: AtomicUsize::new(actors.len()),
            actors: Mutex::new(actors),
        }
    }

    fn actors(&self) -> MutexGuard<'_, HashSet<ActorHash>> {
        self.actors.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// For the writer, once a hand-off of `actor` is in sled.
    pub fn insert(&self, actor: ActorHash) {
        let mut actors = self.actors();
        actors.insert(actor);
        self.count.store(actors.len(), Ordering::Release);
    }

    /// For a claim: whether `actor` may have a hand-off to take (it is then forgotten here).
    pub fn take(&self, actor: ActorHash) -> bool {
        if self.count.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mut actors = self.actors();
        let had = actors.remove(&actor);
        self.count.store(actors.len(), Ordering::Release);
        had
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_latest_claim_is_admitted_and_released_entries_go() {
        let fences = SledFences::new();
        let actor = fences.hash(&ActorKey::new("T", "a"));
        let first = fences.claim(actor).await.unwrap();
        assert!(fences.admit(actor, first, 1));
        fences.settle(1, [actor]);
        let second = fences.claim(actor).await.unwrap();
        assert!(second > first);
        assert!(!fences.admit(actor, first, 2));
        // A stale release leaves the live claim alone.
        fences.release(actor, first);
        assert!(fences.admit(actor, second, 2));
        fences.settle(2, [actor]);
        fences.release(actor, second);
        assert_eq!(fences.len(), 0);
        assert!(!fences.admit(actor, second, 3), "no entry: fenced");
    }

    #[tokio::test]
    async fn a_claim_waits_for_an_admitted_write_of_the_previous_claim() {
        let fences = std::sync::Arc::new(SledFences::new());
        let actor = fences.hash(&ActorKey::new("T", "a"));
        let first = fences.claim(actor).await.unwrap();
        assert!(fences.admit(actor, first, 1));
        // Its caller gave up and the activation ended while group 1 is being written.
        fences.release(actor, first);
        assert_eq!(fences.len(), 1, "kept until its write has settled");
        let claim = tokio::spawn({
            let fences = fences.clone();
            async move { fences.claim(actor).await }
        });
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!claim.is_finished(), "claimed before the write was applied");
        fences.settle(1, [actor]);
        let second = claim.await.unwrap().unwrap();
        assert!(second > first);
        assert!(fences.admit(actor, second, 2));
    }
}

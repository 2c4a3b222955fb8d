//! The activations of this host: at most one per actor, created on demand, ended when idle,
//! moved, or withdrawn.
//!
//! An actor that moves away with timers leaves them in the state store for its next
//! activation; so that they resume without waiting for a call, its key is queued on
//! [`HandOffs`], which the host's waker drains (it sends the actor a wake on its new owner).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::actors::activation::{Activation, ActivationSink, HostSide, StopReason};
use crate::actors::types::TypeRegistry;
use crate::call::ActorKey;
use crate::cluster::lease::ServingGate;
use crate::error::CallError;
use crate::metrics::HostMetrics;
use crate::resiliency::TargetPolicy;
use crate::state::ActorStateAccess;

/// Most activations one host keeps; beyond it new activations are refused as overloaded.
pub const MAX_ACTIVATIONS: usize = 10_000_000;
/// Most hand-offs queued for the waker; beyond it an actor's timers resume on its next
/// activation instead of at once.
pub const MAX_QUEUED_HAND_OFFS: usize = 65_536;

/// Actors that moved away and left timers in the store, to wake on their new owner.
pub struct HandOffs {
    queued: mpsc::Receiver<ActorKey>,
    pending: Arc<AtomicUsize>,
}

/// One actor to wake; it counts as pending (see [`Activations::wakes_done`]) until dropped.
pub struct HandOff {
    pub key: ActorKey,
    pending: Arc<AtomicUsize>,
}

impl Drop for HandOff {
    fn drop(&mut self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HandOffs {
    /// The next actor to wake; `None` once the activations are gone.
    pub async fn recv(&mut self) -> Option<HandOff> {
        let key = self.queued.recv().await?;
        Some(HandOff {
            key,
            pending: self.pending.clone(),
        })
    }
}

/// Shards of the map of activations: calls to different actors rarely meet on one lock (a
/// lock every call takes would be a write every core shares).
const SHARDS: usize = 32;

type Shard = HashMap<Arc<ActorKey>, Arc<Activation>>;

/// The shard of an actor: FNV-1a of its id (cheap; ids that pile into one shard only slow
/// that shard, each of which hashes its keys with its own random keys).
fn shard_of(key: &ActorKey) -> usize {
    let hash = key
        .actor_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    (hash % SHARDS as u64) as usize
}

pub struct Activations {
    /// Keyed by the activation's own key (shared, not copied), sharded by [`shard_of`].
    shards: Box<[Mutex<Shard>]>,
    /// Activations in all shards.
    count: AtomicUsize,
    types: Arc<TypeRegistry>,
    next_id: AtomicU64,
    gate: ServingGate,
    /// What every activation here shares (one allocation for all of them).
    side: Arc<HostSide>,
    /// Set while the host leaves: no new activations.
    closed: AtomicBool,
    state: Option<ActorStateAccess>,
    /// Where actors that handed off timers are queued to be woken on their new owner.
    hand_offs: mpsc::Sender<ActorKey>,
    /// Hand-offs queued or being woken (a leaving host waits for them, bounded).
    wakes_pending: Arc<AtomicUsize>,
}

impl Activations {
    /// The host's activations, and the queue of hand-offs to wake.
    pub fn new(
        types: Arc<TypeRegistry>,
        metrics: Arc<HostMetrics>,
        gate: ServingGate,
        state: Option<ActorStateAccess>,
        app_policy: Option<Arc<TargetPolicy>>,
    ) -> (Arc<Activations>, HandOffs) {
        let (hand_offs, queued) = mpsc::channel(MAX_QUEUED_HAND_OFFS);
        let wakes_pending = Arc::new(AtomicUsize::new(0));
        let receiver = HandOffs {
            queued,
            pending: wakes_pending.clone(),
        };
        let activations = Arc::new_cyclic(|me: &Weak<Activations>| Activations {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            count: AtomicUsize::new(0),
            types,
            side: Arc::new(HostSide {
                gate: gate.clone(),
                sink: me.clone() as Weak<dyn ActivationSink>,
                metrics,
                state: state.clone(),
                app_policy,
            }),
            next_id: AtomicU64::new(1),
            gate,
            closed: AtomicBool::new(false),
            state,
            hand_offs,
            wakes_pending,
        });
        (activations, receiver)
    }

    fn shard(&self, key: &ActorKey) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[shard_of(key)].lock().expect("activations lock")
    }

    /// Every activation, shard after shard (each shard locked only while it is read).
    fn each(&self, mut visit: impl FnMut(&Arc<ActorKey>, &Arc<Activation>)) {
        for shard in self.shards.iter() {
            for (key, activation) in shard.lock().expect("activations lock").iter() {
                visit(key, activation);
            }
        }
    }

    /// Refuses new activations from now on (the host is leaving); calls for actors not active
    /// here are answered "moved" and retried on their new owner.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// The actor's activation on this host, activating it if needed. A previous activation
    /// still ending is waited for, so one actor never has two activations here at once.
    pub async fn get_or_activate(&self, key: &ActorKey) -> Result<Arc<Activation>, CallError> {
        loop {
            let ending = {
                let mut map = self.shard(key);
                match map.get(key) {
                    Some(existing) if !existing.is_stopping() => return Ok(existing.clone()),
                    Some(existing) => existing.clone(),
                    None => {
                        if self.closed.load(Ordering::Acquire) {
                            return Err(CallError::Moved(format!(
                                "host is leaving; actor {key} will activate elsewhere"
                            )));
                        }
                        let registered = self.types.get(&key.actor_type).ok_or_else(|| {
                            CallError::Unavailable(format!(
                                "actor type {:?} is not served on this host (its app may have disconnected)",
                                key.actor_type
                            ))
                        })?;
                        if self.count.load(Ordering::Relaxed) >= MAX_ACTIVATIONS {
                            return Err(CallError::Overloaded(format!(
                                "this host holds the most activations it may ({MAX_ACTIVATIONS})"
                            )));
                        }
                        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                        let activation = Activation::new(
                            Arc::new(key.clone()),
                            id,
                            registered.channel,
                            registered.options,
                            self.side.clone(),
                        );
                        map.insert(activation.key.clone(), activation.clone());
                        self.count.fetch_add(1, Ordering::Relaxed);
                        return Ok(activation);
                    }
                }
            };
            ending.finished().await;
        }
    }

    /// Whether (and until when) this host may run turns.
    pub fn gate(&self) -> &ServingGate {
        &self.gate
    }

    /// The live activation of an actor on this host, if any.
    pub fn get(&self, key: &ActorKey) -> Option<Arc<Activation>> {
        self.shard(key)
            .get(key)
            .filter(|a| !a.is_stopping())
            .cloned()
    }

    /// The actor's activation on this host while it has not ended, also while it finishes
    /// its last turn before moving: state requests of that turn must still be served.
    pub fn get_until_finished(&self, key: &ActorKey) -> Option<Arc<Activation>> {
        self.shard(key).get(key).cloned()
    }

    /// Waits (up to `timeout`) until every hand-off queued has been woken (or failed to).
    pub async fn wakes_done(&self, timeout: std::time::Duration) {
        let deadline = Instant::now() + timeout;
        while self.wakes_pending.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The host's state store, if it has one.
    pub fn state(&self) -> Option<&ActorStateAccess> {
        self.state.as_ref()
    }

    /// Asks every activation matching `predicate` to end; returns them, to wait on.
    pub fn stop_where(
        &self,
        reason: StopReason,
        predicate: impl Fn(&ActorKey) -> bool,
    ) -> Vec<Arc<Activation>> {
        let mut stopped = Vec::new();
        self.each(|key, activation| {
            if predicate(key) && !activation.is_stopping() {
                activation.request_stop(reason);
                stopped.push(activation.clone());
            }
        });
        stopped
    }

    /// Ends activations unused for longer than their type's idle timeout.
    pub fn collect_idle(&self) -> usize {
        let now = Instant::now();
        let mut collected = 0;
        self.each(|_, activation| {
            if !activation.is_stopping()
                && !activation.is_busy()
                && activation.idle_for(now) >= activation.options().idle_timeout()
            {
                activation.request_stop(StopReason::Idle);
                collected += 1;
            }
        });
        collected
    }

    /// The actors active here, optionally of one type.
    pub fn list(&self, actor_type: Option<&str>) -> Vec<ActorKey> {
        let mut keys = Vec::new();
        self.each(|k, a| {
            if actor_type.is_none_or(|t| k.actor_type == t) && !a.is_stopping() {
                keys.push(ActorKey::clone(k));
            }
        });
        keys.sort();
        keys
    }

    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops everything and waits until every activation has ended.
    pub async fn stop_all(&self, reason: StopReason) {
        let mut all = Vec::new();
        self.each(|_, activation| all.push(activation.clone()));
        for activation in &all {
            activation.request_stop(reason);
        }
        for activation in all {
            activation.finished().await;
        }
    }
}

impl ActivationSink for Activations {
    fn finished(&self, key: &ActorKey, activation_id: u64) {
        let mut map = self.shard(key);
        if map.get(key).is_some_and(|a| a.id == activation_id) {
            map.remove(key);
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn handed_off(&self, key: &ActorKey) {
        self.wakes_pending.fetch_add(1, Ordering::AcqRel);
        if self.hand_offs.try_send(key.clone()).is_err() {
            self.wakes_pending.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(actor = %key, "too many hand-offs queued; its timers resume on its next activation");
        }
    }
}

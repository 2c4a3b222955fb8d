//! One activation: a task and a bounded mailbox per active actor, one turn at a time.
//!
//! Calls queue in the mailbox and the task runs them in order, each bounded by the type's call
//! timeout, so an app that never answers releases the turn. A call of the chain whose turn is
//! in progress would deadlock in the queue; it re-enters at once when the type allows
//! reentrancy (up to its depth limit) and fails with a reentrancy error otherwise.
//!
//! Lifecycle: claim the actor in the state store (its epoch fences every later write of older
//! activations; timers handed off by the previous activation come back) → activate (the app
//! hears it) → turns → stop requested (idle, moved, withdrawn) → the turn in progress
//! finishes, queued calls are answered `Unavailable` (the router retries them on the next
//! activation or the new owner) → on a move, timers handed off through the store →
//! deactivate (the app hears it) → done.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::actor::{ActorChannel, ActorKey, Call, CallKind, ReentrantInvoker, TimerSpec};
use crate::config::TypeOptions;
use crate::error::CallError;
use crate::metrics::HostMetrics;
use crate::routing::ServingGate;
use crate::state::{self, ActorStateAccess, Epoch, StateOp};
use crate::timers::{self, Timers};

/// Calls queued for one actor before callers are told it is overloaded.
pub const MAILBOX_CAPACITY: usize = 1024;

/// Why an activation ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    Idle,
    /// Another host owns the actor now (or this host is leaving).
    Moved,
    /// The app that served the type disconnected: there is no one to tell.
    Withdrawn,
    Shutdown,
}

struct Turn {
    call: Call,
    reply: oneshot::Sender<Result<Bytes, CallError>>,
}

/// Called when an activation has fully ended, so its registry can forget it.
pub trait ActivationSink: Send + Sync + 'static {
    fn finished(&self, key: &ActorKey, activation_id: u64);
    /// The activation moved away and left timers in the store for its next activation.
    fn handed_off(&self, _key: &ActorKey) {}
}

pub struct Activation {
    pub key: ActorKey,
    /// Distinguishes successive activations of one actor on this host.
    pub id: u64,
    options: TypeOptions,
    /// Boxed turns: tokio allocates a channel's first block of 32 slots up front, and an idle
    /// activation should not carry 32 inline turns (about 6 KB) for nothing.
    mailbox: mpsc::Sender<Box<Turn>>,
    stop: watch::Sender<Option<StopReason>>,
    done: watch::Receiver<bool>,
    /// The call chain of the turn in progress, if any.
    current_chain: Mutex<Option<String>>,
    reentrant_depth: AtomicU32,
    reentrant: OnceLock<Option<ReentrantInvoker>>,
    /// Calls queued or running.
    busy: AtomicUsize,
    last_used: Mutex<Instant>,
    gate: ServingGate,
    /// The serving epoch the activation was created in; it may run turns only in that epoch.
    serving_epoch: u64,
    timers: Timers,
    /// The host's state store, if it has one.
    state: Option<ActorStateAccess>,
    /// This activation's claim on its actor in the store, once made.
    claim: OnceLock<Epoch>,
    /// Itself, for timer tasks (which must not keep it alive).
    me: Weak<Activation>,
    epoch: Instant,
    activated_at_ms: AtomicU64,
    metrics: Arc<HostMetrics>,
}

/// Decrements a counter when dropped, so early returns and cancelled callers keep it right.
struct CountGuard<'a, T: Counter>(&'a T);
trait Counter {
    fn dec(&self);
}
impl Counter for AtomicUsize {
    fn dec(&self) {
        self.fetch_sub(1, Ordering::AcqRel);
    }
}
impl Counter for AtomicU32 {
    fn dec(&self) {
        self.fetch_sub(1, Ordering::AcqRel);
    }
}
impl<T: Counter> Drop for CountGuard<'_, T> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What every activation of a host shares: the serving gate, the registry that hears when an
/// activation ends, metrics and the state store.
#[derive(Clone)]
pub struct HostSide {
    pub gate: ServingGate,
    pub sink: Weak<dyn ActivationSink>,
    pub metrics: Arc<HostMetrics>,
    pub state: Option<ActorStateAccess>,
}

impl Activation {
    /// Starts the activation's task. `host.sink` hears when it has ended.
    pub fn spawn(
        key: ActorKey,
        id: u64,
        channel: Arc<dyn ActorChannel>,
        options: TypeOptions,
        host: HostSide,
    ) -> Arc<Activation> {
        let HostSide {
            gate,
            sink,
            metrics,
            state,
        } = host;
        let (mailbox, inbox) = mpsc::channel(MAILBOX_CAPACITY);
        let (stop, stop_rx) = watch::channel(None);
        let (done_tx, done) = watch::channel(false);
        let now = Instant::now();
        let activation = Arc::new_cyclic(|me| Activation {
            key,
            id,
            options,
            mailbox,
            stop,
            done,
            current_chain: Mutex::new(None),
            reentrant_depth: AtomicU32::new(0),
            reentrant: OnceLock::new(),
            busy: AtomicUsize::new(0),
            last_used: Mutex::new(now),
            serving_epoch: gate.epoch(),
            gate,
            timers: Timers::default(),
            state,
            claim: OnceLock::new(),
            me: me.clone(),
            epoch: now,
            activated_at_ms: AtomicU64::new(0),
            metrics,
        });
        tokio::spawn(run(
            activation.clone(),
            channel,
            inbox,
            stop_rx,
            done_tx,
            sink,
        ));
        activation
    }

    /// Runs one call on this actor: queued for its turn, or re-entering the chain in progress.
    pub async fn call(&self, call: Call) -> Result<Bytes, CallError> {
        // Timer ticks do not count as use (as in Orleans): a timer alone does not keep an
        // idle actor active.
        let counts_as_use = !matches!(call.kind, CallKind::Timer(_) | CallKind::Wake);
        if counts_as_use {
            *self.last_used.lock().expect("last_used lock") = Instant::now();
        }
        let same_chain = !call.call_chain_id.is_empty()
            && self.current_chain.lock().expect("chain lock").as_deref()
                == Some(call.call_chain_id.as_str());
        if same_chain {
            return self.reenter(call).await;
        }
        self.busy.fetch_add(1, Ordering::AcqRel);
        let _busy = CountGuard(&self.busy);
        let (reply, answer) = oneshot::channel();
        self.metrics
            .mailbox_depth
            .observe((MAILBOX_CAPACITY - self.mailbox.capacity()) as f64);
        match self.mailbox.try_send(Box::new(Turn { call, reply })) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(CallError::Overloaded(format!(
                    "mailbox of actor {} is full ({MAILBOX_CAPACITY} calls queued)",
                    self.key
                )))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(CallError::Unavailable(format!(
                    "actor {} is deactivating",
                    self.key
                )))
            }
        }
        answer.await.unwrap_or_else(|_| {
            Err(CallError::Unavailable(format!(
                "actor {} is deactivating",
                self.key
            )))
        })
    }

    async fn reenter(&self, call: Call) -> Result<Bytes, CallError> {
        if !self.options.reentrancy {
            return Err(CallError::Reentrancy(format!(
                "actor {} is busy in this call chain and type {} does not allow reentrancy",
                self.key, self.key.actor_type
            )));
        }
        let depth = self.reentrant_depth.fetch_add(1, Ordering::AcqRel) + 1;
        let _depth = CountGuard(&self.reentrant_depth);
        if depth > self.options.max_reentrancy_depth {
            return Err(CallError::Reentrancy(format!(
                "reentrancy into actor {} deeper than the limit of {}",
                self.key, self.options.max_reentrancy_depth
            )));
        }
        let invoker = self.reentrant.get().cloned().flatten().ok_or_else(|| {
            CallError::Reentrancy(format!(
                "actor {} is busy in this call chain and its channel cannot re-enter it",
                self.key
            ))
        })?;
        match tokio::time::timeout(self.options.call_timeout(), invoker(call)).await {
            Ok(result) => result,
            Err(_) => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> CallError {
        CallError::DeadlineExceeded(format!(
            "actor {} did not answer within its call timeout of {} ms",
            self.key, self.options.call_timeout_ms
        ))
    }

    /// Registers (or replaces) a timer: its ticks are queued as turns of this actor until it
    /// is unregistered, its schedule ends, or the activation ends (or moves with the actor).
    pub fn register_timer(&self, spec: TimerSpec) -> Result<(), CallError> {
        self.timers
            .register(self.me.clone(), spec, 0)
            .map_err(CallError::InvalidArgument)
    }

    /// Stops a timer; false if there was none of that name.
    pub fn unregister_timer(&self, name: &str) -> bool {
        self.timers.unregister(name)
    }

    fn state_access(&self) -> Result<(&ActorStateAccess, Epoch), CallError> {
        let access = self.state.as_ref().ok_or_else(|| {
            CallError::FailedPrecondition("this host has no state store configured".into())
        })?;
        let epoch = *self.claim.get().ok_or_else(|| {
            CallError::FailedPrecondition(format!("actor {} is not active yet", self.key))
        })?;
        Ok((access, epoch))
    }

    /// Reads one key of this actor's state.
    pub async fn get_state(&self, key: &str) -> Result<Option<Bytes>, CallError> {
        let (access, _) = self.state_access()?;
        state::validate_key(key)?;
        Ok(access.store.get(&self.key, key).await?)
    }

    /// Applies `operations` to this actor's state, all or none, fenced by this activation's
    /// claim; returns once durable. A fenced write means another activation has claimed the
    /// actor since: this one is stale and ends.
    pub async fn transact_state(&self, operations: &[StateOp]) -> Result<(), CallError> {
        let (access, epoch) = self.state_access()?;
        let started = std::time::Instant::now();
        let written = match state::validate_transaction(operations, access.max_transaction_bytes) {
            Ok(()) => access.store.transact(&self.key, epoch, operations).await,
            Err(e) => Err(e),
        };
        self.metrics
            .state_transactions_total
            .get_or_create(&crate::metrics::StateLabels::of(&written))
            .inc();
        if written.is_ok() {
            self.metrics
                .state_transaction_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        if let Err(state::StateError::Fenced(_)) = &written {
            tracing::warn!(actor = %self.key, "state write fenced: a newer activation exists; ending this one");
            self.request_stop(StopReason::Moved);
        }
        Ok(written?)
    }

    /// Asks the activation to end after its turn in progress.
    pub fn request_stop(&self, reason: StopReason) {
        self.stop.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    pub fn is_stopping(&self) -> bool {
        self.stop.borrow().is_some()
    }

    /// Whether calls are queued or running.
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire) > 0
            || self.current_chain.lock().expect("chain lock").is_some()
    }

    pub fn idle_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(*self.last_used.lock().expect("last_used lock"))
    }

    pub fn options(&self) -> &TypeOptions {
        &self.options
    }

    /// Resolves once the activation has fully ended (the app told, if it could be).
    pub async fn finished(&self) {
        let mut done = self.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }

    /// The serving epoch this activation belongs to.
    pub fn serving_epoch(&self) -> u64 {
        self.serving_epoch
    }

    /// Milliseconds since the activation was created until it finished activating.
    pub fn activation_ms(&self) -> u64 {
        self.activated_at_ms.load(Ordering::Relaxed)
    }
}

async fn run(
    activation: Arc<Activation>,
    channel: Arc<dyn ActorChannel>,
    mut inbox: mpsc::Receiver<Box<Turn>>,
    mut stop: watch::Receiver<Option<StopReason>>,
    done: watch::Sender<bool>,
    sink: Weak<dyn ActivationSink>,
) {
    let key = activation.key.clone();
    let metrics = activation.metrics.clone();
    metrics.active_activations.inc();
    metrics.activations_total.inc();
    let activated = match claim(&activation).await {
        Ok(handed_off) => {
            let activated = tokio::time::timeout(
                activation.options.call_timeout(),
                channel.activate(key.clone()),
            )
            .await;
            if matches!(activated, Ok(Ok(_))) {
                for timer in handed_off {
                    let (spec, fired) = timer.resume();
                    if let Err(e) = activation
                        .timers
                        .register(activation.me.clone(), spec, fired)
                    {
                        tracing::warn!(actor = %key, error = %e, "cannot resume a handed-off timer");
                    }
                }
            }
            activated
        }
        Err(e) => Ok(Err(e)),
    };
    let mut instance = match activated {
        Ok(Ok(instance)) => Some(instance),
        Ok(Err(e)) => {
            tracing::warn!(actor = %key, error = %e, "activation failed");
            fail_queued(&mut inbox, e);
            None
        }
        Err(_) => {
            let e = activation.timed_out();
            tracing::warn!(actor = %key, "activation timed out");
            fail_queued(&mut inbox, e);
            None
        }
    };
    activation.activated_at_ms.store(
        activation.epoch.elapsed().as_millis() as u64,
        Ordering::Relaxed,
    );
    let mut reason = StopReason::Shutdown;
    if let Some(instance) = instance.as_mut() {
        let _ = activation.reentrant.set(instance.reentrant_invoker());
        loop {
            let turn = tokio::select! {
                // Between turns, a stop request wins over queued calls: they are answered
                // Unavailable and retried, never run by an actor that is going away.
                biased;
                _ = stop.wait_for(Option::is_some) => break,
                turn = inbox.recv() => match turn {
                    Some(turn) => turn,
                    None => break,
                },
            };
            if turn.reply.is_closed() {
                continue; // the caller gave up while queued
            }
            // No turn runs without a valid lease: a host cut off from placement may already
            // have lost this actor to another host.
            if !activation
                .gate
                .wait_open(Instant::now() + activation.options.call_timeout())
                .await
            {
                let _ = turn.reply.send(Err(CallError::Unavailable(format!(
                    "host lease expired; actor {key} is not served here until placement renews it"
                ))));
                continue;
            }
            if activation.gate.epoch() != activation.serving_epoch {
                // The lease lapsed and the table changed meanwhile: another host may have run
                // this actor since. This activation is stale; the call is retried on a fresh one.
                let _ = turn.reply.send(Err(CallError::Moved(format!(
                    "activation of {key} predates a lease lapse; reactivating"
                ))));
                activation.request_stop(StopReason::Moved);
                continue;
            }
            if turn.call.kind == CallKind::Wake {
                // Being active is all a wake asks for (handed-off timers resumed above).
                let _ = turn.reply.send(Ok(Bytes::new()));
                continue;
            }
            *activation.current_chain.lock().expect("chain lock") =
                Some(turn.call.call_chain_id.clone());
            let counts_as_use = !matches!(turn.call.kind, CallKind::Timer(_));
            let result = match tokio::time::timeout(
                activation.options.call_timeout(),
                instance.invoke(turn.call),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => Err(activation.timed_out()),
            };
            *activation.current_chain.lock().expect("chain lock") = None;
            if counts_as_use {
                *activation.last_used.lock().expect("last_used lock") = Instant::now();
            }
            let _ = turn.reply.send(result);
        }
        reason = stop.borrow().unwrap_or(StopReason::Shutdown);
    }
    fail_queued(
        &mut inbox,
        CallError::Unavailable(format!("actor {key} is deactivating")),
    );
    let handed_off = hand_off_timers(&activation, reason).await;
    if let Some(instance) = instance {
        if reason != StopReason::Withdrawn {
            match tokio::time::timeout(activation.options.call_timeout(), instance.deactivate())
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(actor = %key, error = %e, "deactivation failed"),
                Err(_) => tracing::warn!(actor = %key, "deactivation timed out"),
            }
        }
    }
    tracing::debug!(actor = %key, ?reason, "deactivated");
    metrics.active_activations.dec();
    metrics.deactivations_total.inc();
    if let Some(sink) = sink.upgrade() {
        sink.finished(&key, activation.id);
        if handed_off {
            sink.handed_off(&key);
        }
    }
    let _ = done.send(true);
}

/// Claims the actor in the state store for this activation, if the host has one; returns
/// the timers the previous activation handed off.
async fn claim(activation: &Activation) -> Result<Vec<timers::HandedOffTimer>, CallError> {
    let Some(access) = &activation.state else {
        return Ok(Vec::new());
    };
    let claim = access.store.claim(&activation.key).await;
    activation
        .metrics
        .state_claims_total
        .get_or_create(&crate::metrics::StateLabels::of(&claim))
        .inc();
    let claim = claim?;
    let _ = activation.claim.set(claim.epoch);
    Ok(claim
        .handed_off_timers
        .map(|bytes| timers::decode(&bytes))
        .unwrap_or_default())
}

/// Stops the activation's timers; when the actor moves, writes what is left of them to the
/// store for its next activation (fenced like any write: a stale activation hands off nothing).
/// Returns whether timers were handed off.
async fn hand_off_timers(activation: &Activation, reason: StopReason) -> bool {
    let left = activation.timers.stop_all();
    if reason != StopReason::Moved || left.is_empty() {
        return false;
    }
    let (Some(access), Some(epoch)) = (&activation.state, activation.claim.get()) else {
        return false;
    };
    let handed = access
        .store
        .hand_off_timers(&activation.key, *epoch, timers::encode(&left))
        .await;
    match handed {
        Ok(()) => {
            tracing::debug!(actor = %activation.key, timers = left.len(), "timers handed off");
            true
        }
        Err(e) => {
            tracing::warn!(actor = %activation.key, error = %e, "cannot hand off timers");
            false
        }
    }
}

/// Closes the mailbox and answers every queued call with `error`.
fn fail_queued(inbox: &mut mpsc::Receiver<Box<Turn>>, error: CallError) {
    inbox.close();
    while let Ok(turn) = inbox.try_recv() {
        let _ = turn.reply.send(Err(error.clone()));
    }
}

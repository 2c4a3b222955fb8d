//! One activation: the state of one active actor and its queue of calls, one turn at a time.
//!
//! An idle activation is data only — its queue, its instance, a few flags — with no task or
//! channel of its own, so a host can hold a million idle actors cheaply. A *driver* task
//! exists only while there is work: the first call (or stop request) of an activation with no
//! driver spawns one; it runs the queued calls in order, each bounded by the type's call
//! timeout (so an app that never answers releases the turn), and ends when the queue is empty,
//! leaving the instance behind for the next call. A call of the chain whose turn is in
//! progress would deadlock in the queue; it re-enters at once when the type allows reentrancy
//! (up to its depth limit) and fails with a reentrancy error otherwise.
//!
//! Lifecycle: claim the actor in the state store (its epoch fences every later write of older
//! activations; timers handed off by the previous activation come back) → activate (the app
//! hears it) → turns → stop requested (idle, moved, withdrawn) → the turn in progress
//! finishes, queued calls are answered `Unavailable` (the router retries them on the next
//! activation or the new owner) → on a move, timers handed off through the store →
//! deactivate (the app hears it) → done.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use tracing::Instrument;

use crate::actors::channel::{ActorChannel, ActorInstance, ReentrantInvoker};
use crate::actors::timers::{self, TickTarget, Timers};
use crate::call::{deadline, trace, ActorKey, Call, CallKind, TimerSpec};
use crate::cluster::lease::ServingGate;
use crate::config::TypeOptions;
use crate::error::CallError;
use crate::metrics::HostMetrics;
use crate::resiliency::{BreakerKey, TargetPolicy};
use crate::state::{self, ActorStateAccess, Epoch, StateOp};

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

/// One queued call and where its answer goes. Boxed in the queue, so the queue of an idle
/// actor stays a few pointers wide.
struct Turn {
    call: Arc<Call>,
    reply: oneshot::Sender<Result<Bytes, CallError>>,
}

/// Called when an activation has fully ended, so its registry can forget it.
pub trait ActivationSink: Send + Sync + 'static {
    fn finished(&self, key: &ActorKey, activation_id: u64);
    /// The activation moved away and left timers in the store for its next activation.
    fn handed_off(&self, _key: &ActorKey) {}
}

/// What every activation of a host shares: the serving gate, the registry that hears when an
/// activation ends, metrics and the state store.
pub struct HostSide {
    pub gate: ServingGate,
    pub sink: Weak<dyn ActivationSink>,
    pub metrics: Arc<HostMetrics>,
    pub state: Option<ActorStateAccess>,
    /// The app target's resiliency policies, applied to every turn the app runs.
    pub app_policy: Option<Arc<TargetPolicy>>,
}

/// Where an activation is in its life.
enum Life {
    /// Created, not activated yet: its first driver claims and activates it.
    New,
    /// Active, no driver running: the instance waits here for the next call.
    Idle(Box<dyn ActorInstance>),
    /// A driver runs and holds the instance.
    Driven,
    /// Ending or ended: calls are refused (the router retries them elsewhere or later).
    Closed,
}

/// What became of a call offered to the activation.
enum Queued {
    /// The actor was idle with nothing queued: the caller runs the turn itself.
    Inline(Arc<Call>, Box<dyn ActorInstance>),
    /// Queued, its answer to come on the channel; a driver to start, if none ran.
    Yes(Option<Start>, oneshot::Receiver<Result<Bytes, CallError>>),
    /// A call of the chain whose turn is in progress.
    Reenter(Arc<Call>),
    Refused(CallError),
}

/// What a new driver starts from.
enum Start {
    Activate,
    Resume(Box<dyn ActorInstance>),
}

/// The part of an activation that calls, drivers and stop requests change together.
struct Inner {
    life: Life,
    queue: VecDeque<Box<Turn>>,
    stop: Option<StopReason>,
    /// The call of the turn in progress, if any: its chain is the one that may re-enter.
    current_call: Option<Arc<Call>>,
    last_used: Instant,
}

pub struct Activation {
    /// Shared with the registry's map and the instance (one copy of the strings per actor).
    pub key: Arc<ActorKey>,
    /// Distinguishes successive activations of one actor on this host.
    pub id: u64,
    channel: Arc<dyn ActorChannel>,
    options: TypeOptions,
    host: Arc<HostSide>,
    inner: Mutex<Inner>,
    /// Set once the activation has fully ended; `ended_notify` wakes those waiting for it.
    ended: AtomicBool,
    ended_notify: Notify,
    reentrant_depth: AtomicU32,
    reentrant: OnceLock<Option<ReentrantInvoker>>,
    /// Calls queued or running.
    busy: AtomicUsize,
    /// The serving epoch the activation was created in; it may run turns only in that epoch.
    serving_epoch: u64,
    timers: Timers,
    /// This activation's claim on its actor in the store, once made (0: none yet; the
    /// store's epochs start at 1).
    claim: AtomicU64,
    /// Itself, for drivers and timer tasks (which must not keep an ended one alive).
    me: Weak<Activation>,
    /// How long activating took (claim and the app's activate), once done.
    activation_ms: AtomicU32,
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

impl Activation {
    /// A new activation, not yet activated: its first call (or stop request) starts it.
    /// `host.sink` hears when it has ended.
    pub fn new(
        key: Arc<ActorKey>,
        id: u64,
        channel: Arc<dyn ActorChannel>,
        options: TypeOptions,
        host: Arc<HostSide>,
    ) -> Arc<Activation> {
        host.metrics.active_activations.inc();
        host.metrics.activations_total.inc();
        let now = Instant::now();
        Arc::new_cyclic(|me| Activation {
            key,
            id,
            channel,
            options,
            inner: Mutex::new(Inner {
                life: Life::New,
                queue: VecDeque::new(),
                stop: None,
                current_call: None,
                last_used: now,
            }),
            ended: AtomicBool::new(false),
            ended_notify: Notify::new(),
            reentrant_depth: AtomicU32::new(0),
            reentrant: OnceLock::new(),
            busy: AtomicUsize::new(0),
            serving_epoch: host.gate.epoch(),
            host,
            timers: Timers::default(),
            claim: AtomicU64::new(0),
            me: me.clone(),
            activation_ms: AtomicU32::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("activation lock")
    }

    /// Runs one call on this actor: queued for its turn, or re-entering the chain in progress.
    /// The call is shared, not copied: its router keeps it, to send it again should it fail
    /// before it ran. (Its idle time restarts when its turn ends; while queued or running it
    /// is busy, and busy actors are never collected.)
    pub async fn call(&self, call: Arc<Call>) -> Result<Bytes, CallError> {
        // Queued under the lock, which is released before any await.
        let queued = {
            let mut inner = self.lock();
            let same_chain = !call.call_chain_id.is_empty()
                && inner
                    .current_call
                    .as_ref()
                    .is_some_and(|current| current.call_chain_id == call.call_chain_id);
            if same_chain {
                Queued::Reenter(call)
            } else if inner.stop.is_some() || matches!(inner.life, Life::Closed) {
                Queued::Refused(self.deactivating())
            } else if inner.queue.is_empty() && matches!(inner.life, Life::Idle(_)) {
                self.busy.fetch_add(1, Ordering::AcqRel);
                match std::mem::replace(&mut inner.life, Life::Driven) {
                    Life::Idle(instance) => Queued::Inline(call, instance),
                    _ => unreachable!("matched above"),
                }
            } else if inner.queue.len() >= MAILBOX_CAPACITY {
                Queued::Refused(CallError::Overloaded(format!(
                    "mailbox of actor {} is full ({MAILBOX_CAPACITY} calls queued)",
                    self.key
                )))
            } else {
                self.host
                    .metrics
                    .mailbox_depth
                    .observe(inner.queue.len() as f64);
                let (reply, answer) = oneshot::channel();
                inner.queue.push_back(Box::new(Turn { call, reply }));
                self.busy.fetch_add(1, Ordering::AcqRel);
                Queued::Yes(take_driver(&mut inner), answer)
            }
        };
        let (start, answer) = match queued {
            Queued::Inline(call, instance) => {
                let _busy = CountGuard(&self.busy);
                return self.run_inline(instance, call).await;
            }
            // Boxed: the rare path; inline its future would grow every call's.
            Queued::Reenter(call) => return Box::pin(self.reenter(call)).await,
            Queued::Refused(error) => return Err(error),
            Queued::Yes(start, answer) => (start, answer),
        };
        let _busy = CountGuard(&self.busy);
        if let Some(start) = start {
            self.spawn_driver(start);
        }
        answer.await.unwrap_or_else(|_| Err(self.deactivating()))
    }

    /// Whether a turn of `kind` resets the actor's idle time: timer ticks only when the type
    /// says so (Dapr's do; in Orleans a timer alone does not keep an idle actor active), wakes
    /// never.
    fn counts_as_use(&self, kind: &CallKind) -> bool {
        match kind {
            CallKind::Wake => false,
            CallKind::Timer(_) => self.options.timers_keep_alive,
            CallKind::Method | CallKind::Reminder(_) | CallKind::Job(_) => true,
        }
    }

    fn deactivating(&self) -> CallError {
        CallError::Unavailable(format!("actor {} is deactivating", self.key))
    }

    /// Runs one turn in the caller's task: the actor was idle and nothing was queued, so no
    /// driver task is needed. Should the caller go away mid-turn (a deadline, a dropped
    /// request), the turn is not cut short: it finishes in a task of its own, still holding
    /// the instance, so the next turn cannot start before it ends.
    async fn run_inline(
        &self,
        instance: Box<dyn ActorInstance>,
        call: Arc<Call>,
    ) -> Result<Bytes, CallError> {
        let me = self
            .me
            .upgrade()
            .expect("an activation is alive while it is called");
        let (instance, result) = InlineTurn::new(me, instance, call).await;
        self.after_inline_turn(instance);
        result
    }

    /// Gives the instance back after a turn run by its caller: idle again, or to a new driver
    /// if calls were queued meanwhile or a stop was requested.
    fn after_inline_turn(&self, instance: Box<dyn ActorInstance>) {
        let start = {
            let mut inner = self.lock();
            if inner.stop.is_none() && inner.queue.is_empty() {
                inner.life = Life::Idle(instance);
                return;
            }
            Start::Resume(instance)
        };
        self.spawn_driver(start);
    }

    fn spawn_driver(&self, start: Start) {
        let me = self
            .me
            .upgrade()
            .expect("an activation is alive while it is called or stopped");
        tokio::spawn(drive(me, start));
    }

    async fn reenter(&self, call: Arc<Call>) -> Result<Bytes, CallError> {
        if !self.options.reentrancy {
            return Err(CallError::Reentrancy(format!(
                "actor {} is busy in this call chain and type {} does not allow reentrancy",
                self.key, self.key.actor_type
            )));
        }
        let depth = self.reentrant_depth.fetch_add(1, Ordering::AcqRel) + 1;
        let _depth = CountGuard(&self.reentrant_depth);
        if depth > self.options.max_reentrancy_depth {
            return Err(CallError::StackDepth(format!(
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

    /// One turn of the app, bounded by the type's call timeout and by `policy_bound` (the app
    /// target's timeout) if sooner.
    async fn bounded_turn(
        &self,
        instance: &mut dyn ActorInstance,
        call: Arc<Call>,
        policy: Option<&TargetPolicy>,
    ) -> Result<Bytes, CallError> {
        let call_timeout = self.options.call_timeout();
        match policy.and_then(TargetPolicy::timeout) {
            Some(bound) if bound < call_timeout => {
                match deadline::within_for(bound, instance.invoke(call)).await {
                    Ok(result) => result,
                    Err(_) => Err(policy.expect("matched above").timed_out()),
                }
            }
            _ => match deadline::within_for(call_timeout, instance.invoke(call)).await {
                Ok(result) => result,
                Err(_) => Err(self.timed_out()),
            },
        }
    }

    /// One turn under the app target's policies: its breaker admits it, its timeout bounds
    /// each attempt, and its retry policy sends again only what surely did not reach the app.
    async fn turn_under_policy(
        &self,
        instance: &mut dyn ActorInstance,
        call: Arc<Call>,
        policy: &Arc<TargetPolicy>,
    ) -> Result<Bytes, CallError> {
        let mut retries = policy.retries();
        loop {
            let admission = policy.admit::<CallError>(BreakerKey::WHOLE)?;
            let result = self
                .bounded_turn(instance, call.clone(), Some(policy))
                .await;
            admission.record(&result);
            match &result {
                Err(error) => match retries.pause_after(error, None) {
                    Some(pause) => tokio::time::sleep(pause).await,
                    None => return result,
                },
                Ok(_) => return result,
            }
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
            .register(self.tick_target(), spec, 0)
            .map_err(CallError::InvalidArgument)
    }

    /// Where this activation's timers send their ticks (held weakly: a timer does not keep
    /// an ended activation alive).
    fn tick_target(&self) -> Weak<dyn TickTarget> {
        self.me.clone()
    }

    /// Stops a timer; false if there was none of that name.
    pub fn unregister_timer(&self, name: &str) -> bool {
        self.timers.unregister(name)
    }

    fn state_access(&self) -> Result<(&ActorStateAccess, Epoch), CallError> {
        let access = self.host.state.as_ref().ok_or_else(|| {
            CallError::FailedPrecondition("this host has no state store configured".into())
        })?;
        let epoch = self
            .claimed()
            .ok_or_else(|| CallError::NotActive(format!("actor {} is not active yet", self.key)))?;
        Ok((access, epoch))
    }

    fn claimed(&self) -> Option<Epoch> {
        match self.claim.load(Ordering::Acquire) {
            0 => None,
            epoch => Some(Epoch(epoch)),
        }
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
        let metrics = &self.host.metrics;
        metrics
            .state_transactions_total
            .get_or_create(&crate::metrics::StateLabels::of(&written))
            .inc();
        if written.is_ok() {
            metrics
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
        let start = {
            let mut inner = self.lock();
            if inner.stop.is_some() {
                return;
            }
            inner.stop = Some(reason);
            take_driver(&mut inner)
        };
        if let Some(start) = start {
            self.spawn_driver(start);
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.lock().stop.is_some()
    }

    /// Whether calls are queued or running.
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire) > 0 || self.lock().current_call.is_some()
    }

    pub fn idle_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.lock().last_used)
    }

    pub fn options(&self) -> &TypeOptions {
        &self.options
    }

    /// Resolves once the activation has fully ended (the app told, if it could be).
    pub async fn finished(&self) {
        loop {
            let notified = self.ended_notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so an end between the check and the wait wakes it.
            notified.as_mut().enable();
            if self.ended.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// The serving epoch this activation belongs to.
    pub fn serving_epoch(&self) -> u64 {
        self.serving_epoch
    }

    /// How many milliseconds activating took (the claim and the app's activate).
    pub fn activation_ms(&self) -> u64 {
        u64::from(self.activation_ms.load(Ordering::Relaxed))
    }

    /// Refuses calls from now on and answers every queued one with `error`.
    fn close(&self, error: CallError) {
        let queued = {
            let mut inner = self.lock();
            inner.life = Life::Closed;
            inner.stop.get_or_insert(StopReason::Shutdown);
            std::mem::take(&mut inner.queue)
        };
        for turn in queued {
            let _ = turn.reply.send(Err(error.clone()));
        }
    }

    /// One queued call as a turn of `instance`.
    async fn run_turn(&self, instance: &mut dyn ActorInstance, turn: Box<Turn>) {
        let Turn { call, reply } = *turn;
        if reply.is_closed() {
            return; // the caller gave up while queued
        }
        let result = self.run_call(instance, call).await;
        let _ = reply.send(result);
    }

    /// One call as a turn of `instance`, once the lease allows it.
    async fn run_call(
        &self,
        instance: &mut dyn ActorInstance,
        mut call: Arc<Call>,
    ) -> Result<Bytes, CallError> {
        let key = &self.key;
        let gate = &self.host.gate;
        // No turn runs without a valid lease: a host cut off from placement may already have
        // lost this actor to another host.
        if !gate.wait_open_for(self.options.call_timeout()).await {
            return Err(CallError::Unavailable(format!(
                "host lease expired; actor {key} is not served here until placement renews it"
            )));
        }
        if gate.epoch() != self.serving_epoch {
            // The lease lapsed and the table changed meanwhile: another host may have run
            // this actor since. This activation is stale; the call is retried on a fresh one.
            self.request_stop(StopReason::Moved);
            return Err(CallError::Moved(format!(
                "activation of {key} predates a lease lapse; reactivating"
            )));
        }
        if call.kind == CallKind::Wake {
            // Being active is all a wake asks for (handed-off timers resumed on activation).
            return Ok(Bytes::new());
        }
        let counts_as_use = self.counts_as_use(&call.kind);
        // The turn continues the trace of the call (the ingress's or the forward's span).
        let span = tracing::info_span!(
            "actor.turn",
            actor_type = %key.actor_type,
            actor_id = %key.actor_id,
            method = %call.method,
        );
        trace::set_parent(&span, &call.metadata);
        trace::inject_shared(&span, &mut call);
        self.lock().current_call = Some(call.clone());
        let result = match &self.host.app_policy {
            None => {
                self.bounded_turn(instance, call, None)
                    .instrument(span)
                    .await
            }
            Some(policy) => {
                self.turn_under_policy(instance, call, policy)
                    .instrument(span)
                    .await
            }
        };
        {
            let mut inner = self.lock();
            inner.current_call = None;
            if counts_as_use {
                inner.last_used = Instant::now();
            }
        }
        result
    }
}

/// What a turn run by its caller gives back: the instance, and the call's answer.
type InlineOutcome = (Box<dyn ActorInstance>, Result<Bytes, CallError>);

/// A turn its caller runs ([`Activation::run_inline`]). Dropped before it ends, it hands the
/// turn to a task that finishes it and gives the instance back.
struct InlineTurn {
    turn: Option<futures::future::BoxFuture<'static, InlineOutcome>>,
    activation: Arc<Activation>,
}

impl InlineTurn {
    fn new(activation: Arc<Activation>, instance: Box<dyn ActorInstance>, call: Arc<Call>) -> Self {
        let runner = activation.clone();
        let turn = Box::pin(async move {
            let mut instance = instance;
            let result = runner.run_call(instance.as_mut(), call).await;
            (instance, result)
        });
        InlineTurn {
            turn: Some(turn),
            activation,
        }
    }
}

impl std::future::Future for InlineTurn {
    type Output = InlineOutcome;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<InlineOutcome> {
        let turn = self.turn.as_mut().expect("polled after it ended");
        let outcome = std::task::ready!(turn.as_mut().poll(cx));
        self.turn = None;
        std::task::Poll::Ready(outcome)
    }
}

impl Drop for InlineTurn {
    fn drop(&mut self) {
        if let Some(turn) = self.turn.take() {
            // Without a runtime (the process ending) there is nothing left to run it on.
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let activation = self.activation.clone();
            runtime.spawn(async move {
                let (instance, _) = turn.await;
                activation.after_inline_turn(instance);
            });
        }
    }
}

impl TickTarget for Activation {
    fn actor(&self) -> &ActorKey {
        &self.key
    }

    fn tick(&self, call: Call) -> futures::future::BoxFuture<'_, Result<Bytes, CallError>> {
        Box::pin(self.call(Arc::new(call)))
    }
}

/// Hands the activation to a new driver if none runs (and it has not ended).
fn take_driver(inner: &mut Inner) -> Option<Start> {
    match std::mem::replace(&mut inner.life, Life::Driven) {
        Life::New => Some(Start::Activate),
        Life::Idle(instance) => Some(Start::Resume(instance)),
        other => {
            inner.life = other;
            None
        }
    }
}

/// Runs the activation's queued turns until its queue is empty (then it waits, idle, with no
/// task) or it is asked to stop (then it ends).
async fn drive(activation: Arc<Activation>, start: Start) {
    let mut instance = match start {
        Start::Resume(instance) => instance,
        // Stopped before it ever ran: nothing to activate or tell.
        Start::Activate if activation.is_stopping() => return finish(activation, None).await,
        Start::Activate => match activate(&activation).await {
            Ok(instance) => instance,
            Err(e) => {
                tracing::warn!(actor = %activation.key, error = %e, "activation failed");
                activation.close(e);
                return finish(activation, None).await;
            }
        },
    };
    loop {
        let turn = {
            let mut inner = activation.lock();
            // Between turns, a stop request wins over queued calls: they are answered
            // Unavailable and retried, never run by an actor that is going away.
            if inner.stop.is_some() {
                break;
            }
            match inner.queue.pop_front() {
                Some(turn) => turn,
                None => {
                    // An idle actor keeps no queue storage (the next call allocates it anew).
                    inner.queue = VecDeque::new();
                    inner.life = Life::Idle(instance);
                    return;
                }
            }
        };
        activation.run_turn(instance.as_mut(), turn).await;
    }
    finish(activation, Some(instance)).await;
}

/// Claims the actor, activates it (the app hears it) and resumes the timers its previous
/// activation handed off.
async fn activate(activation: &Activation) -> Result<Box<dyn ActorInstance>, CallError> {
    let key = &activation.key;
    let started = Instant::now();
    let activated = match claim(activation).await {
        Ok(handed_off) => {
            match tokio::time::timeout(
                activation.options.call_timeout(),
                activation.channel.activate(key.clone()),
            )
            .await
            {
                Ok(Ok(instance)) => {
                    for timer in handed_off {
                        let (spec, fired) = timer.resume();
                        if let Err(e) =
                            activation
                                .timers
                                .register(activation.tick_target(), spec, fired)
                        {
                            tracing::warn!(actor = %key, error = %e, "cannot resume a handed-off timer");
                        }
                    }
                    let _ = activation.reentrant.set(instance.reentrant_invoker());
                    Ok(instance)
                }
                Ok(Err(e)) => Err(e),
                Err(_) => Err(activation.timed_out()),
            }
        }
        Err(e) => Err(e),
    };
    let took_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
    activation.activation_ms.store(took_ms, Ordering::Relaxed);
    activated
}

/// Ends the activation: queued calls answered, timers stopped (handed off on a move), the
/// app told, the registry told.
async fn finish(activation: Arc<Activation>, instance: Option<Box<dyn ActorInstance>>) {
    let key = activation.key.clone();
    activation.close(activation.deactivating());
    let reason = activation.lock().stop.unwrap_or(StopReason::Shutdown);
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
    if let (Some(access), Some(epoch)) = (&activation.host.state, activation.claimed()) {
        access.store.release(&key, epoch);
    }
    tracing::debug!(actor = %key, ?reason, "deactivated");
    let host = &activation.host;
    host.metrics.active_activations.dec();
    host.metrics.deactivations_total.inc();
    if let Some(sink) = host.sink.upgrade() {
        sink.finished(&key, activation.id);
        if handed_off {
            sink.handed_off(&key);
        }
    }
    activation.ended.store(true, Ordering::Release);
    activation.ended_notify.notify_waiters();
}

/// Claims the actor in the state store for this activation, if the host has one; returns
/// the timers the previous activation handed off.
async fn claim(activation: &Activation) -> Result<Vec<timers::HandedOffTimer>, CallError> {
    let Some(access) = &activation.host.state else {
        return Ok(Vec::new());
    };
    let claim = access.store.claim(&activation.key).await;
    activation
        .host
        .metrics
        .state_claims_total
        .get_or_create(&crate::metrics::StateLabels::of(&claim))
        .inc();
    let claim = claim?;
    activation.claim.store(claim.epoch.0, Ordering::Release);
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
    let (Some(access), Some(epoch)) = (&activation.host.state, activation.claimed()) else {
        return false;
    };
    let handed = access
        .store
        .hand_off_timers(&activation.key, epoch, timers::encode(&left))
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use futures::future::{BoxFuture, FutureExt};
    use tokio::sync::watch;

    use super::*;
    use crate::cluster::table::TableState;
    use crate::config::ActorDefaults;

    /// Records what the host asked of its actors, and how many turns ran at once.
    #[derive(Clone, Default)]
    struct Probe {
        log: Arc<Mutex<Vec<String>>>,
        running: Arc<AtomicUsize>,
        most_running: Arc<AtomicUsize>,
    }

    impl Probe {
        fn log(&self) -> Vec<String> {
            self.log.lock().unwrap().clone()
        }
        fn push(&self, entry: impl Into<String>) {
            self.log.lock().unwrap().push(entry.into());
        }
    }

    impl ActorChannel for Probe {
        fn activate(
            &self,
            _key: Arc<ActorKey>,
        ) -> BoxFuture<'static, Result<Box<dyn ActorInstance>, CallError>> {
            self.push("activate");
            let instance: Box<dyn ActorInstance> = Box::new(self.clone());
            async move { Ok(instance) }.boxed()
        }
    }

    impl ActorInstance for Probe {
        fn invoke(&mut self, call: Arc<Call>) -> BoxFuture<'_, Result<Bytes, CallError>> {
            let call = Arc::unwrap_or_clone(call);
            async move {
                let now = self.running.fetch_add(1, Ordering::AcqRel) + 1;
                self.most_running.fetch_max(now, Ordering::AcqRel);
                let pause_ms = call.data.first().copied().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(u64::from(pause_ms))).await;
                self.push(call.method);
                self.running.fetch_sub(1, Ordering::AcqRel);
                Ok(call.data)
            }
            .boxed()
        }
        fn reentrant_invoker(&self) -> Option<ReentrantInvoker> {
            None
        }
        fn deactivate(self: Box<Self>) -> BoxFuture<'static, Result<(), CallError>> {
            self.push("deactivate");
            async { Ok(()) }.boxed()
        }
    }

    #[derive(Default)]
    struct Sink(Mutex<Vec<u64>>);
    impl ActivationSink for Sink {
        fn finished(&self, _key: &ActorKey, activation_id: u64) {
            self.0.lock().unwrap().push(activation_id);
        }
    }

    struct Setup {
        probe: Probe,
        sink: Arc<Sink>,
        activation: Arc<Activation>,
        _table: watch::Sender<TableState>,
    }

    fn setup() -> Setup {
        let probe = Probe::default();
        let sink = Arc::new(Sink::default());
        let (table, state) = watch::channel(TableState::default());
        let host = Arc::new(HostSide {
            // Always open: these tests are about the activation, not the lease.
            gate: ServingGate::new(state, true),
            sink: Arc::downgrade(&sink) as Weak<dyn ActivationSink>,
            metrics: Arc::new(HostMetrics::default()),
            state: None,
            app_policy: None,
        });
        let activation = Activation::new(
            Arc::new(ActorKey::new("Probe", "p1")),
            7,
            Arc::new(probe.clone()),
            ActorDefaults::default().type_options(),
            host,
        );
        Setup {
            probe,
            sink,
            activation,
            _table: table,
        }
    }

    fn call(method: &str, pause_ms: u8) -> Arc<Call> {
        Arc::new(Call {
            key: ActorKey::new("Probe", "p1"),
            method: method.into(),
            data: Bytes::from(vec![pause_ms]),
            metadata: HashMap::new(),
            call_chain_id: String::new(),
            kind: CallKind::Method,
        })
    }

    async fn until(what: &str, condition: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn turns_run_one_at_a_time_in_the_order_queued() {
        let s = setup();
        let calls = (0..20).map(|i| s.activation.call(call(&format!("m{i}"), 1)));
        let answers = futures::future::join_all(calls).await;
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        let mut expected = vec!["activate".to_string()];
        expected.extend((0..20).map(|i| format!("m{i}")));
        assert_eq!(s.probe.log(), expected);
        assert_eq!(s.probe.most_running.load(Ordering::Acquire), 1);
    }

    #[tokio::test]
    async fn an_idle_activation_holds_no_task_and_keeps_its_instance() {
        let s = setup();
        let tasks = || {
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks()
        };
        let before = tasks();
        s.activation.call(call("first", 0)).await.expect("first");
        until("the driver to end", || tasks() == before).await;
        assert!(!s.activation.is_stopping() && !s.activation.is_busy());
        s.activation.call(call("second", 0)).await.expect("second");
        assert_eq!(s.probe.log(), ["activate", "first", "second"]);
        until("the driver to end", || tasks() == before).await;
    }

    #[tokio::test]
    async fn a_turn_whose_caller_gives_up_still_finishes_before_the_next_starts() {
        let s = setup();
        s.activation.call(call("warm", 0)).await.expect("warm");
        // Idle now: the next call runs in its caller, which gives up mid-turn.
        let given_up = tokio::time::timeout(
            Duration::from_millis(5),
            s.activation.call(call("slow", 100)),
        )
        .await;
        assert!(given_up.is_err(), "the caller gave up");
        assert!(
            s.activation.is_busy(),
            "the turn goes on without its caller"
        );
        s.activation.call(call("next", 0)).await.expect("next");
        assert_eq!(s.probe.log(), ["activate", "warm", "slow", "next"]);
        assert_eq!(s.probe.most_running.load(Ordering::Acquire), 1);
    }

    #[tokio::test]
    async fn stopping_an_idle_activation_deactivates_it_and_refuses_later_calls() {
        let s = setup();
        s.activation.call(call("only", 0)).await.expect("call");
        s.activation.request_stop(StopReason::Idle);
        tokio::time::timeout(Duration::from_secs(10), s.activation.finished())
            .await
            .expect("finished");
        assert_eq!(s.probe.log(), ["activate", "only", "deactivate"]);
        assert_eq!(*s.sink.0.lock().unwrap(), [7]);
        let late = s.activation.call(call("late", 0)).await;
        assert!(matches!(late, Err(CallError::Unavailable(_))), "{late:?}");
    }

    #[tokio::test]
    async fn stopped_before_its_first_call_it_never_activates() {
        let s = setup();
        s.activation.request_stop(StopReason::Moved);
        tokio::time::timeout(Duration::from_secs(10), s.activation.finished())
            .await
            .expect("finished");
        assert!(s.probe.log().is_empty(), "{:?}", s.probe.log());
        assert_eq!(*s.sink.0.lock().unwrap(), [7]);
    }

    #[tokio::test]
    async fn a_stop_lets_the_turn_in_progress_finish_and_refuses_the_queued_ones() {
        let s = setup();
        let running = s.activation.call(call("running", 50));
        let queued = s.activation.call(call("queued", 0));
        let stop = async {
            until("the first turn to start", || {
                s.probe.running.load(Ordering::Acquire) == 1
            })
            .await;
            s.activation.request_stop(StopReason::Moved);
        };
        let (running, queued, ()) = tokio::join!(running, queued, stop);
        assert!(running.is_ok(), "{running:?}");
        assert!(
            matches!(queued, Err(CallError::Unavailable(_))),
            "{queued:?}"
        );
        s.activation.finished().await;
        assert_eq!(s.probe.log(), ["activate", "running", "deactivate"]);
    }
}

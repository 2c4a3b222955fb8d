//! The embedded channel: actor types implemented in Rust inside the host process.
//!
//! A Rust program registers a factory of [`Actor`]s on its in-process host; each activation
//! gets a fresh actor, and every turn an [`ActorContext`] through which the actor's code uses
//! the actor-side API ([`ActorApi`]), as apps do over the gRPC app channel.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;

use crate::actors::channel::{ActorChannel, ActorInstance, ReentrantInvoker};
use crate::call::{ActorKey, Call, CallKind, ReminderTick, TimerTick};
use crate::channels::actor_api::{ActorApi, TimerRequest};
use crate::error::CallError;
use crate::reminders::ReminderClient;
use crate::state::StateOp;

/// The actor's own failure, returned to the caller as an application error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ActorError(pub String);

impl ActorError {
    pub fn new(message: impl Into<String>) -> ActorError {
        ActorError(message.into())
    }
}

/// An actor implemented in Rust and embedded in the host process.
///
/// Turns take `&mut self`: the host runs one at a time per actor, so no locking is needed.
/// Embedded actors do not support reentrancy (a call that would re-enter a busy embedded actor
/// fails with a reentrancy error instead of deadlocking).
#[async_trait::async_trait]
pub trait Actor: Send + 'static {
    async fn on_activate(&mut self, _ctx: &ActorContext) -> Result<(), ActorError> {
        Ok(())
    }

    async fn handle(
        &mut self,
        ctx: &ActorContext,
        method: &str,
        data: Bytes,
    ) -> Result<Bytes, ActorError>;

    /// A timer of this activation is due. The default ignores it.
    async fn on_timer(
        &mut self,
        _ctx: &ActorContext,
        _tick: &TimerTick,
        _data: Bytes,
    ) -> Result<(), ActorError> {
        Ok(())
    }

    /// A reminder of this actor is due. The default ignores it.
    async fn on_reminder(
        &mut self,
        _ctx: &ActorContext,
        _tick: &ReminderTick,
        _data: Bytes,
    ) -> Result<(), ActorError> {
        Ok(())
    }

    async fn on_deactivate(&mut self, _ctx: &ActorContext) {}
}

/// What an embedded actor's code can see and do during a turn.
#[derive(Clone)]
pub struct ActorContext {
    key: Arc<ActorKey>,
    /// The call this turn serves (shared with its activation, not copied): nested calls
    /// continue its chain. None in activation and deactivation.
    turn: Option<Arc<Call>>,
    /// Shared by the type's activations.
    api: Arc<ActorApi>,
}

impl ActorContext {
    /// The context of one activation, outside any turn.
    fn new(key: Arc<ActorKey>, api: Arc<ActorApi>) -> ActorContext {
        ActorContext {
            key,
            turn: None,
            api,
        }
    }

    /// The chain of nested calls this turn belongs to (empty outside a turn).
    pub fn call_chain_id(&self) -> &str {
        self.turn.as_ref().map_or("", |call| &call.call_chain_id)
    }

    pub fn actor_type(&self) -> &str {
        &self.key.actor_type
    }

    pub fn actor_id(&self) -> &str {
        &self.key.actor_id
    }

    /// Registers (or replaces) a timer of this activation: `due`, `period` and `ttl` in the
    /// formats of reminders (`PT1S`, `500ms`, `R3/PT1S`, an RFC3339 time). It fires
    /// [`Actor::on_timer`] as a turn, and ends with the activation.
    pub fn register_timer(
        &self,
        name: &str,
        due: &str,
        period: &str,
        ttl: &str,
        callback: &str,
        data: impl Into<Bytes>,
    ) -> Result<(), CallError> {
        self.api.register_timer(
            &self.key,
            TimerRequest {
                name: name.to_owned(),
                due_time: due.to_owned(),
                period: period.to_owned(),
                ttl: ttl.to_owned(),
                callback: callback.to_owned(),
                data: data.into(),
            },
        )
    }

    /// Stops a timer of this activation; false if there was none of that name.
    pub fn unregister_timer(&self, name: &str) -> Result<bool, CallError> {
        self.api.unregister_timer(&self.key, name)
    }

    /// Reads one key of this actor's durable state; `None` if it has no value.
    pub async fn get_state(&self, key: &str) -> Result<Option<Bytes>, CallError> {
        self.api.get_state(&self.key, key).await
    }

    /// Writes this actor's state: every operation or none, acknowledged once durable. Fails
    /// with [`CallError::Fenced`] if another activation has claimed the actor since (nothing
    /// is written), and [`CallError::StoreUnavailable`] if the store cannot be reached.
    pub async fn transact_state(&self, operations: &[StateOp]) -> Result<(), CallError> {
        self.api.transact_state(&self.key, operations).await
    }

    /// Sets one key (no ttl): a transaction of one upsert.
    pub async fn set_state(&self, key: &str, value: impl Into<Bytes>) -> Result<(), CallError> {
        self.transact_state(&[StateOp::Upsert {
            key: key.to_owned(),
            value: value.into(),
            ttl_seconds: None,
        }])
        .await
    }

    /// Durable reminders (of this actor or any other).
    pub fn reminders(&self) -> &ReminderClient {
        self.api.reminders()
    }

    /// Calls a method of another actor (anywhere in the cluster) within this turn's call chain.
    pub async fn call(
        &self,
        actor_type: &str,
        actor_id: &str,
        method: &str,
        data: impl Into<Bytes>,
    ) -> Result<Bytes, CallError> {
        self.api
            .call(
                self.call_chain_id(),
                ActorKey::new(actor_type, actor_id),
                method,
                data.into(),
            )
            .await
    }
}

/// Builds a new actor for each activation.
pub type ActorFactory = Arc<dyn Fn(&ActorKey) -> Box<dyn Actor> + Send + Sync>;

/// One embedded actor type.
pub struct EmbeddedChannel {
    factory: ActorFactory,
    api: Arc<ActorApi>,
}

impl EmbeddedChannel {
    pub fn new(factory: ActorFactory, api: ActorApi) -> EmbeddedChannel {
        EmbeddedChannel {
            factory,
            api: Arc::new(api),
        }
    }
}

impl ActorChannel for EmbeddedChannel {
    fn activate(
        &self,
        key: Arc<ActorKey>,
    ) -> BoxFuture<'static, Result<Box<dyn ActorInstance>, CallError>> {
        let mut actor = (self.factory)(&key);
        let api = self.api.clone();
        async move {
            let ctx = ActorContext::new(key.clone(), api.clone());
            actor
                .on_activate(&ctx)
                .await
                .map_err(|e| CallError::Application(e.0))?;
            let ctx = ActorContext::new(key, api);
            Ok(Box::new(EmbeddedInstance { ctx, actor }) as Box<dyn ActorInstance>)
        }
        .boxed()
    }
}

struct EmbeddedInstance {
    /// The context of every turn of this activation, made once: each turn only sets the
    /// call it serves (taking counts on the shared API per turn would be writes every core
    /// shares).
    ctx: ActorContext,
    actor: Box<dyn Actor>,
}

impl ActorInstance for EmbeddedInstance {
    fn invoke(&mut self, call: Arc<Call>) -> BoxFuture<'_, Result<Bytes, CallError>> {
        async move {
            let data = call.data.clone();
            let this = &mut *self;
            this.ctx.turn = Some(call);
            let ctx = &this.ctx;
            let call = ctx.turn.as_deref().expect("set just above");
            let result = match &call.kind {
                CallKind::Method => this.actor.handle(ctx, &call.method, data).await,
                // Answered by the activation itself; never reaches an instance.
                CallKind::Wake => Ok(Bytes::new()),
                CallKind::Reminder(tick) => this
                    .actor
                    .on_reminder(ctx, tick, data)
                    .await
                    .map(|()| Bytes::new()),
                CallKind::Timer(tick) => this
                    .actor
                    .on_timer(ctx, tick, data)
                    .await
                    .map(|()| Bytes::new()),
                CallKind::Job(_) => {
                    this.ctx.turn = None;
                    return Err(CallError::Internal(
                        "a job firing reached an actor's channel".into(),
                    ));
                }
            };
            // An idle actor holds no call. (A turn cut short by its timeout leaves its call
            // here until the next turn or the deactivation.)
            this.ctx.turn = None;
            result.map_err(|e| CallError::Application(e.0))
        }
        .boxed()
    }

    fn reentrant_invoker(&self) -> Option<ReentrantInvoker> {
        None
    }

    fn deactivate(mut self: Box<Self>) -> BoxFuture<'static, Result<(), CallError>> {
        async move {
            self.ctx.turn = None;
            self.actor.on_deactivate(&self.ctx).await;
            Ok(())
        }
        .boxed()
    }
}

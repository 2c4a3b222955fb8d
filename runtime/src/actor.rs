//! What an actor is to the host, whoever implements it.
//!
//! - [`ActorChannel`] / [`ActorInstance`]: how the host drives one actor type: the gRPC app
//!   channel and embedded Rust actors both implement them, so activations do not care which.
//! - [`Actor`]: the embedded Rust API; a Rust program registers a factory of these on its
//!   in-process host.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::error::CallError;
use crate::router::Router;
use crate::state::StateOp;

/// Identifies one virtual actor in the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorKey {
    pub actor_type: String,
    pub actor_id: String,
}

impl ActorKey {
    pub fn new(actor_type: impl Into<String>, actor_id: impl Into<String>) -> ActorKey {
        ActorKey {
            actor_type: actor_type.into(),
            actor_id: actor_id.into(),
        }
    }
}

impl fmt::Display for ActorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.actor_type, self.actor_id)
    }
}

/// One method call on one actor.
#[derive(Clone, Debug)]
pub struct Call {
    pub key: ActorKey,
    pub method: String,
    pub data: Bytes,
    pub metadata: HashMap<String, String>,
    /// Identifies the chain of nested calls this call belongs to (for reentrancy).
    pub call_chain_id: String,
    pub kind: CallKind,
}

/// What a turn is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// A method call (`method`, `data`).
    Method,
    /// A reminder tick: `data` is the reminder's data.
    Reminder(ReminderTick),
    /// A timer tick: `data` is the timer's data.
    Timer(TimerTick),
    /// Only activates the actor (its instance hears nothing but the activation): sent to an
    /// actor's new owner after a graceful hand-off left timers in the store, so that they
    /// resume there without waiting for the actor's next call.
    Wake,
}

/// Metadata key marking a forwarded call as a [`CallKind::Wake`].
pub const WAKE_KEY: &str = "rookery-wake";

/// One firing of an activation's timer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerTick {
    pub name: String,
    /// The callback named at registration (Dapr's timer callback method).
    pub callback: String,
}

/// A timer as registered by actor code.
#[derive(Clone, Debug)]
pub struct TimerSpec {
    pub name: String,
    pub schedule: rookery_placement::schedule::Schedule,
    pub callback: String,
    pub data: Bytes,
}

/// One firing of a reminder, as the actor hears it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReminderTick {
    pub name: String,
    /// The due instant of this tick, Unix-epoch ms.
    pub due_at_ms: u64,
    /// 0: one-shot.
    pub period_ms: u64,
}

/// Calls an instance accepts while a turn of its actor is in progress (re-entrant calls).
pub type ReentrantInvoker =
    Arc<dyn Fn(Call) -> BoxFuture<'static, Result<Bytes, CallError>> + Send + Sync>;

/// How the host drives one actor type.
pub trait ActorChannel: Send + Sync + 'static {
    /// Brings an actor to life (the app hears "activate"); the instance then takes its turns.
    /// The key is the activation's own, shared rather than copied.
    fn activate(
        &self,
        key: Arc<ActorKey>,
    ) -> BoxFuture<'static, Result<Box<dyn ActorInstance>, CallError>>;
}

/// One activation of one actor: held by the activation, and by its driver while turns run.
pub trait ActorInstance: Send + 'static {
    /// One turn.
    fn invoke(&mut self, call: Call) -> BoxFuture<'_, Result<Bytes, CallError>>;
    /// A way in for re-entrant calls while a turn is in progress; `None` if the channel cannot
    /// run two calls of one actor at once.
    fn reentrant_invoker(&self) -> Option<ReentrantInvoker>;
    /// The actor goes idle or moves: the app hears "deactivate".
    fn deactivate(self: Box<Self>) -> BoxFuture<'static, Result<(), CallError>>;
}

/// The actor's own failure, returned to the caller as an application error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ActorError(pub String);

impl ActorError {
    pub fn new(message: impl Into<String>) -> ActorError {
        ActorError(message.into())
    }
}

/// What an embedded actor's code can see and do during a turn.
#[derive(Clone)]
pub struct ActorContext {
    key: Arc<ActorKey>,
    call_chain_id: String,
    router: Weak<Router>,
}

impl ActorContext {
    pub(crate) fn new(
        key: Arc<ActorKey>,
        call_chain_id: String,
        router: Weak<Router>,
    ) -> ActorContext {
        ActorContext {
            key,
            call_chain_id,
            router,
        }
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
        let schedule = rookery_placement::schedule::parse_schedule(
            due,
            period,
            ttl,
            crate::reminder_scheduler::now_ms(),
        )
        .map_err(|e| CallError::InvalidArgument(e.to_string()))?;
        let activation = self.activation()?;
        activation.register_timer(TimerSpec {
            name: name.to_owned(),
            schedule,
            callback: callback.to_owned(),
            data: data.into(),
        })
    }

    /// Reads one key of this actor's durable state; `None` if it has no value.
    pub async fn get_state(&self, key: &str) -> Result<Option<Bytes>, CallError> {
        self.activation_until_finished()?.get_state(key).await
    }

    /// Writes this actor's state: every operation or none, acknowledged once durable. Fails
    /// with [`CallError::Fenced`] if another activation has claimed the actor since (nothing
    /// is written), and [`CallError::StoreUnavailable`] if the store cannot be reached.
    pub async fn transact_state(&self, operations: &[StateOp]) -> Result<(), CallError> {
        self.activation_until_finished()?
            .transact_state(operations)
            .await
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

    fn activation_until_finished(
        &self,
    ) -> Result<std::sync::Arc<crate::activation::Activation>, CallError> {
        let router = self
            .router
            .upgrade()
            .ok_or_else(|| CallError::Unavailable("the host is shutting down".into()))?;
        router
            .activations()
            .get_until_finished(&self.key)
            .ok_or_else(|| {
                CallError::FailedPrecondition(format!(
                    "actor {} is not active on this host",
                    self.key
                ))
            })
    }

    /// Stops a timer of this activation; false if there was none of that name.
    pub fn unregister_timer(&self, name: &str) -> Result<bool, CallError> {
        Ok(self.activation()?.unregister_timer(name))
    }

    fn activation(&self) -> Result<std::sync::Arc<crate::activation::Activation>, CallError> {
        let router = self
            .router
            .upgrade()
            .ok_or_else(|| CallError::Unavailable("the host is shutting down".into()))?;
        router.activations().get(&self.key).ok_or_else(|| {
            CallError::InvalidArgument(format!("actor {} is not active on this host", self.key))
        })
    }

    /// Calls a method of another actor (anywhere in the cluster) within this turn's call chain.
    pub async fn call(
        &self,
        actor_type: &str,
        actor_id: &str,
        method: &str,
        data: impl Into<Bytes>,
    ) -> Result<Bytes, CallError> {
        let router = self
            .router
            .upgrade()
            .ok_or_else(|| CallError::Unavailable("the host is shutting down".into()))?;
        let call = Call {
            key: ActorKey::new(actor_type, actor_id),
            method: method.to_owned(),
            data: data.into(),
            metadata: HashMap::new(),
            call_chain_id: self.call_chain_id.clone(),
            kind: CallKind::Method,
        };
        router.invoke(call, None).await
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

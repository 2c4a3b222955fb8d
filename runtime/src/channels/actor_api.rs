//! The one actor-side API: what an actor's own code may do while it is active — read and
//! write its durable state, register and stop its timers, manage reminders, and call other
//! actors within its call chain — whichever channel serves it. The gRPC app channel turns its
//! stream's requests into these calls and embedded actors reach them through their
//! `ActorContext`, so both get the same checks and the same errors.
//!
//! Only the actor's own host serves them: state and timers need the actor's activation here
//! (state also while it finishes its last turn before moving), and every refusal for an actor
//! not active here is the same [`CallError::NotActive`] (`FAILED_PRECONDITION` to gRPC
//! clients).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use rookery_core::clock::now_ms;
use rookery_core::schedule::parse_schedule;

use crate::actors::activation::Activation;
use crate::call::{ActorKey, Call, CallKind, TimerSpec};
use crate::error::CallError;
use crate::reminders::ReminderClient;
use crate::routing::Router;
use crate::state::StateOp;

/// A timer as actor code asks for it, in Dapr's formats: `due_time`, `period` and `ttl` as
/// reminders take them (`PT1S`, `500ms`, `R3/PT1S`, an RFC3339 time).
#[derive(Clone, Debug, Default)]
pub struct TimerRequest {
    pub name: String,
    pub due_time: String,
    pub period: String,
    pub ttl: String,
    /// The method the timer calls back (Dapr's timer callback).
    pub callback: String,
    pub data: Bytes,
}

/// The actor-side API of one host.
#[derive(Clone)]
pub struct ActorApi {
    router: Arc<Router>,
    reminders: ReminderClient,
}

impl ActorApi {
    pub fn new(router: Arc<Router>, reminders: ReminderClient) -> ActorApi {
        ActorApi { router, reminders }
    }

    /// Reads one key of the actor's durable state; `None` if it has no value.
    pub async fn get_state(&self, actor: &ActorKey, key: &str) -> Result<Option<Bytes>, CallError> {
        self.active_until_finished(actor)?.get_state(key).await
    }

    /// Reads one key of any actor's state from this host's store, active here or not, as a
    /// client may: with PostgreSQL what any host committed, with sled what this host's
    /// activations committed.
    pub async fn read_state(
        &self,
        actor: &ActorKey,
        key: &str,
    ) -> Result<Option<Bytes>, CallError> {
        let access = self
            .router
            .activations()
            .state()
            .ok_or_else(no_state_store)?;
        crate::state::validate_key(key)?;
        Ok(access.store.get(actor, key).await?)
    }

    /// Whether this host keeps actor state at all.
    pub fn has_state_store(&self) -> bool {
        self.router.activations().state().is_some()
    }

    /// Writes the actor's state: every operation or none, acknowledged once durable. Fails
    /// with [`CallError::Fenced`] if another activation has claimed the actor since (nothing
    /// is written), and [`CallError::StoreUnavailable`] if the store cannot be reached.
    pub async fn transact_state(
        &self,
        actor: &ActorKey,
        operations: &[StateOp],
    ) -> Result<(), CallError> {
        self.active_until_finished(actor)?
            .transact_state(operations)
            .await
    }

    /// Registers (or replaces) a timer of the actor's activation. It fires as a turn of the
    /// actor and ends with the activation.
    pub fn register_timer(&self, actor: &ActorKey, timer: TimerRequest) -> Result<(), CallError> {
        if timer.name.is_empty() {
            return Err(CallError::InvalidArgument(
                "timer name must not be empty".into(),
            ));
        }
        let schedule = parse_schedule(&timer.due_time, &timer.period, &timer.ttl, now_ms())
            .map_err(|e| CallError::InvalidArgument(e.to_string()))?;
        self.active(actor)?.register_timer(TimerSpec {
            name: timer.name,
            schedule,
            callback: timer.callback,
            data: timer.data,
        })
    }

    /// Stops a timer of the actor's activation; false if there was none of that name.
    pub fn unregister_timer(&self, actor: &ActorKey, name: &str) -> Result<bool, CallError> {
        Ok(self.active(actor)?.unregister_timer(name))
    }

    /// Durable reminders (they belong to the actor, not to its activation: any host serves
    /// them).
    pub fn reminders(&self) -> &ReminderClient {
        &self.reminders
    }

    /// Calls a method of another actor, anywhere in the cluster, within the call chain
    /// `call_chain_id` (so that calls back into a busy actor of the chain are recognized as
    /// reentrant).
    pub async fn call(
        &self,
        call_chain_id: &str,
        target: ActorKey,
        method: &str,
        data: Bytes,
    ) -> Result<Bytes, CallError> {
        let call = Call {
            key: target,
            method: method.to_owned(),
            data,
            metadata: HashMap::new(),
            call_chain_id: call_chain_id.to_owned(),
            kind: CallKind::Method,
        };
        self.router.invoke(call, None).await
    }

    /// The actor's live activation on this host.
    fn active(&self, actor: &ActorKey) -> Result<Arc<Activation>, CallError> {
        self.router
            .activations()
            .get(actor)
            .ok_or_else(|| not_active(actor))
    }

    /// The actor's activation on this host, also while it finishes its last turn.
    fn active_until_finished(&self, actor: &ActorKey) -> Result<Arc<Activation>, CallError> {
        self.router
            .activations()
            .get_until_finished(actor)
            .ok_or_else(|| not_active(actor))
    }
}

fn no_state_store() -> CallError {
    CallError::FailedPrecondition("this host has no state store configured".into())
}

fn not_active(actor: &ActorKey) -> CallError {
    CallError::NotActive(format!("actor {actor} is not active on this host"))
}

//! How the host drives an actor type, whoever implements it: the gRPC app channel and embedded
//! Rust actors (`crate::channels`) both implement [`ActorChannel`] and [`ActorInstance`], so
//! activations do not care which.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::call::{ActorKey, Call};
use crate::error::CallError;

/// Calls an instance accepts while a turn of its actor is in progress (re-entrant calls).
pub type ReentrantInvoker =
    Arc<dyn Fn(Arc<Call>) -> BoxFuture<'static, Result<Bytes, CallError>> + Send + Sync>;

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
    /// One turn. The call is shared with its router, which keeps it to send again should the
    /// turn fail before it ran: read it in place, or take it with `Arc::unwrap_or_clone`.
    fn invoke(&mut self, call: Arc<Call>) -> BoxFuture<'_, Result<Bytes, CallError>>;
    /// A way in for re-entrant calls while a turn is in progress; `None` if the channel cannot
    /// run two calls of one actor at once.
    fn reentrant_invoker(&self) -> Option<ReentrantInvoker>;
    /// The actor goes idle or moves: the app hears "deactivate".
    fn deactivate(self: Box<Self>) -> BoxFuture<'static, Result<(), CallError>>;
}

/// A channel that never activates anything, for tests of what holds channels.
#[cfg(test)]
pub struct Nobody;

#[cfg(test)]
impl ActorChannel for Nobody {
    fn activate(
        &self,
        _key: Arc<ActorKey>,
    ) -> BoxFuture<'static, Result<Box<dyn ActorInstance>, CallError>> {
        Box::pin(async { Err(CallError::Internal("never activated here".into())) })
    }
}

//! The state store under its component's outbound policies: every operation bounded by the
//! timeout, admitted by the breaker and retried as the retry policy says (store operations
//! are idempotent under the claim's epoch; see [`super::Failure`] for `StateError`).

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

use super::{BreakerKey, TargetPolicy};
use crate::call::ActorKey;
use crate::state::{Claim, Epoch, SharedStateStore, StateError, StateOp, StateStore};

pub struct ResilientStore {
    inner: SharedStateStore,
    policy: Arc<TargetPolicy>,
}

impl ResilientStore {
    /// `inner` under `policy`.
    pub fn wrap(inner: SharedStateStore, policy: Arc<TargetPolicy>) -> SharedStateStore {
        Arc::new(ResilientStore { inner, policy })
    }
}

impl StateStore for ResilientStore {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn claim(&self, actor: &ActorKey) -> BoxFuture<'_, Result<Claim, StateError>> {
        let actor = actor.clone();
        Box::pin(async move {
            self.policy
                .run(BreakerKey::WHOLE, None, |_| self.inner.claim(&actor))
                .await
        })
    }

    fn release(&self, actor: &ActorKey, epoch: Epoch) {
        self.inner.release(actor, epoch);
    }

    fn get<'a>(
        &'a self,
        actor: &'a ActorKey,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Bytes>, StateError>> {
        Box::pin(
            self.policy
                .run(BreakerKey::WHOLE, None, move |_| self.inner.get(actor, key)),
        )
    }

    fn transact<'a>(
        &'a self,
        actor: &'a ActorKey,
        epoch: Epoch,
        operations: &'a [StateOp],
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(self.policy.run(BreakerKey::WHOLE, None, move |_| {
            self.inner.transact(actor, epoch, operations)
        }))
    }

    /// Readiness asks the store itself, past any breaker.
    fn ping(&self) -> BoxFuture<'_, Result<(), StateError>> {
        self.inner.ping()
    }

    fn hand_off_timers<'a>(
        &'a self,
        actor: &'a ActorKey,
        epoch: Epoch,
        timers: Bytes,
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(self.policy.run(BreakerKey::WHOLE, None, move |_| {
            self.inner.hand_off_timers(actor, epoch, timers.clone())
        }))
    }
}

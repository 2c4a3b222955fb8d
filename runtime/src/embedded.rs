//! The embedded channel: actor types implemented in Rust inside the host process.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;

use crate::actor::{
    Actor, ActorChannel, ActorContext, ActorInstance, ActorKey, Call, CallKind, ReentrantInvoker,
};
use crate::error::CallError;
use crate::router::Router;

/// Builds a new actor for each activation.
pub type ActorFactory = Arc<dyn Fn(&ActorKey) -> Box<dyn Actor> + Send + Sync>;

pub struct EmbeddedChannel {
    factory: ActorFactory,
    router: Weak<Router>,
}

impl EmbeddedChannel {
    pub fn new(factory: ActorFactory, router: Weak<Router>) -> EmbeddedChannel {
        EmbeddedChannel { factory, router }
    }
}

impl ActorChannel for EmbeddedChannel {
    fn activate(
        &self,
        key: Arc<ActorKey>,
    ) -> BoxFuture<'static, Result<Box<dyn ActorInstance>, CallError>> {
        let mut actor = (self.factory)(&key);
        let router = self.router.clone();
        async move {
            let ctx = ActorContext::new(key.clone(), String::new(), router.clone());
            actor
                .on_activate(&ctx)
                .await
                .map_err(|e| CallError::Application(e.0))?;
            Ok(Box::new(EmbeddedInstance { key, actor, router }) as Box<dyn ActorInstance>)
        }
        .boxed()
    }
}

struct EmbeddedInstance {
    key: Arc<ActorKey>,
    actor: Box<dyn Actor>,
    router: Weak<Router>,
}

impl ActorInstance for EmbeddedInstance {
    fn invoke(&mut self, call: Call) -> BoxFuture<'_, Result<Bytes, CallError>> {
        async move {
            let ctx = ActorContext::new(self.key.clone(), call.call_chain_id, self.router.clone());
            match call.kind {
                CallKind::Method => self.actor.handle(&ctx, &call.method, call.data).await,
                // Answered by the activation itself; never reaches an instance.
                CallKind::Wake => Ok(Bytes::new()),
                CallKind::Reminder(tick) => self
                    .actor
                    .on_reminder(&ctx, &tick, call.data)
                    .await
                    .map(|()| Bytes::new()),
                CallKind::Timer(tick) => self
                    .actor
                    .on_timer(&ctx, &tick, call.data)
                    .await
                    .map(|()| Bytes::new()),
            }
            .map_err(|e| CallError::Application(e.0))
        }
        .boxed()
    }

    fn reentrant_invoker(&self) -> Option<ReentrantInvoker> {
        None
    }

    fn deactivate(mut self: Box<Self>) -> BoxFuture<'static, Result<(), CallError>> {
        async move {
            let ctx = ActorContext::new(self.key.clone(), String::new(), self.router.clone());
            self.actor.on_deactivate(&ctx).await;
            Ok(())
        }
        .boxed()
    }
}

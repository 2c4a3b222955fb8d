//! What a host delivers to its app outside actor turns: the firings of the app's jobs and the
//! events of its input bindings (the cron binding). Each kind of app brings its
//! [`AppTriggers`]: the HTTP app (`POST /job/{name}`, `POST /{binding}`), a gRPC app
//! connection that asked for them (`TriggerJob`, `TriggerBinding`), or embedded Rust code.
//!
//! Jobs reach the app through the app's *jobs type* (`rookery_core::job_reminders`): one
//! actor per job, so the ring decides which healthy host of the app delivers each job, and a
//! firing runs one at a time per job. [`serve_triggers`] registers that type with the
//! provider's other types (suspended and withdrawn with them) and makes the provider this
//! host's [`TriggerSlot`] for bindings.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use rookery_core::job_reminders::jobs_actor_type;

use crate::actors::channel::{ActorChannel, ActorInstance, ReentrantInvoker};
use crate::actors::types::{Provider, TypeError, TypeRegistry};
use crate::call::{ActorKey, Call, CallKind};
use crate::config::TypeOptions;
use crate::error::CallError;

/// A job's payload as the app receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobPayload {
    pub data: Bytes,
    /// A protobuf `Any`'s type URL; empty: raw bytes.
    pub data_type_url: String,
    /// The instant this firing was due, Unix-epoch ms. Delivery is at least once: a firing
    /// delivered again carries the same instant, so name and instant identify it.
    pub due_at_ms: u64,
}

/// One event of an input binding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindingEvent {
    pub data: Bytes,
    pub metadata: BTreeMap<String, String>,
}

/// Why the app did not take a trigger.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// The app answered with an error.
    #[error("the app refused it: {0}")]
    Refused(String),
    /// The app could not be reached, or did not answer.
    #[error("the app did not take it: {0}")]
    NotDelivered(String),
}

/// How one app receives jobs and binding events.
pub trait AppTriggers: Send + Sync + 'static {
    fn job(&self, name: &str, payload: JobPayload) -> BoxFuture<'static, Result<(), TriggerError>>;
    fn binding(
        &self,
        name: &str,
        event: BindingEvent,
    ) -> BoxFuture<'static, Result<(), TriggerError>>;
}

/// The app that receives this host's triggers, if any: the provider that last called
/// [`serve_triggers`] and has not been withdrawn.
#[derive(Clone, Default)]
pub struct TriggerSlot {
    current: Arc<RwLock<Option<Receiver>>>,
}

/// The provider receiving the triggers, and how.
type Receiver = (Provider, Arc<dyn AppTriggers>);

impl TriggerSlot {
    /// The app's triggers while the app is served here (healthy, connected); `types` tells.
    pub fn get(&self, types: &TypeRegistry, app_id: &str) -> Option<Arc<dyn AppTriggers>> {
        let current = self.current.read().expect("trigger slot lock").clone()?;
        types
            .get(&jobs_actor_type(app_id))
            .filter(|served| served.provider == current.0)
            .map(|_| current.1)
    }

    /// Empties the slot if `provider` holds it (the app disconnected).
    pub fn clear(&self, provider: Provider) {
        let mut current = self.current.write().expect("trigger slot lock");
        if current.as_ref().is_some_and(|(p, _)| *p == provider) {
            *current = None;
        }
    }
}

/// Makes `provider` the receiver of `app_id`'s jobs and bindings on this host: registers the
/// app's jobs type for it and fills `slot`. Fails when another provider of this host
/// already receives them.
pub fn serve_triggers(
    types: &TypeRegistry,
    slot: &TriggerSlot,
    provider: Provider,
    app_id: &str,
    options: TypeOptions,
    triggers: Arc<dyn AppTriggers>,
) -> Result<(), TypeError> {
    let channel = Arc::new(JobsTypeChannel {
        triggers: triggers.clone(),
    });
    types.register_jobs_type(provider, jobs_actor_type(app_id), channel, options)?;
    *slot.current.write().expect("trigger slot lock") = Some((provider, triggers));
    Ok(())
}

/// The channel of an app's jobs type: each job an actor, each firing a turn.
struct JobsTypeChannel {
    triggers: Arc<dyn AppTriggers>,
}

impl ActorChannel for JobsTypeChannel {
    fn activate(
        &self,
        key: Arc<ActorKey>,
    ) -> BoxFuture<'static, Result<Box<dyn ActorInstance>, CallError>> {
        let instance = JobInstance {
            key,
            triggers: self.triggers.clone(),
        };
        async move { Ok(Box::new(instance) as Box<dyn ActorInstance>) }.boxed()
    }
}

struct JobInstance {
    key: Arc<ActorKey>,
    triggers: Arc<dyn AppTriggers>,
}

impl ActorInstance for JobInstance {
    fn invoke(&mut self, call: Arc<Call>) -> BoxFuture<'_, Result<Bytes, CallError>> {
        let CallKind::Job(trigger) = &call.kind else {
            return async move {
                Err(CallError::InvalidArgument(format!(
                    "{} is a job: it takes no calls",
                    self.key
                )))
            }
            .boxed();
        };
        let delivery = self.triggers.job(
            &self.key.actor_id,
            JobPayload {
                data: call.data.clone(),
                data_type_url: trigger.data_type_url.clone(),
                due_at_ms: trigger.due_at_ms,
            },
        );
        async move {
            delivery
                .await
                .map(|()| Bytes::new())
                .map_err(|e| CallError::Application(e.to_string()))
        }
        .boxed()
    }

    fn reentrant_invoker(&self) -> Option<ReentrantInvoker> {
        None
    }

    fn deactivate(self: Box<Self>) -> BoxFuture<'static, Result<(), CallError>> {
        async { Ok(()) }.boxed()
    }
}

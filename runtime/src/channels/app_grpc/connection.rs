//! One app's stream, as the host's side of the gRPC app channel sees it: requests to the app
//! (activate, invoke, fire a reminder or timer, deactivate, trigger a job or a binding), each
//! correlated by request id with the app's reply; the [`ActorChannel`] / [`ActorInstance`]
//! the host drives the app's types through, and the [`AppTriggers`] of a connection that
//! receives the host's triggers.
//!
//! When the app disconnects, calls it had taken but not answered fail with UNAVAILABLE
//! marked `app-disconnected` (not retried: they may have run).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use rookery_proto::v1::{
    app_reply, host_to_app, ActivateActor, AppReply, DeactivateActor, FireReminder, FireTimer,
    HostToApp, InvokeActor, TriggerBinding, TriggerJob,
};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;
use tracing::Instrument;

use crate::actors::channel::{ActorChannel, ActorInstance, ReentrantInvoker};
use crate::call::{trace, ActorKey, Call, CallKind};
use crate::channels::triggers::{AppTriggers, BindingEvent, JobPayload, TriggerError};
use crate::cluster::lease::ServingGate;
use crate::error::CallError;

pub struct AppConnection {
    id: u64,
    outbox: mpsc::Sender<Result<HostToApp, Status>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<Bytes, CallError>>>>,
    next_request: AtomicU64,
    closed: AtomicBool,
}

/// Removes a pending request when its caller stops waiting (timeout or cancellation).
struct PendingGuard<'a> {
    connection: &'a AppConnection,
    request_id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.connection
            .pending
            .lock()
            .expect("pending lock")
            .remove(&self.request_id);
    }
}

impl AppConnection {
    /// A connection whose requests go to `outbox`, the app's stream.
    pub fn new(id: u64, outbox: mpsc::Sender<Result<HostToApp, Status>>) -> AppConnection {
        AppConnection {
            id,
            outbox,
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            closed: AtomicBool::new(false),
        }
    }

    /// Distinguishes the connections of one host.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The app's stream, for answers that correlate themselves (state, timers, reminders).
    pub fn outbox(&self) -> &mpsc::Sender<Result<HostToApp, Status>> {
        &self.outbox
    }

    /// The channel of one type this app serves.
    pub fn type_channel(self: &Arc<Self>, gate: ServingGate) -> Arc<dyn ActorChannel> {
        Arc::new(AppTypeChannel {
            connection: self.clone(),
            gate,
        })
    }

    async fn request(
        &self,
        build: impl FnOnce(u64) -> host_to_app::Message,
    ) -> Result<Bytes, CallError> {
        let request_id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        if self.closed.load(Ordering::Acquire) {
            return Err(CallError::Unavailable(
                "the app serving this actor type disconnected".into(),
            ));
        }
        self.pending
            .lock()
            .expect("pending lock")
            .insert(request_id, reply);
        let _guard = PendingGuard {
            connection: self,
            request_id,
        };
        let message = HostToApp {
            message: Some(build(request_id)),
        };
        if self.outbox.send(Ok(message)).await.is_err() {
            return Err(CallError::Unavailable(
                "the app serving this actor type disconnected".into(),
            ));
        }
        answer.await.unwrap_or_else(|_| {
            Err(CallError::AppDisconnected(
                "the app disconnected before answering".into(),
            ))
        })
    }

    /// Hands the app's reply to the request waiting for it.
    pub fn resolve(&self, reply: AppReply) {
        let Some(waiter) = self
            .pending
            .lock()
            .expect("pending lock")
            .remove(&reply.request_id)
        else {
            return; // answered after its timeout: the caller has moved on
        };
        let result = match reply.result {
            Some(app_reply::Result::Data(data)) => Ok(Bytes::from(data)),
            Some(app_reply::Result::Error(message)) => Err(CallError::Application(message)),
            Some(app_reply::Result::LeaseExpired(_)) => Err(CallError::Moved(
                "the app refused a turn that reached it after the host's lease".into(),
            )),
            None => Ok(Bytes::new()),
        };
        let _ = waiter.send(result);
    }

    /// The stream ended: every waiting request fails, and no new one is sent.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let pending: Vec<_> = self.pending.lock().expect("pending lock").drain().collect();
        for (_, waiter) in pending {
            let _ = waiter.send(Err(CallError::AppDisconnected(
                "the app disconnected before answering".into(),
            )));
        }
    }
}

/// The jobs and binding events of the host, to an app connection that asked for them.
pub struct GrpcTriggers {
    pub connection: Arc<AppConnection>,
}

fn trigger_outcome(result: Result<Bytes, CallError>) -> Result<(), TriggerError> {
    match result {
        Ok(_) => Ok(()),
        Err(CallError::Application(message)) => Err(TriggerError::Refused(message)),
        Err(other) => Err(TriggerError::NotDelivered(other.to_string())),
    }
}

impl AppTriggers for GrpcTriggers {
    fn job(&self, name: &str, payload: JobPayload) -> BoxFuture<'static, Result<(), TriggerError>> {
        let connection = self.connection.clone();
        let name = name.to_owned();
        async move {
            let result = connection
                .request(|request_id| {
                    host_to_app::Message::Job(TriggerJob {
                        request_id,
                        name,
                        data: payload.data.to_vec(),
                        data_type_url: payload.data_type_url,
                        due_at_ms: payload.due_at_ms,
                    })
                })
                .await;
            trigger_outcome(result)
        }
        .boxed()
    }

    fn binding(
        &self,
        name: &str,
        event: BindingEvent,
    ) -> BoxFuture<'static, Result<(), TriggerError>> {
        let connection = self.connection.clone();
        let name = name.to_owned();
        async move {
            let result = connection
                .request(|request_id| {
                    host_to_app::Message::Binding(TriggerBinding {
                        request_id,
                        name,
                        data: event.data.to_vec(),
                        metadata: event.metadata.into_iter().collect(),
                    })
                })
                .await;
            trigger_outcome(result)
        }
        .boxed()
    }
}

/// One actor type served by one app connection.
struct AppTypeChannel {
    connection: Arc<AppConnection>,
    gate: ServingGate,
}

impl ActorChannel for AppTypeChannel {
    fn activate(
        &self,
        key: Arc<ActorKey>,
    ) -> BoxFuture<'static, Result<Box<dyn ActorInstance>, CallError>> {
        let connection = self.connection.clone();
        let gate = self.gate.clone();
        async move {
            let (actor_type, actor_id) = (key.actor_type.clone(), key.actor_id.clone());
            connection
                .request(|request_id| {
                    host_to_app::Message::Activate(ActivateActor {
                        request_id,
                        actor_type,
                        actor_id,
                    })
                })
                .await?;
            Ok(Box::new(AppInstance {
                connection,
                key,
                gate,
            }) as Box<dyn ActorInstance>)
        }
        .boxed()
    }
}

struct AppInstance {
    connection: Arc<AppConnection>,
    key: Arc<ActorKey>,
    gate: ServingGate,
}

/// One reminder operation an app asked for on its stream.
/// The request for one turn. `not_after_ms` is the fence the app checks before starting it.
fn invoke_message(request_id: u64, call: Call, not_after_ms: u64) -> host_to_app::Message {
    if let CallKind::Timer(tick) = &call.kind {
        return host_to_app::Message::Timer(FireTimer {
            request_id,
            actor_type: call.key.actor_type,
            actor_id: call.key.actor_id,
            name: tick.name.clone(),
            callback: tick.callback.clone(),
            data: call.data.to_vec(),
            not_after_ms,
        });
    }
    if let CallKind::Reminder(tick) = call.kind {
        return host_to_app::Message::Reminder(FireReminder {
            request_id,
            actor_type: call.key.actor_type,
            actor_id: call.key.actor_id,
            name: tick.name,
            data: call.data.to_vec(),
            due_at_ms: tick.due_at_ms,
            period_ms: tick.period_ms,
            not_after_ms,
        });
    }
    host_to_app::Message::Invoke(InvokeActor {
        request_id,
        actor_type: call.key.actor_type,
        actor_id: call.key.actor_id,
        method: call.method,
        data: call.data.to_vec(),
        metadata: call.metadata,
        call_chain_id: call.call_chain_id,
        not_after_ms,
    })
}

/// The `app.invoke` span of one request to the app, its context in the call's metadata (the
/// `InvokeActor` metadata the app reads).
fn app_span(call: &mut Call) -> tracing::Span {
    let span = tracing::info_span!("app.invoke", otel.kind = "client", rpc.system = "grpc");
    trace::inject(&span, &mut call.metadata);
    span
}

impl ActorInstance for AppInstance {
    fn invoke(&mut self, call: Arc<Call>) -> BoxFuture<'_, Result<Bytes, CallError>> {
        // Its fields go into the request: taken if no one else holds the call, else copied.
        let mut call = Arc::unwrap_or_clone(call);
        let span = app_span(&mut call);
        async move {
            let gate = self.gate.clone();
            self.connection
                .request(|id| invoke_message(id, call, gate.not_after_ms()))
                .await
        }
        .instrument(span)
        .boxed()
    }

    fn reentrant_invoker(&self) -> Option<ReentrantInvoker> {
        let connection = self.connection.clone();
        let gate = self.gate.clone();
        Some(Arc::new(move |call: Arc<Call>| {
            let mut call = Arc::unwrap_or_clone(call);
            let connection = connection.clone();
            let gate = gate.clone();
            let span = app_span(&mut call);
            async move {
                connection
                    .request(|id| invoke_message(id, call, gate.not_after_ms()))
                    .await
            }
            .instrument(span)
            .boxed()
        }))
    }

    fn deactivate(self: Box<Self>) -> BoxFuture<'static, Result<(), CallError>> {
        async move {
            let (actor_type, actor_id) = (self.key.actor_type.clone(), self.key.actor_id.clone());
            self.connection
                .request(|request_id| {
                    host_to_app::Message::Deactivate(DeactivateActor {
                        request_id,
                        actor_type,
                        actor_id,
                    })
                })
                .await
                .map(|_| ())
        }
        .boxed()
    }
}

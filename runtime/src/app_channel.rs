//! The gRPC app channel: an application process connects with `AppChannel.Connect`,
//! registers actor types, and answers the host's activate / invoke / deactivate requests,
//! correlated by request id.
//!
//! When the app disconnects, its types are withdrawn (the host re-registers with placement
//! without them), its activations end without being told, and calls it had taken but not
//! answered fail with UNAVAILABLE marked `app-disconnected` (not retried: they may have run).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, Stream};
use rookery_proto::v1::app_channel_server::AppChannel;
use rookery_proto::v1::{
    app_reply, app_to_host, host_to_app, ActivateActor, AppReply, AppToHost, DeactivateActor,
    FireReminder, FireTimer, HostToApp, InvokeActor, RegisterTimer, RegisterTypes, Registered,
    ReminderRequest, ReminderResponse, StateRequest, StateResponse, TimerRegistered,
};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::activation::StopReason;
use crate::activations::Activations;
use crate::actor::{
    ActorChannel, ActorInstance, ActorKey, Call, CallKind, ReentrantInvoker, TimerSpec,
};
use crate::config::{ActorDefaults, TypeOptions};
use crate::error::CallError;
use crate::reminder_api::ReminderClient;
use crate::routing::ServingGate;
use crate::state::StateOp;
use crate::types::{Provider, TypeError, TypeRegistry};

/// Requests queued to one app before senders wait.
pub const APP_OUTBOX_CAPACITY: usize = 4096;
/// Most types one app may register.
pub const MAX_TYPES_PER_APP: usize = 1024;

/// One connected app.
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

    fn resolve(&self, reply: AppReply) {
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

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let pending: Vec<_> = self.pending.lock().expect("pending lock").drain().collect();
        for (_, waiter) in pending {
            let _ = waiter.send(Err(CallError::AppDisconnected(
                "the app disconnected before answering".into(),
            )));
        }
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
async fn serve_reminder_request(
    reminders: Option<&ReminderClient>,
    request: ReminderRequest,
) -> ReminderResponse {
    use rookery_proto::v1::{reminder_request::Operation, reminder_response::Result as Answer};
    let answer = match (reminders, request.operation) {
        (None, _) => Err(Status::unimplemented("this host serves no reminders")),
        (_, None) => Err(Status::invalid_argument(
            "reminder request without an operation",
        )),
        (Some(client), Some(Operation::Create(create))) => {
            client.create(create).await.map(Answer::Reminder)
        }
        (Some(client), Some(Operation::Get(reference))) => {
            client.get(reference).await.map(Answer::Reminder)
        }
        (Some(client), Some(Operation::List(list))) => client.list(list).await.map(Answer::List),
        (Some(client), Some(Operation::Delete(reference))) => client
            .delete(reference)
            .await
            .map(|d| Answer::Deleted(d.deleted)),
    };
    ReminderResponse {
        correlation_id: request.correlation_id,
        result: Some(answer.unwrap_or_else(|status| {
            Answer::Error(format!("{:?}: {}", status.code(), status.message()))
        })),
    }
}

fn timer_answer(correlation_id: u64, error: String) -> HostToApp {
    HostToApp {
        message: Some(host_to_app::Message::TimerRegistered(TimerRegistered {
            correlation_id,
            error,
        })),
    }
}

/// Registers a timer an app asked for on one of its active actors.
fn register_timer(activations: &Activations, timer: RegisterTimer) -> HostToApp {
    let key = ActorKey::new(timer.actor_type, timer.actor_id);
    let schedule = match rookery_placement::schedule::parse_schedule(
        &timer.due_time,
        &timer.period,
        &timer.ttl,
        crate::reminder_scheduler::now_ms(),
    ) {
        Ok(schedule) => schedule,
        Err(e) => return timer_answer(timer.correlation_id, e.to_string()),
    };
    if timer.name.is_empty() {
        return timer_answer(timer.correlation_id, "timer name must not be empty".into());
    }
    match activations.get(&key) {
        Some(activation) => {
            let registered = activation.register_timer(TimerSpec {
                name: timer.name,
                schedule,
                callback: timer.callback,
                data: Bytes::from(timer.data),
            });
            let error = registered.err().map(|e| e.to_string()).unwrap_or_default();
            timer_answer(timer.correlation_id, error)
        }
        None => timer_answer(
            timer.correlation_id,
            format!("actor {key} is not active on this host"),
        ),
    }
}

/// One state operation an app asked for on its stream, for one of its active actors.
async fn serve_state_request(activations: &Activations, request: StateRequest) -> StateResponse {
    use rookery_proto::v1::state_operation::Operation as Op;
    use rookery_proto::v1::state_request::Operation;
    use rookery_proto::v1::state_response::Result as Answer;
    use rookery_proto::v1::GetActorStateResponse;
    let key = ActorKey::new(request.actor_type, request.actor_id);
    let answer = async {
        let activation = activations.get_until_finished(&key).ok_or_else(|| {
            CallError::FailedPrecondition(format!("actor {key} is not active on this host"))
        })?;
        match request.operation {
            None => Err(CallError::InvalidArgument(
                "state request without an operation".into(),
            )),
            Some(Operation::Get(state_key)) => {
                let value = activation.get_state(&state_key).await?;
                Ok(Answer::Value(GetActorStateResponse {
                    found: value.is_some(),
                    data: value.map(|v| v.to_vec()).unwrap_or_default(),
                }))
            }
            Some(Operation::Transaction(transaction)) => {
                let operations = transaction
                    .operations
                    .into_iter()
                    .map(|op| match op.operation {
                        Some(Op::Upsert(upsert)) => Ok(StateOp::Upsert {
                            key: upsert.key,
                            value: Bytes::from(upsert.value),
                            ttl_seconds: upsert.ttl_in_seconds,
                        }),
                        Some(Op::Delete(key)) => Ok(StateOp::Delete { key }),
                        None => Err(CallError::InvalidArgument(
                            "state operation without upsert or delete".into(),
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                activation.transact_state(&operations).await?;
                Ok(Answer::Committed(true))
            }
        }
    }
    .await;
    StateResponse {
        correlation_id: request.correlation_id,
        result: Some(answer.unwrap_or_else(|error: CallError| {
            let status = Status::from(error);
            Answer::Error(format!("{:?}: {}", status.code(), status.message()))
        })),
    }
}

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

impl ActorInstance for AppInstance {
    fn invoke(&mut self, call: Call) -> BoxFuture<'_, Result<Bytes, CallError>> {
        async move {
            let gate = self.gate.clone();
            self.connection
                .request(|id| invoke_message(id, call, gate.not_after_ms()))
                .await
        }
        .boxed()
    }

    fn reentrant_invoker(&self) -> Option<ReentrantInvoker> {
        let connection = self.connection.clone();
        let gate = self.gate.clone();
        Some(Arc::new(move |call: Call| {
            let connection = connection.clone();
            let gate = gate.clone();
            async move {
                connection
                    .request(|id| invoke_message(id, call, gate.not_after_ms()))
                    .await
            }
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

/// The `AppChannel` gRPC service.
pub struct AppChannelService {
    host_id: String,
    types: Arc<TypeRegistry>,
    activations: Arc<Activations>,
    defaults: ActorDefaults,
    next_connection: AtomicU64,
    /// Ends every app stream when the host shuts down, so the server can stop.
    shutdown: Option<tokio::sync::watch::Receiver<bool>>,
    /// Serves the reminder requests apps send on their stream.
    reminders: Option<ReminderClient>,
}

impl AppChannelService {
    /// Serves apps' reminder requests with `reminders`.
    pub fn with_reminders(mut self, reminders: ReminderClient) -> AppChannelService {
        self.reminders = Some(reminders);
        self
    }

    /// Ends app streams when `shutdown` turns true.
    pub fn ending_on(mut self, shutdown: tokio::sync::watch::Receiver<bool>) -> AppChannelService {
        self.shutdown = Some(shutdown);
        self
    }

    pub fn new(
        host_id: String,
        types: Arc<TypeRegistry>,
        activations: Arc<Activations>,
        defaults: ActorDefaults,
    ) -> AppChannelService {
        AppChannelService {
            host_id,
            types,
            activations,
            defaults,
            next_connection: AtomicU64::new(1),
            shutdown: None,
            reminders: None,
        }
    }

    fn register(
        &self,
        connection: &Arc<AppConnection>,
        registration: RegisterTypes,
    ) -> Result<Vec<String>, Status> {
        if registration.types.is_empty() {
            return Err(Status::invalid_argument("register at least one actor type"));
        }
        if registration.types.len() > MAX_TYPES_PER_APP {
            return Err(Status::invalid_argument(format!(
                "more than {MAX_TYPES_PER_APP} actor types"
            )));
        }
        let mut types = Vec::with_capacity(registration.types.len());
        for t in registration.types {
            let defaults = self.defaults.type_options();
            let options = TypeOptions {
                idle_timeout_ms: t.idle_timeout_ms.unwrap_or(defaults.idle_timeout_ms),
                drain_timeout_ms: t.drain_timeout_ms.unwrap_or(defaults.drain_timeout_ms),
                call_timeout_ms: t.call_timeout_ms.unwrap_or(defaults.call_timeout_ms),
                reentrancy: t.reentrancy.unwrap_or(defaults.reentrancy),
                max_reentrancy_depth: t
                    .max_reentrancy_depth
                    .unwrap_or(defaults.max_reentrancy_depth),
            };
            for (field, value) in [
                ("idle_timeout_ms", options.idle_timeout_ms),
                ("call_timeout_ms", options.call_timeout_ms),
                ("drain_timeout_ms", options.drain_timeout_ms),
                (
                    "max_reentrancy_depth",
                    u64::from(options.max_reentrancy_depth),
                ),
            ] {
                if value == 0 {
                    return Err(Status::invalid_argument(format!(
                        "{field} of type {:?} must be greater than 0",
                        t.actor_type
                    )));
                }
            }
            let channel: Arc<dyn ActorChannel> = Arc::new(AppTypeChannel {
                connection: connection.clone(),
                gate: self.activations.gate().clone(),
            });
            types.push((t.actor_type, channel, options));
        }
        let names = types.iter().map(|(n, _, _)| n.clone()).collect();
        self.types
            .register(Provider::App(connection.id), types)
            .map_err(|e| match e {
                TypeError::Taken(_) => Status::already_exists(e.to_string()),
                other => Status::invalid_argument(other.to_string()),
            })?;
        Ok(names)
    }
}

type HostToAppStream = Pin<Box<dyn Stream<Item = Result<HostToApp, Status>> + Send>>;

#[tonic::async_trait]
impl AppChannel for AppChannelService {
    type ConnectStream = HostToAppStream;

    async fn connect(
        &self,
        request: Request<Streaming<AppToHost>>,
    ) -> Result<Response<HostToAppStream>, Status> {
        let mut inbound = request.into_inner();
        let first = match inbound.next().await {
            Some(Ok(message)) => message,
            Some(Err(status)) => return Err(status),
            None => return Err(Status::invalid_argument("stream closed before registering")),
        };
        let Some(app_to_host::Message::Register(registration)) = first.message else {
            return Err(Status::invalid_argument(
                "the first message must be RegisterTypes",
            ));
        };
        let (outbox, outbox_rx) = mpsc::channel(APP_OUTBOX_CAPACITY);
        let connection = Arc::new(AppConnection {
            id: self.next_connection.fetch_add(1, Ordering::Relaxed),
            outbox,
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            closed: AtomicBool::new(false),
        });
        let app_id = registration.app_id.clone();
        let names = self.register(&connection, registration)?;
        tracing::info!(app_id, types = ?names, "app connected");
        let registered = HostToApp {
            message: Some(host_to_app::Message::Registered(Registered {
                host_id: self.host_id.clone(),
            })),
        };
        let _ = connection.outbox.try_send(Ok(registered));

        let types = self.types.clone();
        let activations = self.activations.clone();
        let service_types = self.types.clone();
        let defaults = self.defaults.clone();
        let host_id = self.host_id.clone();
        let reminders = self.reminders.clone();
        tokio::spawn(async move {
            // Re-registrations on an open stream add types; build a throwaway service view
            // for validation with the same defaults.
            let view =
                AppChannelService::new(host_id, service_types, activations.clone(), defaults);
            while let Some(message) = inbound.next().await {
                match message {
                    Ok(AppToHost {
                        message: Some(app_to_host::Message::Reply(reply)),
                    }) => connection.resolve(reply),
                    Ok(AppToHost {
                        message: Some(app_to_host::Message::Register(more)),
                    }) => {
                        if let Err(status) = view.register(&connection, more) {
                            let _ = connection.outbox.try_send(Err(status));
                            break;
                        }
                    }
                    Ok(AppToHost {
                        message: Some(app_to_host::Message::RegisterTimer(timer)),
                    }) => {
                        let answer = register_timer(&activations, timer);
                        let _ = connection.outbox.try_send(Ok(answer));
                    }
                    Ok(AppToHost {
                        message: Some(app_to_host::Message::UnregisterTimer(timer)),
                    }) => {
                        let key = ActorKey::new(timer.actor_type, timer.actor_id);
                        let error = match activations.get(&key) {
                            Some(activation) => {
                                activation.unregister_timer(&timer.name);
                                String::new()
                            }
                            None => format!("actor {key} is not active on this host"),
                        };
                        let _ = connection
                            .outbox
                            .try_send(Ok(timer_answer(timer.correlation_id, error)));
                    }
                    Ok(AppToHost {
                        message: Some(app_to_host::Message::ReminderRequest(request)),
                    }) => {
                        // Answered from a task of its own: a reminder write waits for a Raft
                        // commit, and the stream's replies must keep flowing meanwhile.
                        let reminders = reminders.clone();
                        let outbox = connection.outbox.clone();
                        tokio::spawn(async move {
                            let response =
                                serve_reminder_request(reminders.as_ref(), request).await;
                            let _ = outbox
                                .send(Ok(HostToApp {
                                    message: Some(host_to_app::Message::ReminderResponse(response)),
                                }))
                                .await;
                        });
                    }
                    Ok(AppToHost {
                        message: Some(app_to_host::Message::StateRequest(request)),
                    }) => {
                        // Its own task, like reminders: a transaction waits for the store.
                        let activations = activations.clone();
                        let outbox = connection.outbox.clone();
                        tokio::spawn(async move {
                            let response = serve_state_request(&activations, request).await;
                            let _ = outbox
                                .send(Ok(HostToApp {
                                    message: Some(host_to_app::Message::StateResponse(response)),
                                }))
                                .await;
                        });
                    }
                    Ok(AppToHost { message: None }) => {}
                    Err(_) => break,
                }
            }
            connection.close();
            let withdrawn = types.withdraw(Provider::App(connection.id));
            tracing::info!(app_id, types = ?withdrawn, "app disconnected");
            activations.stop_where(StopReason::Withdrawn, |key| {
                withdrawn.contains(&key.actor_type)
            });
        });
        let mut shutdown = self.shutdown.clone();
        let ended = async move {
            match shutdown.as_mut() {
                Some(shutdown) => {
                    let _ = shutdown.wait_for(|s| *s).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let stream = futures::StreamExt::take_until(ReceiverStream::new(outbox_rx), ended);
        Ok(Response::new(Box::pin(stream)))
    }
}

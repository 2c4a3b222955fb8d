//! The `AppChannel` gRPC service: an application process connects with `AppChannel.Connect`,
//! registers actor types, answers the host's requests, and sends its actors' own requests
//! (state, timers, reminders), which go to the actor-side API like an embedded actor's.
//!
//! When the app disconnects, its types are withdrawn (the host re-registers with placement
//! without them) and its activations end without being told. While the app fails its health
//! checks (`health`), the types of every connection are registered but not served.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use rookery_core::limits::MAX_ACTOR_TYPES_PER_HOST;
use rookery_core::shutdown::Shutdown;
use rookery_proto::v1::app_channel_server::AppChannel;
use rookery_proto::v1::{
    app_to_host, host_to_app, AppToHost, GetActorStateResponse, HostToApp, RegisterTimer,
    RegisterTypes, Registered, ReminderRequest, ReminderResponse, StateRequest, StateResponse,
    TimerRegistered, UnregisterTimer,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::connection::{AppConnection, GrpcTriggers};
use crate::actors::activation::StopReason;
use crate::actors::activations::Activations;
use crate::actors::types::{AppGroup, Provider, TypeError, TypeRegistry};
use crate::call::ActorKey;
use crate::channels::actor_api::{ActorApi, TimerRequest};
use crate::channels::triggers::{serve_triggers, TriggerSlot};
use crate::config::{ActorDefaults, TypeOptions};
use crate::error::CallError;
use crate::state::StateOp;

/// Requests queued to one app before senders wait.
pub const APP_OUTBOX_CAPACITY: usize = 4096;
/// How often the host pings every HTTP/2 connection of its public port, and how long an
/// answer may take: an app that stops answering (hung, paused, cut off) loses its connection
/// within about their sum, and with it its types, which move to other hosts.
pub const APP_KEEPALIVE_INTERVAL_MS: u64 = 2_000;
pub const APP_KEEPALIVE_TIMEOUT_MS: u64 = 3_000;
/// Largest message an app may send its host (replies carry actor results).
pub const MAX_APP_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// What the service shares with every connection's reader task.
struct Shared {
    host_id: String,
    /// The host's app id, whose jobs a connection with `receive_triggers` receives.
    app_id: String,
    triggers: TriggerSlot,
    types: Arc<TypeRegistry>,
    activations: Arc<Activations>,
    defaults: ActorDefaults,
    api: ActorApi,
}

/// The `AppChannel` gRPC service.
pub struct AppChannelService {
    shared: Arc<Shared>,
    next_connection: AtomicU64,
    /// Ends every app stream when the host shuts down, so the server can stop.
    shutdown: Shutdown,
}

impl AppChannelService {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        host_id: String,
        app_id: String,
        triggers: TriggerSlot,
        types: Arc<TypeRegistry>,
        activations: Arc<Activations>,
        defaults: ActorDefaults,
        api: ActorApi,
        shutdown: Shutdown,
    ) -> AppChannelService {
        AppChannelService {
            shared: Arc::new(Shared {
                host_id,
                app_id,
                triggers,
                types,
                activations,
                defaults,
                api,
            }),
            next_connection: AtomicU64::new(1),
            shutdown,
        }
    }
}

impl Shared {
    /// Registers the types of one `RegisterTypes` (the first message, or a later one adding
    /// types); returns their names.
    fn register(
        &self,
        connection: &Arc<AppConnection>,
        registration: RegisterTypes,
    ) -> Result<Vec<String>, Status> {
        if registration.types.is_empty() && !registration.receive_triggers {
            return Err(Status::invalid_argument(
                "register at least one actor type, or receive_triggers",
            ));
        }
        if registration.types.len() > MAX_ACTOR_TYPES_PER_HOST {
            return Err(Status::invalid_argument(format!(
                "more than {MAX_ACTOR_TYPES_PER_HOST} actor types"
            )));
        }
        let defaults = self.defaults.type_options();
        let gate = self.activations.gate();
        let types: Vec<_> = registration
            .types
            .into_iter()
            .map(|t| {
                let options = TypeOptions {
                    idle_timeout_ms: t.idle_timeout_ms.unwrap_or(defaults.idle_timeout_ms),
                    drain_timeout_ms: t.drain_timeout_ms.unwrap_or(defaults.drain_timeout_ms),
                    call_timeout_ms: t.call_timeout_ms.unwrap_or(defaults.call_timeout_ms),
                    reentrancy: t.reentrancy.unwrap_or(defaults.reentrancy),
                    max_reentrancy_depth: t
                        .max_reentrancy_depth
                        .unwrap_or(defaults.max_reentrancy_depth),
                    timers_keep_alive: false,
                };
                (t.actor_type, connection.type_channel(gate.clone()), options)
            })
            .collect();
        let names = types.iter().map(|(n, _, _)| n.clone()).collect();
        let status_of = |e: TypeError| match e {
            TypeError::Taken(_) => Status::already_exists(e.to_string()),
            other => Status::invalid_argument(other.to_string()),
        };
        if !types.is_empty() {
            self.types
                .register(Provider::App(connection.id()), types)
                .map_err(status_of)?;
        }
        // Receiving triggers is best effort: the app's types are served either way.
        if registration.receive_triggers && self.app_id.is_empty() {
            tracing::warn!(
                app_id = registration.app_id,
                "this host runs without --app-id: the app receives no jobs or binding events"
            );
        } else if registration.receive_triggers {
            let served = serve_triggers(
                &self.types,
                &self.triggers,
                Provider::App(connection.id()),
                &self.app_id,
                defaults,
                Arc::new(GrpcTriggers {
                    connection: connection.clone(),
                }),
            );
            if let Err(e) = served {
                tracing::warn!(app_id = registration.app_id, error = %e, "the app receives no jobs or binding events");
            }
        }
        Ok(names)
    }

    /// Reads the app's stream until it ends: replies, more registrations, and the actors' own
    /// requests. Then withdraws the app's types and ends their activations.
    async fn read(
        self: Arc<Self>,
        connection: Arc<AppConnection>,
        app_id: String,
        mut inbound: Streaming<AppToHost>,
    ) {
        while let Some(received) = inbound.next().await {
            let message = match received {
                Ok(AppToHost {
                    message: Some(message),
                }) => message,
                Ok(AppToHost { message: None }) => continue,
                Err(_) => break,
            };
            match message {
                app_to_host::Message::Reply(reply) => connection.resolve(reply),
                app_to_host::Message::Register(more) => {
                    if let Err(status) = self.register(&connection, more) {
                        let _ = connection.outbox().try_send(Err(status));
                        break;
                    }
                }
                app_to_host::Message::RegisterTimer(timer) => {
                    let answer = self.register_timer(timer);
                    let _ = connection.outbox().try_send(Ok(answer));
                }
                app_to_host::Message::UnregisterTimer(timer) => {
                    let answer = self.unregister_timer(timer);
                    let _ = connection.outbox().try_send(Ok(answer));
                }
                app_to_host::Message::ReminderRequest(request) => {
                    // Answered from a task of its own: a reminder write waits for a Raft
                    // commit, and the stream's replies must keep flowing meanwhile.
                    let api = self.api.clone();
                    let outbox = connection.outbox().clone();
                    tokio::spawn(async move {
                        let response = serve_reminder_request(&api, request).await;
                        let message = host_to_app::Message::ReminderResponse(response);
                        let _ = outbox
                            .send(Ok(HostToApp {
                                message: Some(message),
                            }))
                            .await;
                    });
                }
                app_to_host::Message::StateRequest(request) => {
                    // Its own task, like reminders: a transaction waits for the store.
                    let api = self.api.clone();
                    let outbox = connection.outbox().clone();
                    tokio::spawn(async move {
                        let response = serve_state_request(&api, request).await;
                        let message = host_to_app::Message::StateResponse(response);
                        let _ = outbox
                            .send(Ok(HostToApp {
                                message: Some(message),
                            }))
                            .await;
                    });
                }
            }
        }
        connection.close();
        let withdrawn = self.types.withdraw(Provider::App(connection.id()));
        self.triggers.clear(Provider::App(connection.id()));
        tracing::info!(app_id, types = ?withdrawn, "app disconnected");
        self.activations.stop_where(StopReason::Withdrawn, |key| {
            withdrawn.contains(&key.actor_type)
        });
    }

    fn register_timer(&self, timer: RegisterTimer) -> HostToApp {
        let key = ActorKey::new(timer.actor_type, timer.actor_id);
        let registered = self.api.register_timer(
            &key,
            TimerRequest {
                name: timer.name,
                due_time: timer.due_time,
                period: timer.period,
                ttl: timer.ttl,
                callback: timer.callback,
                data: Bytes::from(timer.data),
            },
        );
        timer_answer(timer.correlation_id, registered.err())
    }

    fn unregister_timer(&self, timer: UnregisterTimer) -> HostToApp {
        let key = ActorKey::new(timer.actor_type, timer.actor_id);
        let stopped = self.api.unregister_timer(&key, &timer.name);
        timer_answer(timer.correlation_id, stopped.err())
    }
}

fn timer_answer(correlation_id: u64, error: Option<CallError>) -> HostToApp {
    HostToApp {
        message: Some(host_to_app::Message::TimerRegistered(TimerRegistered {
            correlation_id,
            error: error.map(|e| e.to_string()).unwrap_or_default(),
        })),
    }
}

/// An error as the app channel's answers carry it: the gRPC code's name and the message.
fn error_text(status: Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// One reminder operation an app asked for on its stream.
async fn serve_reminder_request(api: &ActorApi, request: ReminderRequest) -> ReminderResponse {
    use rookery_proto::v1::{reminder_request::Operation, reminder_response::Result as Answer};
    let reminders = api.reminders();
    let answer = match request.operation {
        None => Err(Status::invalid_argument(
            "reminder request without an operation",
        )),
        Some(Operation::Create(create)) => reminders.create(create).await.map(Answer::Reminder),
        Some(Operation::Get(reference)) => reminders.get(reference).await.map(Answer::Reminder),
        Some(Operation::List(list)) => reminders.list(list).await.map(Answer::List),
        Some(Operation::Delete(reference)) => reminders
            .delete(reference)
            .await
            .map(|d| Answer::Deleted(d.deleted)),
    };
    ReminderResponse {
        correlation_id: request.correlation_id,
        result: Some(answer.unwrap_or_else(|status| Answer::Error(error_text(status)))),
    }
}

/// One state operation an app asked for on its stream, for one of its active actors.
async fn serve_state_request(api: &ActorApi, request: StateRequest) -> StateResponse {
    use rookery_proto::v1::state_operation::Operation as Op;
    use rookery_proto::v1::state_request::Operation;
    use rookery_proto::v1::state_response::Result as Answer;
    let key = ActorKey::new(request.actor_type, request.actor_id);
    let answer = async {
        match request.operation {
            None => Err(CallError::InvalidArgument(
                "state request without an operation".into(),
            )),
            Some(Operation::Get(state_key)) => {
                let value = api.get_state(&key, &state_key).await?;
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
                api.transact_state(&key, &operations).await?;
                Ok(Answer::Committed(true))
            }
        }
    }
    .await;
    StateResponse {
        correlation_id: request.correlation_id,
        result: Some(answer.unwrap_or_else(|error| Answer::Error(error_text(error.into())))),
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
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(AppConnection::new(id, outbox));
        let app_id = registration.app_id.clone();
        let names = self.shared.register(&connection, registration)?;
        tracing::info!(app_id, types = ?names, "app connected");
        if self.shared.types.is_suspended(AppGroup::Grpc) {
            tracing::warn!(app_id, types = ?names, "the app fails its health checks: its types are served once it passes one");
        }
        let registered = HostToApp {
            message: Some(host_to_app::Message::Registered(Registered {
                host_id: self.shared.host_id.clone(),
            })),
        };
        let _ = connection.outbox().try_send(Ok(registered));
        tokio::spawn(self.shared.clone().read(connection, app_id, inbound));
        let stream =
            futures::StreamExt::take_until(ReceiverStream::new(outbox_rx), self.shutdown.fired());
        Ok(Response::new(Box::pin(stream)))
    }
}

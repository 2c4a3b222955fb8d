//! A Rookery app in Rust: serves the `Counter` actor type over the public gRPC app channel.
//!
//! ```sh
//! rookery up                                                  # placement + a host on :50001
//! cargo run --release --example counter -- --host 127.0.0.1:50001
//! rookery invoke Counter/c1 increment --data '{"by":2}'        # prints 2
//! rookery invoke Counter/c1 get                                # prints 2
//! ```
//!
//! How an app works: it opens one `AppChannel.Connect` stream to its host, sends
//! `RegisterTypes` first, receives `Registered`, then answers every request the host sends
//! (`ActivateActor`, `InvokeActor`, `FireReminder`, `DeactivateActor`) with one `AppReply`
//! carrying the same `request_id`.
//!
//! `Counter` methods: `increment` with data `{"by": n}` (default 1) returns the new value, and
//! `get` returns the value, both as a JSON number. Each time any reminder of a counter fires
//! (`FireReminder`), the counter adds 1:
//!
//! ```sh
//! rookery reminders create Counter/c1 tick --due PT1S --period R3/PT1S
//! rookery invoke Counter/c1 get                                # 3, once all three fired
//! ```
//!
//! The value lives in the actor's durable state (key `count`), read and written through the
//! host with `StateRequest`s on the same stream: it survives deactivation, the actor moving to
//! another host, and crashes of the host or of this app. An increment is answered only once
//! the host has acknowledged its write, i.e. once it is durable in the host's state store
//! (sled by default; PostgreSQL for a cluster, see `rookery host --resources-path`).
//!
//! The host runs one turn at a time per actor, so turns of one counter never overlap; turns of
//! different counters run concurrently here (each request in a task of its own), which is why
//! state answers are matched to their requests by `correlation_id`. If the stream to the host
//! breaks (host restart), the app reconnects and registers again.
//!
//! A host started with `--api-token` (or `DAPR_API_TOKEN`) accepts the stream only with its
//! token as `dapr-api-token` metadata: this app sends the `DAPR_API_TOKEN` of its environment
//! when it is set.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use rookery_proto::v1::app_channel_client::AppChannelClient;
use rookery_proto::v1::{
    app_reply, app_to_host, host_to_app, state_operation, state_request, state_response,
    ActorTypeOptions, AppReply, AppToHost, InvokeActor, RegisterTypes, StateOperation,
    StateRequest, StateTransaction, StateUpsert,
};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

#[derive(Parser, Debug)]
#[command(about = "Serves the Counter actor type to a Rookery host")]
struct Args {
    /// The host's gRPC address.
    #[arg(long, default_value = "127.0.0.1:50001")]
    host: String,
    /// Shown in `rookery status`.
    #[arg(long, default_value = "counter-example")]
    app_id: String,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    run(&args.host, &args.app_id).await;
}

/// The metadata key of the host's API token.
const API_TOKEN_HEADER: &str = "dapr-api-token";

/// Serves `Counter` until the process is stopped, reconnecting whenever the stream ends.
/// Sends the host's API token from `DAPR_API_TOKEN` when it is set.
pub async fn run(host: &str, app_id: &str) {
    let token = std::env::var("DAPR_API_TOKEN").ok();
    run_with_token(host, app_id, token.as_deref()).await;
}

/// [`run`], sending `token` (when given and not empty) as `dapr-api-token` metadata.
pub async fn run_with_token(host: &str, app_id: &str, token: Option<&str>) {
    let token = token.filter(|t| !t.is_empty());
    loop {
        match serve(host, app_id, token).await {
            Ok(()) => eprintln!("counter: the host closed the stream; reconnecting"),
            Err(e) => eprintln!("counter: {e:#}; reconnecting"),
        }
        // Don't spin while the host is down.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One connection's way to the host: the outbox, and the state requests awaiting answers.
#[derive(Clone)]
struct Connection {
    outbox: mpsc::Sender<AppToHost>,
    state_answers: Arc<Mutex<HashMap<u64, oneshot::Sender<state_response::Result>>>>,
    next_correlation_id: Arc<AtomicU64>,
}

impl Connection {
    async fn send(&self, message: app_to_host::Message) -> anyhow::Result<()> {
        self.outbox
            .send(AppToHost {
                message: Some(message),
            })
            .await?;
        Ok(())
    }

    async fn reply(&self, request_id: u64, result: Result<Vec<u8>, String>) -> anyhow::Result<()> {
        let result = match result {
            Ok(data) => app_reply::Result::Data(data),
            // Reaches the caller as an application error with this message.
            Err(error) => app_reply::Result::Error(error),
        };
        self.send(app_to_host::Message::Reply(AppReply {
            request_id,
            result: Some(result),
        }))
        .await
    }

    /// Sends a state request for `actor_id` and waits for the host's answer.
    async fn state(
        &self,
        actor_id: &str,
        operation: state_request::Operation,
    ) -> Result<state_response::Result, String> {
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let (answer_tx, answer) = oneshot::channel();
        self.state_answers
            .lock()
            .expect("state answers lock")
            .insert(correlation_id, answer_tx);
        self.send(app_to_host::Message::StateRequest(StateRequest {
            correlation_id,
            actor_type: "Counter".to_owned(),
            actor_id: actor_id.to_owned(),
            operation: Some(operation),
        }))
        .await
        .map_err(|e| e.to_string())?;
        match answer.await {
            Ok(state_response::Result::Error(error)) => Err(format!("state: {error}")),
            Ok(result) => Ok(result),
            Err(_) => Err("the stream to the host ended".to_owned()),
        }
    }

    /// The counter's stored value (0 if it was never written).
    async fn load(&self, actor_id: &str) -> Result<i64, String> {
        match self
            .state(
                actor_id,
                state_request::Operation::Get(COUNT_KEY.to_owned()),
            )
            .await?
        {
            state_response::Result::Value(value) if value.found => {
                String::from_utf8_lossy(&value.data)
                    .parse()
                    .map_err(|e| format!("stored {COUNT_KEY} is not a number: {e}"))
            }
            _ => Ok(0),
        }
    }

    /// Writes the counter's value; returns once the host says it is durable.
    async fn store(&self, actor_id: &str, value: i64) -> Result<(), String> {
        let transaction = StateTransaction {
            operations: vec![StateOperation {
                operation: Some(state_operation::Operation::Upsert(StateUpsert {
                    key: COUNT_KEY.to_owned(),
                    value: value.to_string().into_bytes(),
                    ttl_in_seconds: None,
                })),
            }],
        };
        self.state(actor_id, state_request::Operation::Transaction(transaction))
            .await
            .map(|_| ())
    }
}

/// The state key holding a counter's value.
const COUNT_KEY: &str = "count";

/// One connection: register `Counter`, then answer requests until the stream ends.
async fn serve(host: &str, app_id: &str, token: Option<&str>) -> anyhow::Result<()> {
    // Via `Channel` rather than `AppChannelClient::connect`: that name is the RPC here.
    let channel = Channel::from_shared(format!("http://{host}"))?
        .connect()
        .await?;
    let mut client = AppChannelClient::new(channel);
    let (outbox, outbox_rx) = mpsc::channel::<AppToHost>(256);
    let connection = Connection {
        outbox,
        state_answers: Arc::default(),
        next_correlation_id: Arc::new(AtomicU64::new(1)),
    };
    // The first message on the stream must be the registration.
    connection
        .send(app_to_host::Message::Register(RegisterTypes {
            app_id: app_id.to_owned(),
            receive_triggers: false,
            types: vec![ActorTypeOptions {
                actor_type: "Counter".to_owned(),
                // Every option left unset takes the host's defaults (see `rookery host --config`).
                ..Default::default()
            }],
        }))
        .await?;
    let mut connect = tonic::Request::new(ReceiverStream::new(outbox_rx));
    if let Some(token) = token {
        connect
            .metadata_mut()
            .insert(API_TOKEN_HEADER, token.parse()?);
    }
    let mut requests = client.connect(connect).await?.into_inner();

    while let Some(request) = requests.message().await? {
        let connection = connection.clone();
        match request.message {
            Some(host_to_app::Message::Registered(registered)) => {
                eprintln!("counter: serving Counter on host {}", registered.host_id);
            }
            Some(host_to_app::Message::StateResponse(answer)) => {
                let waiter = connection
                    .state_answers
                    .lock()
                    .expect("state answers lock")
                    .remove(&answer.correlation_id);
                if let (Some(waiter), Some(result)) = (waiter, answer.result) {
                    let _ = waiter.send(result);
                }
            }
            // Nothing to load eagerly: each turn reads the stored value.
            Some(host_to_app::Message::Activate(activate)) => {
                connection
                    .reply(activate.request_id, Ok(Vec::new()))
                    .await?;
            }
            Some(host_to_app::Message::Deactivate(deactivate)) => {
                connection
                    .reply(deactivate.request_id, Ok(Vec::new()))
                    .await?;
            }
            Some(host_to_app::Message::Invoke(invoke)) if fence_passed(invoke.not_after_ms) => {
                connection.send(lease_expired(invoke.request_id)).await?;
            }
            Some(host_to_app::Message::Invoke(invoke)) => {
                tokio::spawn(async move {
                    let result = handle(&connection, &invoke).await;
                    let _ = connection.reply(invoke.request_id, result).await;
                });
            }
            // Any reminder of a counter adds 1 to it: `get` then tells how often they fired.
            Some(host_to_app::Message::Reminder(reminder))
                if fence_passed(reminder.not_after_ms) =>
            {
                connection.send(lease_expired(reminder.request_id)).await?;
            }
            Some(host_to_app::Message::Reminder(reminder)) => {
                tokio::spawn(async move {
                    let result = add(&connection, &reminder.actor_id, 1)
                        .await
                        .map(|_| Vec::new());
                    let _ = connection.reply(reminder.request_id, result).await;
                });
            }
            // Counter registers no timers; answer any tick so the turn ends.
            Some(host_to_app::Message::Timer(timer)) => {
                connection.reply(timer.request_id, Ok(Vec::new())).await?;
            }
            // Sent only to apps registered with receive_triggers; answered if one comes.
            Some(host_to_app::Message::Job(job)) => {
                connection.reply(job.request_id, Ok(Vec::new())).await?;
            }
            Some(host_to_app::Message::Binding(binding)) => {
                connection.reply(binding.request_id, Ok(Vec::new())).await?;
            }
            Some(host_to_app::Message::TimerRegistered(_))
            | Some(host_to_app::Message::ReminderResponse(_))
            | None => {}
        }
    }
    Ok(())
}

/// Whether a turn arrived after its fence: the host's claim on the actor may have lapsed
/// (e.g. the host was paused) and another host may be running the actor, so the turn must
/// not run here. Every app should make this check before starting a turn.
fn fence_passed(not_after_ms: u64) -> bool {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    not_after_ms != 0 && now_ms > not_after_ms
}

fn lease_expired(request_id: u64) -> app_to_host::Message {
    app_to_host::Message::Reply(AppReply {
        request_id,
        result: Some(app_reply::Result::LeaseExpired(Default::default())),
    })
}

/// Adds `by` to a counter: read, add, write durably; the new value.
async fn add(connection: &Connection, actor_id: &str, by: i64) -> Result<i64, String> {
    let value = connection.load(actor_id).await? + by;
    connection.store(actor_id, value).await?;
    Ok(value)
}

/// One `Counter` method call: the JSON response body, or an error message for the caller.
async fn handle(connection: &Connection, invoke: &InvokeActor) -> Result<Vec<u8>, String> {
    let value = match invoke.method.as_str() {
        "increment" => {
            let by = if invoke.data.is_empty() {
                1
            } else {
                let body: serde_json::Value = serde_json::from_slice(&invoke.data)
                    .map_err(|e| format!("increment expects {{\"by\": n}}: {e}"))?;
                match body.get("by") {
                    None => 1,
                    Some(by) => by
                        .as_i64()
                        .ok_or_else(|| format!("\"by\" must be an integer, got {by}"))?,
                }
            };
            add(connection, &invoke.actor_id, by).await?
        }
        "get" => connection.load(&invoke.actor_id).await?,
        other => return Err(format!("Counter has no method {other:?}")),
    };
    Ok(value.to_string().into_bytes())
}

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
//! (`ActivateActor`, `InvokeActor`, `FireReminder`, `DeactivateActor`) with one `AppReply` carrying the same
//! `request_id`. The host runs one turn at a time per actor, so the app needs no locking per
//! actor; this example simply handles requests one after another.
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
//! Values live in this process's memory only (durable actor state comes later): a counter
//! starts at 0 when it is activated, and when it is deactivated (idle for the type's idle
//! timeout, or moved to another host) it starts over at 0. If the stream to the host breaks
//! (host restart), the app reconnects and registers again.

use std::collections::HashMap;
use std::time::Duration;

use clap::Parser;
use rookery_proto::v1::app_channel_client::AppChannelClient;
use rookery_proto::v1::{
    app_reply, app_to_host, host_to_app, ActorTypeOptions, AppReply, AppToHost, InvokeActor,
    RegisterTypes,
};
use tokio::sync::mpsc;
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

/// Serves `Counter` until the process is stopped, reconnecting whenever the stream ends.
pub async fn run(host: &str, app_id: &str) {
    // Counter values by actor id; kept across reconnects, reset by activations.
    let mut counters: HashMap<String, i64> = HashMap::new();
    loop {
        match serve(host, app_id, &mut counters).await {
            Ok(()) => eprintln!("counter: the host closed the stream; reconnecting"),
            Err(e) => eprintln!("counter: {e:#}; reconnecting"),
        }
        // Don't spin while the host is down.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One connection: register `Counter`, then answer requests until the stream ends.
async fn serve(
    host: &str,
    app_id: &str,
    counters: &mut HashMap<String, i64>,
) -> anyhow::Result<()> {
    // Via `Channel` rather than `AppChannelClient::connect`: that name is the RPC here.
    let channel = Channel::from_shared(format!("http://{host}"))?
        .connect()
        .await?;
    let mut client = AppChannelClient::new(channel);
    let (outbox, outbox_rx) = mpsc::channel::<AppToHost>(64);
    // The first message on the stream must be the registration.
    outbox
        .send(message(app_to_host::Message::Register(RegisterTypes {
            app_id: app_id.to_owned(),
            types: vec![ActorTypeOptions {
                actor_type: "Counter".to_owned(),
                // Every option left unset takes the host's defaults (see `rookery host --config`).
                ..Default::default()
            }],
        })))
        .await?;
    let mut requests = client
        .connect(ReceiverStream::new(outbox_rx))
        .await?
        .into_inner();

    while let Some(request) = requests.message().await? {
        let (request_id, result) = match request.message {
            Some(host_to_app::Message::Registered(registered)) => {
                eprintln!("counter: serving Counter on host {}", registered.host_id);
                continue;
            }
            Some(host_to_app::Message::Activate(activate)) => {
                counters.insert(activate.actor_id, 0);
                (activate.request_id, Ok(Vec::new()))
            }
            Some(host_to_app::Message::Deactivate(deactivate)) => {
                counters.remove(&deactivate.actor_id);
                (deactivate.request_id, Ok(Vec::new()))
            }
            Some(host_to_app::Message::Invoke(invoke)) if fence_passed(invoke.not_after_ms) => {
                send(&outbox, lease_expired(invoke.request_id)).await?;
                continue;
            }
            Some(host_to_app::Message::Invoke(invoke)) => {
                (invoke.request_id, handle(&invoke, counters))
            }
            // Any reminder of a counter adds 1 to it: `get` then tells how often they fired.
            Some(host_to_app::Message::Reminder(reminder))
                if fence_passed(reminder.not_after_ms) =>
            {
                send(&outbox, lease_expired(reminder.request_id)).await?;
                continue;
            }
            Some(host_to_app::Message::Reminder(reminder)) => {
                *counters.entry(reminder.actor_id).or_insert(0) += 1;
                (reminder.request_id, Ok(Vec::new()))
            }
            // Counter registers no timers; answer any tick so the turn ends.
            Some(host_to_app::Message::Timer(timer)) => (timer.request_id, Ok(Vec::new())),
            Some(host_to_app::Message::TimerRegistered(_))
            | Some(host_to_app::Message::ReminderResponse(_))
            | None => continue,
        };
        let result = match result {
            Ok(data) => app_reply::Result::Data(data),
            // Reaches the caller as an application error with this message.
            Err(error) => app_reply::Result::Error(error),
        };
        outbox
            .send(message(app_to_host::Message::Reply(AppReply {
                request_id,
                result: Some(result),
            })))
            .await?;
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

fn lease_expired(request_id: u64) -> AppToHost {
    message(app_to_host::Message::Reply(AppReply {
        request_id,
        result: Some(app_reply::Result::LeaseExpired(Default::default())),
    }))
}

async fn send(outbox: &mpsc::Sender<AppToHost>, message: AppToHost) -> anyhow::Result<()> {
    outbox.send(message).await?;
    Ok(())
}

/// One `Counter` method call: the JSON response body, or an error message for the caller.
fn handle(invoke: &InvokeActor, counters: &mut HashMap<String, i64>) -> Result<Vec<u8>, String> {
    let value = counters.entry(invoke.actor_id.clone()).or_insert(0);
    match invoke.method.as_str() {
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
            *value += by;
        }
        "get" => {}
        other => return Err(format!("Counter has no method {other:?}")),
    }
    Ok(value.to_string().into_bytes())
}

fn message(message: app_to_host::Message) -> AppToHost {
    AppToHost {
        message: Some(message),
    }
}

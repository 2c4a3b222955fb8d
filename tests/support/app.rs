//! [`TestApp`]: an application serving actor types to a host over the public `AppChannel`
//! gRPC stream, the way an app process in any language does, but recording what it hears so
//! tests can assert on the host's behaviour from the app's side.
//!
//! Every type it serves has Counter semantics plus test hooks (methods):
//! - `increment` `{"by": n}` (default 1) → the new value; `get` → the value (JSON numbers).
//!   A counter starts at 0 on activation and forgets its value on deactivation.
//! - `echo` → the request body; `traceparent` → the call's `traceparent` metadata.
//! - `call` `{"type", "id", "method", "data"}` → calls another actor through the host's
//!   `Actors.Invoke`, passing this turn's call chain in `rookery-call-chain`, and answers with
//!   that call's body (or an error naming that call's status).
//! - `hang` → never answered.
//! - `fail` `{"message": m}` → answered with the application error `m`.
//!
//! Recorded per actor: activations and deactivations heard, calls, and how many calls were in
//! progress at once (more than one means the host broke turn-based concurrency, unless the
//! calls are a re-entrant chain). Protocol violations (an invoke before its activation, a
//! deactivation during a turn, …) are collected, as are the errors of nested calls.
//!
//! Calls are handled in tasks of their own, so the app itself never serializes them: if the
//! host sent two calls to one actor at once, both would run and overlap. The app reconnects
//! (and registers again) when its stream breaks, e.g. when the host restarts.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rookery_proto::v1::actors_client::ActorsClient;
use rookery_proto::v1::app_channel_client::AppChannelClient;
use rookery_proto::v1::{
    app_reply, app_to_host, host_to_app, ActorTypeOptions, AppReply, AppToHost, InvokeActor,
    InvokeRequest, RegisterTimer, RegisterTypes, StateResponse,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use super::ledger::{Ledger, TurnRecord};
use super::wait::{wait_until, DEADLINE};

/// Metadata key carrying the call chain of a nested call (see `InvokeActor.call_chain_id`).
pub const CALL_CHAIN_KEY: &str = "rookery-call-chain";

/// Reconnect back-off bounds: quick after a host restart, gentle while it stays down.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Bound on a nested call the app makes; longer than any call timeout the tests configure, so
/// it only ends a call the host never answers.
const NESTED_CALL_DEADLINE: Duration = Duration::from_secs(45);

/// Options of a type with nothing set: every option takes the host's `--config` default.
pub fn actor_type(name: &str) -> ActorTypeOptions {
    ActorTypeOptions {
        actor_type: name.to_owned(),
        ..Default::default()
    }
}

/// `(actor type, actor id)`.
pub type ActorKey = (String, String);

/// What the app heard about one actor.
#[derive(Clone, Debug, Default)]
pub struct ActorRecord {
    pub value: i64,
    /// Between an ActivateActor and its DeactivateActor.
    pub active: bool,
    pub activations: u32,
    pub deactivations: u32,
    /// InvokeActor requests received (`hang` included).
    pub invocations: u64,
    /// Calls in progress now (`hang` excluded: it never ends).
    pub in_flight: u32,
    /// The most calls ever in progress at once.
    pub max_in_flight: u32,
    /// When the last reply was sent / the last deactivation heard.
    pub last_reply_at: Option<Instant>,
    pub last_deactivated_at: Option<Instant>,
    /// Reminder ticks heard: (name, due instant, wall-clock instant heard), Unix-epoch ms.
    /// Each also adds 1 to `value`, as the Counter example does.
    pub reminders: Vec<(String, u64, u64)>,
    /// Timer ticks heard: (name, callback, when).
    pub timers: Vec<(String, String, Instant)>,
}

impl ActorRecord {
    /// Whether two calls on this actor were ever in progress at the same time.
    pub fn overlapped(&self) -> bool {
        self.max_in_flight > 1
    }
}

/// Everything the app recorded, across reconnects.
#[derive(Clone, Debug, Default)]
pub struct AppRecord {
    /// From the last `Registered`.
    pub host_id: Option<String>,
    /// `Registered` messages heard (one per successful connection).
    pub registrations: u32,
    /// Why each connection ended or failed, in order.
    pub disconnects: Vec<String>,
    pub actors: BTreeMap<ActorKey, ActorRecord>,
    /// Breaches of the AppChannel contract seen from this side.
    pub violations: Vec<String>,
    /// Status code and message of every nested call (`call`) that failed.
    pub nested_errors: Vec<(Code, String)>,
    /// Errors the host answered timer registrations with.
    pub timer_errors: Vec<String>,
    /// Turns refused because they arrived after their `not_after_ms` fence.
    pub lease_refusals: u64,
    /// Answers to reminder requests made on the stream (`remind_me`), as debug text.
    pub reminder_answers: Vec<String>,
    /// `call_chain_id` of every InvokeActor, in order (for chain assertions).
    pub call_chains: Vec<(ActorKey, String)>,
    /// Errors the host answered state requests with (`state_*` methods), in order.
    pub state_errors: Vec<String>,
}

impl AppRecord {
    pub fn actor(&self, actor_type: &str, actor_id: &str) -> ActorRecord {
        self.actors
            .get(&(actor_type.to_owned(), actor_id.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// Sum of activations heard over every actor of `actor_type`.
    pub fn activations_of(&self, actor_type: &str) -> u64 {
        self.actors
            .iter()
            .filter(|((t, _), _)| t == actor_type)
            .map(|(_, a)| u64::from(a.activations))
            .sum()
    }
}

/// Settings of a [`TestApp`].
pub struct TestAppBuilder {
    host_addr: String,
    app_id: String,
    types: Vec<ActorTypeOptions>,
    turn_work: Duration,
    ledger: Option<(Arc<Ledger>, String)>,
    api_token: Option<String>,
}

impl TestAppBuilder {
    /// Sends the host's API token (`dapr-api-token` metadata) on its stream and nested calls.
    pub fn api_token(mut self, token: impl Into<String>) -> Self {
        self.api_token = Some(token.into());
        self
    }

    /// Writes every turn to `ledger` under the name `name` (see [`Ledger`]).
    pub fn ledger(mut self, ledger: Arc<Ledger>, name: impl Into<String>) -> Self {
        self.ledger = Some((ledger, name.into()));
        self
    }

    pub fn app_id(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = app_id.into();
        self
    }

    /// Serves this type (see [`actor_type`]).
    pub fn serve(mut self, options: ActorTypeOptions) -> Self {
        self.types.push(options);
        self
    }

    /// How long `increment` holds its turn between reading and writing the value. Simulated
    /// work: it widens the window in which overlapping calls would be seen (and lose updates),
    /// it synchronizes nothing.
    pub fn turn_work(mut self, work: Duration) -> Self {
        self.turn_work = work;
        self
    }

    /// Starts connecting in the background; follow with [`TestApp::wait_registered`].
    pub fn start(self) -> TestApp {
        assert!(!self.types.is_empty(), "a test app must serve a type");
        let nested = Endpoint::from_shared(format!("http://{}", self.host_addr))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        let shared = Arc::new(Shared {
            host_addr: self.host_addr,
            app_id: self.app_id,
            types: self.types,
            turn_work: self.turn_work,
            ledger: self.ledger,
            api_token: self.api_token,
            nested: ActorsClient::new(nested),
            record: Mutex::new(AppRecord::default()),
            state_waiters: Mutex::new(Default::default()),
            next_state_request: std::sync::atomic::AtomicU64::new(1),
        });
        let task = tokio::spawn(run(shared.clone()));
        TestApp { shared, task }
    }
}

/// A running test app; its connection ends when it is dropped.
pub struct TestApp {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

struct Shared {
    host_addr: String,
    app_id: String,
    types: Vec<ActorTypeOptions>,
    turn_work: Duration,
    ledger: Option<(Arc<Ledger>, String)>,
    api_token: Option<String>,
    /// The host's client API, for nested calls.
    nested: ActorsClient<Channel>,
    record: Mutex<AppRecord>,
    /// State requests waiting for their StateResponse, by correlation id.
    state_waiters:
        Mutex<std::collections::HashMap<u64, tokio::sync::oneshot::Sender<StateResponse>>>,
    next_state_request: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// Adds the API token to `request`, when the app has one.
    fn authorize<T>(&self, request: &mut tonic::Request<T>) {
        if let Some(token) = &self.api_token {
            request
                .metadata_mut()
                .insert("dapr-api-token", token.parse().expect("an ASCII API token"));
        }
    }

    fn record(&self) -> MutexGuard<'_, AppRecord> {
        // A panicking test thread must not make every later access panic too.
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl TestApp {
    /// An app of the host whose gRPC API is at `host_addr`.
    pub fn builder(host_addr: impl Into<String>) -> TestAppBuilder {
        TestAppBuilder {
            host_addr: host_addr.into(),
            app_id: "test-app".to_owned(),
            types: Vec::new(),
            turn_work: Duration::ZERO,
            ledger: None,
            api_token: None,
        }
    }

    /// A snapshot of what it recorded.
    pub fn record(&self) -> AppRecord {
        self.shared.record().clone()
    }

    pub fn actor(&self, actor_type: &str, actor_id: &str) -> ActorRecord {
        self.shared.record().actor(actor_type, actor_id)
    }

    /// Panics if the app saw the host break the AppChannel contract.
    pub fn assert_no_violations(&self) {
        let record = self.record();
        assert!(
            record.violations.is_empty(),
            "app {} saw protocol violations: {:#?}",
            self.shared.app_id,
            record.violations
        );
    }

    /// Waits for the host's `Registered` (the `n`-th one: registrations count reconnects);
    /// returns the host id it named.
    pub async fn wait_registered_n(&self, n: u32) -> String {
        self.wait_for(format!("registration #{n}"), |record| {
            match (&record.host_id, record.registrations >= n) {
                (Some(host_id), true) => Ok(host_id.clone()),
                _ => Err(format!(
                    "{} registrations; disconnects: {:?}",
                    record.registrations, record.disconnects
                )),
            }
        })
        .await
    }

    /// Waits for the first `Registered`; returns the host id it named.
    pub async fn wait_registered(&self) -> String {
        self.wait_registered_n(1).await
    }

    /// Polls the record until `probe` accepts it ([`DEADLINE`]).
    pub async fn wait_for<T>(
        &self,
        what: impl Display,
        probe: impl Fn(&AppRecord) -> Result<T, String>,
    ) -> T {
        let probe = &probe;
        wait_until(
            format!("app {}: {what}", self.shared.app_id),
            DEADLINE,
            || async move { probe(&self.shared.record()) },
        )
        .await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Ends the stream (the host withdraws the types) and every call task with it.
        self.task.abort();
    }
}

/// Connects, serves until the stream ends, and reconnects, forever (until aborted).
async fn run(shared: Arc<Shared>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let (why, served) = serve(&shared).await;
        {
            let mut record = shared.record();
            record.disconnects.push(why);
            // The host ends every activation of a connection that ends; so does the app.
            for actor in record.actors.values_mut() {
                actor.active = false;
                actor.value = 0;
            }
        }
        backoff = if served {
            MIN_BACKOFF
        } else {
            (backoff * 2).min(MAX_BACKOFF)
        };
        // Back-off between connection attempts to a host that is down: nothing to wait for.
        tokio::time::sleep(backoff).await;
    }
}

/// One AppChannel connection. Returns why it ended and whether it got registered.
async fn serve(shared: &Arc<Shared>) -> (String, bool) {
    let endpoint = Endpoint::from_shared(format!("http://{}", shared.host_addr))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(2));
    let channel = match endpoint.connect().await {
        Ok(channel) => channel,
        Err(e) => return (format!("connect: {e:?}"), false),
    };
    let mut client = AppChannelClient::new(channel).max_decoding_message_size(usize::MAX);
    let (out, out_rx) = mpsc::unbounded_channel::<AppToHost>();
    let registration = RegisterTypes {
        app_id: shared.app_id.clone(),
        receive_triggers: false,
        types: shared.types.clone(),
    };
    out.send(AppToHost {
        message: Some(app_to_host::Message::Register(registration)),
    })
    .expect("receiver alive");
    let mut connect = tonic::Request::new(UnboundedReceiverStream::new(out_rx));
    shared.authorize(&mut connect);
    let mut inbound = match client.connect(connect).await {
        Ok(response) => response.into_inner(),
        Err(status) => return (format!("Connect refused: {status}"), false),
    };
    let mut registered = false;
    // Call tasks of this connection: dropped (aborted) with it.
    let mut calls = JoinSet::new();
    loop {
        let message = tokio::select! {
            message = inbound.message() => message,
            Some(_) = calls.join_next(), if !calls.is_empty() => continue,
        };
        let message = match message {
            Ok(Some(message)) => message,
            Ok(None) => return ("the host ended the stream".to_owned(), registered),
            Err(status) => return (format!("stream error: {status}"), registered),
        };
        let Some(message) = message.message else {
            shared.record().violations.push("empty HostToApp".into());
            continue;
        };
        if !registered && !matches!(message, host_to_app::Message::Registered(_)) {
            shared
                .record()
                .violations
                .push(format!("{message:?} before Registered"));
        }
        match message {
            host_to_app::Message::Registered(registered_msg) => {
                registered = true;
                let mut record = shared.record();
                record.host_id = Some(registered_msg.host_id);
                record.registrations += 1;
            }
            host_to_app::Message::Activate(activate) => {
                {
                    let mut record = shared.record();
                    let key = (activate.actor_type.clone(), activate.actor_id.clone());
                    let actor = record.actors.entry(key.clone()).or_default();
                    let twice = actor.active;
                    actor.active = true;
                    actor.activations += 1;
                    actor.value = 0;
                    if twice {
                        record
                            .violations
                            .push(format!("{key:?} activated while already active"));
                    }
                }
                reply(&out, activate.request_id, Ok(Vec::new()));
            }
            host_to_app::Message::Deactivate(deactivate) => {
                {
                    let mut record = shared.record();
                    let key = (deactivate.actor_type.clone(), deactivate.actor_id.clone());
                    let actor = record.actors.entry(key.clone()).or_default();
                    let (was_active, busy) = (actor.active, actor.in_flight);
                    actor.active = false;
                    actor.deactivations += 1;
                    actor.value = 0;
                    actor.last_deactivated_at = Some(Instant::now());
                    if !was_active {
                        record
                            .violations
                            .push(format!("{key:?} deactivated while not active"));
                    }
                    if busy > 0 {
                        record
                            .violations
                            .push(format!("{key:?} deactivated during {busy} call(s)"));
                    }
                }
                reply(&out, deactivate.request_id, Ok(Vec::new()));
            }
            host_to_app::Message::Timer(timer) => {
                if past(timer.not_after_ms) {
                    shared.record().lease_refusals += 1;
                    lease_expired(&out, timer.request_id);
                    continue;
                }
                {
                    let mut record = shared.record();
                    let key = (timer.actor_type.clone(), timer.actor_id.clone());
                    let actor = record.actors.entry(key.clone()).or_default();
                    let inactive = !actor.active;
                    actor
                        .timers
                        .push((timer.name.clone(), timer.callback.clone(), Instant::now()));
                    if inactive {
                        record.violations.push(format!(
                            "{key:?} timer {} fired while not active",
                            timer.name
                        ));
                    }
                }
                reply(&out, timer.request_id, Ok(Vec::new()));
            }
            host_to_app::Message::StateResponse(answer) => {
                let waiter = shared
                    .state_waiters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&answer.correlation_id);
                match waiter {
                    Some(waiter) => {
                        let _ = waiter.send(answer);
                    }
                    None => shared
                        .record()
                        .violations
                        .push(format!("unrequested StateResponse {answer:?}")),
                }
            }
            host_to_app::Message::ReminderResponse(answer) => {
                shared
                    .record()
                    .reminder_answers
                    .push(format!("{:?}", answer.result));
            }
            host_to_app::Message::TimerRegistered(answer) => {
                if !answer.error.is_empty() {
                    shared.record().timer_errors.push(answer.error);
                }
            }
            // This app does not register with receive_triggers: none is sent to it.
            host_to_app::Message::Job(job) => {
                shared
                    .record()
                    .violations
                    .push(format!("job {} sent to an app that did not ask", job.name));
                reply(&out, job.request_id, Ok(Vec::new()));
            }
            host_to_app::Message::Binding(binding) => {
                shared.record().violations.push(format!(
                    "binding {} sent to an app that did not ask",
                    binding.name
                ));
                reply(&out, binding.request_id, Ok(Vec::new()));
            }
            host_to_app::Message::Reminder(reminder) => {
                if past(reminder.not_after_ms) {
                    shared.record().lease_refusals += 1;
                    lease_expired(&out, reminder.request_id);
                    continue;
                }
                let heard_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or_default();
                {
                    let mut record = shared.record();
                    let key = (reminder.actor_type.clone(), reminder.actor_id.clone());
                    let actor = record.actors.entry(key.clone()).or_default();
                    let inactive = !actor.active;
                    actor.value += 1;
                    actor
                        .reminders
                        .push((reminder.name.clone(), reminder.due_at_ms, heard_ms));
                    if inactive {
                        record.violations.push(format!(
                            "{key:?} reminded ({}) before activation",
                            reminder.name
                        ));
                    }
                }
                reply(&out, reminder.request_id, Ok(Vec::new()));
            }
            host_to_app::Message::Invoke(invoke) => {
                let hang = invoke.method == "hang";
                {
                    let mut record = shared.record();
                    let key = (invoke.actor_type.clone(), invoke.actor_id.clone());
                    record
                        .call_chains
                        .push((key.clone(), invoke.call_chain_id.clone()));
                    let actor = record.actors.entry(key.clone()).or_default();
                    let inactive = !actor.active;
                    actor.invocations += 1;
                    if !hang {
                        actor.in_flight += 1;
                        actor.max_in_flight = actor.max_in_flight.max(actor.in_flight);
                    }
                    if inactive {
                        record.violations.push(format!(
                            "{key:?} invoked ({}) before activation",
                            invoke.method
                        ));
                    }
                }
                if !hang {
                    calls.spawn(handle_invoke(shared.clone(), out.clone(), invoke));
                }
            }
        }
    }
}

fn reply(out: &mpsc::UnboundedSender<AppToHost>, request_id: u64, result: Result<Vec<u8>, String>) {
    let result = match result {
        Ok(data) => app_reply::Result::Data(data),
        Err(message) => app_reply::Result::Error(message),
    };
    // A closed stream means the connection is gone; the host fails the call itself.
    let _ = out.send(AppToHost {
        message: Some(app_to_host::Message::Reply(AppReply {
            request_id,
            result: Some(result),
        })),
    });
}

/// Runs one call and answers it. The call's "turn" ends just before the reply is sent: the host
/// cannot start the next call before it has the reply, so a correct host is never seen
/// overlapping.
async fn handle_invoke(
    shared: Arc<Shared>,
    out: mpsc::UnboundedSender<AppToHost>,
    invoke: InvokeActor,
) {
    let key: ActorKey = (invoke.actor_type.clone(), invoke.actor_id.clone());
    // The fence: a turn that reaches the app after the host's lease is refused, not run.
    if past(invoke.not_after_ms) {
        {
            let mut record = shared.record();
            record.lease_refusals += 1;
            record.actors.entry(key).or_default().in_flight -= 1;
        }
        lease_expired(&out, invoke.request_id);
        return;
    }
    let started = Instant::now();
    let activation = shared.record().actor(&key.0, &key.1).activations;
    let result = match invoke.method.as_str() {
        "increment" => increment(&shared, &key, &invoke.data).await,
        "get" => Ok(json!(shared.record().actor(&key.0, &key.1).value)
            .to_string()
            .into_bytes()),
        "echo" => Ok(invoke.data.clone()),
        // The W3C trace context the host sent with the call (empty: none).
        "traceparent" => Ok(invoke
            .metadata
            .get("traceparent")
            .cloned()
            .unwrap_or_default()
            .into_bytes()),
        "fail" => Err(json_field(&invoke.data, "message")
            .and_then(|m| m.as_str().map(str::to_owned))
            .unwrap_or_else(|| "requested failure".to_owned())),
        "call" => nested_call(&shared, &invoke).await,
        "start_timer" => start_timer(&out, &invoke),
        "remind_me" => remind_me(&out, &invoke),
        "state_set" | "state_get" | "state_delete" | "state_big" | "state_increment"
        | "sleep_then_set" => state_method(&shared, &out, &invoke).await,
        other => Err(format!("unknown method {other:?}")),
    };
    {
        let mut record = shared.record();
        let actor = record.actors.entry(key.clone()).or_default();
        actor.in_flight -= 1;
        actor.last_reply_at = Some(Instant::now());
    }
    if let Some((ledger, name)) = &shared.ledger {
        let turn = TurnRecord {
            app: name.clone(),
            activation,
            start: started,
            end: Instant::now(),
        };
        ledger.record(key, turn);
    }
    reply(&out, invoke.request_id, result);
}

/// Whether a turn's `not_after_ms` fence (0: none) has passed.
fn past(not_after_ms: u64) -> bool {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    not_after_ms != 0 && now_ms > not_after_ms
}

fn lease_expired(out: &mpsc::UnboundedSender<AppToHost>, request_id: u64) {
    let _ = out.send(AppToHost {
        message: Some(app_to_host::Message::Reply(AppReply {
            request_id,
            result: Some(app_reply::Result::LeaseExpired(Default::default())),
        })),
    });
}

fn json_field(data: &[u8], field: &str) -> Option<Value> {
    serde_json::from_slice::<Value>(data)
        .ok()?
        .get(field)
        .cloned()
}

/// Read, work, write: without turn-based concurrency, overlapping increments lose updates.
async fn increment(shared: &Shared, key: &ActorKey, data: &[u8]) -> Result<Vec<u8>, String> {
    let by = match json_field(data, "by") {
        None => 1,
        Some(by) => by
            .as_i64()
            .ok_or_else(|| format!("\"by\" must be an integer, got {by}"))?,
    };
    let read = shared.record().actor(&key.0, &key.1).value;
    if shared.turn_work.is_zero() {
        tokio::task::yield_now().await;
    } else {
        tokio::time::sleep(shared.turn_work).await;
    }
    let mut record = shared.record();
    let actor = record.actors.entry(key.clone()).or_default();
    actor.value = read + by;
    Ok(json!(actor.value).to_string().into_bytes())
}

/// `start_timer` `{"name", "due", "period", "ttl", "callback"}`: registers a timer of this
/// activation through the app channel (the host's answer is recorded, not awaited).
fn start_timer(
    out: &mpsc::UnboundedSender<AppToHost>,
    invoke: &InvokeActor,
) -> Result<Vec<u8>, String> {
    let field = |name: &str| {
        json_field(&invoke.data, name)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let register = RegisterTimer {
        correlation_id: invoke.request_id,
        actor_type: invoke.actor_type.clone(),
        actor_id: invoke.actor_id.clone(),
        name: field("name"),
        due_time: field("due"),
        period: field("period"),
        ttl: field("ttl"),
        callback: field("callback"),
        data: Vec::new(),
    };
    out.send(AppToHost {
        message: Some(app_to_host::Message::RegisterTimer(register)),
    })
    .map_err(|_| "the stream to the host is closed".to_owned())?;
    Ok(b"null".to_vec())
}

/// `remind_me` `{"name", "due", "period"}`: creates a durable reminder of this actor through
/// the app channel (the host's answer is recorded in `reminder_answers`).
fn remind_me(
    out: &mpsc::UnboundedSender<AppToHost>,
    invoke: &InvokeActor,
) -> Result<Vec<u8>, String> {
    use rookery_proto::v1::{
        reminder_request::Operation, CreateActorReminderRequest, ReminderRef, ReminderRequest,
    };
    let field = |name: &str| {
        json_field(&invoke.data, name)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let request = ReminderRequest {
        correlation_id: invoke.request_id,
        operation: Some(Operation::Create(CreateActorReminderRequest {
            reminder: Some(ReminderRef {
                actor_type: invoke.actor_type.clone(),
                actor_id: invoke.actor_id.clone(),
                name: field("name"),
            }),
            due_time: field("due"),
            period: field("period"),
            ttl: String::new(),
            data: Vec::new(),
            fail_if_exists: false,
        })),
    };
    out.send(AppToHost {
        message: Some(app_to_host::Message::ReminderRequest(request)),
    })
    .map_err(|_| "the stream to the host is closed".to_owned())?;
    Ok(b"null".to_vec())
}

/// `call`: invokes the actor named in the request through the host, in this turn's chain.
async fn nested_call(shared: &Shared, invoke: &InvokeActor) -> Result<Vec<u8>, String> {
    let request: Value = serde_json::from_slice(&invoke.data)
        .map_err(|e| format!("call: the request is not JSON: {e}"))?;
    let field = |name: &str| {
        request
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("call: missing string field {name:?}"))
    };
    let (actor_type, actor_id, method) = (field("type")?, field("id")?, field("method")?);
    let data = match request.get("data") {
        None | Some(Value::Null) => Vec::new(),
        Some(data) => data.to_string().into_bytes(),
    };
    let mut nested = tonic::Request::new(InvokeRequest {
        actor_type: actor_type.clone(),
        actor_id: actor_id.clone(),
        method: method.clone(),
        data,
        metadata: [(CALL_CHAIN_KEY.to_owned(), invoke.call_chain_id.clone())].into(),
    });
    nested.set_timeout(NESTED_CALL_DEADLINE);
    shared.authorize(&mut nested);
    match shared.nested.clone().invoke(nested).await {
        Ok(response) => Ok(response.into_inner().data),
        Err(status) => {
            shared
                .record()
                .nested_errors
                .push((status.code(), status.message().to_owned()));
            Err(format!(
                "nested call {actor_type}/{actor_id}.{method} failed: {:?}: {}",
                status.code(),
                status.message()
            ))
        }
    }
}

/// Sends one state request on the stream and waits for its answer; the host's error, if any,
/// is recorded in `state_errors` and returned.
async fn state_request(
    shared: &Shared,
    out: &mpsc::UnboundedSender<AppToHost>,
    invoke: &InvokeActor,
    operation: rookery_proto::v1::state_request::Operation,
) -> Result<rookery_proto::v1::state_response::Result, String> {
    use rookery_proto::v1::{state_response, StateRequest};
    // `"actor": id` in the request targets another actor of the type (not active here).
    let actor_id = json_field(&invoke.data, "actor")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| invoke.actor_id.clone());
    let correlation_id = shared
        .next_state_request
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (waiter, answer) = tokio::sync::oneshot::channel();
    shared
        .state_waiters
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(correlation_id, waiter);
    out.send(AppToHost {
        message: Some(app_to_host::Message::StateRequest(StateRequest {
            correlation_id,
            actor_type: invoke.actor_type.clone(),
            actor_id,
            operation: Some(operation),
        })),
    })
    .map_err(|_| "the stream to the host is closed".to_owned())?;
    match answer.await {
        Ok(StateResponse {
            result: Some(state_response::Result::Error(error)),
            ..
        }) => {
            shared.record().state_errors.push(error.clone());
            Err(error)
        }
        Ok(StateResponse {
            result: Some(result),
            ..
        }) => Ok(result),
        Ok(StateResponse { result: None, .. }) => Err("empty StateResponse".into()),
        Err(_) => Err("the stream ended before the state answer".into()),
    }
}

/// The state methods: `state_set` `{"key", "value", "ttl"?}`, `state_get` `{"key"}` (the
/// value as a JSON string, or null), `state_delete` `{"key"}`, `state_big` `{"key", "bytes"}`
/// (one value of that many bytes), `state_increment` `{"by"?}` (a durable counter in key
/// `count`: read, add, write, answer the new value), and `sleep_then_set` `{"key", "value",
/// "sleep_ms"}` (holds the turn, then writes: a write arriving late from a stale activation).
/// Any of them takes `"actor": id` to address another actor's state instead.
async fn state_method(
    shared: &Shared,
    out: &mpsc::UnboundedSender<AppToHost>,
    invoke: &InvokeActor,
) -> Result<Vec<u8>, String> {
    use rookery_proto::v1::state_operation::Operation as Op;
    use rookery_proto::v1::state_request::Operation;
    use rookery_proto::v1::state_response::Result as Answer;
    use rookery_proto::v1::{StateOperation, StateTransaction, StateUpsert};
    let text = |name: &str| {
        json_field(&invoke.data, name)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let upsert = |key: String, value: Vec<u8>, ttl: Option<u64>| {
        Operation::Transaction(StateTransaction {
            operations: vec![StateOperation {
                operation: Some(Op::Upsert(StateUpsert {
                    key,
                    value,
                    ttl_in_seconds: ttl,
                })),
            }],
        })
    };
    let committed = |answer: Answer| match answer {
        Answer::Committed(true) => Ok(b"true".to_vec()),
        other => Err(format!("unexpected state answer {other:?}")),
    };
    match invoke.method.as_str() {
        "state_set" => {
            let ttl = json_field(&invoke.data, "ttl").and_then(|v| v.as_u64());
            let op = upsert(text("key"), text("value").into_bytes(), ttl);
            committed(state_request(shared, out, invoke, op).await?)
        }
        "sleep_then_set" => {
            let sleep_ms = json_field(&invoke.data, "sleep_ms")
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
            let op = upsert(text("key"), text("value").into_bytes(), None);
            committed(state_request(shared, out, invoke, op).await?)
        }
        "state_big" => {
            let bytes = json_field(&invoke.data, "bytes")
                .and_then(|v| v.as_u64())
                .unwrap_or(0) as usize;
            let op = upsert(text("key"), vec![b'x'; bytes], None);
            committed(state_request(shared, out, invoke, op).await?)
        }
        "state_delete" => {
            let op = Operation::Transaction(StateTransaction {
                operations: vec![StateOperation {
                    operation: Some(Op::Delete(text("key"))),
                }],
            });
            committed(state_request(shared, out, invoke, op).await?)
        }
        "state_get" => match state_request(shared, out, invoke, Operation::Get(text("key"))).await?
        {
            Answer::Value(value) if value.found => Ok(json!(String::from_utf8_lossy(&value.data))
                .to_string()
                .into_bytes()),
            Answer::Value(_) => Ok(b"null".to_vec()),
            other => Err(format!("unexpected state answer {other:?}")),
        },
        "state_increment" => {
            let by = json_field(&invoke.data, "by")
                .and_then(|v| v.as_i64())
                .unwrap_or(1);
            let current =
                match state_request(shared, out, invoke, Operation::Get("count".into())).await? {
                    Answer::Value(value) if value.found => String::from_utf8_lossy(&value.data)
                        .parse::<i64>()
                        .map_err(|e| format!("stored count is not a number: {e}"))?,
                    Answer::Value(_) => 0,
                    other => return Err(format!("unexpected state answer {other:?}")),
                };
            let next = current + by;
            let op = upsert("count".into(), next.to_string().into_bytes(), None);
            committed(state_request(shared, out, invoke, op).await?)?;
            Ok(json!(next).to_string().into_bytes())
        }
        other => Err(format!("unknown state method {other:?}")),
    }
}

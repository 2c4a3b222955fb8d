//! Host call throughput and latency, against the bare gRPC paths they are built on, plus the
//! cost of activations: issue "Hosts", benchmark section.
//!
//! One run measures, with the same tonic client (one HTTP/2 connection, [`CONCURRENCY`] calls
//! in flight, [`PAYLOAD_BYTES`]-byte payloads, [`WARMUP`] then [`MEASURE`] per scenario and
//! round, [`ROUNDS`] interleaved rounds of which the median is reported; the HTTP scenarios
//! the same but for the client):
//! - `echo`: a bare tonic server answering `Actors.Invoke` with the request data, the
//!   physical limit of one gRPC hop on this machine;
//! - `two-hop`: client → a tonic proxy that forwards each call with a tonic client → `echo`;
//! - `(a) embedded`: client → host `Actors.Invoke` → an embedded Rust actor;
//! - `(b) app`: client → host → an app over the `AppChannel` stream → its reply;
//! - `(c) non-owner`: client → a host that does not own the actor → `HostInternal.Forward` to
//!   the owner → an embedded actor there;
//! - `(g) non-owner, mTLS`: (c) on a second cluster whose nodes all speak mutual TLS to each
//!   other (`rookery_core::tls`, certificates from `rookery certs`): host C → host D over TLS;
//! - `(d) dapr-http`: an HTTP/1.1 client (hyper-util's pooled client, keep-alive, about one
//!   connection per slot) → the host's Dapr HTTP API `POST /v1.0/actors/{type}/{id}/method/echo`
//!   → the HTTP app channel `PUT /actors/{type}/{id}/method/echo` → an HTTP app in the bench
//!   (axum) → back;
//! - `(e) dapr-http → grpc app`: the same HTTP client → the Dapr HTTP API → the app of (b)
//!   over the `AppChannel` stream: the HTTP front end without the HTTP app channel;
//! - `(f) http app alone`: the same HTTP client straight to the bench's HTTP app, the physical
//!   limit of one HTTP/1.1 hop, as `echo` is for gRPC;
//! - activations per second: new actor ids of an embedded type, one call each;
//! - resident memory per idle activation of a zero-sized embedded actor.
//!
//! Everything runs in this one process on one tokio runtime, on loopback with OS-chosen
//! ports, so client, servers, hosts, placement and the app share the machine's cores: the
//! ratios between scenarios are the point, not the absolute figures.
//!
//! Run with `cargo bench --bench invoke` (append `-- FILTER...` to run only the scenarios
//! whose name contains one of the FILTERs, e.g. `-- echo app http` for echo and (b), (d), (e),
//! (f)). Prints a markdown table and writes the same results as JSON to
//! `target/bench-results/invoke.json`; recorded in benches/README.md.

#[path = "common/results.rs"]
mod results;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rookery_core::net::{self, SharedTransport, TcpTransport, Transport};
use rookery_core::tls::{TlsFiles, TlsTransport};
use rookery_placement::node::{PlacementConfig, PlacementNode};
use rookery_proto::v1::actors_client::ActorsClient;
use rookery_proto::v1::actors_server::{Actors, ActorsServer};
use rookery_proto::v1::app_channel_client::AppChannelClient;
use rookery_proto::v1::{
    app_reply, app_to_host, host_to_app, ActorTypeOptions, AppReply, AppToHost, InvokeRequest,
    InvokeResponse, RegisterTypes,
};
use rookery_runtime::config::{ActorDefaults, HostConfig, HttpAppConfig, TypeOptions};
use rookery_runtime::host::{Host, HostTransports};
use rookery_runtime::{Actor, ActorContext, ActorError};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Calls in flight at once, each slot a loop of one call after another.
const CONCURRENCY: usize = 64;
/// Request data of every call; the echo paths return it.
const PAYLOAD_BYTES: usize = 64;
/// Run before measuring: connections, activations and allocator pools settle.
const WARMUP: Duration = Duration::from_secs(1);
/// Measured time per throughput scenario and round.
const MEASURE: Duration = Duration::from_secs(5);
/// Rounds of every throughput scenario; the round with the median calls/s is reported.
const ROUNDS: usize = 3;
/// Bound on one call, so a lost call ends its slot's loop instead of hanging the bench.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// New actors activated for the activations-per-second figure.
const NEW_ACTIVATIONS: usize = 50_000;
/// Activated before the memory baseline so the allocator and the activation map already hold
/// what a busy host holds; only the growth beyond that is charged to idle activations.
const IDLE_BASELINE_ACTIVATIONS: usize = 10_000;
/// Idle activations whose resident memory is measured.
const IDLE_ACTIVATIONS: usize = 100_000;
/// Far beyond the bench's run, so no activation is collected while memory is measured.
const IDLE_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;
/// Bound on waiting for placement to route a type.
const SETUP_DEADLINE: Duration = Duration::from_secs(30);

/// Type names on the hosts.
const EMBEDDED_TYPE: &str = "Echo";
const APP_TYPE: &str = "AppEcho";
/// Served by the bench's HTTP app over the HTTP app channel.
const HTTP_APP_TYPE: &str = "AppHttpEcho";
const SHARED_TYPE: &str = "SharedEcho";
const FRESH_TYPE: &str = "Fresh";
const IDLE_TYPE: &str = "Idle";

// ---- the bare gRPC paths ----

/// `Actors.Invoke` answered with the request data: one bare tonic hop.
struct EchoService;

#[tonic::async_trait]
impl Actors for EchoService {
    async fn invoke(
        &self,
        request: Request<InvokeRequest>,
    ) -> Result<Response<InvokeResponse>, Status> {
        Ok(Response::new(InvokeResponse {
            data: request.into_inner().data,
        }))
    }

    async fn get_state(
        &self,
        _request: Request<rookery_proto::v1::GetActorStateRequest>,
    ) -> Result<Response<rookery_proto::v1::GetActorStateResponse>, Status> {
        Err(Status::unimplemented("a bare path keeps no state"))
    }
}

/// Forwards every call to the next server with a tonic client, as a host forwards to an app
/// or to the owner host: the bare two-hop path.
struct ProxyService {
    next: ActorsClient<Channel>,
}

#[tonic::async_trait]
impl Actors for ProxyService {
    async fn invoke(
        &self,
        request: Request<InvokeRequest>,
    ) -> Result<Response<InvokeResponse>, Status> {
        let mut forwarded = Request::new(request.into_inner());
        // The host sets the caller's remaining deadline on its forwards too.
        forwarded.set_timeout(CALL_TIMEOUT);
        self.next.clone().invoke(forwarded).await
    }

    async fn get_state(
        &self,
        _request: Request<rookery_proto::v1::GetActorStateRequest>,
    ) -> Result<Response<rookery_proto::v1::GetActorStateResponse>, Status> {
        Err(Status::unimplemented("a bare path keeps no state"))
    }
}

/// Serves `service` on an OS-chosen loopback port through the hosts' own transport
/// (`TCP_NODELAY` like theirs); returns the bound address.
async fn serve<S: Actors>(service: S) -> (String, JoinHandle<()>) {
    let (addr, incoming) = TcpTransport
        .bind("127.0.0.1:0".into())
        .await
        .expect("bind loopback");
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(ActorsServer::new(service))
            .serve_with_incoming(incoming)
            .await
            .expect("bare server");
    });
    (addr, task)
}

fn client(transport: &SharedTransport, addr: &str) -> ActorsClient<Channel> {
    ActorsClient::new(net::channel(transport, addr).expect("valid address"))
}

// ---- the actors ----

/// Zero-sized, so the memory measured per activation is the host's alone.
struct EchoActor;

#[async_trait::async_trait]
impl Actor for EchoActor {
    async fn handle(
        &mut self,
        _ctx: &ActorContext,
        _method: &str,
        data: Bytes,
    ) -> Result<Bytes, ActorError> {
        Ok(data)
    }
}

/// A minimal app: registers `actor_type` and answers every request at once, the invokes with
/// their data, from one task reading the stream.
async fn start_app(
    transport: &SharedTransport,
    host_addr: &str,
    actor_type: &str,
) -> JoinHandle<()> {
    let channel = net::channel(transport, host_addr).expect("valid address");
    let mut app = AppChannelClient::new(channel);
    // Room for every request the host may have in flight, so replies never wait for space.
    let (outbox, outbox_rx) = mpsc::channel::<AppToHost>(4 * CONCURRENCY);
    outbox
        .send(AppToHost {
            message: Some(app_to_host::Message::Register(RegisterTypes {
                app_id: "bench-app".into(),
                receive_triggers: false,
                types: vec![ActorTypeOptions {
                    actor_type: actor_type.into(),
                    ..Default::default()
                }],
            })),
        })
        .await
        .expect("outbox open");
    let mut requests = app
        .connect(ReceiverStream::new(outbox_rx))
        .await
        .expect("app channel connects")
        .into_inner();
    tokio::spawn(async move {
        while let Ok(Some(request)) = requests.message().await {
            let (request_id, data) = match request.message {
                Some(host_to_app::Message::Invoke(invoke)) => (invoke.request_id, invoke.data),
                Some(host_to_app::Message::Activate(m)) => (m.request_id, Vec::new()),
                Some(host_to_app::Message::Deactivate(m)) => (m.request_id, Vec::new()),
                // `Registered`, and kinds of request this bench never causes (reminders).
                _ => continue,
            };
            let reply = AppToHost {
                message: Some(app_to_host::Message::Reply(AppReply {
                    request_id,
                    result: Some(app_reply::Result::Data(data)),
                })),
            };
            if outbox.send(reply).await.is_err() {
                return;
            }
        }
    })
}

/// A minimal HTTP app, as Dapr's SDKs serve actors: `GET /dapr/config` names
/// [`HTTP_APP_TYPE`], each method call is answered 200 with its body, each deactivation 200.
/// Served by the same code as the host's HTTP API (axum, hyper's HTTP/1.1 server).
async fn start_http_app() -> (String, JoinHandle<()>) {
    use axum::routing::{delete, get, put};
    let routes = axum::Router::new()
        .route(
            "/dapr/config",
            get(|| async { axum::Json(json!({ "entities": [HTTP_APP_TYPE] })) }),
        )
        .route(
            "/actors/:actor_type/:actor_id/method/:method",
            put(|body: Bytes| async move { body }),
        )
        .route(
            "/actors/:actor_type/:actor_id",
            delete(|| async { StatusCode::OK }),
        );
    let (addr, task) = rookery_core::ops_http::serve("127.0.0.1:0", routes, std::future::pending())
        .await
        .expect("bind the HTTP app");
    (addr.to_string(), task)
}

/// The HTTP/1.1 client of the HTTP scenarios: a pool of keep-alive connections (about one per
/// slot once warm), `TCP_NODELAY` as the host's own client of an HTTP app.
type HttpClient = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

fn http_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4 * CONCURRENCY)
        .build(connector)
}

// ---- the cluster ----

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `http_app`: the address of an HTTP app; the host then also serves the Dapr HTTP API.
/// A node certificate for the mTLS cluster and its CA, made by `rookery certs` as an
/// operator makes them.
fn make_certs(dir: &std::path::Path) -> TlsFiles {
    let dir_arg = dir.display().to_string();
    let certs = |args: &[&str]| {
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_rookery"))
            .arg("certs")
            .args(args)
            .args(["--dir", &dir_arg])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("rookery certs runs");
        assert!(status.success(), "rookery certs {args:?}");
    };
    certs(&["init"]);
    certs(&["issue", "node", "--ip", "127.0.0.1"]);
    TlsFiles {
        cert: dir.join("node.pem"),
        key: dir.join("node-key.pem"),
        ca: dir.join("ca.pem"),
    }
}

/// `internal`: the transport of the host's internal port and of its connections to
/// placement and to other hosts (TCP, or mutual TLS); the public port is always TCP.
async fn start_host(
    name: &str,
    placement: &str,
    dir: &std::path::Path,
    http_app: Option<&str>,
    internal: SharedTransport,
) -> Host {
    // The advertised address must be known before binding, so the OS picks the port first.
    let addr = format!("127.0.0.1:{}", free_port());
    let config = HostConfig {
        host_id: name.into(),
        app_id: "bench".into(),
        placement: vec![placement.into()],
        grpc_listen: addr.clone(),
        // Host-to-host calls on a port of their own, as `rookery host` runs them; the port
        // the system picks is advertised once bound.
        internal_listen: Some("127.0.0.1:0".into()),
        advertise_address: addr,
        internal_advertise_address: Some("127.0.0.1:0".into()),
        http_listen: http_app.map(|_| "127.0.0.1:0".into()),
        metrics_listen: None,
        http_app: http_app.map(|address| HttpAppConfig {
            address: address.into(),
            app_api_token: None,
            health: None,
        }),
        api_token: None,
        data_dir: dir.join(name),
        max_request_bytes: rookery_runtime::config::DEFAULT_MAX_REQUEST_SIZE_MB * 1024 * 1024,
        actors: ActorDefaults::default(),
        heartbeat_interval_ms: rookery_runtime::config::DEFAULT_HEARTBEAT_INTERVAL_MS,
        state: rookery_runtime::state::StoreConfig::Sled {
            path: dir.join(name).join("state"),
        },
        // The default: turns wait for a valid placement lease, as in production.
        serve_without_lease: false,
        ..HostConfig::default()
    };
    let transports = HostTransports {
        public: TcpTransport::shared(),
        internal,
    };
    Host::start_with(config, transports)
        .await
        .expect("host starts")
}

fn options(idle_timeout_ms: u64) -> TypeOptions {
    TypeOptions {
        idle_timeout_ms,
        ..ActorDefaults::default().type_options()
    }
}

/// Waits until every host's table, unlocked, lists `servers` hosts serving `actor_type`.
async fn wait_served(hosts: &[&Host], actor_type: &str, servers: usize) {
    let started = Instant::now();
    loop {
        let ready = hosts.iter().all(|host| {
            let state = host.table().borrow().clone();
            !state.locked
                && state.table.is_some_and(|t| {
                    t.table
                        .hosts
                        .iter()
                        .filter(|h| h.actor_types.iter().any(|t| t == actor_type))
                        .count()
                        == servers
                })
        });
        if ready {
            return;
        }
        assert!(
            started.elapsed() < SETUP_DEADLINE,
            "placement did not route {actor_type} to {servers} hosts"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- measuring ----

fn request(actor_type: &str, actor_id: &str, data: &Bytes) -> Request<InvokeRequest> {
    let mut request = Request::new(InvokeRequest {
        actor_type: actor_type.into(),
        actor_id: actor_id.into(),
        method: "echo".into(),
        data: data.to_vec(),
        metadata: HashMap::new(),
    });
    request.set_timeout(CALL_TIMEOUT);
    request
}

/// How one slot of a throughput scenario makes its calls, one after another: each `call` is
/// one call, answering the length of the data that came back.
trait Caller: Send + 'static {
    fn call(&mut self) -> BoxFuture<'_, Result<usize, String>>;
}

/// `Actors.Invoke` of one actor over a tonic client.
struct GrpcCaller {
    client: ActorsClient<Channel>,
    actor_type: &'static str,
    actor_id: String,
    data: Bytes,
}

impl Caller for GrpcCaller {
    fn call(&mut self) -> BoxFuture<'_, Result<usize, String>> {
        Box::pin(async move {
            self.client
                .invoke(request(self.actor_type, &self.actor_id, &self.data))
                .await
                .map(|response| response.get_ref().data.len())
                .map_err(|status| status.to_string())
        })
    }
}

/// One HTTP request with the payload as its body; any answer but 200 is an error.
struct HttpCaller {
    client: HttpClient,
    method: Method,
    uri: Uri,
    data: Bytes,
}

impl Caller for HttpCaller {
    fn call(&mut self) -> BoxFuture<'_, Result<usize, String>> {
        Box::pin(async move {
            let request = http::Request::builder()
                .method(self.method.clone())
                .uri(self.uri.clone())
                .header(http::header::CONTENT_TYPE, "application/octet-stream")
                .body(Full::new(self.data.clone()))
                .map_err(|e| e.to_string())?;
            let exchange = async {
                let response = self
                    .client
                    .request(request)
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                let status = response.status();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                if status != StatusCode::OK {
                    return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
                }
                Ok(body.len())
            };
            // Tonic sends the gRPC calls' bound to the server; HTTP has none, so it is kept here.
            tokio::time::timeout(CALL_TIMEOUT, exchange)
                .await
                .map_err(|_| format!("no answer within {CALL_TIMEOUT:?}"))?
        })
    }
}

/// One throughput scenario: `callers(i)` makes the caller of slot `i`, afresh every round.
struct Scenario {
    name: &'static str,
    path: &'static str,
    callers: Box<dyn Fn(usize) -> Box<dyn Caller>>,
}

/// Slot `i` calls actor `ids[i]` of `actor_type` through `client`.
fn grpc_callers(
    client: ActorsClient<Channel>,
    actor_type: &'static str,
    ids: Vec<String>,
) -> Box<dyn Fn(usize) -> Box<dyn Caller>> {
    assert_eq!(ids.len(), CONCURRENCY);
    let data = payload();
    Box::new(move |slot| {
        Box::new(GrpcCaller {
            client: client.clone(),
            actor_type,
            actor_id: ids[slot].clone(),
            data: data.clone(),
        })
    })
}

/// Slot `i` sends `method` to `http://{addr}{path(i)}` through `client`.
fn http_callers(
    client: HttpClient,
    method: Method,
    addr: String,
    path: impl Fn(usize) -> String + 'static,
) -> Box<dyn Fn(usize) -> Box<dyn Caller>> {
    let data = payload();
    Box::new(move |slot| {
        Box::new(HttpCaller {
            client: client.clone(),
            method: method.clone(),
            uri: format!("http://{addr}{}", path(slot))
                .parse()
                .expect("a valid URI"),
            data: data.clone(),
        })
    })
}

fn payload() -> Bytes {
    Bytes::from(vec![0xa5u8; PAYLOAD_BYTES])
}

/// The round with the median calls/s, carrying every round's calls/s.
fn median_round(mut rounds: Vec<Measured>) -> Measured {
    rounds.sort_by(|a, b| a.calls_per_s.total_cmp(&b.calls_per_s));
    let all: Vec<f64> = rounds.iter().map(|m| m.calls_per_s.round()).collect();
    let mut median = rounds.swap_remove(rounds.len() / 2);
    median.rounds_calls_per_s = all;
    median
}

struct Measured {
    name: &'static str,
    path: &'static str,
    calls: usize,
    calls_per_s: f64,
    /// Sorted latencies of the measured calls, in microseconds.
    latencies_us: Vec<f64>,
    /// CPU time of the whole process (client and servers) per measured call: unlike calls/s,
    /// it barely moves when other work shares the machine.
    cpu_us_per_call: f64,
    /// Calls/s of every round, ascending (one entry for single-round measurements).
    rounds_calls_per_s: Vec<f64>,
    errors: usize,
}

impl Measured {
    fn percentile_us(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[index]
    }

    fn json(&self) -> Value {
        json!({
            "name": self.name,
            "path": self.path,
            "calls": self.calls,
            "calls_per_s": self.calls_per_s.round(),
            "p50_us": self.percentile_us(0.5).round(),
            "p99_us": self.percentile_us(0.99).round(),
            "cpu_us_per_call": (self.cpu_us_per_call * 10.0).round() / 10.0,
            // How much of the machine the process got: 2.0 is both cores of the bench box.
            "cpu_cores_used": (self.cpu_us_per_call * self.calls_per_s / 1e4).round() / 100.0,
            "rounds_calls_per_s": self.rounds_calls_per_s,
            "errors": self.errors,
        })
    }
}

/// Runs [`CONCURRENCY`] loops of calls, slot `i` making its calls with `scenario.callers(i)`,
/// for [`WARMUP`] then [`MEASURE`]; counts the calls that both started and finished inside
/// the measured window.
async fn throughput(scenario: &Scenario) -> Measured {
    let (name, path) = (scenario.name, scenario.path);
    let started = Instant::now();
    let measure_from = started + WARMUP;
    let measure_until = measure_from + MEASURE;
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let from = cpu_ns();
        tokio::time::sleep_until(measure_until.into()).await;
        cpu_ns() - from
    });
    let slots: Vec<JoinHandle<(Vec<f64>, usize)>> = (0..CONCURRENCY)
        .map(|slot| {
            let mut caller = (scenario.callers)(slot);
            tokio::spawn(async move {
                let mut latencies_us = Vec::new();
                let mut errors = 0;
                loop {
                    let sent = Instant::now();
                    if sent >= measure_until {
                        break;
                    }
                    let answer = caller.call().await;
                    let done = Instant::now();
                    match answer {
                        // Every path echoes the payload: anything else is a broken path.
                        Ok(len) if len != PAYLOAD_BYTES => {
                            if errors == 0 {
                                eprintln!("{name}: answer of the wrong size");
                            }
                            errors += 1;
                        }
                        Ok(_) => {
                            if sent >= measure_from && done <= measure_until {
                                latencies_us.push((done - sent).as_secs_f64() * 1e6);
                            }
                        }
                        Err(error) => {
                            if errors == 0 {
                                eprintln!("{name}: call failed: {error}");
                            }
                            errors += 1;
                        }
                    }
                }
                (latencies_us, errors)
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for slot in slots {
        let (slot_latencies, slot_errors) = slot.await.expect("slot task");
        latencies_us.extend(slot_latencies);
        errors += slot_errors;
    }
    latencies_us.sort_by(f64::total_cmp);
    let cpu_ns = cpu.await.expect("cpu sampler");
    Measured {
        name,
        path,
        calls: latencies_us.len(),
        calls_per_s: latencies_us.len() as f64 / MEASURE.as_secs_f64(),
        cpu_us_per_call: cpu_ns as f64 / 1e3 / latencies_us.len().max(1) as f64,
        rounds_calls_per_s: vec![(latencies_us.len() as f64 / MEASURE.as_secs_f64()).round()],
        latencies_us,
        errors,
    }
}

/// Calls `count` actors `{prefix}{n}` once each, [`CONCURRENCY`] at a time; each call
/// activates its actor. Returns the latencies and the rate over the whole run.
async fn activate(
    name: &'static str,
    client: ActorsClient<Channel>,
    actor_type: &'static str,
    prefix: &'static str,
    count: usize,
) -> Measured {
    let data = Bytes::from(vec![0xa5u8; PAYLOAD_BYTES]);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let cpu_from = cpu_ns();
    let slots: Vec<JoinHandle<(Vec<f64>, usize)>> = (0..CONCURRENCY)
        .map(|_| {
            let mut client = client.clone();
            let next = next.clone();
            let data = data.clone();
            tokio::spawn(async move {
                let mut latencies_us = Vec::new();
                let mut errors = 0;
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        break;
                    }
                    let id = format!("{prefix}{n}");
                    let sent = Instant::now();
                    match client.invoke(request(actor_type, &id, &data)).await {
                        Ok(_) => latencies_us.push(sent.elapsed().as_secs_f64() * 1e6),
                        Err(status) => {
                            if errors == 0 {
                                eprintln!("{name}: call failed: {status}");
                            }
                            errors += 1;
                        }
                    }
                }
                (latencies_us, errors)
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for slot in slots {
        let (slot_latencies, slot_errors) = slot.await.expect("slot task");
        latencies_us.extend(slot_latencies);
        errors += slot_errors;
    }
    let elapsed = started.elapsed();
    let cpu_ns = cpu_ns() - cpu_from;
    latencies_us.sort_by(f64::total_cmp);
    Measured {
        name,
        path: "client → host → new embedded activation",
        calls: latencies_us.len(),
        calls_per_s: latencies_us.len() as f64 / elapsed.as_secs_f64(),
        cpu_us_per_call: cpu_ns as f64 / 1e3 / latencies_us.len().max(1) as f64,
        rounds_calls_per_s: vec![(latencies_us.len() as f64 / elapsed.as_secs_f64()).round()],
        latencies_us,
        errors,
    }
}

/// CPU time this process's threads have run, in nanoseconds: the sum of the first field of
/// every /proc/self/task/*/schedstat (the bench's threads all live until it ends).
fn cpu_ns() -> u64 {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// Resident set size of this process, in bytes (`VmRSS` of /proc/self/status).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn ids(prefix: &str) -> Vec<String> {
    (0..CONCURRENCY).map(|i| format!("{prefix}{i}")).collect()
}

fn ratio(numerator: Option<&Measured>, denominator: Option<&Measured>) -> Option<f64> {
    Some(numerator?.calls_per_s / denominator?.calls_per_s)
}

/// The throughput ratio the machine would show if it were CPU-bound and ours alone: the
/// baseline's CPU per call over the scenario's.
fn cpu_ratio(scenario: Option<&Measured>, baseline: Option<&Measured>) -> Option<f64> {
    Some(baseline?.cpu_us_per_call / scenario?.cpu_us_per_call)
}

/// `filters`: run only what one of them names a part of; all of it when there are none.
async fn run(filters: Vec<String>) -> Value {
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f));
    let transport = TcpTransport::shared();
    let load_before = load_average();
    let mut results: Vec<Measured> = Vec::new();

    // The bare paths.
    let (echo_addr, echo_task) = serve(EchoService).await;
    let (proxy_addr, proxy_task) = serve(ProxyService {
        next: client(&transport, &echo_addr),
    })
    .await;

    // A cluster: one placement node, host A serving every type, host B only the shared one.
    let dir = tempfile::tempdir().expect("temp dir");
    let placement_addr = format!("127.0.0.1:{}", free_port());
    let mut placement_config = PlacementConfig::single_node(
        placement_addr.clone(),
        placement_addr.clone(),
        dir.path().join("placement"),
    );
    placement_config.debounce_ms = 0;
    let placement = PlacementNode::start(placement_config, TcpTransport::shared())
        .await
        .expect("placement starts");
    // Host A also serves the Dapr HTTP API and drives the HTTP app's type.
    let (http_app_addr, http_app_task) = start_http_app().await;
    let tcp = TcpTransport::shared();
    let host_a = start_host(
        "host-a",
        &placement_addr,
        dir.path(),
        Some(&http_app_addr),
        tcp.clone(),
    )
    .await;
    let host_b = start_host("host-b", &placement_addr, dir.path(), None, tcp.clone()).await;

    // The same two-host path with mutual TLS between every node: a placement node of its own
    // and hosts C (called) and D (owner), so (g) differs from (c) in TLS alone.
    let certs_dir = dir.path().join("certs");
    std::fs::create_dir_all(&certs_dir).expect("certs dir");
    let mtls =
        TlsTransport::shared(TcpTransport::shared(), make_certs(&certs_dir)).expect("TLS material");
    let tls_placement_addr = format!("127.0.0.1:{}", free_port());
    let mut tls_placement_config = PlacementConfig::single_node(
        tls_placement_addr.clone(),
        tls_placement_addr.clone(),
        dir.path().join("placement-tls"),
    );
    tls_placement_config.debounce_ms = 0;
    let tls_placement = PlacementNode::start(tls_placement_config, mtls.clone())
        .await
        .expect("mTLS placement starts");
    let host_c = start_host(
        "host-c",
        &tls_placement_addr,
        dir.path(),
        None,
        mtls.clone(),
    )
    .await;
    let host_d = start_host(
        "host-d",
        &tls_placement_addr,
        dir.path(),
        None,
        mtls.clone(),
    )
    .await;
    for host in [&host_c, &host_d] {
        host.register_actor(
            SHARED_TYPE,
            options(ActorDefaults::default().idle_timeout_ms),
            |_| EchoActor,
        )
        .expect("register on the mTLS hosts");
    }
    wait_served(&[&host_c, &host_d], SHARED_TYPE, 2).await;
    let tls_table = host_c.table().borrow().table.clone().expect("a table");
    let owned_by_d: Vec<String> = (0..)
        .map(|n| format!("g-{n}"))
        .filter(|id| {
            tls_table
                .owner(SHARED_TYPE, id)
                .is_some_and(|o| o.id == "host-d")
        })
        .take(CONCURRENCY)
        .collect();
    let dapr_http_addr = host_a
        .http_addr()
        .expect("host A serves the Dapr HTTP API")
        .to_string();
    let default_idle_ms = ActorDefaults::default().idle_timeout_ms;
    for (name, idle_ms) in [
        (EMBEDDED_TYPE, default_idle_ms),
        (SHARED_TYPE, default_idle_ms),
        (FRESH_TYPE, IDLE_TIMEOUT_MS),
        (IDLE_TYPE, IDLE_TIMEOUT_MS),
    ] {
        host_a
            .register_actor(name, options(idle_ms), |_| EchoActor)
            .expect("register on host A");
    }
    host_b
        .register_actor(SHARED_TYPE, options(default_idle_ms), |_| EchoActor)
        .expect("register on host B");
    let app = start_app(&transport, host_a.grpc_addr(), APP_TYPE).await;
    for (actor_type, servers) in [
        (EMBEDDED_TYPE, 1),
        (APP_TYPE, 1),
        (HTTP_APP_TYPE, 1),
        (SHARED_TYPE, 2),
        (FRESH_TYPE, 1),
        (IDLE_TYPE, 1),
    ] {
        wait_served(&[&host_a, &host_b], actor_type, servers).await;
    }
    let to_a = client(&transport, host_a.grpc_addr());
    // Ids host B owns, all sent to host A: every call of (c) is forwarded exactly once.
    let table = host_a.table().borrow().table.clone().expect("a table");
    let owned_by_b: Vec<String> = (0..)
        .map(|n| format!("c-{n}"))
        .filter(|id| {
            table
                .owner(SHARED_TYPE, id)
                .is_some_and(|o| o.id == "host-b")
        })
        .take(CONCURRENCY)
        .collect();

    // Each HTTP scenario has a client (a connection pool) of its own.
    let dapr_method = |actor_type: &'static str, prefix: &'static str| {
        move |slot: usize| format!("/v1.0/actors/{actor_type}/{prefix}{slot}/method/echo")
    };
    let scenarios = [
        Scenario {
            name: "echo",
            path: "client → echo",
            callers: grpc_callers(client(&transport, &echo_addr), EMBEDDED_TYPE, ids("e-")),
        },
        Scenario {
            name: "two-hop",
            path: "client → proxy → echo",
            callers: grpc_callers(client(&transport, &proxy_addr), EMBEDDED_TYPE, ids("p-")),
        },
        Scenario {
            name: "(a) embedded",
            path: "client → host → embedded actor",
            callers: grpc_callers(to_a.clone(), EMBEDDED_TYPE, ids("a-")),
        },
        Scenario {
            name: "(b) app",
            path: "client → host → app stream → host → client",
            callers: grpc_callers(to_a.clone(), APP_TYPE, ids("b-")),
        },
        Scenario {
            name: "(c) non-owner",
            path: "client → host A → host B → embedded actor",
            callers: grpc_callers(to_a.clone(), SHARED_TYPE, owned_by_b),
        },
        Scenario {
            name: "(g) non-owner, mTLS",
            path: "client → host C → mutual TLS → host D → embedded actor",
            callers: grpc_callers(
                client(&transport, host_c.grpc_addr()),
                SHARED_TYPE,
                owned_by_d,
            ),
        },
        Scenario {
            name: "(d) dapr-http",
            path: "HTTP client → host Dapr HTTP API → HTTP app channel → HTTP app → back",
            callers: http_callers(
                http_client(),
                Method::POST,
                dapr_http_addr.clone(),
                dapr_method(HTTP_APP_TYPE, "d-"),
            ),
        },
        Scenario {
            name: "(e) dapr-http → grpc app",
            path: "HTTP client → host Dapr HTTP API → app stream → back",
            callers: http_callers(
                http_client(),
                Method::POST,
                dapr_http_addr.clone(),
                dapr_method(APP_TYPE, "de-"),
            ),
        },
        Scenario {
            name: "(f) http app alone",
            path: "HTTP client → HTTP app",
            callers: http_callers(http_client(), Method::PUT, http_app_addr.clone(), |slot| {
                format!("/actors/{HTTP_APP_TYPE}/f-{slot}/method/echo")
            }),
        },
    ];
    let scenarios: Vec<&Scenario> = scenarios.iter().filter(|s| wanted(s.name)).collect();
    // Rounds interleave the scenarios, so a burst of outside load (other builds on the shared
    // machine) lands on one round of several scenarios rather than on every round of one.
    let mut rounds: Vec<Vec<Measured>> = scenarios.iter().map(|_| Vec::new()).collect();
    for _ in 0..ROUNDS {
        for (scenario, measured) in scenarios.iter().zip(rounds.iter_mut()) {
            measured.push(throughput(scenario).await);
        }
    }
    results.extend(rounds.into_iter().map(median_round));
    if wanted("(c)") {
        assert!(
            host_b.activations().len() >= CONCURRENCY,
            "host B served the calls"
        );
    }
    if wanted("(g)") {
        assert!(
            host_d.activations().len() >= CONCURRENCY,
            "host D served the calls"
        );
    }
    echo_task.abort();
    proxy_task.abort();
    if wanted("activations") {
        results.push(
            activate(
                "activations",
                to_a.clone(),
                FRESH_TYPE,
                "fresh-",
                NEW_ACTIVATIONS,
            )
            .await,
        );
    }
    let mut memory = Value::Null;
    if wanted("memory") {
        let baseline = activate(
            "memory baseline",
            to_a.clone(),
            IDLE_TYPE,
            "base-",
            IDLE_BASELINE_ACTIVATIONS,
        )
        .await;
        assert_eq!(baseline.errors, 0, "baseline activations failed");
        // Let the calls' transient buffers go before the baseline.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let active_before = host_a.activations().len();
        let rss_before = rss_bytes();
        let idle = activate("memory", to_a.clone(), IDLE_TYPE, "idle-", IDLE_ACTIVATIONS).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_after = rss_bytes();
        let active_after = host_a.activations().len();
        assert_eq!(idle.errors, 0, "idle activations failed");
        let added = active_after - active_before;
        assert_eq!(added, IDLE_ACTIVATIONS, "every idle activation is alive");
        memory = json!({
            "activations": added,
            "rss_before_bytes": rss_before,
            "rss_after_bytes": rss_after,
            "bytes_per_activation": (rss_after.saturating_sub(rss_before) as f64 / added as f64).round(),
        });
    }

    // Bounded: hosts with many activations end them all before stopping.
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        drop(app);
        host_a.shutdown().await;
        host_b.shutdown().await;
        host_c.shutdown().await;
        host_d.shutdown().await;
        placement.shutdown().await;
        tls_placement.shutdown().await;
    })
    .await;
    // After the hosts: host A deactivates the HTTP app's actors with `DELETE`s on shutdown.
    http_app_task.abort();

    let find = |name: &str| results.iter().find(|m| m.name == name);
    let ratios = json!({
        "a_over_echo": ratio(find("(a) embedded"), find("echo")),
        "b_over_two_hop": ratio(find("(b) app"), find("two-hop")),
        "c_over_two_hop": ratio(find("(c) non-owner"), find("two-hop")),
        "g_over_c": ratio(find("(g) non-owner, mTLS"), find("(c) non-owner")),
        "g_over_c_by_cpu": cpu_ratio(find("(g) non-owner, mTLS"), find("(c) non-owner")),
        "a_over_echo_by_cpu": cpu_ratio(find("(a) embedded"), find("echo")),
        "b_over_two_hop_by_cpu": cpu_ratio(find("(b) app"), find("two-hop")),
        "c_over_two_hop_by_cpu": cpu_ratio(find("(c) non-owner"), find("two-hop")),
        "d_over_b": ratio(find("(d) dapr-http"), find("(b) app")),
        "d_over_f": ratio(find("(d) dapr-http"), find("(f) http app alone")),
        "e_over_b": ratio(find("(e) dapr-http → grpc app"), find("(b) app")),
        "f_over_echo": ratio(find("(f) http app alone"), find("echo")),
        "d_over_b_by_cpu": cpu_ratio(find("(d) dapr-http"), find("(b) app")),
        "d_over_f_by_cpu": cpu_ratio(find("(d) dapr-http"), find("(f) http app alone")),
        "e_over_b_by_cpu": cpu_ratio(find("(e) dapr-http → grpc app"), find("(b) app")),
        "f_over_echo_by_cpu": cpu_ratio(find("(f) http app alone"), find("echo")),
    });
    json!({
        "concurrency": CONCURRENCY,
        "payload_bytes": PAYLOAD_BYTES,
        "warmup_s": WARMUP.as_secs_f64(),
        "measure_s": MEASURE.as_secs_f64(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "scenarios": results.iter().map(Measured::json).collect::<Vec<_>>(),
        "ratios": ratios,
        "idle_memory": memory,
    })
}

/// `goal`: the lower bound on the ratio, if it sets one.
fn fmt_ratio(value: &Value, goal: Option<f64>) -> String {
    match (value.as_f64(), goal) {
        (Some(r), Some(goal)) => format!(
            "{r:.2}× (goal ≥ {goal}×: {})",
            if r >= goal { "met" } else { "missed" }
        ),
        (Some(r), None) => format!("{r:.2}× (no goal set)"),
        (None, _) => "not run".into(),
    }
}

/// A whole number as the table shows it (JSON keeps `f64`s, which print as `123.0`).
fn number(value: &Value) -> String {
    value
        .as_f64()
        .map(|v| format!("{v:.0}"))
        .unwrap_or_else(|| "–".into())
}

fn print_markdown(results: &Value) {
    println!(
        "| scenario | path | calls/s | rounds' calls/s | p50 µs | p99 µs | CPU µs/call | cores used | errors |"
    );
    println!("|---|---|---:|---|---:|---:|---:|---:|---:|");
    for s in results["scenarios"].as_array().into_iter().flatten() {
        let rounds: Vec<String> = s["rounds_calls_per_s"]
            .as_array()
            .into_iter()
            .flatten()
            .map(number)
            .collect();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s["name"].as_str().unwrap_or(""),
            s["path"].as_str().unwrap_or(""),
            number(&s["calls_per_s"]),
            rounds.join(", "),
            number(&s["p50_us"]),
            number(&s["p99_us"]),
            s["cpu_us_per_call"],
            s["cpu_cores_used"],
            s["errors"],
        );
    }
    println!();
    let ratios = &results["ratios"];
    println!("| ratio | by calls/s | by CPU per call |");
    println!("|---|---|---|");
    for (label, key, goal) in [
        ("(a) / echo", "a_over_echo", Some(0.6)),
        ("(b) / two-hop", "b_over_two_hop", Some(0.8)),
        ("(c) / two-hop", "c_over_two_hop", None),
        ("(g) mTLS / (c) plaintext", "g_over_c", None),
        ("(d) dapr-http / (b) app", "d_over_b", None),
        ("(d) dapr-http / (f) http app alone", "d_over_f", None),
        ("(e) dapr-http → grpc app / (b) app", "e_over_b", None),
        ("(f) http app alone / echo", "f_over_echo", None),
    ] {
        println!(
            "| {label} | {} | {} |",
            fmt_ratio(&ratios[key], goal),
            fmt_ratio(&ratios[format!("{key}_by_cpu").as_str()], goal)
        );
    }
    let memory = &results["idle_memory"];
    if let Some(bytes) = memory["bytes_per_activation"].as_f64() {
        println!(
            "| resident bytes per idle activation ({} activations) | {bytes} (goal ≤ 1024: {}) | |",
            memory["activations"],
            if bytes <= 1024.0 { "met" } else { "missed" }
        );
    }
    println!();
    println!(
        "load average before / after: {} / {}",
        results["load_average_before"].as_str().unwrap_or(""),
        results["load_average_after"].as_str().unwrap_or("")
    );
}

fn main() {
    // `cargo bench` passes `--bench`; any other run of this target only checks it starts.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("invoke benches run only under `cargo bench`");
        return;
    }
    let filters: Vec<String> = args.into_iter().filter(|a| !a.starts_with("--")).collect();
    // Without a global subscriber, `tracing`'s `log` feature (enabled through tower's default
    // features) makes every h2 span consult the `log` crate: ~3% of the CPU in a profile, which
    // the `rookery` binary, with its subscriber installed, does not pay. A silent subscriber
    // keeps the bench like production.
    tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default())
        .expect("no subscriber set yet");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results = runtime.block_on(run(filters));
    print_markdown(&results);
    let path = results::write("invoke.json", results);
    println!("results written to {}", path.display());
}

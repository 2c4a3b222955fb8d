//! Rookery's embedded local dispatch, in this process: a single-node placement and one host
//! with an embedded Rust actor type, called through `Host::invoke` (the router, the
//! activation's mailbox and one turn; no gRPC). The counterpart of the in-process actor crates
//! of `benches/peers` (actix, ractor, kameo): same shapes of load, same counts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rookery_core::net::TcpTransport;
use rookery_placement::node::{PlacementConfig, PlacementNode};
use rookery_runtime::config::{ActorDefaults, HostConfig, TypeOptions};
use rookery_runtime::host::Host;
use rookery_runtime::{Actor, ActorContext, ActorError, ActorKey, Call, CallKind};
use serde_json::{json, Value};

use crate::support::free_port;

/// Concurrent callers, as in the peers' ask scenarios.
const CALLERS: usize = 64;
/// Calls per caller (`ROOKERY_INPROCESS_CALLS` for another count, e.g. a smaller one to
/// profile under callgrind).
const CALLS_PER_CALLER: usize = 5_000;
/// New actors activated (one call each); the peers' spawn scenario makes 100,000, and the
/// memory per idle activation is measured over a million (`ROOKERY_INPROCESS_ACTIVATIONS`
/// for another count).
const ACTIVATIONS: usize = 1_000_000;
/// The count the peers' spawn scenario makes: the rate is also reported over the first these.
const PEER_SPAWNS: usize = 100_000;
const TYPE: &str = "Local";

/// Zero-sized, so the memory per activation is the host's own.
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

fn call(id: String) -> Call {
    Call {
        key: ActorKey::new(TYPE, id),
        method: "echo".into(),
        data: Bytes::from_static(&[0xa5; 64]),
        metadata: Default::default(),
        call_chain_id: String::new(),
        kind: CallKind::Method,
    }
}

/// `name` from the environment, or `default`.
fn count_from_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `CALLERS` tasks, caller `c` calling `ids(c)` `calls_per_caller` times in sequence.
async fn ask(
    host: &Arc<Host>,
    calls_per_caller: usize,
    ids: impl Fn(usize) -> String,
) -> (usize, Duration, usize) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|c| {
            let host = host.clone();
            let id = ids(c);
            tokio::spawn(async move {
                let mut errors = 0;
                for _ in 0..calls_per_caller {
                    if host.invoke(call(id.clone()), None).await.is_err() {
                        errors += 1;
                    }
                }
                errors
            })
        })
        .collect();
    let mut errors = 0;
    for task in tasks {
        errors += task.await.expect("caller");
    }
    (CALLERS * calls_per_caller, started.elapsed(), errors)
}

/// [`run`] in a child process of its own (this executable with `--in-process`), so that its
/// resident-memory figures start from a fresh heap rather than from what the suite's earlier
/// parts freed.
pub fn run_in_child() -> Value {
    use crate::cluster::DiesWithParent;
    let output = std::process::Command::new(std::env::current_exe().expect("current exe"))
        .dies_with_parent()
        .args(["--bench", "--in-process"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run the in-process part");
    assert!(
        output.status.success(),
        "the in-process part failed: {}",
        output.status
    );
    serde_json::from_slice(&output.stdout).expect("the in-process part prints JSON")
}

pub async fn run() -> Value {
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
    let addr = format!("127.0.0.1:{}", free_port());
    let config = HostConfig {
        host_id: "local".into(),
        app_id: "suite".into(),
        placement: vec![placement_addr],
        grpc_listen: addr.clone(),
        internal_listen: None,
        advertise_address: addr,
        internal_advertise_address: None,
        http_listen: None,
        metrics_listen: None,
        http_app: None,
        api_token: None,
        data_dir: dir.path().join("host"),
        max_request_bytes: rookery_runtime::config::DEFAULT_MAX_REQUEST_SIZE_MB * 1024 * 1024,
        actors: ActorDefaults::default(),
        heartbeat_interval_ms: rookery_runtime::config::DEFAULT_HEARTBEAT_INTERVAL_MS,
        state: rookery_runtime::state::StoreConfig::Sled {
            path: dir.path().join("host").join("state"),
        },
        serve_without_lease: false,
        ..HostConfig::default()
    };
    let host = Arc::new(
        Host::start(config, TcpTransport::shared())
            .await
            .expect("host starts"),
    );
    let options = TypeOptions {
        // No activation is collected while memory is measured.
        idle_timeout_ms: 24 * 60 * 60 * 1000,
        ..ActorDefaults::default().type_options()
    };
    host.register_actor(TYPE, options, |_| EchoActor)
        .expect("register");
    // Until placement routes the type here.
    let started = Instant::now();
    while host.invoke(call("ready".into()), None).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the type never became callable"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let calls_per_caller = count_from_env("ROOKERY_INPROCESS_CALLS", CALLS_PER_CALLER);
    let activations = count_from_env("ROOKERY_INPROCESS_ACTIVATIONS", ACTIVATIONS);
    let peer_spawns = PEER_SPAWNS.min(activations);
    // Warm-up, then the two ask shapes.
    ask(&host, calls_per_caller, |c| format!("many-{c}")).await;
    let (one_calls, one_elapsed, one_errors) = ask(&host, calls_per_caller, |_| "hot".into()).await;
    let (many_calls, many_elapsed, many_errors) =
        ask(&host, calls_per_caller, |c| format!("many-{c}")).await;

    // Activations: new ids, CALLERS at a time, one call each; then the memory they hold.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = crate::cluster::rss_of("/proc/self/status");
    let active_before = host.activations().len();
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let first_spawns: Arc<std::sync::OnceLock<Duration>> = Arc::default();
    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let host = host.clone();
            let (next, done, first_spawns) = (next.clone(), done.clone(), first_spawns.clone());
            tokio::spawn(async move {
                let mut errors = 0;
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= activations {
                        return errors;
                    }
                    if host.invoke(call(format!("new-{n}")), None).await.is_err() {
                        errors += 1;
                    }
                    if done.fetch_add(1, Ordering::Relaxed) + 1 == peer_spawns {
                        let _ = first_spawns.set(started.elapsed());
                    }
                }
            })
        })
        .collect();
    let mut activation_errors = 0;
    for task in tasks {
        activation_errors += task.await.expect("activator");
    }
    let activation_elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = crate::cluster::rss_of("/proc/self/status");
    let added = host.activations().len() - active_before;

    let result = json!({
        "callers": CALLERS,
        "calls_per_caller": calls_per_caller,
        "one_actor": {
            "calls": one_calls,
            "calls_per_s": (one_calls as f64 / one_elapsed.as_secs_f64()).round(),
            "errors": one_errors,
        },
        "many_actors": {
            "calls": many_calls,
            "calls_per_s": (many_calls as f64 / many_elapsed.as_secs_f64()).round(),
            "errors": many_errors,
        },
        "activations": {
            "count": activations,
            "per_s": (activations as f64 / activation_elapsed.as_secs_f64()).round(),
            "first": peer_spawns,
            "first_per_s": first_spawns
                .get()
                .map(|d| (peer_spawns as f64 / d.as_secs_f64()).round()),
            "errors": activation_errors,
            "alive_after": added,
            "rss_before_bytes": rss_before,
            "rss_after_bytes": rss_after,
            "bytes_per_idle_activation":
                (rss_after.saturating_sub(rss_before) as f64 / added.max(1) as f64).round(),
        },
    });
    // Bounded: a host with many activations ends them all before stopping.
    if let Ok(host) = Arc::try_unwrap(host) {
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            host.shutdown().await;
            placement.shutdown().await;
        })
        .await;
    }
    result
}

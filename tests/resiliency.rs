//! Dapr's Resiliency policies under real faults: a `kind: Resiliency` file in
//! `--resources-path`, real `rookery` processes, an HTTP app in this test, and a TCP fault
//! proxy (resets, black holes, refused connections) between host and host, host and app, and
//! host and PostgreSQL.
//!
//! - a timeout policy cuts a call at its bound, local or forwarded;
//! - the app target's timeout cuts turns of a hung app, and its breaker then fails fast;
//! - a circuit breaker opens after its trip, fails fast while open (the app is not called),
//!   half-opens after its timeout and closes on success;
//! - a retry policy's attempts follow its back-off (count and spacing), and a timeout bounds
//!   each attempt on the state store;
//! - a call whose owner broke off mid-call is never sent again, whatever the retry policy.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use serde_json::json;
use support::app_server::AppServer;
use support::fault_proxy::{Fault, FaultProxy};
use support::free_port;
use support::host_process::{sample_value, start_placement, wait_for_routing, HostProcess};
use support::http::{request, HttpResponse};
use support::postgres::Postgres;
use support::temp::TestDir;
use support::wait::{wait_until, DEADLINE};

/// How long the `work` method takes.
const WORK_MS: u64 = 1_500;

struct AppState {
    name: &'static str,
    /// While set, `flaky` answers 500.
    failing: AtomicBool,
    /// Calls of `flaky` that reached the app.
    flaky_calls: AtomicU64,
    /// Runs of `work` begun, by actor id.
    work_runs: Mutex<HashMap<String, u64>>,
    /// Runs of `work` in progress.
    working: AtomicU64,
}

/// An HTTP app serving the `Worker` type: `who` names the app, `work` takes WORK_MS,
/// `slow` ten seconds, `flaky` fails while told to.
struct WorkerApp {
    server: AppServer,
    state: Arc<AppState>,
}

async fn method(
    State(state): State<Arc<AppState>>,
    UrlPath((_type, id, method)): UrlPath<(String, String, String)>,
) -> (StatusCode, String) {
    match method.as_str() {
        "work" => {
            *state.work_runs.lock().unwrap().entry(id).or_default() += 1;
            state.working.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(WORK_MS)).await;
            state.working.fetch_sub(1, Ordering::SeqCst);
            (StatusCode::OK, "done".into())
        }
        "slow" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            (StatusCode::OK, "late".into())
        }
        "flaky" => {
            state.flaky_calls.fetch_add(1, Ordering::SeqCst);
            if state.failing.load(Ordering::SeqCst) {
                (StatusCode::INTERNAL_SERVER_ERROR, "boom".into())
            } else {
                (StatusCode::OK, "fine".into())
            }
        }
        _ => (StatusCode::OK, state.name.into()),
    }
}

impl WorkerApp {
    async fn start(name: &'static str) -> WorkerApp {
        let state = Arc::new(AppState {
            name,
            failing: AtomicBool::new(false),
            flaky_calls: AtomicU64::new(0),
            work_runs: Mutex::new(HashMap::new()),
            working: AtomicU64::new(0),
        });
        let router = Router::new()
            .route(
                "/dapr/config",
                get(|| async { Json(json!({ "entities": ["Worker"] })) }),
            )
            .route("/actors/:actor_type/:id/method/:method", put(method))
            .route(
                "/actors/:actor_type/:id",
                delete(|| async { StatusCode::OK }),
            )
            .route("/healthz", get(|| async { StatusCode::OK }))
            .with_state(state.clone());
        WorkerApp {
            server: AppServer::start(router).await,
            state,
        }
    }

    fn work_runs(&self, id: &str) -> u64 {
        self.state
            .work_runs
            .lock()
            .unwrap()
            .get(id)
            .copied()
            .unwrap_or(0)
    }
}

/// A resources directory holding `resiliency.yaml` with `spec` under `spec:`.
fn resources(spec: &str) -> TestDir {
    let dir = TestDir::new("rookery-resources-");
    let yaml = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: test-resiliency\nspec:\n{spec}"
    );
    std::fs::write(dir.path().join("resiliency.yaml"), yaml).expect("write resiliency.yaml");
    dir
}

fn host(placement: String, id: &str, app: &WorkerApp, resources: &Path) -> HostProcess {
    host_builder(placement, id, app, resources).start()
}

fn host_builder(
    placement: String,
    id: &str,
    app: &WorkerApp,
    resources: &Path,
) -> support::host_process::HostProcessBuilder {
    HostProcess::builder(placement)
        .host_id(id)
        .app_id("workers")
        .arg("--app-port")
        .arg(app.server.port.to_string())
        .arg("--resources-path")
        .arg(resources.display().to_string())
}

/// `Worker/{id}.{method}` through `host`'s Dapr HTTP API, and how long it took.
async fn call(host: &HostProcess, id: &str, method: &str) -> (HttpResponse, Duration) {
    let started = Instant::now();
    let path = format!("/v1.0/actors/Worker/{id}/method/{method}");
    let response = request(host.http_port, "POST", &path, &[], b"")
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    (response, started.elapsed())
}

/// The value of `sample` on `host`'s metrics; 0 while a labelled counter has not been
/// touched (it is rendered only once it has).
async fn metric(host: &HostProcess, sample: &str) -> f64 {
    let text = host.metrics_text().await.expect("metrics");
    sample_value(&text, sample).unwrap_or(0.0)
}

/// Ids of actors that `host` serves itself (its app answers `who`), out of the first `of`.
async fn ids_served_by(host: &HostProcess, app: &str, of: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..of {
        let id = format!("w{n}");
        let (response, _) = call(host, &id, "who").await;
        assert_eq!(response.status, 200, "{}", response.text());
        if response.text() == app {
            ids.push(id);
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_policy_cuts_calls_at_its_bound() {
    const TIMEOUT_MS: u64 = 700;
    let dir = resources(&format!(
        "  policies:\n    timeouts:\n      fast: {TIMEOUT_MS}ms\n  targets:\n    actors:\n      Worker:\n        timeout: fast\n"
    ));
    let cluster = start_placement(1).await;
    let (app_a, app_b) = (WorkerApp::start("A").await, WorkerApp::start("B").await);
    let host_a = host(cluster.addr_list(), "host-a", &app_a, dir.path());
    let host_b = host(cluster.addr_list(), "host-b", &app_b, dir.path());
    host_a.wait_ready().await;
    host_b.wait_ready().await;
    wait_for_routing(&cluster, &[&host_a, &host_b], &["Worker"]).await;
    let on_a = ids_served_by(&host_a, "A", 20).await;
    assert!(!on_a.is_empty(), "some of 20 actors live on host A");

    // Local (through A) and forwarded (through B to A): each cut at the bound.
    for (via, name) in [(&host_a, "local"), (&host_b, "forwarded")] {
        let (response, took) = call(via, &on_a[0], "slow").await;
        assert_eq!(response.status, 500, "{name}: {}", response.text());
        assert!(
            response.text().contains("resiliency timeout"),
            "{name}: {}",
            response.text()
        );
        assert!(
            took >= Duration::from_millis(TIMEOUT_MS),
            "{name}: cut before its bound, after {took:?}"
        );
        // The slow method takes 10 s: an answer well before that is the policy's.
        assert!(
            took < Duration::from_millis(TIMEOUT_MS) + Duration::from_secs(4),
            "{name}: cut late, after {took:?}"
        );
    }
    assert_eq!(
        metric(
            &host_a,
            "rookery_resiliency_timeouts_total{target=\"actor:Worker\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &host_b,
            "rookery_resiliency_timeouts_total{target=\"actor:Worker\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(&host_a, "rookery_resiliency_resources_loaded").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_opens_fails_fast_half_opens_and_closes() {
    const TRIPS_AFTER: u64 = 3;
    const OPEN_MS: u64 = 2_000;
    let dir = resources(&format!(
        "  policies:\n    circuitBreakers:\n      workerCB:\n        maxRequests: 1\n        timeout: {OPEN_MS}ms\n        trip: consecutiveFailures >= {TRIPS_AFTER}\n  targets:\n    actors:\n      Worker:\n        circuitBreaker: workerCB\n        circuitBreakerScope: id\n"
    ));
    let cluster = start_placement(1).await;
    let app = WorkerApp::start("A").await;
    let host = host(cluster.addr_list(), "host-a", &app, dir.path());
    host.wait_ready().await;
    wait_for_routing(&cluster, &[&host], &["Worker"]).await;

    app.state.failing.store(true, Ordering::SeqCst);
    for n in 0..TRIPS_AFTER {
        let (response, _) = call(&host, "b1", "flaky").await;
        assert_eq!(response.status, 500, "failure {n}: {}", response.text());
        assert!(response.text().contains("boom"), "{}", response.text());
    }
    assert_eq!(app.state.flaky_calls.load(Ordering::SeqCst), TRIPS_AFTER);
    let opened_at = Instant::now();

    // Open: calls fail at once, without reaching the app; other ids are not affected.
    for _ in 0..5 {
        let (response, took) = call(&host, "b1", "flaky").await;
        assert_eq!(response.status, 500);
        assert!(
            response.text().contains("circuit breaker"),
            "{}",
            response.text()
        );
        assert!(
            took < Duration::from_millis(OPEN_MS),
            "fails fast, took {took:?}"
        );
    }
    assert_eq!(
        app.state.flaky_calls.load(Ordering::SeqCst),
        TRIPS_AFTER,
        "an open breaker lets nothing through"
    );
    assert!(
        opened_at.elapsed() < Duration::from_millis(OPEN_MS),
        "checked while open"
    );
    app.state.failing.store(false, Ordering::SeqCst);
    let (other, _) = call(&host, "b2", "flaky").await;
    assert_eq!(other.status, 200, "breakers are per id: {}", other.text());

    // After its timeout the breaker half-opens: one call goes through, succeeds, closes it.
    tokio::time::sleep(Duration::from_millis(OPEN_MS).saturating_sub(opened_at.elapsed())).await;
    let (response, _) = call(&host, "b1", "flaky").await;
    assert_eq!(response.status, 200, "{}", response.text());
    let (response, _) = call(&host, "b1", "flaky").await;
    assert_eq!(response.status, 200, "closed again: {}", response.text());

    let transitions = |state: &str| {
        format!("rookery_resiliency_breaker_transitions_total{{target=\"actor:Worker\",state=\"{state}\"}}")
    };
    assert_eq!(metric(&host, &transitions("open")).await, 1.0);
    assert_eq!(metric(&host, &transitions("half-open")).await, 1.0);
    assert_eq!(metric(&host, &transitions("closed")).await, 1.0);
    assert_eq!(
        metric(
            &host,
            "rookery_resiliency_breaker_rejections_total{target=\"actor:Worker\"}"
        )
        .await,
        5.0
    );
    assert_eq!(
        metric(
            &host,
            "rookery_resiliency_breakers_open{target=\"actor:Worker\"}"
        )
        .await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_retries_follow_their_backoff_and_timeouts_bound_each_attempt() {
    const RETRY_MS: u64 = 400;
    const RETRIES: usize = 3;
    const STORE_TIMEOUT_MS: u64 = 1_000;
    let Some(postgres) = Postgres::start().await else {
        return;
    };
    let upstream: SocketAddr = format!("127.0.0.1:{}", postgres.port()).parse().unwrap();
    let proxy = FaultProxy::start(upstream);
    let dir = resources(&format!(
        "  policies:\n    timeouts:\n      store: {STORE_TIMEOUT_MS}ms\n    retries:\n      store:\n        policy: constant\n        duration: {RETRY_MS}ms\n        maxRetries: {RETRIES}\n  targets:\n    components:\n      statestore:\n        outbound:\n          timeout: store\n          retry: store\n"
    ));
    let component = postgres.connection_string().replace(
        &format!("port={}", postgres.port()),
        &format!("port={}", proxy.port()),
    );
    std::fs::write(
        dir.path().join("statestore.yaml"),
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: statestore\nspec:\n  type: state.postgresql\n  version: v1\n  metadata:\n  - name: connectionString\n    value: \"{component}\"\n"
        ),
    )
    .expect("write the component");
    let cluster = start_placement(1).await;
    let app = WorkerApp::start("A").await;
    let host = host(cluster.addr_list(), "host-a", &app, dir.path());
    host.wait_ready().await;
    wait_for_routing(&cluster, &[&host], &["Worker"]).await;
    let (response, _) = call(&host, "s0", "who").await;
    assert_eq!(response.status, 200, "the store works: {}", response.text());

    // Connections reset at once: every attempt fails; the policy sends it 3 more times,
    // 400 ms apart, then the call fails.
    proxy.set(Fault::Refuse);
    proxy.reset_open_connections();
    let before = proxy.accepted().len();
    let (response, took) = call(&host, "s1", "who").await;
    assert_eq!(response.status, 500, "{}", response.text());
    assert_eq!(
        metric(
            &host,
            "rookery_resiliency_retries_total{target=\"component:statestore\"}"
        )
        .await,
        RETRIES as f64
    );
    assert!(
        took >= Duration::from_millis(RETRY_MS * RETRIES as u64),
        "three pauses of {RETRY_MS} ms, took {took:?}"
    );
    // The attempts as the store's side saw them: connections grouped by attempt (one attempt
    // may open more than one), the groups 400 ms apart. The first attempt may fail on the
    // pooled connection the reset broke, without opening one; every retry opens one.
    let accepted = proxy.accepted()[before..].to_vec();
    let mut attempts: Vec<Instant> = Vec::new();
    for at in accepted {
        if attempts
            .last()
            .is_none_or(|last| at.duration_since(*last) > Duration::from_millis(RETRY_MS / 2))
        {
            attempts.push(at);
        }
    }
    assert!(
        attempts.len() >= RETRIES,
        "{} attempts reached the store's port",
        attempts.len()
    );
    for pair in attempts.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(
            gap >= Duration::from_millis(RETRY_MS - 10),
            "attempts {gap:?} apart, under the {RETRY_MS} ms back-off"
        );
    }

    // A black hole: each attempt ends at the timeout policy's bound.
    proxy.set(Fault::BlackHole);
    let (response, took) = call(&host, "s2", "who").await;
    assert_eq!(response.status, 500, "{}", response.text());
    let attempts = (RETRIES + 1) as u64;
    let bound = Duration::from_millis(STORE_TIMEOUT_MS * attempts + RETRY_MS * RETRIES as u64);
    assert!(
        took >= bound,
        "four attempts of {STORE_TIMEOUT_MS} ms and three pauses, took {took:?}"
    );
    assert!(
        took < bound + Duration::from_secs(5),
        "each attempt ended at its bound, took {took:?}"
    );
    assert_eq!(
        metric(
            &host,
            "rookery_resiliency_timeouts_total{target=\"component:statestore\"}"
        )
        .await,
        attempts as f64
    );

    // The store comes back: so do the calls.
    proxy.set(Fault::None);
    wait_until(
        "calls to succeed once the store is back",
        DEADLINE,
        || async {
            let (response, _) = call(&host, "s2", "who").await;
            match response.status {
                200 => Ok(()),
                status => Err(format!("{status} {}", response.text())),
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_owner_broke_off_mid_call_is_never_run_twice() {
    let dir = resources(
        "  policies:\n    retries:\n      eager:\n        policy: constant\n        duration: 100ms\n        maxRetries: 5\n  targets:\n    actors:\n      Worker:\n        retry: eager\n",
    );
    let cluster = start_placement(1).await;
    let (app_a, app_b) = (WorkerApp::start("A").await, WorkerApp::start("B").await);
    let host_a = host(cluster.addr_list(), "host-a", &app_a, dir.path());
    // Host B is reached by other hosts through the proxy only, in front of its internal port.
    let b_port = free_port();
    let proxy = FaultProxy::start(format!("127.0.0.1:{b_port}").parse().unwrap());
    let host_b = host_builder(cluster.addr_list(), "host-b", &app_b, dir.path())
        .internal_port(b_port)
        .arg("--internal-advertise-address")
        .arg(proxy.addr().to_string())
        .start();
    host_a.wait_ready().await;
    host_b.wait_ready().await;
    wait_for_routing(&cluster, &[&host_a, &host_b], &["Worker"]).await;
    let on_b = ids_served_by(&host_b, "B", 20).await;
    assert!(!on_b.is_empty(), "some of 20 actors live on host B");
    let id = on_b[0].clone();
    // Through A, so across the proxy.
    let (response, _) = call(&host_a, &id, "who").await;
    assert_eq!(response.text(), "B");

    let caller = {
        let id = id.clone();
        let port = host_a.http_port;
        tokio::spawn(async move {
            let path = format!("/v1.0/actors/Worker/{id}/method/work");
            request(port, "POST", &path, &[], b"").await
        })
    };
    wait_until("the work to start on app B", DEADLINE, || async {
        match app_b.state.working.load(Ordering::SeqCst) {
            0 => Err("not yet".to_owned()),
            _ => Ok(()),
        }
    })
    .await;
    proxy.reset_open_connections();
    let response = caller.await.expect("caller").expect("an answer");
    assert_eq!(response.status, 500, "{}", response.text());
    assert!(
        response.text().contains("may have run"),
        "{}",
        response.text()
    );
    // Long after the work would have ended, it ran once: the retry policy did not resend it.
    tokio::time::sleep(Duration::from_millis(2 * WORK_MS)).await;
    assert_eq!(app_b.work_runs(&id), 1, "the call ran exactly once");
    assert_eq!(
        metric(
            &host_a,
            "rookery_resiliency_retries_total{target=\"actor:Worker\"}"
        )
        .await,
        0.0
    );
    // The path heals: the next call goes through.
    let (response, _) = call(&host_a, &id, "work").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(app_b.work_runs(&id), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_target_bounds_turns_and_breaks_off_a_hung_app() {
    const APP_TIMEOUT_MS: u64 = 500;
    const OPEN_MS: u64 = 1_500;
    let dir = resources(&format!(
        "  policies:\n    timeouts:\n      app: {APP_TIMEOUT_MS}ms\n    circuitBreakers:\n      appCB:\n        timeout: {OPEN_MS}ms\n        trip: consecutiveFailures >= 2\n  targets:\n    apps:\n      workers:\n        timeout: app\n        circuitBreaker: appCB\n"
    ));
    let cluster = start_placement(1).await;
    let app = WorkerApp::start("A").await;
    // The host reaches its app through the proxy only.
    let proxy = FaultProxy::start(format!("127.0.0.1:{}", app.server.port).parse().unwrap());
    let host = HostProcess::builder(cluster.addr_list())
        .host_id("host-a")
        .app_id("workers")
        .arg("--app-port")
        .arg(proxy.port().to_string())
        .arg("--resources-path")
        .arg(dir.path().display().to_string())
        .start();
    host.wait_ready().await;
    wait_for_routing(&cluster, &[&host], &["Worker"]).await;
    let (response, _) = call(&host, "h1", "who").await;
    assert_eq!(response.text(), "A");

    // The app hangs: each turn is cut at the app timeout; two make the breaker open.
    proxy.set(Fault::BlackHole);
    for n in 0..2 {
        let (response, took) = call(&host, "h1", "who").await;
        assert_eq!(response.status, 500, "{}", response.text());
        assert!(
            response.text().contains("resiliency timeout"),
            "{n}: {}",
            response.text()
        );
        assert!(
            took >= Duration::from_millis(APP_TIMEOUT_MS),
            "{n}: cut early, {took:?}"
        );
        assert!(
            took < Duration::from_millis(APP_TIMEOUT_MS) + Duration::from_secs(4),
            "{n}: cut late, {took:?}"
        );
    }
    let opened_at = Instant::now();
    let (response, took) = call(&host, "h2", "who").await;
    assert!(
        response.text().contains("circuit breaker"),
        "{}",
        response.text()
    );
    assert!(
        took < Duration::from_millis(APP_TIMEOUT_MS),
        "fails fast while open: {took:?}"
    );
    assert_eq!(
        metric(
            &host,
            "rookery_resiliency_timeouts_total{target=\"app:workers\"}"
        )
        .await,
        2.0
    );

    // The app recovers; after the breaker's timeout a call goes through and closes it.
    proxy.set(Fault::None);
    tokio::time::sleep(Duration::from_millis(OPEN_MS).saturating_sub(opened_at.elapsed())).await;
    wait_until("the app to answer again", DEADLINE, || async {
        let (response, _) = call(&host, "h2", "who").await;
        match response.text().as_str() {
            "A" => Ok(()),
            other => Err(other.to_owned()),
        }
    })
    .await;
    assert_eq!(
        metric(
            &host,
            "rookery_resiliency_breakers_open{target=\"app:workers\"}"
        )
        .await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_resiliency_file_stops_the_host_with_the_file_and_field() {
    let dir = resources(
        "  policies:\n    retries:\n      r:\n        policy: constant\n        duration: 5 seconds\n",
    );
    let output = support::run_rookery(
        &[
            "host",
            "--placement",
            "127.0.0.1:1",
            "--resources-path",
            &dir.path().display().to_string(),
        ],
        DEADLINE,
    )
    .await;
    assert_ne!(output.code, Some(0), "a bad file must stop the host");
    assert!(
        output.stderr.contains("resiliency.yaml")
            && output.stderr.contains("spec.policies.retries.r.duration"),
        "{}",
        output.stderr
    );
}

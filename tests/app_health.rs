//! App health checks of HTTP apps (`--enable-app-health-check`), as daprd's: while a host's
//! app fails its probes (an error status, then a probe that hangs past the timeout), the
//! host withdraws the app's types and its actors answer from the other host's app; once the
//! app is healthy again its types come back.
//!
//! Real processes: one `rookery placement`, two `rookery host`s on loopback; each host's app
//! is an HTTP server in this test (axum) that names itself in every answer.

mod support;

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use serde_json::json;
use support::app_server::AppServer;
use support::host_process::{start_placement, wait_for_routing, HostProcess};
use support::http::request;
use support::wait::{wait_until, DEADLINE};

const HEALTHY: u8 = 0;
const UNAVAILABLE: u8 = 1;
const HUNG: u8 = 2;

/// Probe settings given to the hosts.
const PROBE_INTERVAL_S: u64 = 1;
const THRESHOLD: u64 = 2;
const PROBE_TIMEOUT_MS: u64 = 300;
/// How long a hung app takes to answer its health probe: well past the timeout.
const HANG: Duration = Duration::from_secs(3);

struct AppState {
    name: &'static str,
    health: AtomicU8,
    calls: AtomicU64,
}

/// An HTTP app serving the `Echo` type; every method answers with the app's name.
struct EchoApp {
    server: AppServer,
    state: Arc<AppState>,
}

impl EchoApp {
    async fn start(name: &'static str) -> EchoApp {
        let state = Arc::new(AppState {
            name,
            health: AtomicU8::new(HEALTHY),
            calls: AtomicU64::new(0),
        });
        let router = Router::new()
            .route(
                "/dapr/config",
                get(|| async { Json(json!({ "entities": ["Echo"] })) }),
            )
            .route(
                "/actors/:actor_type/:id/method/:method",
                put(
                    |State(state): State<Arc<AppState>>,
                     Path((_t, _id, _m)): Path<(String, String, String)>| async move {
                        state.calls.fetch_add(1, Ordering::SeqCst);
                        state.name
                    },
                ),
            )
            .route(
                "/actors/:actor_type/:id",
                delete(|| async { StatusCode::OK }),
            )
            .route(
                "/healthz",
                get(|State(state): State<Arc<AppState>>| async move {
                    match state.health.load(Ordering::SeqCst) {
                        HEALTHY => StatusCode::OK,
                        UNAVAILABLE => StatusCode::SERVICE_UNAVAILABLE,
                        _ => {
                            tokio::time::sleep(HANG).await;
                            StatusCode::OK
                        }
                    }
                }),
            )
            .with_state(state.clone());
        EchoApp {
            server: AppServer::start(router).await,
            state,
        }
    }

    fn set_health(&self, health: u8) {
        self.state.health.store(health, Ordering::SeqCst);
    }

    fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::SeqCst)
    }
}

fn start_host(placement: String, app: &EchoApp, id: &str) -> HostProcess {
    HostProcess::builder(placement)
        .host_id(id)
        .arg("--app-port")
        .arg(app.server.port.to_string())
        .arg("--enable-app-health-check")
        .arg("--app-health-probe-interval")
        .arg(PROBE_INTERVAL_S.to_string())
        .arg("--app-health-threshold")
        .arg(THRESHOLD.to_string())
        .arg("--app-health-probe-timeout")
        .arg(PROBE_TIMEOUT_MS.to_string())
        .start()
}

/// Which app answers `Echo/{id}.who`, asked through `host`'s Dapr HTTP API.
async fn who(host: &HostProcess, id: &str) -> Result<String, String> {
    let path = format!("/v1.0/actors/Echo/{id}/method/who");
    let response = request(host.http_port, "POST", &path, &[], b"").await?;
    if response.status != 200 {
        return Err(format!("{path}: {} {}", response.status, response.text()));
    }
    Ok(response.text())
}

async fn wait_metric(host: &HostProcess, name: &str, want: f64) {
    // Interval × threshold, plus generous slack for a loaded box.
    let within = Duration::from_secs(PROBE_INTERVAL_S * THRESHOLD) + DEADLINE;
    wait_until(
        format!("{name} = {want} on {}", host.id),
        within,
        || async {
            host.assert_alive();
            match host.metric(name).await? {
                value if value == want => Ok(()),
                value => Err(format!("{name} = {value}")),
            }
        },
    )
    .await;
}

/// Waits until every one of `ids` answers from the app named `app`.
async fn wait_answers(host: &HostProcess, ids: &[String], app: &str) {
    wait_until(
        format!("{ids:?} to answer from app {app}"),
        DEADLINE,
        || async {
            for id in ids {
                let answer = who(host, id).await?;
                if answer != app {
                    return Err(format!("{id} answered from {answer}"));
                }
            }
            Ok(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_apps_actors_move_to_healthy_hosts_and_come_back() {
    let cluster = start_placement(1).await;
    let (app_a, app_b) = (EchoApp::start("A").await, EchoApp::start("B").await);
    let host_a = start_host(cluster.addr_list(), &app_a, "host-a");
    let host_b = start_host(cluster.addr_list(), &app_b, "host-b");
    host_a.wait_ready().await;
    host_b.wait_ready().await;
    wait_for_routing(&cluster, &[&host_a, &host_b], &["Echo"]).await;
    assert_eq!(host_a.metric("rookery_app_healthy").await, Ok(1.0));

    // The actors app A serves.
    let mut on_a = Vec::new();
    for n in 0..40 {
        let id = format!("e{n}");
        if who(&host_a, &id).await.expect("first call") == "A" {
            on_a.push(id);
        }
    }
    assert!(!on_a.is_empty(), "some of 40 actors live on host A");

    for (phase, failure) in [("503", UNAVAILABLE), ("hang", HUNG)] {
        app_a.set_health(failure);
        wait_metric(&host_a, "rookery_app_healthy", 0.0).await;
        wait_answers(&host_a, &on_a, "B").await;
        // Nothing reaches the unhealthy app any more.
        let calls = app_a.calls();
        for id in &on_a {
            assert_eq!(who(&host_b, id).await.as_deref(), Ok("B"), "{phase}: {id}");
        }
        assert_eq!(app_a.calls(), calls, "{phase}: no calls reach app A");
        assert_eq!(host_b.metric("rookery_app_healthy").await, Ok(1.0));

        app_a.set_health(HEALTHY);
        wait_metric(&host_a, "rookery_app_healthy", 1.0).await;
        wait_answers(&host_a, &on_a, "A").await;
    }
    assert_eq!(
        host_a.metric("rookery_app_health_changes_total").await,
        Ok(4.0)
    );
    assert_eq!(
        host_b.metric("rookery_app_health_changes_total").await,
        Ok(0.0)
    );
    let text = host_a.metrics_text().await.expect("metrics");
    for outcome in ["ok", "failed"] {
        let sample = format!("rookery_app_health_probes_total{{outcome=\"{outcome}\"}} ");
        assert!(text.contains(&sample), "{sample} in {text}");
    }
}

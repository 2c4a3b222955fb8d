//! App health checks of gRPC apps (`--app-protocol grpc --app-port P
//! --enable-app-health-check`), as daprd's: the host probes `grpc.health.v1.Health/Check` of
//! its app; while the app answers `NOT_SERVING` the types of every `AppChannel` connection of
//! the host are not served there, so its actors answer from the other host's app; once the app
//! answers `SERVING` again, the host takes them back, with nothing asked of the app (its
//! stream stays connected throughout).
//!
//! Real processes: one `rookery placement`, two `rookery host`s on loopback, each with the
//! Python counter app of `examples/python/` connected over the `AppChannel` stream. App A
//! serves `grpc.health.v1` on its own port (`--health-port`) and answers `NOT_SERVING` while
//! its `--unhealthy-file` exists. Needs `grpcio`, `grpcio-tools` and
//! `grpcio-health-checking` importable by `python3`
//! (`pip install -r examples/python/requirements.txt`); without them it prints why and passes,
//! unless `ROOKERY_TEST_REQUIRE_PYTHON` is set (CI), when it fails.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use support::host_process::{start_placement, wait_for_routing, HostProcess};
use support::wait::{wait_until, DEADLINE};
use support::{free_port, LoggedChild, TestDir};

/// Probe settings given to host A.
const PROBE_INTERVAL_S: u64 = 1;
const THRESHOLD: u64 = 2;
const PROBE_TIMEOUT_MS: u64 = 300;
/// Actors called to find some that live on host A.
const ACTORS: usize = 40;

/// The Python counter app connected to `host`, with its stubs and log in `dir`; serving
/// `grpc.health.v1` on `health_port` when given, `NOT_SERVING` while `unhealthy_file` exists.
fn start_app(
    name: &str,
    host: &HostProcess,
    dir: &Path,
    health: Option<(u16, &Path)>,
) -> LoggedChild {
    let mut args = support::python::counter_app_args(
        &host.grpc_addr,
        &format!("counter-{name}"),
        &dir.join(format!("stubs-{name}")),
    );
    if let Some((port, unhealthy_file)) = health {
        args.extend([
            "--health-port".into(),
            port.to_string(),
            "--unhealthy-file".into(),
            unhealthy_file.display().to_string(),
        ]);
    }
    LoggedChild::spawn(
        format!("python counter app {name}"),
        "python3",
        args,
        vec![
            ("PYTHONUNBUFFERED".into(), "1".into()),
            ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
        ],
        dir.join(format!("app-{name}.log")),
    )
}

/// Waits until `name` is `want` on `host`: within interval × threshold, plus generous slack
/// for a loaded box.
async fn wait_metric(host: &HostProcess, app: &LoggedChild, name: &str, want: f64) {
    let within = Duration::from_secs(PROBE_INTERVAL_S * THRESHOLD) + DEADLINE;
    wait_until(
        format!("{name} = {want} on {}", host.id),
        within,
        || async {
            host.assert_alive();
            app.assert_alive();
            match host.metric(name).await? {
                value if value == want => Ok(()),
                value => Err(format!("{name} = {value}")),
            }
        },
    )
    .await;
}

/// Waits until the app's log says its health service answers `status`.
async fn wait_app_health(app: &LoggedChild, status: &str) {
    let want = format!("counter_app: health {status} on");
    wait_until(format!("the app to log {want:?}"), DEADLINE, || async {
        app.assert_alive();
        // The last health line is the current status.
        match app
            .log()
            .lines()
            .rev()
            .find(|l| l.contains("counter_app: health "))
        {
            Some(line) if line.starts_with(&want) => Ok(()),
            other => Err(format!("last health line: {other:?}")),
        }
    })
    .await;
}

/// `Counter/{id}.get` through `host`.
async fn get(host: &HostProcess, id: &str) -> Result<serde_json::Value, String> {
    host.invoke_json("Counter", id, "get", json!(null))
        .await
        .map_err(|e| format!("Counter/{id}.get through {}: {e}", host.id))
}

/// Waits until every one of `ids`, called through both hosts, answers, and all of them are
/// active on `owner` and none on `other`.
async fn wait_served_by(owner: &HostProcess, other: &HostProcess, ids: &[String]) {
    wait_until(
        format!("{ids:?} to be served by {}", owner.id),
        DEADLINE,
        || async {
            for id in ids {
                get(owner, id).await?;
                get(other, id).await?;
            }
            let on_owner = owner
                .active_ids("Counter")
                .await
                .map_err(|e| e.to_string())?;
            let on_other = other
                .active_ids("Counter")
                .await
                .map_err(|e| e.to_string())?;
            let missing: Vec<&String> = ids.iter().filter(|id| !on_owner.contains(id)).collect();
            let elsewhere: Vec<&String> = ids.iter().filter(|id| on_other.contains(id)).collect();
            if missing.is_empty() && elsewhere.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "not active on {}: {missing:?}; active on {}: {elsewhere:?}",
                    owner.id, other.id
                ))
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_grpc_apps_actors_move_to_the_healthy_host_and_come_back() {
    if support::python::skip_without(
        "grpc, grpc_tools, grpc_health.v1.health",
        "examples/python/requirements.txt",
        "an_unhealthy_grpc_apps_actors_move_to_the_healthy_host_and_come_back",
    ) {
        return;
    }
    let dir = TestDir::new("rookery-app-health-grpc-");
    let unhealthy_file = dir.path().join("app-a-unhealthy");
    let health_port = free_port();
    let cluster = start_placement(1).await;
    let host_a = HostProcess::builder(cluster.addr_list())
        .host_id("host-a")
        .arg("--app-protocol")
        .arg("grpc")
        .arg("--app-port")
        .arg(health_port.to_string())
        .arg("--enable-app-health-check")
        .arg("--app-health-probe-interval")
        .arg(PROBE_INTERVAL_S.to_string())
        .arg("--app-health-threshold")
        .arg(THRESHOLD.to_string())
        .arg("--app-health-probe-timeout")
        .arg(PROBE_TIMEOUT_MS.to_string())
        .start();
    let host_b = HostProcess::builder(cluster.addr_list())
        .host_id("host-b")
        .start();
    host_a.wait_ready().await;
    host_b.wait_ready().await;
    let app_a = start_app(
        "a",
        &host_a,
        dir.path(),
        Some((health_port, &unhealthy_file)),
    );
    let app_b = start_app("b", &host_b, dir.path(), None);
    wait_app_health(&app_a, "SERVING").await;
    wait_for_routing(&cluster, &[&host_a, &host_b], &["Counter"]).await;
    assert_eq!(host_a.metric("rookery_app_healthy").await, Ok(1.0));

    // The actors host A's app serves: those active on A after one call each.
    let ids: Vec<String> = (0..ACTORS).map(|n| format!("g{n}")).collect();
    for id in &ids {
        let value = get(&host_a, id)
            .await
            .unwrap_or_else(|e| panic!("{e}{}{}", app_a.dump_log(), host_a.dump_log()));
        assert_eq!(value, json!(0));
    }
    let on_a = host_a.active_ids("Counter").await.expect("list on A");
    assert!(!on_a.is_empty(), "some of {ACTORS} actors live on host A");
    assert!(
        on_a.len() < ACTORS,
        "some of {ACTORS} actors live on host B"
    );

    // A's app fails its health checks (its AppChannel stream stays up): A stops serving
    // Counter, and its actors answer from B, through either host.
    std::fs::write(&unhealthy_file, b"").expect("create the unhealthy file");
    wait_app_health(&app_a, "NOT_SERVING").await;
    wait_metric(&host_a, &app_a, "rookery_app_healthy", 0.0).await;
    wait_served_by(&host_b, &host_a, &on_a).await;
    // Placement's table names host A for no type (a host serving none may be left out).
    wait_until(
        "placement's table without Counter on host A",
        DEADLINE,
        || async {
            let status = cluster.status().await.map_err(|e| e.to_string())?;
            match status.host("host-a") {
                Some(a) if a.actor_types.iter().any(|t| t == "Counter") => {
                    Err(format!("host A in status: {a:?}"))
                }
                _ => Ok(()),
            }
        },
    )
    .await;
    assert_eq!(
        host_b.metric("rookery_app_health_changes_total").await,
        Ok(0.0),
        "B checks no app's health"
    );
    assert!(
        !app_a.log().contains("reconnecting"),
        "A's app kept its stream: {}",
        app_a.dump_log()
    );

    // Healthy again: A serves Counter again and takes its actors back.
    std::fs::remove_file(&unhealthy_file).expect("remove the unhealthy file");
    wait_app_health(&app_a, "SERVING").await;
    wait_metric(&host_a, &app_a, "rookery_app_healthy", 1.0).await;
    wait_for_routing(&cluster, &[&host_a, &host_b], &["Counter"]).await;
    wait_served_by(&host_a, &host_b, &on_a).await;

    assert_eq!(
        host_a.metric("rookery_app_health_changes_total").await,
        Ok(2.0)
    );
    let text = host_a.metrics_text().await.expect("metrics");
    for outcome in ["ok", "failed"] {
        let sample = format!("rookery_app_health_probes_total{{outcome=\"{outcome}\"}} ");
        assert!(text.contains(&sample), "{sample} in {text}");
    }
    app_a.assert_alive();
    app_b.assert_alive();
}

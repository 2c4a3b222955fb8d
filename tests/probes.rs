//! The host's and placement's probes as an orchestrator uses them: liveness, startup and
//! readiness, each 200 or 503 with one line per check, and Dapr's `/v1.0/healthz` mapped onto
//! readiness. Real faults: placement killed -9 (the lease lapses), PostgreSQL stopped.

mod support;

use std::path::PathBuf;

use support::cluster::Cluster;
use support::host_process::{http_get, start_placement, HostProcess};
use support::http::request;
use support::postgres::Postgres;
use support::temp::TestDir;
use support::wait::{wait_until, DEADLINE};

/// Waits until `GET path` on `port` answers `status`; returns the body.
async fn wait_status(port: u16, path: &str, status: u16) -> String {
    wait_until(
        format!("GET {path} to answer {status}"),
        DEADLINE,
        || async {
            match http_get(port, path).await? {
                (code, body) if code == status => Ok(body),
                (code, body) => Err(format!("{code}: {body}")),
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_placement_and_liveness_stays() {
    let cluster: Cluster = start_placement(1).await;
    let host = HostProcess::builder(cluster.addr_list()).start();
    host.wait_ready().await;

    let ready = wait_status(host.http_port, "/readyz", 200).await;
    for check in ["ok table", "ok placement", "ok lease", "ok state store"] {
        assert!(ready.contains(check), "{check}: {ready}");
    }
    wait_status(host.http_port, "/startupz", 200).await;
    wait_status(host.http_port, "/livez", 200).await;
    let dapr = request(host.http_port, "GET", "/v1.0/healthz", &[], b"")
        .await
        .expect("answer");
    assert_eq!(dapr.status, 204, "{}", dapr.text());

    // Placement's own probes.
    let node = cluster.node(1);
    for path in ["/livez", "/startupz", "/readyz"] {
        wait_status(node.http_port, path, 200).await;
    }

    // Placement gone: the lease lapses and the host is not ready, but alive.
    cluster.kill9(1);
    let not_ready = wait_status(host.http_port, "/readyz", 503).await;
    assert!(not_ready.contains("FAIL placement"), "{not_ready}");
    wait_until("the lease to lapse", DEADLINE, || async {
        let (_, body) = http_get(host.http_port, "/readyz").await?;
        if body.contains("FAIL lease") {
            Ok(())
        } else {
            Err(body)
        }
    })
    .await;
    let dapr = request(host.http_port, "GET", "/v1.0/healthz", &[], b"")
        .await
        .expect("answer");
    assert_eq!(dapr.status, 500, "{}", dapr.text());
    assert_eq!(dapr.error_code(), "ERR_HEALTH_NOT_READY");
    wait_status(host.http_port, "/livez", 200).await;
    host.assert_alive();

    // Placement back: ready again.
    cluster.restart(1);
    wait_status(host.http_port, "/readyz", 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_state_store() {
    let Some(mut postgres) = Postgres::start().await else {
        return;
    };
    let dir = TestDir::new("rookery-probes-test-");
    let resources: PathBuf = dir.path().join("components");
    postgres.write_component(&resources);
    let cluster = start_placement(1).await;
    let host = HostProcess::builder(cluster.addr_list())
        .arg("--resources-path")
        .arg(resources.display().to_string())
        .start();
    host.wait_ready().await;
    let ready = wait_status(host.http_port, "/readyz", 200).await;
    assert!(
        ready.contains("ok state store: postgresql reachable"),
        "{ready}"
    );

    postgres.stop().await;
    let not_ready = wait_status(host.http_port, "/readyz", 503).await;
    assert!(not_ready.contains("FAIL state store"), "{not_ready}");
    let outbound = request(host.http_port, "GET", "/v1.0/healthz/outbound", &[], b"")
        .await
        .expect("answer");
    assert_eq!(outbound.status, 500, "{}", outbound.text());
    assert_eq!(outbound.error_code(), "ERR_OUTBOUND_HEALTH_NOT_READY");
    wait_status(host.http_port, "/livez", 200).await;

    postgres.restart().await;
    wait_status(host.http_port, "/readyz", 200).await;
    host.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_stores_connection_string_may_come_from_a_secret_store() {
    let Some(postgres) = Postgres::start().await else {
        return;
    };
    let dir = TestDir::new("rookery-probes-test-");
    let resources: PathBuf = dir.path().join("components");
    std::fs::create_dir_all(&resources).expect("resources dir");
    let secrets = dir.path().join("secrets.json");
    let secrets_json = serde_json::json!({"pg": {"connection": postgres.connection_string()}});
    std::fs::write(&secrets, secrets_json.to_string()).expect("write secrets");
    std::fs::write(
        resources.join("secrets.yaml"),
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: localsecrets}}\nspec:\n  type: secretstores.local.file\n  version: v1\n  metadata:\n  - {{name: secretsFile, value: \"{}\"}}\n",
            secrets.display()
        ),
    )
    .expect("write the secret store");
    std::fs::write(
        resources.join("statestore.yaml"),
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: statestore}\nspec:\n  type: state.postgresql\n  version: v1\n  metadata:\n  - name: connectionString\n    secretKeyRef: {name: \"pg:connection\", key: \"pg:connection\"}\nauth:\n  secretStore: localsecrets\n",
    )
    .expect("write the state store");
    let cluster = start_placement(1).await;
    let host = HostProcess::builder(cluster.addr_list())
        .arg("--resources-path")
        .arg(resources.display().to_string())
        .start();
    host.wait_ready().await;
    let ready = wait_status(host.http_port, "/readyz", 200).await;
    assert!(
        ready.contains("ok state store: postgresql reachable"),
        "{ready}"
    );
    // The secret is not logged.
    let password = postgres.connection_string();
    assert!(
        !host.log().contains(&password),
        "the connection string was logged"
    );

    // A secret the store lacks stops the host at start, naming it.
    std::fs::write(&secrets, r#"{"pg": {}}"#).expect("rewrite secrets");
    let resources_arg = resources.display().to_string();
    let refused = support::run_rookery(
        &[
            "host",
            "--placement",
            &cluster.addr_list(),
            "--resources-path",
            &resources_arg,
        ],
        DEADLINE,
    )
    .await;
    assert_ne!(refused.code, Some(0), "the host started without its secret");
    assert!(
        refused.stderr.contains("pg:connection") && refused.stderr.contains("localsecrets"),
        "{}",
        refused.stderr
    );
}

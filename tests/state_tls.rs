//! The PostgreSQL state store over TLS: a private PostgreSQL server that refuses plaintext TCP
//! clients, with a certificate made by `rookery certs`, and `rookery host`s whose component's
//! connection string asks for each `sslmode`. A host's `/readyz` says whether it reached the
//! store; an actor's state written through it lands in the server's table.
//!
//! - `sslmode=require`: encrypted, the certificate not checked (libpq's meaning): reachable;
//! - `sslmode=disable`: plaintext, refused by the server: not reachable;
//! - `sslmode=verify-full` with the cluster's CA as `sslrootcert`: reachable; with another
//!   CA: refused by the host, not reachable.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use support::app::{actor_type, TestApp};
use support::host_process::{http_get, start_placement, wait_for_routing, HostProcess};
use support::postgres::Postgres;
use support::run_rookery;
use support::temp::TestDir;
use support::wait::{wait_until, DEADLINE};

async fn certs(dir: &Path, name: &str) {
    let dir_arg = dir.display().to_string();
    let init = run_rookery(&["certs", "init", "--dir", &dir_arg], DEADLINE).await;
    assert_eq!(init.code, Some(0), "{}", init.stderr);
    let issue = run_rookery(
        &[
            "certs",
            "issue",
            name,
            "--dir",
            &dir_arg,
            "--ip",
            "127.0.0.1",
        ],
        DEADLINE,
    )
    .await;
    assert_eq!(issue.code, Some(0), "{}", issue.stderr);
}

fn component(dir: &Path, connection_string: &str) -> PathBuf {
    let resources = dir.join(format!("components-{}", fastrand::u32(..)));
    std::fs::create_dir_all(&resources).expect("resources dir");
    std::fs::write(
        resources.join("statestore.yaml"),
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: statestore}}\nspec:\n  type: state.postgresql\n  version: v1\n  metadata:\n  - name: connectionString\n    value: \"{connection_string}\"\n"
        ),
    )
    .expect("write the component");
    resources
}

/// Waits until the host's `/readyz` says the state store is reachable, or (`reachable`
/// false) that it is not.
async fn wait_store(host: &HostProcess, reachable: bool) -> String {
    let want = if reachable {
        "ok state store: postgresql reachable"
    } else {
        "FAIL state store"
    };
    wait_until(format!("/readyz to say {want:?}"), DEADLINE, || async {
        host.assert_alive();
        let (_, body) = http_get(host.http_port, "/readyz").await?;
        if body.contains(want) {
            Ok(body)
        } else {
            Err(body)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_store_honours_sslmode() {
    let dir = TestDir::new("rookery-state-tls-");
    let ca = dir.path().join("ca");
    certs(&ca, "localhost").await;
    let other_ca = dir.path().join("other-ca");
    certs(&other_ca, "localhost").await;
    let Some(postgres) =
        Postgres::start_tls_only(&ca.join("localhost.pem"), &ca.join("localhost-key.pem")).await
    else {
        return;
    };
    let cluster = start_placement(1).await;
    let base = postgres.connection_string();
    let start = |connection_string: String| {
        let resources = component(dir.path(), &connection_string);
        let host = HostProcess::builder(cluster.addr_list())
            .arg("--resources-path")
            .arg(resources.display().to_string())
            .start();
        async move {
            host.wait_ready().await;
            host
        }
    };

    let required = start(format!("{base} sslmode=require")).await;
    wait_store(&required, true).await;
    // State written through that host lands in the server's table, over TLS.
    let app = TestApp::builder(&required.grpc_addr)
        .serve(actor_type("Counter"))
        .start();
    app.wait_registered().await;
    wait_for_routing(&cluster, &[&required], &["Counter"]).await;
    let written = required
        .invoke_json(
            "Counter",
            "tls",
            "state_set",
            json!({"key": "k", "value": "over tls"}),
        )
        .await;
    assert!(written.is_ok(), "state write over TLS: {written:?}");
    let read = required
        .invoke_json("Counter", "tls", "state_get", json!({"key": "k"}))
        .await
        .expect("state read over TLS");
    assert_eq!(read, json!("over tls"));
    let stored = postgres
        .query("SELECT convert_from(value, 'UTF8') FROM rookery_state WHERE actor_id = 'tls'")
        .await;
    assert_eq!(stored, vec!["over tls".to_owned()], "the row in the server");

    let plaintext = start(format!("{base} sslmode=disable")).await;
    wait_store(&plaintext, false).await;

    let verified = start(format!(
        "{base} sslmode=verify-full sslrootcert={}",
        ca.join("ca.pem").display()
    ))
    .await;
    wait_store(&verified, true).await;

    let wrong_ca = start(format!(
        "{base} sslmode=verify-ca sslrootcert={}",
        other_ca.join("ca.pem").display()
    ))
    .await;
    wait_store(&wrong_ca, false).await;
    // The refusals are the server's and the host's, not a slow start: the good hosts are
    // still reachable.
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_store(&required, true).await;
    wait_store(&verified, true).await;
    let plaintext_body = wait_store(&plaintext, false).await;
    let wrong_ca_body = wait_store(&wrong_ca, false).await;
    // Refused by the server's pg_hba (no plaintext), and by the host's TLS check.
    assert!(plaintext_body.contains("db error"), "{plaintext_body}");
    assert!(wrong_ca_body.contains("TLS handshake"), "{wrong_ca_body}");
}

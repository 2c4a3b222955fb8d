//! Dapr's HTTP API on `rookery host`, as a Dapr client sees it: every route daprd serves for
//! actors, with daprd's statuses and error codes for bad input, and the API token. The actors
//! are the test app's (`support::app`), served over the gRPC app channel, so this checks the
//! API layer alone; `tests/dapr_sdk.rs` runs apps written with the Dapr Python SDK.
//!
//! Real processes: one `rookery placement`, `rookery host` on loopback with OS-chosen ports.

mod support;

use serde_json::json;
use support::app::{actor_type, TestApp, TestAppBuilder};
use support::cluster::Cluster;
use support::host_process::{start_placement, wait_for_routing, HostProcess, HostProcessBuilder};
use support::http::{request, HttpResponse};
use support::wait::{wait_until, DEADLINE};

async fn start(
    configure: impl FnOnce(HostProcessBuilder) -> HostProcessBuilder,
) -> (Cluster, HostProcess, TestApp) {
    start_with_app(configure, |app| app).await
}

async fn start_with_app(
    configure: impl FnOnce(HostProcessBuilder) -> HostProcessBuilder,
    configure_app: impl FnOnce(TestAppBuilder) -> TestAppBuilder,
) -> (Cluster, HostProcess, TestApp) {
    let cluster = start_placement(1).await;
    let host = configure(HostProcess::builder(cluster.addr_list())).start();
    host.wait_ready().await;
    let app = configure_app(TestApp::builder(&host.grpc_addr))
        .serve(actor_type("Counter"))
        .start();
    assert_eq!(app.wait_registered().await, host.id);
    wait_for_routing(&cluster, &[&host], &["Counter"]).await;
    (cluster, host, app)
}

async fn call(host: &HostProcess, method: &str, path: &str, body: &[u8]) -> HttpResponse {
    request(
        host.http_port,
        method,
        path,
        &[("content-type", "application/json")],
        body,
    )
    .await
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Asserts a Dapr error answer.
fn assert_dapr_error(response: &HttpResponse, status: u16, code: &str, what: &str) {
    assert_eq!(response.status, status, "{what}: {}", response.text());
    assert_eq!(response.error_code(), code, "{what}: {}", response.text());
    assert!(
        response.json()["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: a message: {}",
        response.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actor_routes_answer_as_daprd_does() {
    let (_cluster, host, _app) = start(|h| h.max_request_size_mb(1).app_id("dapr-http")).await;

    // Health: 204 once the host can route.
    for path in ["/v1.0/healthz", "/v1.0/healthz/outbound"] {
        let response = call(&host, "GET", path, b"").await;
        assert_eq!(response.status, 204, "{path}: {}", response.text());
        assert!(response.body.is_empty(), "{path}");
    }

    // Method calls: any verb, body passed through, the actor's bytes back.
    let response = call(
        &host,
        "POST",
        "/v1.0/actors/Counter/c1/method/increment",
        br#"{"by":2}"#,
    )
    .await;
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "2"),
        "POST"
    );
    for verb in ["PUT", "GET", "DELETE"] {
        let response = call(&host, verb, "/v1.0/actors/Counter/c1/method/get", b"").await;
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "2"),
            "{verb}"
        );
    }
    let response = call(
        &host,
        "PUT",
        "/v1.0/actors/Counter/c2/method/echo",
        b"\x00raw\xffbytes",
    )
    .await;
    assert_eq!(response.body, b"\x00raw\xffbytes", "byte for byte");

    // An unknown type, a bad id, an oversized body.
    let response = call(&host, "POST", "/v1.0/actors/NoSuchType/x/method/get", b"").await;
    assert_dapr_error(&response, 500, "ERR_ACTOR_INVOKE_METHOD", "unknown type");
    let response = call(&host, "POST", "/v1.0/actors/Counter/a%23b/method/get", b"").await;
    assert_dapr_error(&response, 400, "ERR_BAD_REQUEST", "an id with #");
    let big = vec![b'x'; 2 * 1024 * 1024];
    let response = call(&host, "POST", "/v1.0/actors/Counter/c1/method/echo", &big).await;
    assert_dapr_error(
        &response,
        413,
        "ERR_BODY_READ",
        "2 MiB over --max-request-size 1",
    );
    host.assert_alive();

    // State: a transaction of an actor active here, raw JSON back, 204 when missing.
    let transaction = json!([
        {"operation": "upsert", "request": {"key": "greeting", "value": {"hello": "world"}}},
        {"operation": "upsert", "request": {"key": "short", "value": 1, "metadata": {"ttlInSeconds": "3600"}}},
        {"operation": "delete", "request": {"key": "gone"}},
    ]);
    let response = call(
        &host,
        "PUT",
        "/v1.0/actors/Counter/c1/state",
        transaction.to_string().as_bytes(),
    )
    .await;
    assert_eq!(response.status, 204, "transaction: {}", response.text());
    let response = call(&host, "GET", "/v1.0/actors/Counter/c1/state/greeting", b"").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json(), json!({"hello": "world"}));
    let response = call(
        &host,
        "GET",
        "/v1.0/actors/Counter/c1/state/never-written",
        b"",
    )
    .await;
    assert_eq!(
        (response.status, response.body.len()),
        (204, 0),
        "missing key: never 404"
    );
    let response = call(
        &host,
        "POST",
        "/v1.0/actors/Counter/not-active/state",
        transaction.to_string().as_bytes(),
    )
    .await;
    assert_dapr_error(
        &response,
        400,
        "ERR_ACTOR_INSTANCE_MISSING",
        "an actor not active here",
    );
    let response = call(&host, "PUT", "/v1.0/actors/Counter/c1/state", b"[{not json").await;
    assert_dapr_error(
        &response,
        400,
        "ERR_MALFORMED_REQUEST",
        "malformed transaction",
    );
    let response = call(
        &host,
        "PUT",
        "/v1.0/actors/Counter/c1/state",
        br#"[{"operation":"merge","request":{"key":"k"}}]"#,
    )
    .await;
    assert_dapr_error(
        &response,
        500,
        "ERR_ACTOR_STATE_TRANSACTION_SAVE",
        "unknown operation",
    );

    // Reminders: create, read back as registered, conflicts, bad schedules, delete.
    let reminder = "/v1.0/actors/Counter/c1/reminders/nightly";
    let body = json!({"dueTime": "1h", "period": "0h0m30s0ms0\u{3bc}s", "data": "aGVsbG8="});
    let response = call(&host, "PUT", reminder, body.to_string().as_bytes()).await;
    assert_eq!(response.status, 204, "create reminder: {}", response.text());
    let response = call(&host, "GET", reminder, b"").await;
    assert_eq!(response.status, 200, "{}", response.text());
    let got = response.json();
    assert_eq!(got["actorID"], "c1");
    assert_eq!(got["actorType"], "Counter");
    assert_eq!(got["data"], "aGVsbG8=", "data echoed as registered");
    assert_eq!(got["period"], "30s");
    let again = json!({"dueTime": "1h", "overwrite": false});
    let response = call(&host, "POST", reminder, again.to_string().as_bytes()).await;
    assert_dapr_error(
        &response,
        409,
        "ERR_ACTOR_REMINDER_ALREADY_EXISTS",
        "overwrite false",
    );
    let response = call(
        &host,
        "PUT",
        "/v1.0/actors/Counter/c1/reminders/bad",
        br#"{"dueTime":"soon"}"#,
    )
    .await;
    assert_dapr_error(&response, 500, "ERR_ACTOR_REMINDER_CREATE", "a bad dueTime");
    let response = call(
        &host,
        "PUT",
        "/v1.0/actors/Counter/c1/reminders/bad",
        b"{not json",
    )
    .await;
    assert_dapr_error(
        &response,
        400,
        "ERR_MALFORMED_REQUEST",
        "a malformed reminder",
    );
    let response = call(
        &host,
        "PUT",
        "/v1.0/actors/Elsewhere/c1/reminders/r",
        br#"{"dueTime":"1h"}"#,
    )
    .await;
    assert_dapr_error(
        &response,
        403,
        "ERR_ACTOR_REMINDER_NON_HOSTED",
        "a type not served here",
    );
    let response = call(&host, "DELETE", reminder, b"").await;
    assert_eq!(response.status, 204, "delete reminder: {}", response.text());
    let response = call(&host, "GET", reminder, b"").await;
    assert_dapr_error(
        &response,
        404,
        "ERR_ACTOR_REMINDER_NOT_FOUND",
        "a deleted reminder",
    );

    // Timers: only for an actor active here; deleting never fails.
    let timer = json!({"dueTime": "1h", "callback": "tick", "data": {"n": 1}});
    let response = call(
        &host,
        "POST",
        "/v1.0/actors/Counter/c1/timers/t1",
        timer.to_string().as_bytes(),
    )
    .await;
    assert_eq!(response.status, 204, "create timer: {}", response.text());
    let response = call(
        &host,
        "POST",
        "/v1.0/actors/Counter/not-active/timers/t1",
        timer.to_string().as_bytes(),
    )
    .await;
    assert_dapr_error(
        &response,
        500,
        "ERR_ACTOR_TIMER_CREATE",
        "a timer of an actor not active here",
    );
    for path in [
        "/v1.0/actors/Counter/c1/timers/t1",
        "/v1.0/actors/Counter/c1/timers/never",
    ] {
        let response = call(&host, "DELETE", path, b"").await;
        assert_eq!(response.status, 204, "{path}: {}", response.text());
    }

    // Metadata: the app id and the active actors by type.
    let response = call(&host, "GET", "/v1.0/metadata", b"").await;
    assert_eq!(response.status, 200);
    let metadata = response.json();
    assert_eq!(metadata["id"], "dapr-http");
    let counter = metadata["actors"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["type"] == "Counter").cloned())
        .unwrap_or_else(|| panic!("Counter among the actors: {metadata}"));
    assert!(
        counter["count"].as_u64().is_some_and(|n| n >= 2),
        "{metadata}"
    );
    assert_eq!(
        metadata["actorRuntime"]["placement"],
        "placement: connected"
    );
    host.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_api_token_only_health_needs_none() {
    let (_cluster, host, _app) = start_with_app(
        |h| h.arg("--api-token").arg("s3cret"),
        // The app's stream to the host's AppChannel needs the token too.
        |app| app.api_token("s3cret"),
    )
    .await;
    let without = call(&host, "GET", "/v1.0/metadata", b"").await;
    assert_eq!(
        (without.status, without.text().trim()),
        (401, "invalid api token")
    );
    let wrong = request(
        host.http_port,
        "POST",
        "/v1.0/actors/Counter/c1/method/get",
        &[("dapr-api-token", "guess")],
        b"",
    )
    .await
    .expect("answer");
    assert_eq!(wrong.status, 401);
    let with = request(
        host.http_port,
        "POST",
        "/v1.0/actors/Counter/c1/method/get",
        &[("dapr-api-token", "s3cret")],
        b"",
    )
    .await
    .expect("answer");
    assert_eq!(
        (with.status, with.text().as_str()),
        (200, "0"),
        "{}",
        with.text()
    );
    for path in ["/v1.0/healthz", "/v1.0/healthz/outbound"] {
        let response = call(&host, "GET", path, b"").await;
        assert_eq!(response.status, 204, "{path} is exempt");
    }
    // The token never reaches the logs.
    wait_until("the host to log its start", DEADLINE, || async {
        if host.log().contains("host started") {
            Ok(())
        } else {
            Err("not yet".to_owned())
        }
    })
    .await;
    let logged = host.log();
    let leaked = logged
        .lines()
        .filter(|l| !l.starts_with("=====")) // the harness's own line: the command it ran
        .find(|l| l.contains("s3cret"));
    assert_eq!(leaked, None, "the token is not logged");
}

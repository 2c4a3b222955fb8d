//! Single-host behaviour of `rookery host`: idle collection, bad input, application errors,
//! call timeouts, and the exit codes of `rookery invoke`.
//!
//! Each test runs a real `rookery placement` and `rookery host` on loopback with OS-chosen
//! ports, and an in-test app ([`support::app::TestApp`]) speaking the public `AppChannel`
//! stream. Calls go through the public `Actors` gRPC API or the `rookery invoke` CLI.

mod support;

use std::time::{Duration, Instant};

use rookery_core::limits::MAX_ACTOR_TYPE_BYTES;
use rookery_proto::v1::actors_client::ActorsClient;
use rookery_proto::v1::{ActorTypeOptions, InvokeRequest};
use serde_json::json;
use support::app::{actor_type, TestApp};
use support::cluster::Cluster;
use support::host_process::{
    http_get, is_application_error, start_placement, wait_for_routing, HostProcess,
    HostProcessBuilder,
};
use support::wait::{wait_until, DEADLINE};
use tonic::Code;

/// Idle timeout of the idle-collection tests.
const IDLE: Duration = Duration::from_millis(1000);

/// Slack for the idle timer: a deactivation earlier than `IDLE - EARLY_SLACK` after the last
/// call is a bug (timer and clock granularity account for the slack).
const EARLY_SLACK: Duration = Duration::from_millis(150);

/// Call timeout of the type whose method never answers.
const SLOW_CALL_TIMEOUT: Duration = Duration::from_millis(1500);

/// Placement, one host built by `configure`, one app serving `types`, routing ready.
async fn start(
    configure: impl FnOnce(HostProcessBuilder) -> HostProcessBuilder,
    types: Vec<ActorTypeOptions>,
) -> (Cluster, HostProcess, TestApp) {
    let cluster = start_placement(1).await;
    let host = configure(HostProcess::builder(cluster.addr_list())).start();
    host.wait_ready().await;
    let names: Vec<String> = types.iter().map(|t| t.actor_type.clone()).collect();
    let mut app = TestApp::builder(&host.grpc_addr);
    for options in types {
        app = app.serve(options);
    }
    let app = app.start();
    assert_eq!(app.wait_registered().await, host.id);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    wait_for_routing(&cluster, &[&host], &names).await;
    (cluster, host, app)
}

/// Waits until the app has heard `n` deactivations of the actor and the host no longer lists
/// it; checks it was idle for the idle timeout first.
async fn wait_collected(host: &HostProcess, app: &TestApp, actor_type: &str, id: &str, n: u32) {
    let heard = app
        .wait_for(
            format!("deactivation #{n} of {actor_type}/{id}"),
            |record| {
                let actor = record.actor(actor_type, id);
                if actor.deactivations >= n {
                    Ok(actor)
                } else {
                    Err(format!("{actor:?}"))
                }
            },
        )
        .await;
    assert_eq!(heard.deactivations, n, "deactivated once per activation");
    let idle_for = heard.last_deactivated_at.expect("deactivated")
        - heard.last_reply_at.expect("it answered a call");
    assert!(
        idle_for >= IDLE - EARLY_SLACK,
        "{actor_type}/{id} was deactivated {idle_for:?} after its last call, before its idle \
         timeout of {IDLE:?}"
    );
    wait_until(
        format!("{actor_type}/{id} gone from ListActivations"),
        DEADLINE,
        || async {
            let ids = host
                .active_ids(actor_type)
                .await
                .map_err(|e| e.to_string())?;
            if ids.iter().any(|listed| listed == id) {
                Err(format!("still listed: {ids:?}"))
            } else {
                Ok(())
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_actors_are_collected_by_the_per_type_timeout() {
    // The host scans often; only the type's own option shortens its idle timeout.
    let quick = ActorTypeOptions {
        idle_timeout_ms: Some(IDLE.as_millis() as u64),
        ..actor_type("Quick")
    };
    let (_cluster, host, app) = start(
        |host| host.config_yaml("actors:\n  scan_interval_ms: 200\n"),
        vec![quick, actor_type("Counter")],
    )
    .await;

    let value = host
        .invoke_json("Quick", "q1", "increment", json!({ "by": 5 }))
        .await
        .expect("increment Quick/q1");
    assert_eq!(value, json!(5));
    host.invoke_json("Counter", "c1", "increment", json!({ "by": 1 }))
        .await
        .expect("increment Counter/c1");

    wait_collected(&host, &app, "Quick", "q1", 1).await;
    // Counter keeps the host's default idle timeout (an hour): still active, never told.
    assert_eq!(host.active_ids("Counter").await.expect("list"), vec!["c1"]);
    assert_eq!(app.actor("Counter", "c1").deactivations, 0);

    // The next call activates it again, from scratch (values live in the app's memory).
    let value = host
        .invoke_json("Quick", "q1", "get", json!(null))
        .await
        .expect("get Quick/q1 after collection");
    assert_eq!(value, json!(0), "a reactivated counter starts over");
    assert_eq!(app.actor("Quick", "q1").activations, 2);
    assert_eq!(host.active_ids("Quick").await.expect("list"), vec!["q1"]);
    app.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_actors_are_collected_by_the_config_file_timeout() {
    let (_cluster, host, app) = start(
        |host| {
            host.config_yaml(format!(
                "actors:\n  idle_timeout_ms: {}\n  scan_interval_ms: 200\n",
                IDLE.as_millis()
            ))
        },
        vec![actor_type("Counter")],
    )
    .await;
    for id in ["c1", "c2"] {
        host.invoke_json("Counter", id, "increment", json!({ "by": 3 }))
            .await
            .expect("increment");
    }
    for id in ["c1", "c2"] {
        wait_collected(&host, &app, "Counter", id, 1).await;
    }
    let value = host
        .invoke_json("Counter", "c1", "increment", json!({ "by": 1 }))
        .await
        .expect("increment after collection");
    assert_eq!(value, json!(1), "a reactivated counter starts over");
    assert_eq!(app.actor("Counter", "c1").activations, 2);
    // Collected again once idle: the timer restarts with each activation.
    wait_collected(&host, &app, "Counter", "c1", 2).await;
    app.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_calls_get_precise_errors_and_the_host_keeps_serving() {
    let slow = ActorTypeOptions {
        call_timeout_ms: Some(SLOW_CALL_TIMEOUT.as_millis() as u64),
        ..actor_type("Slow")
    };
    let (_cluster, host, app) = start(
        |host| host.max_request_size_mb(1),
        vec![actor_type("Counter"), slow],
    )
    .await;

    // Unknown type: NOT_FOUND naming it.
    let error = host
        .invoke("NoSuchType", "x", "get", Vec::new())
        .await
        .expect_err("unknown type");
    assert_eq!(error.code(), Code::NotFound, "{error:?}");
    assert!(error.message().contains("NoSuchType"), "{error:?}");

    // Empty or over-long type, id, method: INVALID_ARGUMENT.
    let long_type = "T".repeat(MAX_ACTOR_TYPE_BYTES + 1);
    let long_id = "i".repeat(10_000);
    let long_method = "m".repeat(10_000);
    let invalid = [
        ("", "x", "get", "empty type"),
        ("Counter", "", "get", "empty id"),
        ("Counter", "x", "", "empty method"),
        (long_type.as_str(), "x", "get", "over-long type"),
        ("Counter", long_id.as_str(), "get", "over-long id"),
        ("Counter", "x", long_method.as_str(), "over-long method"),
    ];
    for (actor_type, id, method, what) in invalid {
        let error = host
            .invoke(actor_type, id, method, Vec::new())
            .await
            .expect_err(what);
        assert_eq!(error.code(), Code::InvalidArgument, "{what}: {error:?}");
    }

    // Reserved metadata from a client: INVALID_ARGUMENT naming the key. (A client's
    // `rookery-wake` once turned a call into a no-op that answered empty.)
    for key in ["rookery-wake", "rookery-moved"] {
        let mut request = tonic::Request::new(InvokeRequest {
            actor_type: "Counter".into(),
            actor_id: "reserved".into(),
            method: "increment".into(),
            data: b"{}".to_vec(),
            metadata: [(key.to_owned(), "1".to_owned())].into(),
        });
        request.set_timeout(Duration::from_secs(30));
        let error = ActorsClient::new(host.channel())
            .invoke(request)
            .await
            .expect_err(key);
        assert_eq!(error.code(), Code::InvalidArgument, "{key}: {error:?}");
        assert!(error.message().contains(key), "{key}: {error:?}");
    }

    // A payload over --max-request-size 1 (MB): RESOURCE_EXHAUSTED, and the host carries on.
    let error = host
        .invoke("Counter", "big", "echo", vec![b'x'; 2 * 1024 * 1024])
        .await
        .expect_err("2 MiB payload");
    assert_eq!(error.code(), Code::ResourceExhausted, "{error:?}");
    host.assert_alive();
    let half = vec![b'y'; 512 * 1024];
    let echoed = host
        .invoke("Counter", "big", "echo", half.clone())
        .await
        .expect("a payload under the limit");
    assert!(
        echoed == half,
        "echoed {} bytes, sent {}",
        echoed.len(),
        half.len()
    );

    // The actor's own error: UNKNOWN, marked as an application error, with its message.
    let error = host
        .invoke_json("Counter", "e", "fail", json!({ "message": "boom 42" }))
        .await
        .expect_err("app error");
    assert_eq!(error.code(), Code::Unknown, "{error:?}");
    assert!(
        is_application_error(&error),
        "metadata rookery-error: application: {error:?}"
    );
    assert!(error.message().contains("boom 42"), "{error:?}");
    let value = host
        .invoke_json("Counter", "e", "increment", json!({ "by": 2 }))
        .await
        .expect("the actor still works after its error");
    assert_eq!(value, json!(2));

    // An app that never answers: DEADLINE_EXCEEDED at the type's call timeout, and the turn is
    // released for the next call.
    let started = Instant::now();
    let error = host
        .invoke("Slow", "h", "hang", Vec::new())
        .await
        .expect_err("a call the app never answers");
    let took = started.elapsed();
    assert_eq!(error.code(), Code::DeadlineExceeded, "{error:?}");
    assert!(
        took >= SLOW_CALL_TIMEOUT - Duration::from_millis(100) && took < Duration::from_secs(15),
        "timed out after {took:?}, want about {SLOW_CALL_TIMEOUT:?}"
    );
    let value = host
        .invoke_json("Slow", "h", "increment", json!({ "by": 1 }))
        .await
        .expect("the next call on the actor that hung");
    assert_eq!(value, json!(1), "same activation, turn released");
    assert_eq!(app.actor("Slow", "h").activations, 1);

    // Still healthy and measured.
    host.assert_alive();
    let (code, body) = host.healthz().await.expect("healthz");
    assert_eq!(code, 200, "{body}");
    let (code, metrics) = http_get(host.metrics_port, "/metrics")
        .await
        .expect("metrics");
    assert_eq!(code, 200, "{metrics}");
    assert!(!metrics.trim().is_empty(), "metrics are exposed");
    app.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rookery_invoke_prints_the_body_or_the_error() {
    let (_cluster, host, _app) = start(|host| host, vec![actor_type("Counter")]).await;

    let out = host
        .cli_invoke("Counter/cli", "increment", &["--data", r#"{"by":5}"#])
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout.trim(), "5", "{out:?}");

    let file = host.dir().join("by.json");
    std::fs::write(&file, r#"{"by":2}"#).expect("write data file");
    let at_file = format!("@{}", file.display());
    let out = host
        .cli_invoke("Counter/cli", "increment", &["--data", &at_file])
        .await;
    assert_eq!(out.code, Some(0), "--data @file: {out:?}");
    assert_eq!(out.stdout.trim(), "7", "{out:?}");

    let out = host.cli_invoke("Counter/cli", "get", &[]).await;
    assert_eq!((out.code, out.stdout.trim()), (Some(0), "7"), "{out:?}");

    // Errors: non-zero exit, the status code and message on stderr, nothing on stdout.
    let out = host.cli_invoke("Nope/x", "get", &[]).await;
    assert_ne!(out.code, Some(0), "{out:?}");
    let stderr = out.stderr.to_lowercase().replace(['_', ' '], "");
    assert!(stderr.contains("notfound"), "names the code: {out:?}");
    assert!(out.stderr.contains("Nope"), "names the type: {out:?}");
    assert!(out.stdout.trim().is_empty(), "{out:?}");

    let out = host
        .cli_invoke("Counter/cli", "fail", &["--data", r#"{"message":"kaput"}"#])
        .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("kaput"), "the app's message: {out:?}");

    let out = host.cli_invoke("Counter/", "get", &[]).await;
    assert_ne!(out.code, Some(0), "empty id: {out:?}");
    let out = host.cli_invoke("no-slash", "get", &[]).await;
    assert_ne!(out.code, Some(0), "actor without a type: {out:?}");
    assert!(!out.stderr.trim().is_empty(), "says why: {out:?}");
}

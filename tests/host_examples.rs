//! The shipped example apps, run against real hosts: the Rust `examples/counter.rs` against
//! `rookery up` (including reconnecting when it restarts), and the Python grpcio app of
//! `examples/python/` against `rookery host`.
//!
//! The Rust example is compiled into this test (its `run` is what its `main` calls), so the
//! test always exercises the current source; it still talks to `rookery up` over real gRPC.
//! The Python test needs `grpcio` and `grpcio-tools` importable by `python3`
//! (`pip install -r examples/python/requirements.txt`); without them it prints why and passes,
//! unless `ROOKERY_TEST_REQUIRE_PYTHON` is set (CI), when it fails.

mod support;

use std::time::Duration;

use serde_json::json;
use support::host_process::{http_get, start_placement, wait_for_routing, HostProcess};
use support::status::status_of;
use support::wait::{wait_until, DEADLINE};
use support::{free_port, rookery_bin, run_rookery, LoggedChild, RunOutput, TestDir};

// `main` and its flags are unused here: the test calls `run` directly.
#[allow(dead_code)]
#[path = "../examples/counter.rs"]
mod counter_example;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_counter_app_registers_and_serves_calls() {
    if support::python::skip_without(
        "grpc, grpc_tools",
        "examples/python/requirements.txt",
        "python_counter_app_registers_and_serves_calls",
    ) {
        return;
    }
    let cluster = start_placement(1).await;
    let host = HostProcess::builder(cluster.addr_list())
        .app_id("python")
        .start();
    host.wait_ready().await;

    // Stubs are generated into the test's dir, not the repo's `build/`.
    let dir = TestDir::new("rookery-python-app-");
    let app = LoggedChild::spawn(
        "python counter app",
        "python3",
        support::python::counter_app_args(
            &host.grpc_addr,
            "counter-python",
            &dir.path().join("stubs"),
        ),
        vec![("PYTHONUNBUFFERED".into(), "1".into())],
        dir.path().join("app.log"),
    );
    let wait_serving = async {
        app.assert_alive();
        wait_for_routing(&cluster, &[&host], &["Counter"]).await
    };
    let status = wait_serving.await;
    assert_eq!(
        status.host(&host.id).expect("host in status").app_id,
        "python"
    );
    wait_until("the app to log its registration", DEADLINE, || async {
        app.assert_alive();
        let log = app.log();
        let want = format!("serving Counter on host {}", host.id);
        if log.contains(&want) {
            Ok(())
        } else {
            Err(format!("no {want:?} in {log:?}"))
        }
    })
    .await;

    let call = |id: &'static str, method: &'static str, data: serde_json::Value| {
        let host = &host;
        let app = &app;
        async move {
            host.invoke_json("Counter", id, method, data)
                .await
                .unwrap_or_else(|e| panic!("Counter/{id}.{method}: {e}{}", app.dump_log()))
        }
    };
    assert_eq!(call("p1", "increment", json!({ "by": 3 })).await, json!(3));
    // No data: increments by 1.
    let body = host
        .invoke("Counter", "p1", "increment", Vec::new())
        .await
        .unwrap_or_else(|e| panic!("increment without data: {e}{}", app.dump_log()));
    assert_eq!(body, b"4");
    assert_eq!(
        call("p2", "increment", json!({ "by": -2 })).await,
        json!(-2)
    );
    assert_eq!(call("p1", "get", json!(null)).await, json!(4));
    let out = host.cli_invoke("Counter/p1", "get", &[]).await;
    assert_eq!((out.code, out.stdout.trim()), (Some(0), "4"), "{out:?}");

    let error = host
        .invoke("Counter", "p1", "explode", Vec::new())
        .await
        .expect_err("unknown method");
    assert!(
        support::host_process::is_application_error(&error) && error.message().contains("explode"),
        "the app's error reaches the caller: {error:?}"
    );
    // The value is in the actor's state (the host's sled store): a crash of the host loses
    // nothing acknowledged, and the app serves it again once it has reconnected.
    host.kill9();
    host.restart();
    host.wait_ready().await;
    let value = wait_until("the app to serve Counter again", DEADLINE, || async {
        app.assert_alive();
        host.invoke_json("Counter", "p1", "get", json!(null))
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(
        value,
        json!(4),
        "the stored value survived kill -9{}",
        app.dump_log()
    );

    // A paused app stops answering the host's HTTP/2 pings: the host drops its stream and
    // withdraws its type, so callers are told at once instead of waiting on a hung app.
    app.signal("STOP");
    wait_until(
        "the paused app's type to be withdrawn",
        DEADLINE,
        || async {
            match host.invoke("Counter", "p1", "get", Vec::new()).await {
                Err(status) if status.code() == tonic::Code::NotFound => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    // Resumed, it finds its stream broken, reconnects and serves the type again.
    app.signal("CONT");
    let value = wait_until(
        "the resumed app to serve Counter again",
        DEADLINE,
        || async {
            host.invoke_json("Counter", "p1", "get", json!(null))
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await;
    assert_eq!(value, json!(4), "{}", app.dump_log());
    app.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_counter_example_serves_rookery_up_and_reconnects() {
    let dir = TestDir::new("rookery-up-");
    let (placement_port, grpc_port, http_port) = (free_port(), free_port(), free_port());
    let placement = format!("127.0.0.1:{placement_port}");
    let grpc = format!("127.0.0.1:{grpc_port}");
    let up = LoggedChild::spawn(
        "rookery up",
        rookery_bin(),
        [
            "up",
            "--data-dir",
            &dir.path().join("data").display().to_string(),
            "--placement-port",
            &placement_port.to_string(),
            "--grpc-port",
            &grpc_port.to_string(),
            "--http-port",
            &http_port.to_string(),
            "--metrics-port",
            &free_port().to_string(),
        ]
        .map(String::from)
        .to_vec(),
        vec![],
        dir.path().join("up.log"),
    );
    let wait_healthy = || async {
        wait_until(
            "rookery up to answer /healthz with 200",
            DEADLINE,
            || async {
                up.assert_alive();
                match http_get(http_port, "/healthz").await? {
                    (200, _) => Ok(()),
                    (code, body) => Err(format!("{code} {body:?}")),
                }
            },
        )
        .await
    };
    wait_healthy().await;
    // It says what listens where, and how to call an actor.
    let banner = up.log();
    for want in [&placement, &grpc, &http_port.to_string(), "rookery invoke"] {
        assert!(banner.contains(want), "no {want:?} in {banner}");
    }

    let example = tokio::spawn({
        let grpc = grpc.clone();
        async move { counter_example::run(&grpc, "counter-example").await }
    });
    let wait_counter_served = || async {
        wait_until(
            "the example's Counter in rookery status",
            DEADLINE,
            || async {
                up.assert_alive();
                let status = status_of(&placement).await.map_err(|e| e.to_string())?;
                let serving = status
                    .hosts
                    .iter()
                    .any(|h| h.actor_types.iter().any(|t| t == "Counter"));
                if serving {
                    Ok(())
                } else {
                    Err(format!("status: {status}"))
                }
            },
        )
        .await
    };
    wait_counter_served().await;

    // Called as a user would, with `rookery invoke` (pointed at this up's gRPC port).
    let out = invoke(&grpc, &["Counter/c1", "increment", "--data", r#"{"by":2}"#]).await;
    assert_eq!(
        (out.code, out.stdout.trim()),
        (Some(0), "2"),
        "{out:?}{}",
        up.dump_log()
    );
    let out = invoke(&grpc, &["Counter/c1", "increment"]).await;
    assert_eq!((out.code, out.stdout.trim()), (Some(0), "3"), "{out:?}");
    let out = invoke(&grpc, &["Counter/c1", "get"]).await;
    assert_eq!((out.code, out.stdout.trim()), (Some(0), "3"), "{out:?}");
    let out = invoke(&grpc, &["Counter/c1", "reset"]).await;
    assert_ne!(out.code, Some(0), "unknown method: {out:?}");
    assert!(
        out.stderr.contains("reset"),
        "the example's message: {out:?}"
    );

    // Restart the whole cluster: the example reconnects and serves again. The value is in the
    // actor's state, in `rookery up`'s sled store, so it survives.
    let exit = up.stop().await;
    assert!(
        exit.success(),
        "rookery up exits cleanly on SIGTERM: {exit}"
    );
    up.start();
    wait_healthy().await;
    // Placement's persisted table may name the type before the example is back, so the
    // condition is a call that succeeds.
    let value = wait_until("the example to serve Counter again", DEADLINE, || async {
        up.assert_alive();
        let out = invoke(&grpc, &["Counter/c1", "get"]).await;
        match out.code {
            Some(0) => Ok(out.stdout.trim().to_owned()),
            _ => Err(format!("{out:?}")),
        }
    })
    .await;
    assert_eq!(value, "3", "the new activation reads the stored value");
    let out = invoke(&grpc, &["Counter/c1", "increment", "--data", r#"{"by":5}"#]).await;
    assert_eq!((out.code, out.stdout.trim()), (Some(0), "8"), "{out:?}");
    // Any client may read the stored value.
    let out = run_rookery(
        &["state", "get", "Counter/c1", "count", "--host", &grpc],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!((out.code, out.stdout.trim()), (Some(0), "8"), "{out:?}");
    let out = run_rookery(
        &["state", "get", "Counter/nobody", "count", "--host", &grpc],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("no value"), "{out:?}");

    assert!(!example.is_finished(), "the example serves forever");
    example.abort();
}

/// `rookery invoke <args> --host <grpc>`, run to completion.
async fn invoke(grpc: &str, args: &[&str]) -> RunOutput {
    let mut all = vec!["invoke"];
    all.extend_from_slice(args);
    all.extend(["--host", grpc]);
    run_rookery(&all, Duration::from_secs(60)).await
}

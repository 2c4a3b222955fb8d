//! Dapr's gRPC actor API (`dapr.proto.runtime.v1.Dapr`) on a host's gRPC port, called by a
//! grpcio client as Dapr SDKs call daprd's 50001.
//!
//! A real `rookery placement` and `rookery host` run on loopback with OS-chosen ports, with the
//! in-test app ([`support::app::TestApp`]) serving `Counter` over the AppChannel; a second host
//! (its own placement) runs with `--api-token`. `tests/python/dapr_grpc_client.py` makes the
//! calls and prints one JSON line per call (code, message, answer); this test checks them, and
//! checks on the app's side that the reminder and timer registered over gRPC fire.
//!
//! The client's stubs are generated from the repo's `proto/dapr/**`; when the `dapr` Python
//! SDK is installed it runs a second time with the SDK's own stubs, which checks Rookery's
//! `.proto` files against Dapr's on the wire. The test needs `grpcio` and `grpcio-tools`
//! importable by `python3`; without them it prints why and passes, unless
//! `ROOKERY_TEST_REQUIRE_PYTHON` is set (CI), when it fails.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use support::app::{actor_type, TestApp};
use support::host_process::{http_get, start_placement, wait_for_routing, HostProcess};
use support::TestDir;

/// The API token of the secured host.
const TOKEN: &str = "s3cret-token";

/// Bound on one run of the Python client: every call it makes is bounded by 30 s, so this only
/// ends a client that hangs outside a call.
const CLIENT_DEADLINE: Duration = Duration::from_secs(180);

fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// One run of the client: its lines by step.
struct Run {
    steps: BTreeMap<String, Value>,
    output: String,
}

impl Run {
    fn step(&self, name: &str) -> &Value {
        self.steps
            .get(name)
            .unwrap_or_else(|| panic!("no step {name:?} in the client's output:\n{}", self.output))
    }

    /// Asserts the step's gRPC code (and, when given, that its message contains `details`).
    fn expect(&self, name: &str, code: &str, details: &str) -> &Value {
        let step = self.step(name);
        assert_eq!(
            step["code"], code,
            "{name}: {step}\nclient output:\n{}",
            self.output
        );
        let message = step["details"].as_str().unwrap_or_default();
        assert!(
            message.contains(details),
            "{name}: message {message:?} lacks {details:?}"
        );
        step
    }

    fn ok_data(&self, name: &str) -> String {
        self.expect(name, "OK", "")["data"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no data in {}", self.step(name)))
            .to_owned()
    }
}

/// Runs the client to completion against `target` (and `secured`, the host with [`TOKEN`]).
async fn run_client(
    dir: &TestDir,
    target: &str,
    secured: Option<&str>,
    actor_id: &str,
    sdk_stubs: bool,
) -> Run {
    let mut command = tokio::process::Command::new("python3");
    command
        .arg(repo_path("tests/python/dapr_grpc_client.py"))
        .args(["--target", target, "--actor-id", actor_id])
        .arg("--stubs-dir")
        .arg(dir.path().join(format!("stubs-{actor_id}")));
    if let Some(secured) = secured {
        command.args(["--secured-target", secured, "--token", TOKEN]);
    }
    if sdk_stubs {
        command.arg("--sdk-stubs");
    }
    let child = command
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A client still running at the deadline is dropped below; this kills it.
        .kill_on_drop(true)
        .spawn()
        .expect("spawn python3");
    let out = tokio::time::timeout(CLIENT_DEADLINE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the Python client is still running after {CLIENT_DEADLINE:?}"))
        .expect("wait for the Python client");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let output = format!(
        "--- stdout\n{stdout}--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the Python client failed ({}):\n{output}",
        out.status
    );
    let steps = stdout
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("client line {line:?} is not JSON ({e}):\n{output}"));
            let step = value["step"].as_str().expect("step name").to_owned();
            (step, value)
        })
        .collect();
    Run { steps, output }
}

/// What every run checks on the main host; `active`: how many Counters are active by its end.
fn check_main_run(run: &Run, active: u64) {
    assert_eq!(run.ok_data("invoke_increment"), "3");
    assert_eq!(run.ok_data("invoke_reentrant"), "5");
    assert_eq!(run.ok_data("invoke_get"), "5");
    run.expect("invoke_bad_id", "INVALID_ARGUMENT", "invalid actorId");
    run.expect("invoke_too_large", "RESOURCE_EXHAUSTED", "");
    run.expect("invoke_garbage", "INTERNAL", "decode");

    run.expect("txn_upsert", "OK", "");
    assert_eq!(run.ok_data("get_k1"), r#"{"a": 1}"#, "the Any's raw value");
    assert_eq!(run.ok_data("get_k2"), r#""two""#);
    run.expect("txn_delete", "OK", "");
    assert_eq!(run.ok_data("get_k1_deleted"), "", "deleted: OK, no data");
    assert_eq!(run.ok_data("get_missing"), "", "missing key: OK, no data");
    run.expect(
        "txn_unsupported",
        "UNIMPLEMENTED",
        "operation type merge not supported",
    );
    run.expect("txn_not_active", "INTERNAL", "actor instance is missing");

    run.expect("reminder_ping", "OK", "");
    run.expect("reminder_later", "OK", "");
    run.expect(
        "reminder_later_again",
        "ALREADY_EXISTS",
        "actor reminder already exists",
    );
    run.expect("reminder_later_overwrite", "OK", "");
    run.expect("unregister_later", "OK", "");
    run.expect("reminder_later_after_delete", "OK", "");
    run.expect("unregister_later_again", "OK", "");
    run.expect("unregister_missing", "OK", "");
    run.expect("reminder_data", "OK", "");
    run.expect(
        "reminder_unhosted",
        "PERMISSION_DENIED",
        "only possible on hosted actor types",
    );
    run.expect(
        "reminder_empty_name",
        "INVALID_ARGUMENT",
        "reminder name cannot be empty",
    );

    run.expect("timer_tick", "OK", "");
    run.expect("timer_later", "OK", "");
    run.expect("unregister_timer_later", "OK", "");
    run.expect("unregister_timer_missing", "OK", "");
    run.expect("timer_not_active", "INTERNAL", "actor instance is missing");

    let metadata = run.expect("metadata", "OK", "");
    assert_eq!(metadata["id"], "dapr-grpc-test", "{metadata}");
    assert_eq!(
        metadata["actors"],
        json!({ "Counter": active }),
        "{metadata}"
    );
    assert_eq!(metadata["active_actors"], metadata["actors"], "{metadata}");
    assert_eq!(metadata["runtime_status"], "RUNNING", "{metadata}");
    assert_eq!(metadata["host_ready"], true, "{metadata}");
    assert_eq!(metadata["placement"], "placement: connected", "{metadata}");
    assert!(
        metadata["runtime_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("rookery-")),
        "{metadata}"
    );

    run.expect("unimplemented_get_state", "UNIMPLEMENTED", "");
}

fn check_secured_run(run: &Run) {
    run.expect(
        "secured_no_token",
        "UNAUTHENTICATED",
        "missing api token in request metadata",
    );
    run.expect(
        "secured_wrong_token",
        "UNAUTHENTICATED",
        "authentication error: api token mismatch",
    );
    let with_token = run.expect("secured_with_token", "OK", "");
    assert_eq!(with_token["id"], "dapr-grpc-secured");
    run.expect(
        "secured_invoke_no_token",
        "UNAUTHENTICATED",
        "missing api token",
    );
}

/// Waits until the app heard the reminder and the timer the client registered on `actor_id`.
async fn wait_fired(app: &TestApp, actor_id: &str) {
    app.wait_for(
        format!("reminder py-ping and timer py-tick of Counter/{actor_id}"),
        |record| {
            let actor = record.actor("Counter", actor_id);
            let reminded = actor.reminders.iter().any(|(name, _, _)| name == "py-ping");
            let ticked = actor
                .timers
                .iter()
                .any(|(name, callback, _)| name == "py-tick" && callback == "onTick");
            if reminded && ticked {
                Ok(())
            } else {
                Err(format!(
                    "reminders {:?}, timers {:?}",
                    actor.reminders, actor.timers
                ))
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpcio_client_calls_the_dapr_actor_rpcs() {
    if support::python::skip_without(
        "grpc, grpc_tools",
        "examples/python/requirements.txt",
        "a_grpcio_client_calls_the_dapr_actor_rpcs",
    ) {
        return;
    }
    let (cluster, secured_cluster) = tokio::join!(start_placement(1), start_placement(1));
    let host = HostProcess::builder(cluster.addr_list())
        .app_id("dapr-grpc-test")
        .start();
    let secured = HostProcess::builder(secured_cluster.addr_list())
        .app_id("dapr-grpc-secured")
        .arg("--api-token")
        .arg(TOKEN)
        .start();
    tokio::join!(host.wait_ready(), secured.wait_ready());
    let app = TestApp::builder(&host.grpc_addr)
        .app_id("dapr-grpc-test")
        .serve(actor_type("Counter"))
        .start();
    assert_eq!(app.wait_registered().await, host.id);
    wait_for_routing(&cluster, &[&host], &["Counter"]).await;

    let dir = TestDir::new("rookery-dapr-grpc-");
    let run = run_client(&dir, &host.grpc_addr, Some(&secured.grpc_addr), "g1", false).await;
    check_main_run(&run, 1);
    check_secured_run(&run);
    // The reentrancy id in the InvokeActor metadata is the call chain the app saw.
    let chains = app.record().call_chains;
    assert!(
        chains
            .iter()
            .any(|((t, id), chain)| t == "Counter" && id == "g1" && chain == "py-chain-g1"),
        "call chains heard: {chains:?}"
    );
    wait_fired(&app, "g1").await;
    // Reminder data sent as bytes is kept as daprd keeps it: a base64 JSON string.
    let path = "/v1.0/actors/Counter/g1/reminders/py-data";
    let (code, body) = http_get(host.http_port, path)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(code, 200, "GET {path}: {body}");
    let reminder: Value = serde_json::from_str(&body).expect("reminder JSON");
    assert_eq!(reminder["data"], "aGVsbG8=", "{reminder}");

    // The same calls with the Dapr SDK's own generated stubs: Dapr's field numbers.
    match support::python::cannot_import("dapr.proto.runtime.v1.dapr_pb2_grpc") {
        Some(why) => println!("skipping the run with the dapr SDK's stubs: {why}"),
        None => {
            let run = run_client(&dir, &host.grpc_addr, None, "s1", true).await;
            check_main_run(&run, 2);
            wait_fired(&app, "s1").await;
        }
    }

    app.assert_no_violations();
    host.assert_alive();
    secured.assert_alive();
}

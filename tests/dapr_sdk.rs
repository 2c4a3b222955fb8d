//! Conformance with daprd's actor building block, seen through the OFFICIAL Dapr Python SDK
//! (`dapr==1.19.0`, `dapr.ext.fastapi`): the example of `examples/dapr-python/` (a FastAPI
//! `DaprActor` service and an `ActorProxy` command-line client) run against real Rookery
//! processes exactly as it would run against daprd: the host reads the app's `GET
//! /dapr/config` and calls it over HTTP (`--app-port N --app-protocol http`), the client and
//! the app call the host's Dapr HTTP API (`DAPR_HTTP_PORT`).
//!
//! - [`python_sdk_counter_on_rookery_up`]: one `rookery up`: state round trip, separate state
//!   per id, a reminder and a timer that fire and stop once unregistered, idle deactivation
//!   (`DELETE /actors/...`) and reactivation with the state kept, an unknown method and an
//!   exception in a method giving daprd's `ERR_ACTOR_INVOKE_METHOD`.
//! - [`python_sdk_counter_on_three_hosts_with_postgres`]: three `rookery host`s, each with its
//!   own app, sharing a private PostgreSQL server as the state store; one host (and its app) is
//!   killed with SIGKILL between steps: its actors answer again from a surviving host, with
//!   their state, and the reminder keeps firing.
//!
//! The expectations are daprd's behaviour (its HTTP API's statuses, error codes and messages,
//! its app-channel calls), not whatever Rookery happens to do. Every wait is a condition polled with a generous
//! deadline; each client step is one `python3 client.py ...` run. The tests skip (and pass)
//! when `python3` cannot import the SDK, FastAPI and uvicorn, unless
//! `ROOKERY_TEST_REQUIRE_PYTHON` is set; the cluster test skips without PostgreSQL unless
//! `ROOKERY_TEST_REQUIRE_POSTGRES` is set.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::dapr_app::{skip_without_python, ClientError, DaprApp, DumpOnPanic, SdkClient};
use support::host_process::{http_get, start_placement, wait_for_routing, HostProcess};
use support::postgres::Postgres;
use support::wait::wait_until;
use support::{free_port, rookery_bin, LoggedChild, TestDir};

const TYPE: &str = "Counter";

/// Deadline for anything that involves Python processes starting, several client steps, or a
/// failover: generous, since CI runs this on 2 busy cores.
const SLOW: Duration = Duration::from_secs(120);

/// Period of the reminder and the timer the tests register.
const PERIOD: Duration = Duration::from_millis(1000);

/// How many firings a reminder or timer must show before the test unregisters it.
const FIRINGS: i64 = 3;

/// The host's `--config`: a short idle-scan interval, so that the app's short
/// `actorIdleTimeout` (4 s, from its `/dapr/config`) deactivates idle actors quickly.
const HOST_CONFIG: &str = "actors:\n  scan_interval_ms: 500\n";

/// The counters `GetCounts` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Counts {
    count: i64,
    reminder_count: i64,
    timer_count: i64,
    activations: i64,
}

/// The client side of the scenario: one `client.py` run per call.
struct Steps {
    client: SdkClient,
}

impl Steps {
    async fn call(&self, id: &str, method: &str, arg: Option<Value>) -> Result<Value, ClientError> {
        self.client.invoke(TYPE, id, method, arg).await
    }

    /// A call that must succeed; panics with `logs()` otherwise.
    async fn ok(
        &self,
        id: &str,
        method: &str,
        arg: Option<Value>,
        logs: &dyn Fn() -> String,
    ) -> Value {
        self.call(id, method, arg)
            .await
            .unwrap_or_else(|e| panic!("{e}{}", logs()))
    }

    async fn counts(&self, id: &str) -> Result<Counts, String> {
        let value = self
            .call(id, "GetCounts", None)
            .await
            .map_err(|e| e.to_string())?;
        let field = |name: &str| {
            value[name]
                .as_i64()
                .ok_or_else(|| format!("GetCounts of {id}: no integer {name} in {value}"))
        };
        Ok(Counts {
            count: field("count")?,
            reminder_count: field("reminder_count")?,
            timer_count: field("timer_count")?,
            activations: field("activations")?,
        })
    }

    /// Waits until `pick(GetCounts(id)) >= at_least`; returns the counts seen then.
    async fn wait_count(
        &self,
        id: &str,
        what: &str,
        pick: fn(&Counts) -> i64,
        at_least: i64,
        alive: &dyn Fn(),
    ) -> Counts {
        wait_until(
            format!("{TYPE}/{id}: {what} >= {at_least}"),
            SLOW,
            || async {
                alive();
                let counts = self.counts(id).await?;
                if pick(&counts) >= at_least {
                    Ok(counts)
                } else {
                    Err(format!("{counts:?}"))
                }
            },
        )
        .await
    }

    /// After a reminder or timer was unregistered (when `pick` read `stopped_at`): for at
    /// least 3 more periods, polled, the count grows by at most one firing that was already
    /// under way when it was unregistered.
    async fn assert_stays(
        &self,
        id: &str,
        what: &str,
        pick: fn(&Counts) -> i64,
        stopped_at: i64,
        logs: &dyn Fn() -> String,
    ) {
        let started = Instant::now();
        let mut polls = 0;
        while polls < 3 || started.elapsed() < PERIOD * 4 {
            let counts = self
                .counts(id)
                .await
                .unwrap_or_else(|e| panic!("{e}{}", logs()));
            assert!(
                pick(&counts) <= stopped_at + 1,
                "{TYPE}/{id}: {what} went on after it was unregistered: {} when it was \
                 unregistered, now {counts:?} after {:?}{}",
                stopped_at,
                started.elapsed(),
                logs()
            );
            polls += 1;
        }
    }
}

/// Asserts that `result` is daprd's answer to an app that failed the call with a 500: HTTP
/// 500 `ERR_ACTOR_INVOKE_METHOD`, `error invoke actor method: error from actor service:
/// (500) <the app's body>` (the app's body names `app_says`).
fn assert_invoke_error(
    result: Result<Value, ClientError>,
    app_says: &str,
    logs: &dyn Fn() -> String,
) {
    let error = match result {
        Ok(value) => panic!(
            "the call succeeded with {value}, expected an error{}",
            logs()
        ),
        Err(error) => error,
    };
    assert_eq!(
        error.run.code,
        Some(1),
        "the client exits 1 on a Dapr error: {error}{}",
        logs()
    );
    assert_eq!(
        error.error_code(),
        Some("ERR_ACTOR_INVOKE_METHOD"),
        "daprd's error code: {error}{}",
        logs()
    );
    assert_eq!(error.status(), Some(500), "daprd's status: {error}");
    let message = error.message().unwrap_or_default();
    assert!(
        message.starts_with("error invoke actor method: "),
        "daprd's message format: {error}"
    );
    assert!(
        message.contains(app_says),
        "daprd passes the app's error body on ({app_says:?} expected): {error}"
    );
}

/// Waits until the app serves `Counter` through the host: a call succeeds (the host has read
/// the app's `/dapr/config` and placement routes the type).
async fn wait_serving(steps: &Steps, alive: &dyn Fn()) {
    wait_until(
        "a first call to the Python app through the host",
        SLOW,
        || async {
            alive();
            steps
                .call("ready-probe", "Get", None)
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_counter_on_rookery_up() {
    if skip_without_python("python_sdk_counter_on_rookery_up") {
        return;
    }
    // Declared first, dropped last: the processes below are killed before it goes.
    let dir = TestDir::new("rookery-dapr-sdk-up-");
    let config = dir.path().join("rookery.yaml");
    std::fs::write(&config, HOST_CONFIG).expect("write config");
    let (app_port, http_port, grpc_port, placement_port) =
        (free_port(), free_port(), free_port(), free_port());
    let up = DumpOnPanic(LoggedChild::spawn(
        "rookery up",
        rookery_bin(),
        [
            "up",
            "--app-port",
            &app_port.to_string(),
            "--app-protocol",
            "http",
            "--http-port",
            &http_port.to_string(),
            "--grpc-port",
            &grpc_port.to_string(),
            "--placement-port",
            &placement_port.to_string(),
            "--metrics-port",
            "0",
            "--data-dir",
            &dir.path().join("data").display().to_string(),
            "--config",
            &config.display().to_string(),
        ]
        .map(String::from)
        .to_vec(),
        vec![(
            "RUST_LOG".to_owned(),
            std::env::var("RUST_LOG")
                .unwrap_or_else(|_| "info,rookery=debug,rookery_runtime=debug".to_owned()),
        )],
        dir.path().join("up.log"),
    ));
    let app = DaprApp::spawn(
        "python Counter app",
        app_port,
        http_port,
        dir.path().join("app.log"),
    );
    let alive = || {
        up.assert_alive();
        app.assert_alive();
    };
    let logs = || format!("{}{}", up.dump_log(), app.dump_log());
    let steps = Steps {
        client: SdkClient::new(http_port),
    };

    // daprd answers its outbound health check before it depends on the app: the SDK's
    // start-up wait (in the app and in every client) needs it.
    wait_until("GET /v1.0/healthz/outbound to answer 204", SLOW, || async {
        alive();
        match http_get(http_port, "/v1.0/healthz/outbound").await? {
            (204, _) => Ok(()),
            (code, body) => Err(format!("{code} {body:?}")),
        }
    })
    .await;
    wait_serving(&steps, &alive).await;
    assert!(
        app.log().contains("\"GET /dapr/config HTTP/1.1\" 200"),
        "the host read the app's /dapr/config{}",
        logs()
    );

    // State round trip through the SDK's state manager (one state transaction per call).
    assert_eq!(
        steps.ok("c1", "Increment", Some(json!(5)), &logs).await,
        json!(5)
    );
    assert_eq!(
        steps.ok("c1", "Increment", Some(json!(2)), &logs).await,
        json!(7)
    );
    assert_eq!(steps.ok("c1", "Get", None, &logs).await, json!(7));

    // Two ids, two actors, separate state.
    assert_eq!(
        steps.ok("c2", "Set", Some(json!(40)), &logs).await,
        json!(40)
    );
    assert_eq!(
        steps.ok("c2", "Increment", Some(json!(2)), &logs).await,
        json!(42)
    );
    assert_eq!(steps.ok("c1", "Get", None, &logs).await, json!(7));
    assert_eq!(steps.ok("c2", "Get", None, &logs).await, json!(42));

    // A reminder fires (with its data: the app checks it) until it is unregistered.
    let period_ms = Some(json!(PERIOD.as_millis() as u64));
    steps
        .ok("r1", "StartReminder", period_ms.clone(), &logs)
        .await;
    steps
        .wait_count(
            "r1",
            "reminder_count",
            |c| c.reminder_count,
            FIRINGS,
            &alive,
        )
        .await;
    steps.ok("r1", "StopReminder", None, &logs).await;
    let stopped_at = steps
        .counts("r1")
        .await
        .unwrap_or_else(|e| panic!("{e}{}", logs()));
    steps
        .assert_stays(
            "r1",
            "reminder_count",
            |c| c.reminder_count,
            stopped_at.reminder_count,
            &logs,
        )
        .await;

    // A timer likewise (its callback gets the timer's data).
    steps.ok("t1", "StartTimer", period_ms, &logs).await;
    steps
        .wait_count("t1", "timer_count", |c| c.timer_count, FIRINGS, &alive)
        .await;
    steps.ok("t1", "StopTimer", None, &logs).await;
    let stopped_at = steps
        .counts("t1")
        .await
        .unwrap_or_else(|e| panic!("{e}{}", logs()));
    steps
        .assert_stays(
            "t1",
            "timer_count",
            |c| c.timer_count,
            stopped_at.timer_count,
            &logs,
        )
        .await;

    // Idle deactivation: left alone longer than the app's actorIdleTimeout, the actor is
    // deactivated (the host sends DELETE /actors/Counter/d1, the SDK calls _on_deactivate);
    // the next call activates it again, and it reads its state back.
    assert_eq!(
        steps.ok("d1", "Increment", Some(json!(4)), &logs).await,
        json!(4)
    );
    let before = steps
        .counts("d1")
        .await
        .unwrap_or_else(|e| panic!("{e}{}", logs()));
    // On a slow box it may already have been deactivated once since; wait for the next one.
    let deactivated_before = app.deactivations_of("d1");
    wait_until("Counter/d1 to be deactivated when idle", SLOW, || async {
        alive();
        if app.deactivations_of("d1") > deactivated_before {
            Ok(())
        } else {
            Err(format!(
                "{deactivated_before} \"DEACTIVATED Counter/d1\" lines in the app's log, no new one"
            ))
        }
    })
    .await;
    assert!(
        app.deactivation_requests_of("d1") > deactivated_before,
        "the host deactivated it with DELETE /actors/Counter/d1{}",
        logs()
    );
    assert_eq!(
        steps.ok("d1", "Get", None, &logs).await,
        json!(4),
        "a new activation reads the stored state"
    );
    let after = steps
        .counts("d1")
        .await
        .unwrap_or_else(|e| panic!("{e}{}", logs()));
    assert!(
        after.activations > before.activations && after.count == 4,
        "activated again after the deactivation, state kept: {before:?} then {after:?}{}",
        logs()
    );

    // An unknown method, and an exception in a method: daprd's ERR_ACTOR_INVOKE_METHOD with
    // the app's error body.
    assert_invoke_error(steps.call("c1", "Nope", None).await, "Nope", &logs);
    assert_invoke_error(
        steps.call("c1", "Fail", None).await,
        "Fail was called on Counter/c1",
        &logs,
    );
    // The actor is still there, state and all.
    assert_eq!(steps.ok("c1", "Get", None, &logs).await, json!(7));
    alive();
}

/// One `rookery host` of the cluster and the Python app it calls.
struct Member {
    host: HostProcess,
    app: DaprApp,
}

/// The first member whose app is running and has logged an activation of `Counter/<id>`:
/// where it lives (a dead member's app is not counted, so after a failover this names the
/// surviving host that took the actor over).
fn owner_of(members: &[Member], id: &str) -> Option<usize> {
    members
        .iter()
        .position(|m| m.app.process().is_up() && m.app.activations_of(id) > 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_counter_on_three_hosts_with_postgres() {
    if skip_without_python("python_sdk_counter_on_three_hosts_with_postgres") {
        return;
    }
    let dir = TestDir::new("rookery-dapr-sdk-cluster-");
    let Some(postgres) = Postgres::start().await else {
        return;
    };
    let cluster = start_placement(1).await;
    let members: Vec<Member> = (0..3)
        .map(|i| {
            let app_port = free_port();
            let host = HostProcess::builder(cluster.addr_list())
                .app_id("dapr-python")
                .config_yaml(HOST_CONFIG)
                .arg("--app-port")
                .arg(app_port.to_string())
                .arg("--app-protocol")
                .arg("http")
                .arg("--state-store")
                .arg("postgresql")
                .arg("--state-connection-string")
                .arg(postgres.connection_string())
                .start();
            let app = DaprApp::spawn(
                &format!("python Counter app of host {i}"),
                app_port,
                host.http_port,
                dir.path().join(format!("app-{i}.log")),
            );
            Member { host, app }
        })
        .collect();
    let alive = || {
        for m in &members {
            if m.host.process().is_up() {
                m.host.assert_alive();
            }
            if m.app.process().is_up() {
                m.app.assert_alive();
            }
        }
    };
    // Host logs are printed by HostProcess itself on a panic; the apps' here.
    let logs = || members.iter().map(|m| m.app.dump_log()).collect::<String>();
    for m in &members {
        m.host.wait_ready().await;
    }
    let hosts: Vec<&HostProcess> = members.iter().map(|m| &m.host).collect();
    wait_for_routing(&cluster, &hosts, &[TYPE]).await;
    // The client talks to host 0 only; host 1 or 2 is the one that dies.
    let steps = Steps {
        client: SdkClient::new(members[0].host.http_port),
    };
    wait_serving(&steps, &alive).await;

    // State: several actors, spread over the hosts.
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    let mut next = 0;
    let mut add_actor = || {
        next += 1;
        (format!("k{next}"), next as i64)
    };
    // Until host 1 or 2 hosts at least two of them (each id lands there with p = 2/3).
    while expected.len() < 6
        || expected
            .keys()
            .filter(|id| matches!(owner_of(&members, id), Some(1 | 2)))
            .count()
            < 2
    {
        assert!(
            expected.len() < 40,
            "40 actors and none on hosts 1 and 2{}",
            logs()
        );
        let (id, n) = add_actor();
        assert_eq!(
            steps.ok(&id, "Increment", Some(json!(n)), &logs).await,
            json!(n)
        );
        assert_eq!(
            steps.ok(&id, "Increment", Some(json!(100)), &logs).await,
            json!(n + 100)
        );
        assert_eq!(steps.ok(&id, "Get", None, &logs).await, json!(n + 100));
        expected.insert(id, n + 100);
    }
    let owners: BTreeMap<String, usize> = expected
        .keys()
        .map(|id| {
            let owner = owner_of(&members, id)
                .unwrap_or_else(|| panic!("no app logged the activation of {id}{}", logs()));
            (id.clone(), owner)
        })
        .collect();
    let on = |member: usize| owners.values().filter(|&&o| o == member).count();
    let victim = if on(1) >= on(2) { 1 } else { 2 };

    // A reminder on an actor of the host that is going to die.
    let mut reminded = None;
    for j in 0..60 {
        let id = format!("rem{j}");
        // Activates it and sees where.
        steps
            .counts(&id)
            .await
            .unwrap_or_else(|e| panic!("{e}{}", logs()));
        if owner_of(&members, &id) == Some(victim) {
            reminded = Some(id);
            break;
        }
    }
    let reminded = reminded.unwrap_or_else(|| panic!("no rem* actor on host {victim}{}", logs()));
    steps
        .ok(
            &reminded,
            "StartReminder",
            Some(json!(PERIOD.as_millis() as u64)),
            &logs,
        )
        .await;
    let before_kill = steps
        .wait_count(
            &reminded,
            "reminder_count",
            |c| c.reminder_count,
            FIRINGS,
            &alive,
        )
        .await;

    // Host `victim` and its app die at once (a pod killed).
    members[victim].host.kill9();
    members[victim].app.kill9();

    // Every actor answers again, from a surviving host, with its state.
    wait_until(
        format!("every actor to answer with its state after host {victim} died"),
        SLOW,
        || async {
            alive();
            let mut wrong = Vec::new();
            for (id, want) in &expected {
                match steps.call(id, "Get", None).await {
                    Ok(value) if value == json!(want) => {}
                    Ok(value) => panic!("{id} answers {value}, its state was {want}{}", logs()),
                    Err(e) => wrong.push(e.to_string()),
                }
            }
            if wrong.is_empty() {
                Ok(())
            } else {
                Err(wrong.join("; "))
            }
        },
    )
    .await;
    for (id, &owner) in &owners {
        if owner == victim {
            let now = owner_of(&members, id);
            assert!(
                matches!(now, Some(o) if o != victim),
                "{id} was activated again on a surviving host: {now:?}{}",
                logs()
            );
            let counts = steps
                .counts(id)
                .await
                .unwrap_or_else(|e| panic!("{e}{}", logs()));
            assert!(counts.activations >= 2, "{id}: {counts:?}");
        }
    }
    // They take writes there.
    for (id, want) in &expected {
        assert_eq!(
            steps.ok(id, "Increment", Some(json!(1)), &logs).await,
            json!(want + 1)
        );
    }

    // The reminder keeps firing, on the actor's new host.
    steps
        .wait_count(
            &reminded,
            "reminder_count after the failover",
            |c| c.reminder_count,
            before_kill.reminder_count + FIRINGS,
            &alive,
        )
        .await;
    let now = owner_of(&members, &reminded);
    assert!(
        matches!(now, Some(o) if o != victim),
        "{reminded} fires on a surviving host: {now:?}{}",
        logs()
    );
    // And it stops once unregistered there.
    steps.ok(&reminded, "StopReminder", None, &logs).await;
    let stopped_at = steps
        .counts(&reminded)
        .await
        .unwrap_or_else(|e| panic!("{e}{}", logs()));
    steps
        .assert_stays(
            &reminded,
            "reminder_count",
            |c| c.reminder_count,
            stopped_at.reminder_count,
            &logs,
        )
        .await;
    alive();
}

//! Dapr's cron input binding (`bindings.cron` components in `--resources-path`): the host
//! calls its HTTP app with `POST /{binding}` at every instant of the binding's schedule, and
//! refuses to start with a bad component.
//!
//! Real processes: one `rookery placement` and one `rookery host --app-port`; the app is an
//! HTTP server in this test (axum) that records when each event arrives, by its own clock.
//! A gRPC app (the Python example, registered with `receive_triggers`) receives the events as
//! `TriggerBinding` messages.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use support::app_server::AppServer;
use support::host_process::{start_placement, HostProcess};
use support::temp::TestDir;
use support::wait::{wait_until, DEADLINE};

/// One event as the app received it.
#[derive(Clone, Debug)]
struct Received {
    binding: String,
    /// When it arrived, by the test's wall clock (Unix-epoch ms).
    at_ms: u64,
    time_zone: Option<String>,
    read_time: Option<String>,
    body_len: usize,
}

type Log = Arc<Mutex<Vec<Received>>>;

/// An app that serves no actor types (no `/dapr/config`) and takes every binding event.
async fn recording_app() -> (AppServer, Log) {
    let log: Log = Arc::default();
    let router = Router::new()
        .route(
            "/:binding",
            post(
                |State(log): State<Log>,
                 Path(binding): Path<String>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let at_ms = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap()
                        .as_millis() as u64;
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    log.lock().unwrap().push(Received {
                        binding,
                        at_ms,
                        time_zone: header("timeZone"),
                        read_time: header("readTimeUTC"),
                        body_len: body.len(),
                    });
                    StatusCode::OK
                },
            ),
        )
        .with_state(log.clone());
    (AppServer::start(router).await, log)
}

fn cron_component(name: &str, schedule: &str) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: bindings.cron\n  version: v1\n  metadata:\n  - name: schedule\n    value: \"{schedule}\"\n  - name: direction\n    value: input\n"
    )
}

fn resources(files: &[(&str, String)]) -> TestDir {
    let dir = TestDir::new("rookery-resources-");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write a component");
    }
    dir
}

fn events_of(log: &Log, binding: &str) -> Vec<Received> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|r| r.binding == binding)
        .cloned()
        .collect()
}

/// The second of a `readTimeUTC` value (Go's `2006-01-02 15:04:05.999999999 +0000 UTC`).
fn read_time_second(value: &str) -> u64 {
    let (date_time, zone) = value
        .split_once(" +0000 ")
        .unwrap_or_else(|| panic!("{value:?} is not a UTC time"));
    assert_eq!(zone, "UTC", "{value:?}");
    let (date, time) = date_time.split_once(' ').expect("date and time");
    assert_eq!(date.len(), 10, "{value:?}");
    let clock = time.split('.').next().unwrap();
    let parts: Vec<u64> = clock.split(':').map(|p| p.parse().unwrap()).collect();
    assert_eq!(parts.len(), 3, "{value:?}");
    parts[2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_bindings_call_the_app_on_their_schedule() {
    let dir = resources(&[
        ("tick.yaml", cron_component("tick", "*/2 * * * * *")),
        ("every.yaml", cron_component("every", "@every 1s")),
    ]);
    let cluster = start_placement(1).await;
    let (app, log) = recording_app().await;
    let host = HostProcess::builder(cluster.addr_list())
        .app_id("A")
        .arg("--app-port")
        .arg(app.port.to_string())
        .arg("--resources-path")
        .arg(dir.path().display().to_string())
        .start();
    host.wait_ready().await;

    wait_until("3 events of each binding", DEADLINE, || async {
        host.assert_alive();
        let (ticks, everys) = (events_of(&log, "tick"), events_of(&log, "every"));
        if ticks.len() >= 3 && everys.len() >= 3 {
            Ok(())
        } else {
            Err(format!("{} tick, {} every", ticks.len(), everys.len()))
        }
    })
    .await;

    // `*/2 * * * * *`: each event at an even second, not before it, within the delivery's
    // latency after it; one per instant.
    let ticks = events_of(&log, "tick");
    let mut instants = BTreeSet::new();
    for event in &ticks {
        let second = event.at_ms / 1_000;
        assert!(
            second % 2 == 0 && event.at_ms % 1_000 < 900,
            "received at {} ms, not within 900 ms after an even second: {ticks:?}",
            event.at_ms
        );
        assert!(
            instants.insert(second),
            "two events in one instant: {ticks:?}"
        );
        assert_eq!(event.body_len, 0, "{event:?}");
        assert_eq!(event.time_zone.as_deref(), Some("UTC"), "{event:?}");
        let read_time = event.read_time.as_deref().expect("readTimeUTC");
        assert_eq!(read_time_second(read_time), second % 60, "{event:?}");
    }

    // `@every 1s`: repeatedly, about a second apart (never a burst).
    let everys = events_of(&log, "every");
    for pair in everys.windows(2) {
        let gap = pair[1].at_ms - pair[0].at_ms;
        assert!(
            (500..=2_500).contains(&gap),
            "{gap} ms between two events of @every 1s: {everys:?}"
        );
    }
    assert!(everys
        .iter()
        .all(|e| e.body_len == 0 && e.read_time.is_some()));
    // Counted once the app has answered, so possibly just after the app logged the event.
    wait_until("3 tick events counted as delivered", DEADLINE, || async {
        let delivered = host
            .metric(r#"rookery_binding_events_total{binding="tick",outcome="delivered"}"#)
            .await?;
        if delivered >= 3.0 {
            Ok(())
        } else {
            Err(format!("{delivered} delivered"))
        }
    })
    .await;
    drop(app);
    host.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_app_the_events_are_skipped() {
    let dir = resources(&[("every.yaml", cron_component("every", "@every 1s"))]);
    let cluster = start_placement(1).await;
    // Nothing listens on the app's port: no app receives triggers.
    let host = HostProcess::builder(cluster.addr_list())
        .app_id("A")
        .arg("--app-port")
        .arg(support::free_port().to_string())
        .arg("--resources-path")
        .arg(dir.path().display().to_string())
        .start();
    host.wait_ready().await;
    wait_until("two skipped events counted", DEADLINE, || async {
        host.assert_alive();
        let skipped = host
            .metric(r#"rookery_binding_events_total{binding="every",outcome="skipped"}"#)
            .await
            .unwrap_or(0.0);
        if skipped >= 2.0 {
            Ok(())
        } else {
            Err(format!("{skipped} skipped"))
        }
    })
    .await;
    assert!(!host.log().contains("cron binding fired"), "{}", host.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_binding_with_a_bad_schedule_stops_the_host() {
    let dir = resources(&[("cron.yaml", cron_component("tick", "*/2 * * *"))]);
    let output = support::run_rookery(
        &[
            "host",
            "--placement",
            "127.0.0.1:1",
            "--app-id",
            "A",
            "--resources-path",
            &dir.path().display().to_string(),
        ],
        DEADLINE,
    )
    .await;
    assert_ne!(output.code, Some(0), "a bad component must stop the host");
    assert!(
        output.stderr.contains("cron.yaml") && output.stderr.contains("schedule"),
        "{}",
        output.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_app_that_asks_for_triggers_receives_binding_events() {
    if support::python::skip_without(
        "grpc, grpc_tools",
        "examples/python/requirements.txt",
        "a_grpc_app_that_asks_for_triggers_receives_binding_events",
    ) {
        return;
    }
    let dir = resources(&[("every.yaml", cron_component("every", "@every 1s"))]);
    let cluster = start_placement(1).await;
    let host = HostProcess::builder(cluster.addr_list())
        .app_id("A")
        .arg("--resources-path")
        .arg(dir.path().display().to_string())
        .start();
    host.wait_ready().await;
    let app = support::process::LoggedChild::spawn(
        "python counter app",
        "python3",
        support::python::counter_app_args(&host.grpc_addr, "A", &dir.path().join("stubs")),
        vec![
            ("PYTHONUNBUFFERED".into(), "1".into()),
            ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
        ],
        dir.path().join("app.log"),
    );
    wait_until(
        "three binding events in the app's log",
        DEADLINE,
        || async {
            app.assert_alive();
            host.assert_alive();
            let events = app.log().matches("counter_app: binding every").count();
            if events >= 3 {
                Ok(())
            } else {
                Err(format!("{events} events; log: {}", app.log()))
            }
        },
    )
    .await;
}

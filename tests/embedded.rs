//! The embedded Rust API: a program starts placement and a host in-process, registers actor
//! types implementing `Actor`, and uses them: method calls (and calls between actors through
//! the turn's context), durable reminders through `Host::reminders`, timers registered from
//! actor code, actor state through the turn's context, and the app's jobs through
//! `Host::jobs`, delivered to embedded code — over real sockets and real sled files.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use rookery_core::jobs::JobInput;
use rookery_core::net::TcpTransport;
use rookery_placement::node::{PlacementConfig, PlacementNode};
use rookery_proto::v1::{CreateActorReminderRequest, ReminderRef};
use rookery_runtime::config::{ActorDefaults, HostConfig};
use rookery_runtime::host::Host;
use rookery_runtime::{
    Actor, ActorContext, ActorError, ActorKey, AppTriggers, BindingEvent, Call, CallKind,
    JobPayload, ReminderTick, TimerTick, TriggerError,
};
use support::wait::{wait_until, DEADLINE};
use support::{free_port, TestDir};

/// What the actors heard, by actor id: (event, detail).
type Heard = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

struct Greeter {
    id: String,
    heard: Heard,
}

impl Greeter {
    fn note(&self, event: String) {
        self.heard
            .lock()
            .unwrap()
            .entry(self.id.clone())
            .or_default()
            .push(event);
    }
}

#[async_trait::async_trait]
impl Actor for Greeter {
    async fn handle(
        &mut self,
        ctx: &ActorContext,
        method: &str,
        data: Bytes,
    ) -> Result<Bytes, ActorError> {
        match method {
            "hello" => Ok(Bytes::from(format!("hello from {}", ctx.actor_id()))),
            // Calls another actor within this turn's call chain.
            "relay" => {
                let to = String::from_utf8_lossy(&data).into_owned();
                ctx.call("Greeter", &to, "hello", Bytes::new())
                    .await
                    .map_err(|e| ActorError::new(e.to_string()))
            }
            "start_timer" => {
                ctx.register_timer("t", "0s", "R3/PT0.2S", "", "tock", Bytes::new())
                    .map_err(|e| ActorError::new(e.to_string()))?;
                Ok(Bytes::new())
            }
            "fail" => Err(ActorError::new("as asked")),
            // Durable state: read, add one, write (acknowledged once durable).
            "count" => {
                let error = |e: rookery_runtime::error::CallError| ActorError::new(e.to_string());
                let current = match ctx.get_state("n").await.map_err(error)? {
                    Some(bytes) => String::from_utf8_lossy(&bytes).parse::<u64>().unwrap_or(0),
                    None => 0,
                };
                ctx.set_state("n", (current + 1).to_string())
                    .await
                    .map_err(error)?;
                Ok(Bytes::from((current + 1).to_string()))
            }
            "empty_key" => ctx
                .set_state("", "v")
                .await
                .map(|()| Bytes::new())
                .map_err(|e| ActorError::new(e.to_string())),
            other => Err(ActorError::new(format!("unknown method {other}"))),
        }
    }

    async fn on_reminder(
        &mut self,
        _ctx: &ActorContext,
        tick: &ReminderTick,
        data: Bytes,
    ) -> Result<(), ActorError> {
        self.note(format!(
            "reminder {} {}",
            tick.name,
            String::from_utf8_lossy(&data)
        ));
        Ok(())
    }

    async fn on_timer(
        &mut self,
        _ctx: &ActorContext,
        tick: &TimerTick,
        _data: Bytes,
    ) -> Result<(), ActorError> {
        self.note(format!("timer {} {}", tick.name, tick.callback));
        Ok(())
    }
}

fn call(id: &str, method: &str, data: &str) -> Call {
    Call {
        key: ActorKey::new("Greeter", id),
        method: method.into(),
        data: Bytes::from(data.to_owned()),
        metadata: Default::default(),
        call_chain_id: String::new(),
        kind: CallKind::Method,
    }
}

fn count(heard: &Heard, id: &str, prefix: &str) -> usize {
    heard
        .lock()
        .unwrap()
        .get(id)
        .map(|events| events.iter().filter(|e| e.starts_with(prefix)).count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_host_serves_calls_reminders_and_timers() {
    let dir = TestDir::new("rookery-embedded-test-");
    let placement_addr = format!("127.0.0.1:{}", free_port());
    let placement = PlacementNode::start(
        PlacementConfig::single_node(
            placement_addr.clone(),
            placement_addr.clone(),
            dir.path().join("placement"),
        ),
        TcpTransport::shared(),
    )
    .await
    .expect("placement starts");
    let grpc = format!("127.0.0.1:{}", free_port());
    let host = Host::start(
        HostConfig {
            host_id: grpc.clone(),
            app_id: "embedded".into(),
            placement: vec![placement_addr],
            grpc_listen: grpc.clone(),
            internal_listen: None,
            advertise_address: grpc,
            internal_advertise_address: None,
            http_listen: None,
            metrics_listen: None,
            http_app: None,
            api_token: None,
            data_dir: dir.path().join("host"),
            max_request_bytes: 4 << 20,
            actors: ActorDefaults::default(),
            heartbeat_interval_ms: 200,
            state: rookery_runtime::state::StoreConfig::Sled {
                path: dir.path().join("host").join("state"),
            },
            serve_without_lease: false,
            ..HostConfig::default()
        },
        TcpTransport::shared(),
    )
    .await
    .expect("host starts");
    let heard: Heard = Arc::default();
    let for_factory = heard.clone();
    host.register_actor(
        "Greeter",
        ActorDefaults::default().type_options(),
        move |key: &ActorKey| Greeter {
            id: key.actor_id.clone(),
            heard: for_factory.clone(),
        },
    )
    .expect("register");

    let answered = wait_until("a call to an embedded actor", DEADLINE, || async {
        host.invoke(call("g1", "hello", ""), Some(Duration::from_secs(5)))
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(answered, Bytes::from("hello from g1"));
    let relayed = host
        .invoke(call("g1", "relay", "g2"), None)
        .await
        .expect("relay");
    assert_eq!(relayed, Bytes::from("hello from g2"));
    let failed = host
        .invoke(call("g1", "fail", ""), None)
        .await
        .expect_err("an actor error");
    assert!(failed.to_string().contains("as asked"), "{failed}");

    host.invoke(call("g3", "start_timer", ""), None)
        .await
        .expect("start a timer");
    wait_until("three timer ticks", DEADLINE, || async {
        match count(&heard, "g3", "timer t tock") {
            3 => Ok(()),
            n => Err(format!("{n} ticks")),
        }
    })
    .await;

    host.reminders()
        .create(CreateActorReminderRequest {
            reminder: Some(ReminderRef {
                actor_type: "Greeter".into(),
                actor_id: "g4".into(),
                name: "r".into(),
            }),
            due_time: "0s".into(),
            period: "R2/PT0.3S".into(),
            ttl: String::new(),
            data: b"payload".to_vec(),
            fail_if_exists: true,
        })
        .await
        .expect("create a reminder");
    wait_until("two reminder ticks", DEADLINE, || async {
        match count(&heard, "g4", "reminder r payload") {
            2 => Ok(()),
            n => Err(format!("{n} ticks")),
        }
    })
    .await;
    // State from embedded actor code, read and written through the turn's context; bad
    // input is refused with a clear error.
    for want in ["1", "2"] {
        let counted = host
            .invoke(call("g5", "count", ""), None)
            .await
            .expect("count");
        assert_eq!(counted, Bytes::from(want));
    }
    let refused = host
        .invoke(call("g5", "empty_key", ""), None)
        .await
        .expect_err("an empty key");
    assert!(
        refused.to_string().contains("must not be empty"),
        "{refused}"
    );

    // Jobs of the app, delivered to embedded code.
    let jobs = Arc::new(JobLog::default());
    host.serve_triggers(jobs.clone())
        .expect("receive the app's jobs");
    host.jobs()
        .schedule(
            JobInput {
                name: "tidy".into(),
                schedule: Some("@every 300ms".into()),
                repeats: Some(2),
                data: b"dust".to_vec(),
                ..JobInput::default()
            },
            now_ms(),
        )
        .await
        .expect("schedule a job");
    let fired = wait_until("two job firings", DEADLINE, || async {
        let fired = jobs.fired.lock().unwrap().clone();
        if fired.len() >= 2 {
            Ok(fired)
        } else {
            Err(format!("{fired:?}"))
        }
    })
    .await;
    assert_eq!(fired[0].0, "tidy");
    assert_eq!(fired[0].1, Bytes::from("dust"));
    assert_eq!(fired[1].2, fired[0].2 + 300, "{fired:?}");
    host.shutdown().await;
    placement.shutdown().await;
}

/// The jobs embedded code received: (name, data, due instant).
#[derive(Default)]
struct JobLog {
    fired: Mutex<Vec<(String, Bytes, u64)>>,
}

impl AppTriggers for JobLog {
    fn job(&self, name: &str, payload: JobPayload) -> BoxFuture<'static, Result<(), TriggerError>> {
        self.fired
            .lock()
            .unwrap()
            .push((name.to_owned(), payload.data, payload.due_at_ms));
        Box::pin(async { Ok(()) })
    }

    fn binding(
        &self,
        _name: &str,
        _event: BindingEvent,
    ) -> BoxFuture<'static, Result<(), TriggerError>> {
        Box::pin(async { Ok(()) })
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

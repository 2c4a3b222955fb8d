//! Reminder and job benchmarks on real sockets, real Raft (3 placement nodes) and real sled
//! files, in one process: registrations per second through a host's client API (reminders
//! through `Reminders.CreateReminder`, jobs through Dapr's `ScheduleJobAlpha1`), firings per
//! second and firing delay (p50/p99) of reminders, then of jobs, all due at once, and the
//! memory of stored reminders in a placement node's index.
//!
//! Run with `cargo bench --bench reminders`; results are recorded in benches/README.md.

#[path = "common/results.rs"]
mod results;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use rookery_core::net::TcpTransport;
use rookery_core::reminders::{Reminder, ReminderKey};
use rookery_core::schedule::Schedule;
use rookery_placement::node::{PlacementConfig, PlacementNode};
use rookery_placement::reminder_index::ReminderIndex;
use rookery_proto::dapr::proto::runtime::v1::dapr_client::DaprClient;
use rookery_proto::dapr::proto::runtime::v1::{Job, ScheduleJobRequest};
use rookery_proto::v1::reminders_client::RemindersClient;
use rookery_proto::v1::{CreateActorReminderRequest, ReminderRef};
use rookery_runtime::config::{ActorDefaults, HostConfig};
use rookery_runtime::host::Host;
use rookery_runtime::{
    Actor, ActorContext, ActorError, ActorKey, AppTriggers, BindingEvent, JobPayload, ReminderTick,
    TriggerError,
};
use serde_json::{json, Value};

/// Reminders registered for the registration rate (and then fired for the firing rate).
const REMINDERS: usize = 50_000;
/// Concurrent registrations in flight.
const CONCURRENCY: usize = 256;
/// Reminders in the memory measurement.
const STORED_FOR_MEMORY: usize = 1_000_000;
const DEADLINE: Duration = Duration::from_secs(300);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Every firing seen: how late it came (negative: early), and which actors fired.
#[derive(Default)]
struct FiringLog {
    delays_ms: Mutex<Vec<i64>>,
    actors: Mutex<HashSet<String>>,
    fired: AtomicU64,
}

impl FiringLog {
    fn record(&self, actor_id: &str, due_at_ms: u64) {
        let delay_ms = now_ms() as i64 - due_at_ms as i64;
        self.delays_ms.lock().unwrap().push(delay_ms);
        self.actors.lock().unwrap().insert(actor_id.to_owned());
        self.fired.fetch_add(1, Ordering::Relaxed);
    }
}

/// Records each tick it hears.
struct Ticker {
    log: Arc<FiringLog>,
}

#[async_trait::async_trait]
impl Actor for Ticker {
    async fn handle(
        &mut self,
        _ctx: &ActorContext,
        _method: &str,
        data: Bytes,
    ) -> Result<Bytes, ActorError> {
        Ok(data)
    }

    async fn on_reminder(
        &mut self,
        ctx: &ActorContext,
        tick: &ReminderTick,
        _data: Bytes,
    ) -> Result<(), ActorError> {
        self.log.record(ctx.actor_id(), tick.due_at_ms);
        Ok(())
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Records each job firing delivered.
struct JobReceiver {
    log: Arc<FiringLog>,
}

impl AppTriggers for JobReceiver {
    fn job(&self, name: &str, payload: JobPayload) -> BoxFuture<'static, Result<(), TriggerError>> {
        self.log.record(name, payload.due_at_ms);
        async { Ok(()) }.boxed()
    }

    fn binding(
        &self,
        _name: &str,
        _event: BindingEvent,
    ) -> BoxFuture<'static, Result<(), TriggerError>> {
        async { Ok(()) }.boxed()
    }
}

async fn cluster_and_host(dir: &std::path::Path) -> (Vec<PlacementNode>, Host, Arc<FiringLog>) {
    let members: BTreeMap<u64, String> = (1..=3)
        .map(|id| (id, format!("127.0.0.1:{}", free_port())))
        .collect();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        let mut config = PlacementConfig::single_node(
            members[&id].clone(),
            members[&id].clone(),
            dir.join(format!("p{id}")),
        );
        config.node_id = id;
        config.members = members.clone();
        config.debounce_ms = 0;
        nodes.push(
            PlacementNode::start(config, TcpTransport::shared())
                .await
                .expect("placement"),
        );
    }
    let grpc = format!("127.0.0.1:{}", free_port());
    let host = Host::start(
        HostConfig {
            host_id: grpc.clone(),
            app_id: "bench".into(),
            placement: members.values().cloned().collect(),
            grpc_listen: grpc.clone(),
            internal_listen: None,
            advertise_address: grpc,
            internal_advertise_address: None,
            http_listen: None,
            metrics_listen: None,
            http_app: None,
            api_token: None,
            data_dir: dir.join("host"),
            max_request_bytes: 4 << 20,
            actors: ActorDefaults::default(),
            heartbeat_interval_ms: 500,
            state: rookery_runtime::state::StoreConfig::Sled {
                path: dir.join("host").join("state"),
            },
            serve_without_lease: false,
            ..HostConfig::default()
        },
        TcpTransport::shared(),
    )
    .await
    .expect("host");
    let log = Arc::new(FiringLog::default());
    let ticker_log = log.clone();
    host.register_actor(
        "Ticker",
        ActorDefaults::default().type_options(),
        move |_key: &ActorKey| Ticker {
            log: ticker_log.clone(),
        },
    )
    .expect("register");
    host.serve_triggers(Arc::new(JobReceiver { log: log.clone() }))
        .expect("serve the app's jobs");
    let jobs_type = rookery_core::job_reminders::jobs_actor_type("bench");
    // Ready: the host owns the types in its table.
    let mut table = host.table();
    tokio::time::timeout(
        DEADLINE,
        table.wait_for(|s| {
            s.table
                .as_ref()
                .is_some_and(|t| t.serves("Ticker") && t.serves(&jobs_type))
                && !s.locked
        }),
    )
    .await
    .expect("host ready")
    .expect("host alive");
    (nodes, host, log)
}

/// What is registered and fired: reminders of `Ticker` actors, or jobs of the app.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Reminders,
    Jobs,
}

impl Kind {
    fn plural(self) -> &'static str {
        match self {
            Kind::Reminders => "reminders",
            Kind::Jobs => "jobs",
        }
    }
}

async fn registrations_and_firings(kind: Kind) -> Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let (nodes, host, log) = cluster_and_host(dir.path()).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", host.grpc_addr()))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    // Every reminder is due a while after the last registration, so firing is measured apart.
    let due_at = now_ms() + 60_000;
    let due = rfc3339(due_at);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let mut client = RemindersClient::new(channel.clone());
            let mut dapr = DaprClient::new(channel.clone());
            let next = next.clone();
            let due = due.clone();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= REMINDERS {
                        return;
                    }
                    if kind == Kind::Jobs {
                        let request = ScheduleJobRequest {
                            job: Some(Job {
                                name: format!("job-{i}"),
                                due_time: Some(due.clone()),
                                ..Job::default()
                            }),
                            overwrite: true,
                        };
                        dapr.schedule_job_alpha1(request).await.expect("schedule");
                        continue;
                    }
                    let request = CreateActorReminderRequest {
                        reminder: Some(ReminderRef {
                            actor_type: "Ticker".into(),
                            actor_id: format!("t{i}"),
                            name: "r".into(),
                        }),
                        due_time: due.clone(),
                        period: String::new(),
                        ttl: String::new(),
                        data: Vec::new(),
                        fail_if_exists: false,
                    };
                    client.create_reminder(request).await.expect("create");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    let registration = started.elapsed();
    let per_second = REMINDERS as f64 / registration.as_secs_f64();
    let what = kind.plural();
    println!("| {what}: registrations, 3 placement nodes, concurrency {CONCURRENCY} | {REMINDERS} | {per_second:.0}/s | {:.1} s |", registration.as_secs_f64());
    // Wait for the due time, then for every firing.
    let deadline = Instant::now() + DEADLINE;
    while log.fired.load(Ordering::Relaxed) < REMINDERS as u64 {
        assert!(
            Instant::now() < deadline,
            "only {} of {REMINDERS} fired",
            log.fired.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut delays = log.delays_ms.lock().unwrap().clone();
    delays.sort();
    let early = delays.iter().filter(|delay| **delay < 0).count();
    let repeated = delays.len() - log.actors.lock().unwrap().len();
    // The first firing happens at the due time; the rate counts from the earliest to the last.
    let spread_ms = (delays[delays.len() - 1] - delays[0]).max(1);
    let firings_per_s = REMINDERS as f64 * 1000.0 / spread_ms as f64;
    println!(
        "| {what}: firings of {REMINDERS} due at once | {REMINDERS} | {firings_per_s:.0}/s | delay p50 {} ms, p99 {} ms, max {} ms; {early} early, {repeated} repeated |",
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays[delays.len() - 1]
    );
    host.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }
    json!({
        "placement_nodes": 3,
        "concurrency": CONCURRENCY,
        "reminders": REMINDERS,
        "registrations_per_s": per_second.round(),
        "firings_per_s": firings_per_s.round(),
        "firings_early": early,
        "firings_repeated": repeated,
        "firing_delay_p50_ms": percentile(&delays, 0.5),
        "firing_delay_p99_ms": percentile(&delays, 0.99),
        "firing_delay_max_ms": delays[delays.len() - 1],
    })
}

/// An RFC3339 UTC time for `ms` since the epoch.
fn rfc3339(ms: u64) -> String {
    rookery_core::schedule::format_rfc3339_ms(ms)
}

fn memory_of_stored_reminders() -> Value {
    let before = rss_bytes();
    let index = ReminderIndex::from_reminders((0..STORED_FOR_MEMORY).map(|i| Reminder {
        key: ReminderKey {
            actor_type: "Ticker".into(),
            actor_id: format!("t{i}"),
            name: "r".into(),
        },
        data: Vec::new(),
        schedule: Schedule {
            due_at_ms: 1_000 + i as u64,
            period: None,
            expires_at_ms: None,
        },
        next_due_ms: 1_000 + i as u64,
        fired_count: 0,
        job: None,
    }));
    let after = rss_bytes();
    println!(
        "| memory of {STORED_FOR_MEMORY} stored reminders (placement index, empty data) | {} | {} bytes each | {:.0} MiB |",
        index.len(),
        (after - before) / STORED_FOR_MEMORY as u64,
        (after - before) as f64 / (1 << 20) as f64
    );
    json!({
        "stored": index.len(),
        "bytes_per_stored_reminder": (after - before) / STORED_FOR_MEMORY as u64,
    })
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("reminder benches run only under `cargo bench`");
        return;
    }
    println!("| benchmark | count | rate | notes |");
    println!("|---|---|---|---|");
    let memory = memory_of_stored_reminders();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut results = runtime.block_on(registrations_and_firings(Kind::Reminders));
    results["jobs"] = runtime.block_on(registrations_and_firings(Kind::Jobs));
    results["memory"] = memory;
    let path = results::write("reminders.json", results);
    println!("results written to {}", path.display());
}

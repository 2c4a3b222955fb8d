//! One simulated run: three placement nodes, N hosts and a workload client as turmoil hosts,
//! the fault schedule applied by a driver loop, and the ledger handed to the checkers.
//!
//! Timeline of a run (simulated time):
//! 1. `[0, warmup)`: the cluster forms; the workload already calls.
//! 2. `[warmup, warmup + faults)`: faults from the seed (see [`crate::faults`]); the workload
//!    keeps calling. Every fault has ended by the end of this window.
//! 3. `[faults end, + settle)`: no faults; the cluster must converge (see
//!    [`crate::check::liveness`]).
//! 4. Probes: the workload calls every actor through every host, one call at a time.
//!
//! Every random choice comes from the run's seed: the fault plan, the workload's calls, the
//! election timeouts, turmoil's link latencies.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rookery_core::ring::DEFAULT_VNODES_PER_HOST;
use rookery_placement::node::{PlacementConfig, PlacementNode, DEFAULT_CLUSTER_NAME};
use rookery_proto::v1::actors_client::ActorsClient;
use rookery_proto::v1::InvokeRequest;
use rookery_runtime::config::{ActorDefaults, HostConfig, DEFAULT_MAX_REQUEST_SIZE_MB};
use rookery_runtime::host::Host;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

use crate::check::{self, Violation};
use crate::counter::{self, CounterActor, COUNTER_TYPE, INCREMENT};
use crate::faults::{self, Action, FaultMix, Scheduled};
use crate::ledger::{self, CallOutcome, Event, Incarnation, Ledger, SimNanos, TableSnapshot};
use crate::transport::SimTransport;

/// Restart attempts while a crashed placement node's data dir is still locked (100 ms apart).
const DATA_DIR_RELEASE_ATTEMPTS: u32 = 50;

/// Port of every placement node's gRPC listener.
pub const PLACEMENT_PORT: u16 = 7000;
/// Port of every host's gRPC listener (public and internal services).
pub const HOST_PORT: u16 = 9000;
/// Lower bound of the election timeouts; each node gets one fixed value above it.
pub const ELECTION_TIMEOUT_BASE_MS: u64 = 1_000;
/// How far apart the nodes' election timeouts may be. Below the smallest lease margin
/// (`MIN_LEASE_MARGIN_MS`, 500 ms): the lease argument assumes no follower times out much
/// sooner than the leader's own lower bound, which real deployments (one shared range) meet.
pub const ELECTION_TIMEOUT_SPREAD_MS: u64 = 400;
/// Deadline of a workload call.
pub const CALL_TIMEOUT_MS: u64 = 3_000;
/// Longest pause of a workload caller between two calls.
pub const THINK_MAX_MS: u64 = 100;
/// How long a graceful leave waits for placement to confirm.
pub const LEAVE_TIMEOUT_MS: u64 = 10_000;
/// Idle timeout of the actors in the simulation: short, so idle collection happens in a run.
pub const SIM_IDLE_TIMEOUT_MS: u64 = 4_000;
/// How often hosts look for idle actors.
pub const SIM_SCAN_INTERVAL_MS: u64 = 1_000;
/// Where the nodes' data dirs go when it exists (a tmpfs on Linux).
const SHM_DIR: &str = "/dev/shm";
/// Extra simulated time allowed beyond the planned end before the run counts as stuck.
const OVERRUN_MS: u64 = 60_000;

/// The shape of a run. Everything random in it comes from the seed.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub hosts: usize,
    pub actors: usize,
    /// Concurrent workload callers.
    pub callers: usize,
    pub warmup_ms: u64,
    pub fault_ms: u64,
    /// Time allowed to converge after the last fault (the liveness bound).
    pub settle_ms: u64,
    /// Simulated time per turmoil step.
    pub tick_ms: u64,
    pub faults: FaultMix,
    /// Keep the per-node data dirs here instead of fresh temporary ones.
    pub data_root: Option<PathBuf>,
    /// A fixed fault schedule instead of one drawn from the seed (named scenarios).
    pub plan: Option<Vec<Scheduled>>,
    /// A safety mechanism turned off, to show the checkers catch its loss.
    pub inject_bug: Option<InjectedBug>,
}

/// A safety mechanism of the code under test that a run can turn off: a checker that never
/// reports anything might be checking nothing, so `tests/injected_bug.rs` runs seeds with one
/// of these and expects violations (and the same seeds without it, and expects none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InjectedBug {
    /// The placement leader skips the LOCK phase of its rounds (UPDATE, then UNLOCK): hosts
    /// route by a new table as soon as its UPDATE reaches them, while hosts it has not reached
    /// yet still serve the actors it moves away from them.
    SkipLock,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            hosts: 4,
            actors: 8,
            callers: 3,
            warmup_ms: 5_000,
            fault_ms: 30_000,
            settle_ms: check::liveness::SETTLE_MS,
            tick_ms: 1,
            faults: FaultMix::default(),
            data_root: None,
            plan: None,
            inject_bug: None,
        }
    }
}

impl SimConfig {
    pub fn placement_names(&self) -> Vec<String> {
        (1..=3).map(|i| format!("placement-{i}")).collect()
    }

    pub fn host_names(&self) -> Vec<String> {
        (1..=self.hosts).map(|i| format!("host-{i}")).collect()
    }

    pub fn actor_ids(&self) -> Vec<String> {
        (0..self.actors).map(|i| format!("c{i}")).collect()
    }

    pub fn faults_end_ms(&self) -> u64 {
        self.warmup_ms + self.fault_ms
    }

    pub fn probe_at_ms(&self) -> u64 {
        self.faults_end_ms() + self.settle_ms
    }
}

/// Why a run could not be completed (as opposed to a property it violated).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot create the data dirs: {0}")]
    DataDir(#[source] std::io::Error),
    #[error("the simulation failed: {0}")]
    Turmoil(String),
    #[error("the run did not finish within {0} ms of simulated time")]
    Stuck(u64),
}

/// What one run produced.
#[derive(Debug)]
pub struct RunReport {
    pub seed: u64,
    pub trace_hash: u64,
    pub violations: Vec<Violation>,
    pub stats: RunStats,
    /// The fault schedule that was applied.
    pub plan: Vec<Scheduled>,
    pub records: Vec<ledger::Record>,
}

#[derive(Debug, Default, Clone)]
pub struct RunStats {
    pub events: usize,
    pub calls_ok: usize,
    pub calls_failed: usize,
    pub activations: usize,
    pub faults: usize,
    pub max_version: u64,
    pub steps: u64,
    pub sim_ms: u64,
}

thread_local! {
    /// Panics raised on this thread during the current run (cluster code runs on it).
    static PANICS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.borrow_mut().push(info.to_string()));
            if std::env::var_os("ROOKERY_SIM_SHOW_PANICS").is_some() {
                previous(info);
            }
        }));
    });
}

/// Control of one host by the driver.
struct HostControl {
    leave: watch::Sender<bool>,
    runs: Arc<AtomicU64>,
}

/// Runs one seed to the end and checks it.
pub fn run(seed: u64, config: &SimConfig) -> Result<RunReport, SimError> {
    run_observed(seed, config, &AtomicU64::new(0))
}

/// [`run`], counting the turmoil steps taken in `steps` so a watchdog on another thread can
/// tell a run that makes progress from one stuck in a deadlock of the cluster code.
pub fn run_observed(
    seed: u64,
    config: &SimConfig,
    steps_taken: &AtomicU64,
) -> Result<RunReport, SimError> {
    install_panic_hook();
    PANICS.with(|p| p.borrow_mut().clear());
    let mut rng = fastrand::Rng::with_seed(seed);
    let placement_names = config.placement_names();
    let host_names = config.host_names();
    let base_latency_ms = rng.u64(2..=10);
    let tick = Duration::from_millis(config.tick_ms.max(1));
    let planned_end_ms = config.probe_at_ms()
        + (config.hosts * config.actors) as u64 * check::liveness::PROBE_TIMEOUT_MS;
    let mut sim = turmoil::Builder::new()
        .rng_seed(rng.u64(..))
        .tick_duration(tick)
        .simulation_duration(Duration::from_millis(planned_end_ms + OVERRUN_MS))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(base_latency_ms))
        .tcp_capacity(4096)
        .build();
    let ledger = Ledger::new();

    let _temp;
    let data_root = match &config.data_root {
        Some(root) => root.clone(),
        None => {
            // In memory where there is a tmpfs: the stores flush inline (`FlushMode::Inline`),
            // which costs no simulated time but holds up the one simulation thread.
            let shm = std::path::Path::new(SHM_DIR);
            let builder = tempfile::Builder::new().prefix("rookery-sim-").clone();
            let dir = if shm.is_dir() {
                builder.tempdir_in(shm)
            } else {
                builder.tempdir()
            }
            .map_err(SimError::DataDir)?;
            let path = dir.path().to_owned();
            _temp = dir;
            path
        }
    };

    // Placement nodes.
    let members: BTreeMap<u64, String> = placement_names
        .iter()
        .enumerate()
        .map(|(i, name)| (i as u64 + 1, format!("{name}:{PLACEMENT_PORT}")))
        .collect();
    let election_offset = rng.u64(0..ELECTION_TIMEOUT_SPREAD_MS);
    for (i, name) in placement_names.iter().enumerate() {
        // Distinct fixed timeouts (one-value ranges), so openraft's own RNG has no choice to
        // make and two nodes never time out together forever.
        let timeout = ELECTION_TIMEOUT_BASE_MS
            + (election_offset + i as u64 * ELECTION_TIMEOUT_SPREAD_MS / 3)
                % ELECTION_TIMEOUT_SPREAD_MS;
        let node_config = PlacementConfig {
            node_id: i as u64 + 1,
            listen: format!("0.0.0.0:{PLACEMENT_PORT}"),
            members: members.clone(),
            data_dir: data_root.join(name),
            http_listen: None,
            cluster_name: DEFAULT_CLUSTER_NAME.to_owned(),
            host_timeout_ms: rookery_placement::node::DEFAULT_HOST_TIMEOUT_MS,
            round_timeout_ms: rookery_placement::node::DEFAULT_ROUND_TIMEOUT_MS,
            debounce_ms: rookery_placement::node::DEFAULT_DEBOUNCE_MS,
            vnodes_per_host: DEFAULT_VNODES_PER_HOST,
            raft_heartbeat_ms: rookery_placement::node::DEFAULT_RAFT_HEARTBEAT_MS,
            election_timeout_min_ms: timeout,
            election_timeout_max_ms: timeout + 1,
            // A write is durable at the simulated instant it is flushed, in every run.
            store_flush: rookery_placement::store::FlushMode::Inline,
            skip_lock_phase: config.inject_bug == Some(InjectedBug::SkipLock),
        };
        let ledger = ledger.clone();
        let runs = Arc::new(AtomicU64::new(0));
        let name = name.clone();
        sim.host(name.clone(), move || {
            let node_config = node_config.clone();
            let ledger = ledger.clone();
            let incarnation = Incarnation {
                node: name.clone(),
                run: runs.fetch_add(1, Ordering::Relaxed) + 1,
            };
            async move {
                ledger.record(Event::Started { incarnation });
                // A crashed incarnation's sled handles are released by its runtime's teardown,
                // which may finish after the restart begins: wait for the data dir (bounded).
                let mut attempts = 0;
                let _node = loop {
                    match PlacementNode::start(node_config.clone(), SimTransport::shared()).await {
                        Err(rookery_placement::node::NodeError::Store(
                            rookery_placement::store::StoreError::Locked { .. },
                        )) if attempts < DATA_DIR_RELEASE_ATTEMPTS => {
                            attempts += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                        started => break started?,
                    }
                };
                // Runs until the driver crashes it: placement nodes never stop on their own.
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    }

    // Hosts.
    let placement_addresses: Vec<String> = members.values().cloned().collect();
    let mut controls: BTreeMap<String, HostControl> = BTreeMap::new();
    for name in &host_names {
        let (leave, _) = watch::channel(false);
        let control = HostControl {
            leave,
            runs: Arc::new(AtomicU64::new(0)),
        };
        let leave_rx = control.leave.subscribe();
        let runs = control.runs.clone();
        controls.insert(name.clone(), control);
        let host_config = HostConfig {
            host_id: name.clone(),
            app_id: "sim".to_owned(),
            placement: placement_addresses.clone(),
            grpc_listen: format!("0.0.0.0:{HOST_PORT}"),
            internal_listen: None,
            advertise_address: format!("{name}:{HOST_PORT}"),
            internal_advertise_address: None,
            http_listen: None,
            metrics_listen: None,
            http_app: None,
            api_token: None,
            data_dir: PathBuf::new(),
            max_request_bytes: DEFAULT_MAX_REQUEST_SIZE_MB * 1024 * 1024,
            actors: ActorDefaults {
                idle_timeout_ms: SIM_IDLE_TIMEOUT_MS,
                scan_interval_ms: SIM_SCAN_INTERVAL_MS,
                ..ActorDefaults::default()
            },
            heartbeat_interval_ms: rookery_runtime::config::DEFAULT_HEARTBEAT_INTERVAL_MS,
            state: rookery_runtime::state::StoreConfig::None,
            serve_without_lease: false,
            ..HostConfig::default()
        };
        let ledger = ledger.clone();
        let name = name.clone();
        sim.host(name.clone(), move || {
            let host_config = host_config.clone();
            let ledger = ledger.clone();
            let mut leave_rx = leave_rx.clone();
            let incarnation = Incarnation {
                node: name.clone(),
                run: runs.fetch_add(1, Ordering::Relaxed) + 1,
            };
            async move {
                ledger.record(Event::Started {
                    incarnation: incarnation.clone(),
                });
                let options = host_config.actors.type_options();
                let host = Host::start(host_config, SimTransport::shared()).await?;
                let actor_ledger = ledger.clone();
                let actor_incarnation = incarnation.clone();
                host.register_actor(COUNTER_TYPE, options, move |_key| {
                    CounterActor::new(actor_ledger.clone(), actor_incarnation.clone())
                })?;
                tokio::spawn(watch_table(
                    host.table(),
                    ledger.clone(),
                    incarnation.clone(),
                ));
                let _ = leave_rx.wait_for(|leave| *leave).await;
                host.leave(Duration::from_millis(LEAVE_TIMEOUT_MS)).await;
                ledger.record(Event::Stopped { incarnation });
                Ok(())
            }
        });
    }

    // The workload.
    let workload = Workload {
        ledger: ledger.clone(),
        hosts: host_names.clone(),
        actors: config.actor_ids(),
        callers: config.callers,
        seed: rng.u64(..),
        load_until_ms: config.faults_end_ms(),
        probe_at_ms: config.probe_at_ms(),
    };
    sim.client("workload", workload.run());

    // The fault schedule, applied between steps.
    let drawn = faults::plan(
        &mut rng,
        &config.faults,
        &placement_names,
        &host_names,
        config.warmup_ms,
        config.faults_end_ms(),
    );
    let plan = config.plan.clone().unwrap_or(drawn);
    let mut driver = Driver {
        ledger: ledger.clone(),
        controls,
        all: placement_names
            .iter()
            .chain(&host_names)
            .chain(std::iter::once(&"workload".to_owned()))
            .cloned()
            .collect(),
        base_latency_ms,
        partition: None,
    };
    let mut next = 0usize;
    let mut steps = 0u64;
    loop {
        let now_ms = sim.elapsed().as_millis() as u64;
        while next < plan.len() && plan[next].at_ms <= now_ms {
            driver.apply(&mut sim, &plan[next].action);
            next += 1;
        }
        let finished = sim.step().map_err(|e| {
            let message = e.to_string();
            if message.starts_with("Ran for duration") {
                SimError::Stuck(planned_end_ms + OVERRUN_MS)
            } else {
                SimError::Turmoil(message)
            }
        })?;
        steps += 1;
        steps_taken.fetch_add(1, Ordering::Relaxed);
        if finished {
            break;
        }
    }
    let sim_ms = sim.elapsed().as_millis() as u64;
    // Dropping the simulation ends every host's software (and its sled handles) before the
    // data dirs are removed.
    drop(sim);

    let records = ledger.records();
    let panics = PANICS.with(|p| std::mem::take(&mut *p.borrow_mut()));
    let mut violations = check::check_all(&records, config);
    violations.extend(panics.into_iter().map(|message| Violation {
        property: "no-panic",
        at: None,
        message,
    }));
    let stats = RunStats {
        events: records.len(),
        calls_ok: records
            .iter()
            .filter(|r| {
                matches!(
                    r.event,
                    Event::Call {
                        outcome: CallOutcome::Ok { .. },
                        ..
                    }
                )
            })
            .count(),
        calls_failed: records
            .iter()
            .filter(|r| {
                matches!(
                    r.event,
                    Event::Call {
                        outcome: CallOutcome::Failed { .. },
                        ..
                    }
                )
            })
            .count(),
        activations: records
            .iter()
            .filter(|r| matches!(r.event, Event::Activated { .. }))
            .count(),
        faults: plan.len(),
        max_version: records
            .iter()
            .filter_map(|r| match &r.event {
                Event::TableState { table: Some(t), .. } => Some(t.version()),
                _ => None,
            })
            .max()
            .unwrap_or(0),
        steps,
        sim_ms,
    };
    Ok(RunReport {
        seed,
        trace_hash: ledger.trace_hash(),
        violations,
        stats,
        plan,
        records,
    })
}

/// Records every change of a host's table state: version, lock and lease.
async fn watch_table(
    mut state: watch::Receiver<rookery_runtime::cluster::table::TableState>,
    ledger: Ledger,
    incarnation: Incarnation,
) {
    loop {
        let current = state.borrow_and_update().clone();
        ledger.record(Event::TableState {
            incarnation: incarnation.clone(),
            table: current.table.clone().map(TableSnapshot::new),
            locked: current.locked,
            lease_until: current.lease_until.map(ledger::to_sim_time),
            lease_version: current.lease_table_version.0,
            epoch: current.epoch,
        });
        if state.changed().await.is_err() {
            return;
        }
    }
}

/// Applies fault actions to the simulation.
struct Driver {
    ledger: Ledger,
    controls: BTreeMap<String, HostControl>,
    /// Every node name, for slowing all of one node's links.
    all: Vec<String>,
    base_latency_ms: u64,
    /// The partition in force: its two sides.
    partition: Option<(Vec<String>, Vec<String>)>,
}

impl Driver {
    fn apply(&mut self, sim: &mut turmoil::Sim<'_>, action: &Action) {
        let at = sim.elapsed().as_nanos() as SimNanos;
        self.ledger.record_at(
            at,
            Event::Fault {
                description: action.to_string(),
            },
        );
        match action {
            Action::Crash(node) => {
                if sim.is_host_running(node.as_str()) {
                    let incarnation = self.incarnation(node);
                    sim.crash(node.as_str());
                    self.ledger.record_at(at, Event::Crashed { incarnation });
                }
            }
            Action::Restart(node) => {
                if !sim.is_host_running(node.as_str()) {
                    sim.bounce(node.as_str());
                }
            }
            Action::Partition {
                side_a,
                side_b,
                drop,
            } => {
                for a in side_a {
                    for b in side_b {
                        if *drop {
                            sim.partition(a.as_str(), b.as_str());
                        } else {
                            sim.hold(a.as_str(), b.as_str());
                        }
                    }
                }
                self.partition = Some((side_a.clone(), side_b.clone()));
            }
            Action::Heal => {
                if let Some((side_a, side_b)) = self.partition.take() {
                    for a in &side_a {
                        for b in &side_b {
                            // Release delivers held messages and makes the link healthy; for a
                            // dropping partition it only repairs.
                            sim.release(a.as_str(), b.as_str());
                        }
                    }
                }
            }
            Action::Slow {
                node,
                max_latency_ms,
            } => {
                for other in self.all.iter().filter(|o| *o != node) {
                    sim.set_link_max_message_latency(
                        node.as_str(),
                        other.as_str(),
                        Duration::from_millis(*max_latency_ms),
                    );
                }
            }
            Action::Unslow(node) => {
                for other in self.all.iter().filter(|o| *o != node) {
                    sim.set_link_max_message_latency(
                        node.as_str(),
                        other.as_str(),
                        Duration::from_millis(self.base_latency_ms),
                    );
                }
            }
            Action::Leave(node) => {
                if let Some(control) = self.controls.get(node) {
                    control.leave.send_replace(true);
                }
            }
            Action::Join(node) => {
                if let Some(control) = self.controls.get(node) {
                    control.leave.send_replace(false);
                }
                if sim.is_host_running(node.as_str()) {
                    // Still leaving (or never left because it was down): a restart all the same.
                    let incarnation = self.incarnation(node);
                    self.ledger.record_at(at, Event::Crashed { incarnation });
                }
                sim.bounce(node.as_str());
            }
        }
    }

    /// The current incarnation of a node, as its software numbered it.
    fn incarnation(&self, node: &str) -> Incarnation {
        // Placement nodes are not in `controls`; their incarnation is found from the ledger.
        let run = match self.controls.get(node) {
            Some(control) => control.runs.load(Ordering::Relaxed),
            None => self
                .ledger
                .records()
                .iter()
                .rev()
                .find_map(|r| match &r.event {
                    Event::Started { incarnation } if incarnation.node == node => {
                        Some(incarnation.run)
                    }
                    _ => None,
                })
                .unwrap_or(0),
        };
        Incarnation {
            node: node.to_owned(),
            run,
        }
    }
}

/// The workload client: callers that increment random Counter actors through random hosts
/// while faults run, then liveness probes.
struct Workload {
    ledger: Ledger,
    hosts: Vec<String>,
    actors: Vec<String>,
    callers: usize,
    seed: u64,
    load_until_ms: u64,
    probe_at_ms: u64,
}

/// A channel to a host for the workload. Unlike the cluster's own channels it keeps HTTP/2
/// pings going, so a connection that died silently (a dropping partition) is noticed and
/// redialled: the workload's connections must not be what stops a probe from succeeding.
fn workload_channel(host: &str) -> Channel {
    let transport = SimTransport::shared();
    let connector = tower::service_fn(move |uri: tonic::transport::Uri| {
        let transport = transport.clone();
        async move {
            let authority = uri
                .authority()
                .map(|a| a.as_str().to_owned())
                .ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "uri has no authority")
                })?;
            let connection = transport.connect(authority).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(connection))
        }
    });
    Endpoint::from_shared(format!("http://{host}:{HOST_PORT}"))
        .expect("valid uri")
        .connect_timeout(Duration::from_millis(1_000))
        .http2_keep_alive_interval(Duration::from_millis(1_000))
        .keep_alive_timeout(Duration::from_millis(1_000))
        .keep_alive_while_idle(true)
        .connect_with_connector_lazy(connector)
}

impl Workload {
    async fn run(self) -> turmoil::Result {
        let channels: BTreeMap<String, ActorsClient<Channel>> = self
            .hosts
            .iter()
            .map(|h| (h.clone(), ActorsClient::new(workload_channel(h))))
            .collect();
        let channels = Arc::new(channels);
        let this = Arc::new(self);
        let mut callers = Vec::new();
        for caller in 0..this.callers {
            let this = this.clone();
            let channels = channels.clone();
            callers.push(tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(this.seed ^ (caller as u64 + 1));
                let name = format!("caller-{caller}");
                while ledger::now() < this.load_until_ms * 1_000_000 {
                    let via = &this.hosts[rng.usize(..this.hosts.len())];
                    let actor = &this.actors[rng.usize(..this.actors.len())];
                    let turn_ms = rng.u64(0..=counter::MAX_TURN_MS / 4);
                    this.call(
                        &channels,
                        &name,
                        via,
                        actor,
                        turn_ms,
                        CALL_TIMEOUT_MS,
                        false,
                    )
                    .await;
                    tokio::time::sleep(Duration::from_millis(rng.u64(0..=THINK_MAX_MS))).await;
                }
            }));
        }
        for caller in callers {
            caller.await?;
        }
        let now = ledger::now();
        let probe_at = this.probe_at_ms * 1_000_000;
        if probe_at > now {
            tokio::time::sleep(Duration::from_nanos(probe_at - now)).await;
        }
        for via in &this.hosts {
            for actor in &this.actors {
                this.call(
                    &channels,
                    "probe",
                    via,
                    actor,
                    0,
                    check::liveness::PROBE_TIMEOUT_MS,
                    true,
                )
                .await;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn call(
        &self,
        channels: &BTreeMap<String, ActorsClient<Channel>>,
        caller: &str,
        via: &str,
        actor: &str,
        turn_ms: u64,
        timeout_ms: u64,
        probe: bool,
    ) {
        let mut client = channels[via].clone();
        let started = ledger::now();
        let mut request = tonic::Request::new(InvokeRequest {
            actor_type: COUNTER_TYPE.to_owned(),
            actor_id: actor.to_owned(),
            method: INCREMENT.to_owned(),
            data: counter::turn_request(turn_ms),
            metadata: Default::default(),
        });
        request.set_timeout(Duration::from_millis(timeout_ms));
        // The transport's own deadline, in case the server never answers at all.
        let answer = tokio::time::timeout(
            Duration::from_millis(timeout_ms + 100),
            client.invoke(request),
        )
        .await;
        let outcome = match answer {
            Ok(Ok(response)) => match counter::parse_answer(&response.into_inner().data) {
                Some((activation, value)) => CallOutcome::Ok { activation, value },
                None => CallOutcome::Failed {
                    code: "malformed-answer".to_owned(),
                },
            },
            Ok(Err(status)) => CallOutcome::Failed {
                code: format!("{:?}", status.code()),
            },
            Err(_) => CallOutcome::Failed {
                code: "client-timeout".to_owned(),
            },
        };
        self.ledger.record(Event::Call {
            caller: caller.to_owned(),
            via: via.to_owned(),
            actor: actor.to_owned(),
            started,
            outcome,
            probe,
        });
    }
}

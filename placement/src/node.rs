//! One placement node: opens its sled data dir, starts Raft, serves the `Placement` and
//! `RaftPeer` gRPC services on one listener, runs the leader's duties and the HTTP endpoint.
//!
//! Shutdown is explicit: [`PlacementNode::shutdown`] fires the node's one shutdown
//! signal, waits for the gRPC server and the coordinator to finish, then stops Raft and
//! flushes sled.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use rookery_core::shutdown::{shutdown_signal, Shutdown, ShutdownTrigger};
use rookery_proto::internal::v1::placement_server::PlacementServer;
use rookery_proto::internal::v1::raft_peer_server::RaftPeerServer;
use tokio::task::JoinHandle;

use crate::host_service::HostService;
use crate::leader::{Coordinator, LeaderConfig};
use crate::metrics::PlacementMetrics;
use crate::peer_service::PeerService;
use crate::raft_network::{PeerNetwork, MAX_RAFT_MESSAGE_BYTES};
use crate::raft_types::{NodeId, PlacementRaft};
use crate::reminder_service::ReminderService;
use crate::store;
use rookery_core::net::{listen, ListenError, SharedTransport};
use rookery_core::ring::DEFAULT_VNODES_PER_HOST;
use rookery_proto::internal::v1::placement_reminders_server::PlacementRemindersServer;

/// Everything a placement node is configured with.
#[derive(Clone, Debug)]
pub struct PlacementConfig {
    pub node_id: NodeId,
    /// Address to bind the gRPC listener to.
    pub listen: String,
    /// Every member's advertised address, by id, this node included. One entry: a single-node
    /// cluster.
    pub members: BTreeMap<NodeId, String>,
    pub data_dir: PathBuf,
    /// Address of the HTTP endpoint (`/healthz`, `/metrics`); `None` disables it.
    pub http_listen: Option<String>,
    /// Names the cluster in the data dir, so a dir of another cluster is refused.
    pub cluster_name: String,
    pub host_timeout_ms: u64,
    pub round_timeout_ms: u64,
    pub debounce_ms: u64,
    pub vnodes_per_host: u32,
    pub raft_heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// How the Raft log and snapshots are flushed. The CLI keeps the default; the simulator
    /// flushes inline (see [`store::FlushMode::Inline`]).
    pub store_flush: store::FlushMode,
    /// A deliberately injected bug, for the simulator's checker test only
    /// (`sim/tests/injected_bug.rs`, which shows the single-activation checkers catch it): the
    /// leader skips the LOCK phase of every round, so hosts route by a new table the moment
    /// its UPDATE reaches them, while others still serve the actors it moves. Always `false`
    /// in a real node: no flag or config file sets it.
    #[doc(hidden)]
    pub skip_lock_phase: bool,
}

impl PlacementConfig {
    /// A single-node cluster with the defaults of `rookery placement`.
    pub fn single_node(listen: String, advertise: String, data_dir: PathBuf) -> PlacementConfig {
        PlacementConfig {
            node_id: 1,
            listen,
            members: BTreeMap::from([(1, advertise)]),
            data_dir,
            http_listen: None,
            cluster_name: DEFAULT_CLUSTER_NAME.to_owned(),
            host_timeout_ms: DEFAULT_HOST_TIMEOUT_MS,
            round_timeout_ms: DEFAULT_ROUND_TIMEOUT_MS,
            debounce_ms: DEFAULT_DEBOUNCE_MS,
            vnodes_per_host: DEFAULT_VNODES_PER_HOST,
            raft_heartbeat_ms: DEFAULT_RAFT_HEARTBEAT_MS,
            election_timeout_min_ms: DEFAULT_ELECTION_TIMEOUT_MIN_MS,
            election_timeout_max_ms: DEFAULT_ELECTION_TIMEOUT_MAX_MS,
            store_flush: store::FlushMode::default(),
            skip_lock_phase: false,
        }
    }
}

pub const DEFAULT_CLUSTER_NAME: &str = "rookery";
/// A host silent this long is removed. Dapr's placement uses 3 s as well.
pub const DEFAULT_HOST_TIMEOUT_MS: u64 = 3_000;
/// How long a dissemination phase waits for every host's ack.
pub const DEFAULT_ROUND_TIMEOUT_MS: u64 = 3_000;
/// How long a membership change waits for others to join it in one table version.
pub const DEFAULT_DEBOUNCE_MS: u64 = 100;
pub const DEFAULT_RAFT_HEARTBEAT_MS: u64 = 150;
/// Several heartbeats long, so a loaded machine does not trigger needless elections, yet short
/// enough that a failed leader is replaced within a host's lease (about 2.25 s by default):
/// hosts ride through a fail-over with their last table.
pub const DEFAULT_ELECTION_TIMEOUT_MIN_MS: u64 = 600;
pub const DEFAULT_ELECTION_TIMEOUT_MAX_MS: u64 = 1_200;
/// How long shutdown waits for each task before aborting it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Log entries between snapshots; membership changes are small and rare.
pub const SNAPSHOT_EVERY_LOGS: u64 = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("invalid raft configuration: {0}")]
    RaftConfig(String),
    #[error("cannot start raft: {0}")]
    Raft(String),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("node {0} is not among the members {1:?}")]
    NotAMember(NodeId, Vec<NodeId>),
}

/// Keeps the reminder gauges current (once a second: counting overdue reminders walks them).
async fn count_reminders(
    reminders: store::RemindersView,
    metrics: Arc<PlacementMetrics>,
    shutdown: Shutdown,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.fired() => return,
        }
        let now_ms = rookery_core::clock::now_ms();
        let (stored, overdue) = reminders.read(|index| {
            let overdue = index
                .due_until(
                    None,
                    now_ms.saturating_sub(crate::metrics::OVERDUE_AFTER_MS),
                )
                .count();
            (index.len(), overdue)
        });
        metrics.reminders_stored.set(stored as i64);
        metrics.reminders_overdue.set(overdue as i64);
    }
}

/// A running placement node.
pub struct PlacementNode {
    raft: PlacementRaft,
    db: sled::Db,
    listen_addr: String,
    http_addr: Option<std::net::SocketAddr>,
    shutdown: ShutdownTrigger,
    tasks: Vec<JoinHandle<()>>,
}

impl PlacementNode {
    /// Opens the data dir, starts Raft and every service, and initializes a fresh cluster.
    pub async fn start(
        config: PlacementConfig,
        transport: SharedTransport,
    ) -> Result<PlacementNode, NodeError> {
        if !config.members.contains_key(&config.node_id) {
            return Err(NodeError::NotAMember(
                config.node_id,
                config.members.keys().copied().collect(),
            ));
        }
        // Bind before touching Raft, so a taken port fails fast and leaves nothing running.
        let (listen_addr, incoming) = listen(&transport, &config.listen).await?;
        let db = store::open(&config.data_dir)?;
        store::check_identity(&db, config.node_id, &config.cluster_name)?;
        let (log_store, state_machine) = store::open_stores(&db, config.store_flush)?;
        let applied = state_machine.subscribe();
        let reminders = state_machine.reminders();
        let reminders_for_metrics = reminders.clone();

        let raft_config = openraft::Config {
            cluster_name: config.cluster_name.clone(),
            heartbeat_interval: config.raft_heartbeat_ms,
            election_timeout_min: config.election_timeout_min_ms,
            election_timeout_max: config.election_timeout_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_LOGS),
            max_in_snapshot_log_to_keep: 1_000,
            ..Default::default()
        }
        .validate()
        .map_err(|e| NodeError::RaftConfig(e.to_string()))?;
        let raft = openraft::Raft::new(
            config.node_id,
            Arc::new(raft_config),
            PeerNetwork::new(transport.clone()),
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;

        let (shutdown, shutdown_rx) = shutdown_signal();
        let metrics = Arc::new(PlacementMetrics::default());
        let coordinator = Coordinator::new(
            config.node_id,
            raft.clone(),
            applied.clone(),
            LeaderConfig {
                host_timeout_ms: config.host_timeout_ms,
                election_timeout_min_ms: config.election_timeout_min_ms,
                leadership_check_ms: config.raft_heartbeat_ms,
                round_timeout_ms: config.round_timeout_ms,
                debounce_ms: config.debounce_ms,
                vnodes_per_host: config.vnodes_per_host,
                skip_lock_phase: config.skip_lock_phase,
            },
            metrics.clone(),
        );

        let mut tasks = Vec::new();
        let applied_for_reminders = applied.clone();
        let host_service = HostService::new(
            raft.clone(),
            coordinator.clone(),
            applied,
            config.members.clone(),
        );
        let peer_service = PeerService::new(raft.clone());
        let reminder_service = ReminderService::new(
            raft.clone(),
            applied_for_reminders,
            reminders,
            config.members.clone(),
            config.vnodes_per_host,
        );
        let server_shutdown = shutdown_rx.fired();
        tasks.push(tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                // Host sessions are long-lived streams: keep them honest about dead peers.
                .http2_keepalive_interval(Some(Duration::from_secs(10)))
                .http2_keepalive_timeout(Some(Duration::from_secs(20)))
                .add_service(PlacementServer::new(host_service))
                .add_service(PlacementRemindersServer::new(reminder_service))
                .add_service(
                    RaftPeerServer::new(peer_service)
                        .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                        .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES),
                )
                .serve_with_incoming_shutdown(incoming, server_shutdown)
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "placement gRPC server failed");
            }
        }));
        tasks.push(tokio::spawn(coordinator.run(shutdown_rx.clone())));

        tasks.push(tokio::spawn(count_reminders(
            reminders_for_metrics,
            metrics.clone(),
            shutdown_rx.clone(),
        )));
        let http_addr = match &config.http_listen {
            Some(addr) => {
                let (bound, task) =
                    crate::http::serve(addr.clone(), raft.clone(), metrics, shutdown_rx.clone())
                        .await?;
                tasks.push(task);
                Some(bound)
            }
            None => None,
        };

        // A fresh cluster is initialized once, by its lowest-id member, and only from an empty
        // store: a restarted node finds its vote and log in sled and never initializes again.
        let lowest = config.members.keys().next().copied();
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        if !initialized && lowest == Some(config.node_id) {
            let members: BTreeMap<NodeId, BasicNode> = config
                .members
                .iter()
                .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
                .collect();
            tracing::info!(?members, "initializing a fresh placement cluster");
            if let Err(e) = raft.initialize(members).await {
                tracing::warn!(error = %e, "cluster initialization skipped");
            }
        }
        tracing::info!(node_id = config.node_id, listen = %listen_addr, "placement node started");
        Ok(PlacementNode {
            raft,
            db,
            listen_addr,
            http_addr,
            shutdown,
            tasks,
        })
    }

    /// The address the gRPC listener is bound to.
    pub fn listen_addr(&self) -> &str {
        &self.listen_addr
    }

    /// The address the HTTP endpoint is bound to, if enabled.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http_addr
    }

    pub fn raft(&self) -> &PlacementRaft {
        &self.raft
    }

    /// Stops every task, then Raft, and flushes the data dir.
    pub async fn shutdown(self) {
        self.shutdown.fire();
        for task in self.tasks {
            // Long-lived host streams may keep the server from finishing on its own.
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not stop cleanly");
        }
        if let Err(e) = self.db.flush_async().await {
            tracing::warn!(error = %e, "cannot flush the data dir");
        }
    }
}

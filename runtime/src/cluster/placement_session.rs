//! A host's session with the placement service.
//!
//! One task keeps a `ReportHost` stream open to the placement leader: it dials the configured
//! addresses in turn, follows `NotLeader` redirects, registers, heartbeats, and applies the
//! orders it receives to a [`TableState`] that routers watch. Only tables newer than the one
//! held are applied, so the version a host routes by never goes down, even across placement
//! fail-overs. When the stream breaks it reconnects with exponential back-off.
//!
//! Leases: every heartbeat carries a sequence number; the leader acks it with a lease
//! duration when it is sure of its leadership, and the host may serve its actors until that
//! long after it *sent* the heartbeat (see `TableState::lease_until`).
//!
//! An UPDATE is acknowledged only once the host's [`LocalActors`] have released what the new
//! table gives to others: the host drains and deactivates the actors it no longer owns first,
//! so their new owners (which wait for UNLOCK) never overlap with them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rookery_core::net::{self, SharedTransport};
use rookery_core::table::{HostInfo, TableVersion};
use rookery_proto::internal::v1::placement_client::PlacementClient as PlacementGrpc;
use rookery_proto::internal::v1::{
    host_report::Report, placement_order::Order, Heartbeat, HostRegistration, HostReport, Leave,
    OrderAck, OrderPhase,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use crate::cluster::table::{RoutingTable, TableState};

/// First and last delay between reconnection attempts.
pub const RECONNECT_BACKOFF_MIN_MS: u64 = 50;
pub const RECONNECT_BACKOFF_MAX_MS: u64 = 500;
/// Redirects followed in a row before backing off (guards against redirect loops while a
/// leadership change settles).
pub const MAX_REDIRECTS_IN_A_ROW: u32 = 3;
/// Reports queued to placement; heartbeats and acks are tiny and paced by the leader.
const REPORT_QUEUE_CAPACITY: usize = 64;
/// Heartbeats remembered while waiting for their acks (older ones can no longer extend the
/// lease beyond what newer ones do).
const MAX_UNACKED_HEARTBEATS: usize = 64;

/// What the session needs of the host's actors.
pub trait LocalActors: Send + Sync + 'static {
    /// Runs before an UPDATE to `table` is acknowledged: ends the activations this host no
    /// longer owns under it and resolves once they have ended (bounded by their drain
    /// timeouts).
    fn release_moved(&self, table: Arc<RoutingTable>) -> BoxFuture<'static, ()>;
    /// How many activations the host holds, for heartbeats.
    fn active_count(&self) -> u64;
}

/// A session of a host without actors of its own (it only follows tables).
pub struct NoLocalActors;

impl LocalActors for NoLocalActors {
    fn release_moved(&self, _table: Arc<RoutingTable>) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }

    fn active_count(&self) -> u64 {
        0
    }
}

#[derive(Clone)]
pub struct PlacementSessionConfig {
    /// Placement addresses (`host:port`); any member will do, followers redirect.
    pub placement: Vec<String>,
    pub host: HostInfo,
    pub heartbeat_interval_ms: u64,
}

/// Handle on the session task. Dropping it ends the session.
pub struct PlacementSession {
    state: watch::Receiver<TableState>,
    registration: watch::Sender<HostInfo>,
    leaving: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Drop for PlacementSession {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PlacementSession {
    /// Starts the session task, which writes what it learns to `state` and lets `actors`
    /// release moved actors before it acknowledges a new table.
    pub fn spawn(
        config: PlacementSessionConfig,
        transport: SharedTransport,
        state_tx: watch::Sender<TableState>,
        actors: Arc<dyn LocalActors>,
    ) -> PlacementSession {
        let state = state_tx.subscribe();
        let (registration, registration_rx) = watch::channel(config.host.clone());
        let (leaving, leaving_rx) = watch::channel(false);
        let task = tokio::spawn(run(
            config,
            transport,
            state_tx,
            actors,
            registration_rx,
            leaving_rx,
        ));
        PlacementSession {
            state,
            registration,
            leaving,
            task,
        }
    }

    /// The session of a host without actors of its own: it registers and follows tables.
    pub fn spawn_without_actors(
        config: PlacementSessionConfig,
        transport: SharedTransport,
    ) -> PlacementSession {
        let (state_tx, _) = watch::channel(TableState::default());
        PlacementSession::spawn(config, transport, state_tx, Arc::new(NoLocalActors))
    }

    /// The table state as it changes.
    pub fn subscribe(&self) -> watch::Receiver<TableState> {
        self.state.clone()
    }

    /// The current table state.
    pub fn current(&self) -> TableState {
        self.state.borrow().clone()
    }

    /// Re-registers with new host information (e.g. when an app registers actor types).
    pub fn update_registration(&self, host: HostInfo) {
        self.registration.send_replace(host);
    }

    /// Asks placement to remove this host (a graceful leave). The host then receives the table
    /// without itself, releases its actors, and may disconnect.
    pub fn leave(&self) {
        self.leaving.send_replace(true);
    }
}

enum SessionEnd {
    Redirect(Option<String>),
    Broken(String),
}

/// Per-run session state shared across reconnects.
struct Session<'a> {
    config: &'a PlacementSessionConfig,
    actors: &'a dyn LocalActors,
    transport: &'a SharedTransport,
    state: &'a watch::Sender<TableState>,
    registration: &'a mut watch::Receiver<HostInfo>,
    leaving: &'a mut watch::Receiver<bool>,
    heartbeat_seq: u64,
}

async fn run(
    config: PlacementSessionConfig,
    transport: SharedTransport,
    state: watch::Sender<TableState>,
    actors: Arc<dyn LocalActors>,
    mut registration: watch::Receiver<HostInfo>,
    mut leaving: watch::Receiver<bool>,
) {
    let mut backoff_ms = RECONNECT_BACKOFF_MIN_MS;
    let mut next_index = 0usize;
    let mut redirect: Option<String> = None;
    let mut redirects_in_a_row = 0u32;
    let mut session = Session {
        config: &config,
        actors: actors.as_ref(),
        transport: &transport,
        state: &state,
        registration: &mut registration,
        leaving: &mut leaving,
        heartbeat_seq: 0,
    };
    loop {
        let address = match redirect.take() {
            Some(address) => address,
            None => {
                let address = config.placement[next_index % config.placement.len()].clone();
                next_index += 1;
                address
            }
        };
        let mut registered = false;
        let end = session.run(&address, &mut registered).await;
        state.send_modify(|s| s.connected = false);
        if registered {
            backoff_ms = RECONNECT_BACKOFF_MIN_MS;
            redirects_in_a_row = 0;
        }
        match end {
            SessionEnd::Redirect(Some(leader)) if redirects_in_a_row < MAX_REDIRECTS_IN_A_ROW => {
                tracing::debug!(from = %address, to = %leader, "placement redirect");
                redirects_in_a_row += 1;
                redirect = Some(leader);
                continue;
            }
            SessionEnd::Redirect(_) => {
                redirects_in_a_row = 0;
                tracing::debug!(%address, "placement has no leader yet");
            }
            SessionEnd::Broken(reason) => {
                redirects_in_a_row = 0;
                tracing::info!(%address, %reason, "placement session ended");
            }
        }
        tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
        backoff_ms = (backoff_ms * 2).min(RECONNECT_BACKOFF_MAX_MS);
    }
}

fn registration_report(host: &HostInfo) -> HostReport {
    HostReport {
        report: Some(Report::Register(HostRegistration {
            host_id: host.id.clone(),
            address: host.address.clone(),
            app_id: host.app_id.clone(),
            actor_types: host.actor_types.clone(),
        })),
    }
}

fn ack(phase: OrderPhase, version: u64) -> HostReport {
    HostReport {
        report: Some(Report::Ack(OrderAck {
            phase: phase as i32,
            version,
        })),
    }
}

impl Session<'_> {
    async fn run(&mut self, address: &str, registered: &mut bool) -> SessionEnd {
        let channel = match net::channel(self.transport, address) {
            Ok(channel) => channel,
            Err(e) => return SessionEnd::Broken(format!("bad placement address: {e}")),
        };
        let (reports, reports_rx) = mpsc::channel(REPORT_QUEUE_CAPACITY);
        let first = registration_report(&self.registration.borrow_and_update());
        if reports.try_send(first).is_err() {
            return SessionEnd::Broken("report queue closed".into());
        }
        let mut orders = match PlacementGrpc::new(channel)
            .report_host(ReceiverStream::new(reports_rx))
            .await
        {
            Ok(response) => response.into_inner(),
            Err(status) => {
                return SessionEnd::Broken(format!("{}: {}", status.code(), status.message()))
            }
        };
        let mut sent_heartbeats: VecDeque<(u64, Instant)> =
            VecDeque::with_capacity(MAX_UNACKED_HEARTBEATS);
        let mut heartbeat =
            tokio::time::interval(Duration::from_millis(self.config.heartbeat_interval_ms));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // An UPDATE whose moved actors are still being released: its ack is sent once they
        // are, while heartbeats go on.
        let mut pending_update: Option<(u64, BoxFuture<'static, ()>)> = None;
        let mut leave_sent = false;
        loop {
            if *self.leaving.borrow() && !leave_sent {
                leave_sent = true;
                if reports
                    .try_send(HostReport {
                        report: Some(Report::Leave(Leave {})),
                    })
                    .is_err()
                {
                    return SessionEnd::Broken("report queue full".into());
                }
            }
            tokio::select! {
                order = orders.next(), if pending_update.is_none() => {
                    let order = match order {
                        None => return SessionEnd::Broken("stream closed by placement".into()),
                        Some(Err(status)) => return SessionEnd::Broken(format!("{}: {}", status.code(), status.message())),
                        Some(Ok(order)) => order,
                    };
                    let reply = match order.order {
                        Some(Order::NotLeader(not_leader)) => {
                            let leader = Some(not_leader.leader_address).filter(|a| !a.is_empty());
                            return SessionEnd::Redirect(leader);
                        }
                        Some(Order::HeartbeatAck(granted)) => {
                            if let Some(&(_, sent_at)) = sent_heartbeats.iter().find(|(seq, _)| *seq == granted.seq) {
                                let until = sent_at + Duration::from_millis(granted.lease_ms);
                                let now = Instant::now();
                                self.state.send_modify(|s| s.update(now, |s| {
                                    if s.lease_until.is_none_or(|current| current < until) {
                                        s.lease_until = Some(until);
                                    }
                                    s.lease_table_version = s.lease_table_version.max(TableVersion(granted.table_version));
                                }));
                            }
                            sent_heartbeats.retain(|(seq, _)| *seq > granted.seq);
                            continue;
                        }
                        Some(Order::Lock(lock)) => {
                            self.state.send_modify(|s| { s.locked = true; s.connected = true; });
                            ack(OrderPhase::Lock, lock.version)
                        }
                        Some(Order::Update(table)) => {
                            let version = table.version;
                            let mut applied = None;
                            let now = Instant::now();
                            self.state.send_if_modified(|s| {
                                s.connected = true;
                                let newer = s.table.as_ref().is_none_or(|t| t.version().0 < version);
                                if newer {
                                    let routing = Arc::new(RoutingTable::from_wire_after(table, s.table.as_deref()));
                                    applied = Some(routing.clone());
                                    s.update(now, |s| s.table = Some(routing));
                                }
                                newer
                            });
                            match applied {
                                Some(table) => {
                                    pending_update = Some((version, self.actors.release_moved(table)));
                                    continue;
                                }
                                None => ack(OrderPhase::Update, version),
                            }
                        }
                        Some(Order::Unlock(unlock)) => {
                            self.state.send_modify(|s| { s.locked = false; s.connected = true; });
                            ack(OrderPhase::Unlock, unlock.version)
                        }
                        None => continue,
                    };
                    *registered = true;
                    if reports.try_send(reply).is_err() {
                        return SessionEnd::Broken("report queue full".into());
                    }
                }
                _ = async { pending_update.as_mut().expect("guarded").1.as_mut().await }, if pending_update.is_some() => {
                    let (version, _) = pending_update.take().expect("guarded");
                    *registered = true;
                    if reports.try_send(ack(OrderPhase::Update, version)).is_err() {
                        return SessionEnd::Broken("report queue full".into());
                    }
                }
                _ = heartbeat.tick() => {
                    self.heartbeat_seq += 1;
                    let seq = self.heartbeat_seq;
                    if sent_heartbeats.len() == MAX_UNACKED_HEARTBEATS {
                        sent_heartbeats.pop_front();
                    }
                    sent_heartbeats.push_back((seq, Instant::now()));
                    let active_actors = self.actors.active_count();
                    let beat = HostReport { report: Some(Report::Heartbeat(Heartbeat { seq, active_actors })) };
                    if reports.try_send(beat).is_err() {
                        return SessionEnd::Broken("report queue full".into());
                    }
                }
                changed = self.registration.changed() => {
                    if changed.is_err() {
                        return SessionEnd::Broken("host shutting down".into());
                    }
                    let report = registration_report(&self.registration.borrow_and_update());
                    if reports.try_send(report).is_err() {
                        return SessionEnd::Broken("report queue full".into());
                    }
                }
                _ = self.leaving.changed(), if !leave_sent => {}
            }
        }
    }
}

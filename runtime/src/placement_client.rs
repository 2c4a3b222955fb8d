//! A host's session with the placement service.
//!
//! One task keeps a `ReportHost` stream open to the placement leader: it dials the configured
//! addresses in turn, follows `NotLeader` redirects, registers, heartbeats, and applies the
//! orders it receives to a [`TableState`] that routers watch. Only tables newer than the one
//! held are applied, so the version a host routes by never goes down, even across placement
//! fail-overs. When the stream breaks it reconnects with exponential back-off.

use std::sync::Arc;
use std::time::Duration;

use rookery_placement::net::{self, SharedTransport};
use rookery_placement::table::HostInfo;
use rookery_proto::v1::placement_client::PlacementClient as PlacementGrpc;
use rookery_proto::v1::{
    host_report::Report, placement_order::Order, Heartbeat, HostRegistration, HostReport, OrderAck,
    OrderPhase,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use crate::routing::{RoutingTable, TableState};

/// Default interval between heartbeats; several fit in the placement host timeout (3 s).
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 500;
/// First and last delay between reconnection attempts.
pub const RECONNECT_BACKOFF_MIN_MS: u64 = 50;
pub const RECONNECT_BACKOFF_MAX_MS: u64 = 2_000;
/// Redirects followed in a row before backing off (guards against redirect loops while a
/// leadership change settles).
pub const MAX_REDIRECTS_IN_A_ROW: u32 = 3;
/// Reports queued to placement; heartbeats and acks are tiny and paced by the leader.
const REPORT_QUEUE_CAPACITY: usize = 64;

#[derive(Clone, Debug)]
pub struct PlacementClientConfig {
    /// Placement addresses (`host:port`); any member will do, followers redirect.
    pub placement: Vec<String>,
    pub host: HostInfo,
    pub heartbeat_interval_ms: u64,
}

/// Handle on the session task. Dropping it ends the session.
pub struct PlacementClient {
    state: watch::Receiver<TableState>,
    registration: watch::Sender<HostInfo>,
    task: JoinHandle<()>,
}

impl Drop for PlacementClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PlacementClient {
    /// Starts the session task.
    pub fn spawn(config: PlacementClientConfig, transport: SharedTransport) -> PlacementClient {
        let (state_tx, state) = watch::channel(TableState::default());
        let (registration, registration_rx) = watch::channel(config.host.clone());
        let task = tokio::spawn(run(config, transport, state_tx, registration_rx));
        PlacementClient {
            state,
            registration,
            task,
        }
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
}

enum SessionEnd {
    Redirect(Option<String>),
    Broken(String),
}

async fn run(
    config: PlacementClientConfig,
    transport: SharedTransport,
    state: watch::Sender<TableState>,
    mut registration: watch::Receiver<HostInfo>,
) {
    let mut backoff_ms = RECONNECT_BACKOFF_MIN_MS;
    let mut next_index = 0usize;
    let mut redirect: Option<String> = None;
    let mut redirects_in_a_row = 0u32;
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
        let end = session(
            &config,
            &transport,
            &address,
            &state,
            &mut registration,
            &mut registered,
        )
        .await;
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

async fn session(
    config: &PlacementClientConfig,
    transport: &SharedTransport,
    address: &str,
    state: &watch::Sender<TableState>,
    registration: &mut watch::Receiver<HostInfo>,
    registered: &mut bool,
) -> SessionEnd {
    let channel = match net::channel(transport, address) {
        Ok(channel) => channel,
        Err(e) => return SessionEnd::Broken(format!("bad placement address: {e}")),
    };
    let (reports, reports_rx) = mpsc::channel(REPORT_QUEUE_CAPACITY);
    let first = registration_report(&registration.borrow_and_update());
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
    let mut heartbeat = tokio::time::interval(Duration::from_millis(config.heartbeat_interval_ms));
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            order = orders.next() => {
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
                    Some(Order::Lock(lock)) => {
                        state.send_modify(|s| { s.locked = true; s.connected = true; });
                        ack(OrderPhase::Lock, lock.version)
                    }
                    Some(Order::Update(table)) => {
                        let version = table.version;
                        state.send_if_modified(|s| {
                            s.connected = true;
                            let newer = s.table.as_ref().is_none_or(|t| t.version().0 < version);
                            if newer {
                                s.table = Some(Arc::new(RoutingTable::from_wire(table)));
                            }
                            newer
                        });
                        ack(OrderPhase::Update, version)
                    }
                    Some(Order::Unlock(unlock)) => {
                        state.send_modify(|s| { s.locked = false; s.connected = true; });
                        ack(OrderPhase::Unlock, unlock.version)
                    }
                    None => continue,
                };
                *registered = true;
                if reports.try_send(reply).is_err() {
                    return SessionEnd::Broken("report queue full".into());
                }
            }
            _ = heartbeat.tick() => {
                let beat = HostReport { report: Some(Report::Heartbeat(Heartbeat {})) };
                if reports.try_send(beat).is_err() {
                    return SessionEnd::Broken("report queue full".into());
                }
            }
            changed = registration.changed() => {
                if changed.is_err() {
                    return SessionEnd::Broken("host shutting down".into());
                }
                let report = registration_report(&registration.borrow_and_update());
                if reports.try_send(report).is_err() {
                    return SessionEnd::Broken("report queue full".into());
                }
            }
        }
    }
}

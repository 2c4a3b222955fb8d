//! The table a host routes by: the placement table with its rings built once per version.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;

use rookery_placement::ring::HashRing;
use rookery_placement::table::{HostInfo, PlacementTable, TableVersion};
use rookery_proto::v1::PlacementTable as WireTable;

/// A placement table and its rings, immutable once built and shared by every router task.
#[derive(Debug)]
pub struct RoutingTable {
    pub table: PlacementTable,
    rings: BTreeMap<String, HashRing>,
}

impl RoutingTable {
    pub fn new(table: PlacementTable) -> RoutingTable {
        let rings = table.rings();
        RoutingTable { table, rings }
    }

    pub fn from_wire(wire: WireTable) -> RoutingTable {
        RoutingTable::new(PlacementTable {
            version: TableVersion(wire.version),
            vnodes_per_host: wire.vnodes_per_host,
            hosts: wire
                .hosts
                .into_iter()
                .map(|h| {
                    HostInfo {
                        id: h.host_id,
                        address: h.address,
                        app_id: h.app_id,
                        actor_types: h.actor_types,
                    }
                    .normalized()
                })
                .collect(),
        })
    }

    pub fn version(&self) -> TableVersion {
        self.table.version
    }

    /// The host that owns actor `actor_id` of `actor_type`, or `None` if no host serves the type.
    pub fn owner(&self, actor_type: &str, actor_id: &str) -> Option<&HostInfo> {
        let host_id = self.rings.get(actor_type)?.owner(actor_id)?;
        self.table.host(host_id)
    }

    /// Whether any host serves `actor_type`.
    pub fn serves(&self, actor_type: &str) -> bool {
        self.rings.contains_key(actor_type)
    }
}

/// What a host knows from placement at one moment.
#[derive(Clone, Debug, Default)]
pub struct TableState {
    /// The newest table received; `None` until the first UPDATE.
    pub table: Option<Arc<RoutingTable>>,
    /// Between LOCK and UNLOCK: a new table is being disseminated; routing waits.
    pub locked: bool,
    /// Whether a session with the placement leader is open.
    pub connected: bool,
    /// Until when this host may serve its actors: the lease its last acknowledged heartbeat
    /// earned. `None` before the first ack.
    pub lease_until: Option<tokio::time::Instant>,
}

impl TableState {
    /// Whether the lease holds at `now`.
    pub fn lease_valid(&self, now: tokio::time::Instant) -> bool {
        self.lease_until.is_some_and(|until| now < until)
    }
}

/// Whether this host may run turns of its actors now: while its placement lease holds, or
/// always when the operator chose availability over safety (`--serve-without-lease`).
#[derive(Clone)]
pub struct ServingGate {
    state: watch::Receiver<TableState>,
    always_open: bool,
}

impl ServingGate {
    pub fn new(state: watch::Receiver<TableState>, always_open: bool) -> ServingGate {
        ServingGate { state, always_open }
    }

    pub fn is_open(&self) -> bool {
        self.always_open || self.state.borrow().lease_valid(tokio::time::Instant::now())
    }

    /// Waits until the gate opens (a lease renewal), up to `deadline`. Returns whether it is
    /// open.
    pub async fn wait_open(&self, deadline: tokio::time::Instant) -> bool {
        let mut state = self.state.clone();
        loop {
            if self.is_open() {
                return true;
            }
            match tokio::time::timeout_at(deadline, state.changed()).await {
                Ok(Ok(())) => continue,
                _ => return self.is_open(),
            }
        }
    }
}

//! The table a host routes by: the placement table with its rings built once per version.

use std::collections::BTreeMap;
use std::sync::Arc;

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
}

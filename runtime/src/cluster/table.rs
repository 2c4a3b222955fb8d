//! The table a host routes by — the placement table with its rings built once per version —
//! and [`TableState`], everything a host knows from placement at one moment (table, lock,
//! lease), which the placement session writes and routing, the lease gate and the lifecycle
//! tasks watch.
//!
//! A host builds the rings of every table it applies, on the path of the UPDATE order of a
//! dissemination round, so the rings of the table it held are passed in: rings whose members
//! did not change are taken over and the rest derived from them (see
//! [`PlacementTable::rings_after`]), which for the usual one-host change is a copy instead of
//! a rebuild. The owners are the same as with rings built from scratch.

use std::cell::RefCell;
use std::sync::Arc;

use rookery_core::table::{HostInfo, PlacementTable, SharedRings, TableVersion};
use rookery_proto::internal::v1::PlacementTable as WireTable;
use tokio::sync::watch;

/// A placement table and its rings, immutable once built and shared by every router task.
#[derive(Debug)]
pub struct RoutingTable {
    pub table: PlacementTable,
    /// Shared with the tables before and after this one wherever the members of a type did
    /// not change.
    rings: SharedRings,
}

impl RoutingTable {
    pub fn new(table: PlacementTable) -> RoutingTable {
        RoutingTable::new_after(table, None)
    }

    /// The routing table of `table`, reusing the rings of `previous` (the table it replaces)
    /// where it can.
    pub fn new_after(table: PlacementTable, previous: Option<&RoutingTable>) -> RoutingTable {
        let rings = table.rings_after(previous.map(|previous| &previous.rings));
        RoutingTable { table, rings }
    }

    pub fn from_wire(wire: WireTable) -> RoutingTable {
        RoutingTable::from_wire_after(wire, None)
    }

    /// [`RoutingTable::from_wire`], reusing the rings of `previous` as
    /// [`RoutingTable::new_after`] does.
    pub fn from_wire_after(wire: WireTable, previous: Option<&RoutingTable>) -> RoutingTable {
        RoutingTable::new_after(PlacementTable::from_wire(wire), previous)
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
    /// The leader's table version when it granted the lease: the lease counts only once this
    /// host holds that table (or a newer one).
    pub lease_table_version: TableVersion,
    /// Bumped when this host may serve again after a lapse during which the table changed:
    /// activations from an older epoch may have been taken over by other hosts and must not
    /// run another turn.
    pub epoch: u64,
    /// The table version held when serving stopped, while it is stopped.
    pub lapsed_at_version: Option<TableVersion>,
}

/// Reads the current table state on the path of every call: each thread keeps a copy of its
/// own and refreshes it only once the state has changed, which it learns from one atomic
/// load. (`watch::Receiver::borrow` takes the channel's lock: a write to memory that every
/// core shares, on every call.)
pub fn read_current<R>(
    state: &watch::Receiver<TableState>,
    read: impl FnOnce(&TableState) -> R,
) -> R {
    thread_local! {
        static COPY: RefCell<Option<(watch::Receiver<TableState>, TableState)>> =
            const { RefCell::new(None) };
    }
    COPY.with(|copy| {
        let Ok(mut copy) = copy.try_borrow_mut() else {
            // Called from within `read` on this thread: read the channel itself.
            return read(&state.borrow());
        };
        let fresh = match copy.as_mut() {
            Some((receiver, _)) if receiver.same_channel(state) => {
                !receiver.has_changed().unwrap_or(true)
            }
            _ => false,
        };
        if !fresh {
            let mut receiver = state.clone();
            let current = receiver.borrow_and_update().clone();
            *copy = Some((receiver, current));
        }
        read(&copy.as_ref().expect("refreshed above").1)
    })
}

impl TableState {
    /// Whether the lease holds at `now`.
    pub fn lease_valid(&self, now: tokio::time::Instant) -> bool {
        self.lease_until.is_some_and(|until| now < until)
    }

    /// Whether this host may run turns at `now`: a valid lease, and the table it was granted
    /// against.
    pub fn may_serve(&self, now: tokio::time::Instant) -> bool {
        self.lease_valid(now)
            && self
                .table
                .as_ref()
                .is_some_and(|t| t.version() >= self.lease_table_version)
    }

    /// Applies a change (a lease renewal, a new table) and keeps the serving epoch right:
    /// if serving had stopped and the table changed before it resumed, the epoch moves on.
    pub fn update(&mut self, now: tokio::time::Instant, change: impl FnOnce(&mut TableState)) {
        let version = |s: &TableState| s.table.as_ref().map(|t| t.version()).unwrap_or_default();
        if self.lease_until.is_some() && !self.may_serve(now) && self.lapsed_at_version.is_none() {
            self.lapsed_at_version = Some(version(self));
        }
        change(self);
        if self.may_serve(now) {
            if let Some(lapsed_at) = self.lapsed_at_version.take() {
                if version(self) != lapsed_at {
                    self.epoch += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_proto::internal::v1::HostEntry;

    fn wire(version: u64, hosts: &[(&str, &[&str])]) -> WireTable {
        WireTable {
            version,
            vnodes_per_host: 100,
            hosts: hosts
                .iter()
                .map(|(id, types)| HostEntry {
                    host_id: id.to_string(),
                    address: format!("{id}:7000"),
                    app_id: "app".to_owned(),
                    actor_types: types.iter().map(|t| t.to_string()).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn tables_built_after_the_previous_one_route_like_fresh_ones() {
        let v1 = wire(
            1,
            &[("h1", &["A", "B"]), ("h2", &["A", "B"]), ("h3", &["A"])],
        );
        // h4 joins serving A, h2 leaves: B changes by one host, A by two.
        let v2 = wire(
            2,
            &[("h1", &["A", "B"]), ("h3", &["A"]), ("h4", &["A", "B"])],
        );
        let previous = RoutingTable::from_wire(v1);
        let derived = RoutingTable::from_wire_after(v2.clone(), Some(&previous));
        let fresh = RoutingTable::from_wire(v2);
        assert_eq!(derived.version(), TableVersion(2));
        assert!(derived.serves("A") && derived.serves("B") && !derived.serves("C"));
        for i in 0..2000 {
            let id = format!("actor-{i}");
            for actor_type in ["A", "B", "C"] {
                assert_eq!(
                    derived.owner(actor_type, &id).map(|h| &h.id),
                    fresh.owner(actor_type, &id).map(|h| &h.id),
                    "{actor_type}/{id}"
                );
            }
        }
    }

    #[test]
    fn a_thread_s_copy_of_the_state_follows_every_change_of_each_channel() {
        let (first_tx, first) = watch::channel(TableState::default());
        let (second_tx, second) = watch::channel(TableState::default());
        assert_eq!(read_current(&first, |s| s.epoch), 0);
        first_tx.send_modify(|s| s.epoch = 1);
        assert_eq!(read_current(&first, |s| s.epoch), 1);
        second_tx.send_modify(|s| s.epoch = 7);
        assert_eq!(read_current(&second, |s| s.epoch), 7);
        assert_eq!(read_current(&first, |s| s.epoch), 1);
        first_tx.send_modify(|s| s.locked = true);
        assert!(read_current(&first, |s| s.locked));
        // Read again from within a read: the channel itself answers.
        assert_eq!(
            read_current(&first, |_| read_current(&second, |s| s.epoch)),
            7
        );
        drop(first_tx);
        assert!(
            read_current(&first, |s| s.locked),
            "a closed channel keeps its last state"
        );
    }
}

//! The placement table: the versioned list of hosts and their actor types that the leader
//! disseminates, and from which every host computes actor owners with [`crate::ring`].
//!
//! Every host builds the rings of every table it receives, and a ring of 1000 hosts at the
//! default vnodes takes tens of milliseconds to build, so [`PlacementTable::rings_after`] does
//! as little of that as it can: actor types with the same member hosts share one ring, a ring
//! whose members did not change is taken over from the previous table, and one whose members
//! changed by a few hosts is derived from its previous ring ([`HashRing::new_after`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use rookery_proto::internal::v1::{HostEntry, PlacementTable as WireTable};
use serde::{Deserialize, Serialize};

use crate::ring::HashRing;

/// Version of the placement table. Only grows: a host never applies a table whose version is
/// not greater than the one it holds.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct TableVersion(pub u64);

impl TableVersion {
    /// The version that follows this one.
    pub fn next(self) -> TableVersion {
        TableVersion(self.0 + 1)
    }
}

impl fmt::Display for TableVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// A host as placement knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Unique among live hosts.
    pub id: String,
    /// `host:port` other hosts dial to reach it.
    pub address: String,
    pub app_id: String,
    /// Sorted and free of duplicates (see [`HostInfo::normalized`]).
    pub actor_types: Vec<String>,
}

impl HostInfo {
    /// The same host with its actor types sorted and deduplicated, so that equal registrations
    /// compare equal.
    pub fn normalized(mut self) -> HostInfo {
        self.actor_types.sort();
        self.actor_types.dedup();
        self
    }

    /// The host as the internal protocol carries it.
    pub fn to_wire(&self) -> HostEntry {
        HostEntry {
            host_id: self.id.clone(),
            address: self.address.clone(),
            app_id: self.app_id.clone(),
            actor_types: self.actor_types.clone(),
        }
    }

    /// A host from the wire, normalized.
    pub fn from_wire(entry: HostEntry) -> HostInfo {
        HostInfo {
            id: entry.host_id,
            address: entry.address,
            app_id: entry.app_id,
            actor_types: entry.actor_types,
        }
        .normalized()
    }
}

/// The table a host routes by: every host that serves at least one actor type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementTable {
    pub version: TableVersion,
    pub vnodes_per_host: u32,
    /// Sorted by host id.
    pub hosts: Vec<HostInfo>,
}

impl PlacementTable {
    /// The table as it travels to hosts (`UPDATE`).
    pub fn to_wire(&self) -> WireTable {
        WireTable {
            version: self.version.0,
            vnodes_per_host: self.vnodes_per_host,
            hosts: self.hosts.iter().map(HostInfo::to_wire).collect(),
        }
    }

    /// A table as a host receives it.
    pub fn from_wire(wire: WireTable) -> PlacementTable {
        PlacementTable {
            version: TableVersion(wire.version),
            vnodes_per_host: wire.vnodes_per_host,
            hosts: wire.hosts.into_iter().map(HostInfo::from_wire).collect(),
        }
    }
}

/// The hash ring of each actor type; types served by the same hosts share one ring.
pub type SharedRings = BTreeMap<String, Arc<HashRing>>;

impl PlacementTable {
    /// One hash ring per actor type, over the hosts that registered that type, each its own
    /// copy. Routing uses [`PlacementTable::rings_after`], which shares and reuses rings
    /// instead; this is for callers that want plain values (tests, tools).
    pub fn rings(&self) -> BTreeMap<String, HashRing> {
        self.shared_rings()
            .into_iter()
            .map(|(actor_type, ring)| (actor_type, Arc::unwrap_or_clone(ring)))
            .collect()
    }

    /// One hash ring per actor type, built from scratch except that types with the same
    /// member hosts share one ring.
    pub fn shared_rings(&self) -> SharedRings {
        self.rings_after(None)
    }

    /// The same rings as [`PlacementTable::shared_rings`] (the same owner for every actor),
    /// built with the help of `previous`, the rings of the table this one replaces:
    ///
    /// - a type whose member set equals that of any previous ring takes that ring over;
    /// - a type whose members changed is derived from its own previous ring, which is the
    ///   one most likely to differ by a host or two (a new type is built from scratch: its
    ///   first members register one at a time, so it is small when it first appears);
    /// - types with the same members in this table share the ring built for the first.
    ///
    /// Rings from a table with a different vnode count are never reused.
    pub fn rings_after(&self, previous: Option<&SharedRings>) -> SharedRings {
        let mut members: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for host in &self.hosts {
            for actor_type in &host.actor_types {
                members.entry(actor_type).or_default().push(&host.id);
            }
        }
        // Previous rings by member set, to find one with exactly the new members without
        // comparing against every previous ring (ring hosts are sorted and deduplicated).
        let previous_by_members: HashMap<Vec<&str>, &Arc<HashRing>> = previous
            .into_iter()
            .flat_map(|rings| rings.values())
            .filter(|ring| ring.vnodes_per_host() == self.vnodes_per_host)
            .map(|ring| (ring.hosts().iter().map(String::as_str).collect(), ring))
            .collect();
        let mut built: HashMap<Vec<&str>, Arc<HashRing>> = HashMap::new();
        let mut rings = SharedRings::new();
        for (actor_type, mut hosts) in members {
            // Tables are sorted by host id, but a table off the wire is not checked for that;
            // the member list must be canonical to find equal member sets.
            hosts.sort_unstable();
            hosts.dedup();
            let ring = match built.get(&hosts) {
                Some(ring) => Arc::clone(ring),
                None => {
                    let ring = match previous_by_members.get(&hosts) {
                        Some(&same_members) => Arc::clone(same_members),
                        None => {
                            // Most likely a host or two away from the new members.
                            let base = previous.and_then(|rings| rings.get(actor_type));
                            Arc::new(HashRing::new_after(
                                hosts.iter().copied(),
                                self.vnodes_per_host,
                                base.map(Arc::as_ref),
                            ))
                        }
                    };
                    built.insert(hosts, Arc::clone(&ring));
                    ring
                }
            };
            rings.insert(actor_type.to_owned(), ring);
        }
        rings
    }

    /// The host with the given id, if it is in the table.
    pub fn host(&self, host_id: &str) -> Option<&HostInfo> {
        self.hosts
            .binary_search_by(|h| h.id.as_str().cmp(host_id))
            .ok()
            .map(|i| &self.hosts[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(version: u64, hosts: &[(&str, &[&str])]) -> PlacementTable {
        PlacementTable {
            version: TableVersion(version),
            vnodes_per_host: 50,
            hosts: hosts
                .iter()
                .map(|(id, types)| HostInfo {
                    id: id.to_string(),
                    address: format!("{id}:7000"),
                    app_id: "app".to_owned(),
                    actor_types: types.iter().map(|t| t.to_string()).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn rings_are_shared_taken_over_and_derived() {
        let v1 = table(1, &[("h1", &["A", "B", "C"]), ("h2", &["A", "B"])]);
        let rings_v1 = v1.shared_rings();
        // A and B have the same members: one ring.
        assert!(Arc::ptr_eq(&rings_v1["A"], &rings_v1["B"]));
        assert!(!Arc::ptr_eq(&rings_v1["A"], &rings_v1["C"]));

        // h3 joins serving A only; C and B keep their members.
        let v2 = table(
            2,
            &[
                ("h1", &["A", "B", "C"]),
                ("h2", &["A", "B"]),
                ("h3", &["A"]),
            ],
        );
        let rings_v2 = v2.rings_after(Some(&rings_v1));
        assert!(Arc::ptr_eq(&rings_v2["B"], &rings_v1["B"]));
        assert!(Arc::ptr_eq(&rings_v2["C"], &rings_v1["C"]));
        assert!(!Arc::ptr_eq(&rings_v2["A"], &rings_v1["A"]));
        assert_eq!(rings_v2["A"].hosts(), ["h1", "h2", "h3"]);
        for (actor_type, ring) in v2.shared_rings() {
            assert!(*rings_v2[&actor_type] == *ring, "{actor_type}");
        }

        // h3 leaves and h2 takes C: all three types now have B's members, so B's previous
        // ring is taken over, also by the types it did not belong to.
        let v3 = table(3, &[("h1", &["A", "B", "C"]), ("h2", &["A", "B", "C"])]);
        let rings_v3 = v3.rings_after(Some(&rings_v2));
        for actor_type in ["A", "B", "C"] {
            assert!(Arc::ptr_eq(&rings_v3[actor_type], &rings_v2["B"]));
        }

        // A different vnode count: nothing is reused.
        let mut v4 = v3.clone();
        v4.vnodes_per_host = 60;
        let rings_v4 = v4.rings_after(Some(&rings_v3));
        assert!(!Arc::ptr_eq(&rings_v4["A"], &rings_v3["A"]));
        assert_eq!(rings_v4["A"].vnodes_per_host(), 60);
    }

    #[test]
    fn plain_rings_equal_shared_ones() {
        let v1 = table(1, &[("h1", &["A", "B"]), ("h2", &["A"])]);
        let shared = v1.shared_rings();
        let plain = v1.rings();
        assert_eq!(plain.len(), 2);
        for (actor_type, ring) in plain {
            assert!(ring == *shared[&actor_type]);
        }
    }
}

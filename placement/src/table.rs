//! The placement table: the versioned list of hosts and their actor types that the leader
//! disseminates, and from which every host computes actor owners with [`crate::ring`].

use std::collections::BTreeMap;
use std::fmt;

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
    /// One hash ring per actor type, over the hosts that registered that type.
    pub fn rings(&self) -> BTreeMap<String, HashRing> {
        let mut members: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for host in &self.hosts {
            for actor_type in &host.actor_types {
                members.entry(actor_type).or_default().push(&host.id);
            }
        }
        members
            .into_iter()
            .map(|(actor_type, hosts)| {
                (
                    actor_type.to_owned(),
                    HashRing::new(hosts, self.vnodes_per_host),
                )
            })
            .collect()
    }

    /// The host with the given id, if it is in the table.
    pub fn host(&self, host_id: &str) -> Option<&HostInfo> {
        self.hosts
            .binary_search_by(|h| h.id.as_str().cmp(host_id))
            .ok()
            .map(|i| &self.hosts[i])
    }
}

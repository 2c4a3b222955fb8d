//! Consistent-hash ring of actor ids to hosts, one per actor type.
//!
//! Placement and every host build rings with this same code from the same table, so they agree
//! on the owner of every actor without asking anyone. The hash (xxh3-64, seed 0) is specified
//! independently of this crate and of the platform, so owners stay the same across versions.

use xxhash_rust::xxh3::xxh3_64;

/// Virtual nodes per host unless configured otherwise.
pub const DEFAULT_VNODES_PER_HOST: u32 = 256;

/// A ring of hosts, each placed at `vnodes_per_host` points.
#[derive(Clone, Debug)]
pub struct HashRing {
    /// (point, index into `hosts`), sorted by point.
    points: Vec<(u64, u32)>,
    hosts: Vec<String>,
}

impl HashRing {
    /// Builds the ring over `hosts` (host ids).
    pub fn new<'a>(hosts: impl IntoIterator<Item = &'a str>, vnodes_per_host: u32) -> HashRing {
        let mut hosts: Vec<String> = hosts.into_iter().map(str::to_owned).collect();
        hosts.sort();
        hosts.dedup();
        let mut points = Vec::with_capacity(hosts.len() * vnodes_per_host as usize);
        for (index, host) in hosts.iter().enumerate() {
            for vnode in 0..vnodes_per_host {
                points.push((vnode_point(host, vnode), index as u32));
            }
        }
        points.sort_unstable();
        HashRing { points, hosts }
    }

    /// The host that owns `actor_id`, or `None` for an empty ring.
    pub fn owner(&self, actor_id: &str) -> Option<&str> {
        if self.points.is_empty() {
            return None;
        }
        let key = xxh3_64(actor_id.as_bytes());
        let at = self.points.partition_point(|(point, _)| *point < key);
        let (_, host) = self.points[at % self.points.len()];
        Some(&self.hosts[host as usize])
    }

    /// The hosts on the ring, sorted.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }
}

fn vnode_point(host: &str, vnode: u32) -> u64 {
    let mut key = Vec::with_capacity(host.len() + 5);
    key.extend_from_slice(host.as_bytes());
    key.push(b'#');
    key.extend_from_slice(&vnode.to_be_bytes());
    xxh3_64(&key)
}

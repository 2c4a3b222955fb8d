//! Benchmarks of the consistent-hash ring every host routes by: the cost of one owner lookup
//! (paid on every actor call that is not already cached), of building every ring of a
//! placement table from scratch, and of deriving them from the previous table's rings when one
//! host joins or leaves (paid on every host at every membership change).
//!
//! Run: `cargo bench --bench ring`. Measurement times are kept short so the whole run takes
//! a few minutes on the 2-core machine; results are recorded in `benches/README.md`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use rookery_core::ring::{HashRing, DEFAULT_VNODES_PER_HOST};
use rookery_core::table::{HostInfo, PlacementTable, TableVersion};

/// Hosts in the tables of the build and derive benchmarks: a large cluster, where building
/// rings is slow enough to matter.
const HOSTS: usize = 1000;
/// Actor types in the multi-type tables.
const ACTOR_TYPES: usize = 10;

/// Distinct ids cycled through by the lookup benchmarks. A power of two so the cycle is a mask;
/// 4096 is many more than fit a branch predictor's memory of the search path, yet the ids
/// themselves stay in cache, so what is measured is hashing plus the ring search.
const LOOKUP_IDS: usize = 4096;

fn host_ids(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("host-{i:04}")).collect()
}

fn bench_lookup(c: &mut Criterion) {
    let ids: Vec<String> = (0..LOOKUP_IDS)
        .map(|i| {
            format!(
                "actor-{:016x}",
                (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            )
        })
        .collect();
    let mut group = c.benchmark_group("ring_owner");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for host_count in [10, 1000] {
        let hosts = host_ids(host_count);
        let ring = HashRing::new(hosts.iter().map(String::as_str), DEFAULT_VNODES_PER_HOST);
        // One lookup per iteration, so criterion's time per iteration is ns per lookup.
        group.bench_function(format!("{host_count}_hosts"), |b| {
            let mut next = 0usize;
            b.iter(|| {
                next = (next + 1) & (LOOKUP_IDS - 1);
                black_box(ring.owner(black_box(&ids[next])));
            })
        });
    }
    group.finish();
}

/// How the hosts of a benchmark table register actor types.
#[derive(Clone, Copy)]
enum Layout {
    /// One type, served by every host.
    OneType,
    /// [`ACTOR_TYPES`] types, each served by every host: the rings have identical members.
    SameMembers,
    /// [`ACTOR_TYPES`] types; host `i` serves all but type `i % ACTOR_TYPES`, so each ring
    /// has 900 of the 1000 hosts and no two rings have the same members.
    DistinctMembers,
}

impl Layout {
    fn name(self) -> String {
        match self {
            Layout::OneType => "1_type".to_owned(),
            Layout::SameMembers => format!("{ACTOR_TYPES}_types"),
            Layout::DistinctMembers => format!("{ACTOR_TYPES}_distinct_types"),
        }
    }

    /// The types host number `index` registers.
    fn actor_types(self, index: usize) -> Vec<String> {
        let all = (0..ACTOR_TYPES).map(|t| format!("type-{t}"));
        match self {
            Layout::OneType => vec!["type-0".to_owned()],
            Layout::SameMembers => all.collect(),
            Layout::DistinctMembers => all
                .enumerate()
                .filter(|&(t, _)| t != index % ACTOR_TYPES)
                .map(|(_, name)| name)
                .collect(),
        }
    }
}

fn host_info(id: String, index: usize, actor_types: Vec<String>) -> HostInfo {
    HostInfo {
        id,
        address: format!("127.0.0.1:{}", 20_000 + index),
        app_id: "bench".to_owned(),
        actor_types,
    }
}

/// The [`HOSTS`]-host table of `layout`.
fn table(layout: Layout) -> PlacementTable {
    PlacementTable {
        version: TableVersion(1),
        vnodes_per_host: DEFAULT_VNODES_PER_HOST,
        hosts: host_ids(HOSTS)
            .into_iter()
            .enumerate()
            .map(|(i, id)| host_info(id, i, layout.actor_types(i)))
            .collect(),
    }
}

/// `table` plus one host that serves every type of the table. Its id sorts in the middle, so
/// the owner index of half the points shifts, as it usually would.
fn with_joined_host(table: &PlacementTable) -> PlacementTable {
    let all_types: std::collections::BTreeSet<String> = table
        .hosts
        .iter()
        .flat_map(|h| h.actor_types.iter().cloned())
        .collect();
    let mut next = table.clone();
    next.version = table.version.next();
    next.hosts.push(host_info(
        format!("host-{:04}-joined", HOSTS / 2),
        HOSTS,
        all_types.into_iter().collect(),
    ));
    next.hosts.sort_by(|a, b| a.id.cmp(&b.id));
    next
}

fn bench_build(c: &mut Criterion) {
    let hosts = host_ids(HOSTS);
    let same_members = table(Layout::SameMembers);
    let distinct_members = table(Layout::DistinctMembers);

    let mut group = c.benchmark_group("ring_build");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    group.bench_function(format!("one_ring_{HOSTS}_hosts"), |b| {
        b.iter(|| {
            black_box(HashRing::new(
                hosts.iter().map(String::as_str),
                black_box(DEFAULT_VNODES_PER_HOST),
            ))
        })
    });
    // `rings()` hands out one copy per type (the 10 rings are built once and copied).
    group.bench_function(
        format!("table_rings_{HOSTS}_hosts_x_{ACTOR_TYPES}_types"),
        |b| b.iter(|| black_box(black_box(&same_members).rings())),
    );
    // What a host does on its first table: one shared ring for the 10 types.
    group.bench_function(
        format!("shared_rings_{HOSTS}_hosts_x_{ACTOR_TYPES}_types"),
        |b| b.iter(|| black_box(black_box(&same_members).shared_rings())),
    );
    // Nothing to share: 10 full builds, what every table used to cost.
    group.bench_function(
        format!("shared_rings_{HOSTS}_hosts_x_{ACTOR_TYPES}_distinct_types"),
        |b| b.iter(|| black_box(black_box(&distinct_members).shared_rings())),
    );
    group.finish();
}

/// The rings of a table derived from those of the table before it, one host apart: what a
/// host pays per UPDATE order with `RoutingTable::from_wire_after`.
fn bench_derive(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_derive");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for layout in [
        Layout::OneType,
        Layout::SameMembers,
        Layout::DistinctMembers,
    ] {
        let before = table(layout);
        let after = with_joined_host(&before);
        let rings_before = before.shared_rings();
        let rings_after = after.shared_rings();
        group.bench_function(
            format!("add_one_host_{HOSTS}_hosts_x_{}", layout.name()),
            |b| b.iter(|| black_box(black_box(&after).rings_after(Some(&rings_before)))),
        );
        group.bench_function(
            format!("remove_one_host_{HOSTS}_hosts_x_{}", layout.name()),
            |b| b.iter(|| black_box(black_box(&before).rings_after(Some(&rings_after)))),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_lookup, bench_build, bench_derive);
criterion_main!(benches);

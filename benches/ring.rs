//! Benchmarks of the consistent-hash ring every host routes by: the cost of one owner lookup
//! (paid on every actor call that is not already cached) and of rebuilding every ring when a
//! new placement table arrives (paid on every host at every membership change).
//!
//! Run: `cargo bench --bench ring`. Measurement times are kept short so the whole run takes
//! about a minute on the 2-core machine; results are recorded in `benches/README.md`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use rookery_placement::ring::{HashRing, DEFAULT_VNODES_PER_HOST};
use rookery_placement::table::{HostInfo, PlacementTable, TableVersion};

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

fn bench_rebuild(c: &mut Criterion) {
    const HOSTS: usize = 1000;
    const ACTOR_TYPES: usize = 10;
    // Every host registers every type: the worst case, 10 rings of 1000 hosts each.
    let actor_types: Vec<String> = (0..ACTOR_TYPES).map(|i| format!("type-{i}")).collect();
    let table = PlacementTable {
        version: TableVersion(1),
        vnodes_per_host: DEFAULT_VNODES_PER_HOST,
        hosts: host_ids(HOSTS)
            .into_iter()
            .enumerate()
            .map(|(i, id)| HostInfo {
                id,
                address: format!("127.0.0.1:{}", 20_000 + i),
                app_id: "bench".to_owned(),
                actor_types: actor_types.clone(),
            })
            .collect(),
    };
    let hosts = host_ids(HOSTS);

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
    group.bench_function(
        format!("table_rings_{HOSTS}_hosts_x_{ACTOR_TYPES}_types"),
        |b| b.iter(|| black_box(black_box(&table).rings())),
    );
    group.finish();
}

criterion_group!(benches, bench_lookup, bench_rebuild);
criterion_main!(benches);

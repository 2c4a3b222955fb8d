//! Measures how evenly [`HashRing`] spreads actors over hosts at several vnode counts: the
//! figures behind `DEFAULT_VNODES_PER_HOST` and the "Hash ring" section of `benches/README.md`.
//!
//! Two measurements, both as max/mean (the busiest host's load over the average):
//! - sampled: a fixed ring (hosts `host-0`…`host-{n-1}`) and `--ids` random actor ids, i.e.
//!   what a real cluster of that shape would see;
//! - exact: `--sets` random host-name sets, each host's exact share of the hash space
//!   ([`HashRing::load_fractions`], the limit of infinitely many ids), summarized as mean, 99th
//!   percentile and worst over the sets. The default must hold for whatever names hosts have,
//!   so this tail, not one lucky layout, is what decides it.
//!
//! Run: `cargo run --release -p rookery-placement --example ring_balance [-- --ids N --sets N]`.
//! Everything is seeded, so the output is the same on every run and machine.

use rookery_core::ring::{HashRing, DEFAULT_VNODES_PER_HOST};

const HOST_COUNTS: [usize; 3] = [3, 5, 10];
const VNODE_COUNTS: [u32; 8] = [50, 100, 200, 256, 500, 1000, 1500, 2000];
const BOUND: f64 = 1.10;

fn main() {
    let mut ids_count = 1_000_000;
    let mut sets_count = 1000;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (flag.as_str(), value) {
            ("--ids", Some(v)) => ids_count = v,
            ("--sets", Some(v)) => sets_count = v,
            _ => {
                eprintln!("usage: ring_balance [--ids N] [--sets N]");
                std::process::exit(2);
            }
        }
    }

    let mut rng = SplitMix64(1);
    let ids: Vec<String> = (0..ids_count)
        .map(|_| format!("actor-{:016x}", rng.next()))
        .collect();

    println!("default vnodes per host: {DEFAULT_VNODES_PER_HOST}");
    println!();
    println!("sampled: hosts host-0..host-(n-1), {ids_count} random ids; max/mean");
    print!("| hosts |");
    for vnodes in VNODE_COUNTS {
        print!(" {vnodes:>5} |");
    }
    println!();
    print!("|------:|");
    for _ in VNODE_COUNTS {
        print!("------:|");
    }
    println!();
    for host_count in HOST_COUNTS {
        let hosts: Vec<String> = (0..host_count).map(|i| format!("host-{i}")).collect();
        print!("| {host_count:>5} |");
        for vnodes in VNODE_COUNTS {
            let ring = HashRing::new(hosts.iter().map(String::as_str), vnodes);
            print!(" {:.3} |", sampled_max_over_mean(&ring, &ids));
        }
        println!();
    }

    println!();
    println!(
        "exact: {sets_count} random host-name sets per row, exact hash-space shares; \
         max/mean over the sets"
    );
    println!("| hosts | vnodes | mean  | p99   | worst | sets > {BOUND:.2} |");
    println!("|------:|-------:|------:|------:|------:|------------:|");
    for host_count in HOST_COUNTS {
        for vnodes in VNODE_COUNTS {
            // Same name sets for every vnode count, so rows differ only by vnodes.
            let mut rng = SplitMix64(host_count as u64);
            let mut ratios: Vec<f64> = (0..sets_count)
                .map(|_| {
                    let hosts: Vec<String> = (0..host_count)
                        .map(|_| format!("host-{:016x}", rng.next()))
                        .collect();
                    let ring = HashRing::new(hosts.iter().map(String::as_str), vnodes);
                    exact_max_over_mean(&ring)
                })
                .collect();
            ratios.sort_by(f64::total_cmp);
            let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
            let p99 = ratios[(ratios.len() * 99 / 100).min(ratios.len() - 1)];
            let worst = ratios[ratios.len() - 1];
            let over = ratios.iter().filter(|&&r| r > BOUND).count();
            let over_percent = 100.0 * over as f64 / ratios.len() as f64;
            println!(
                "| {host_count:>5} | {vnodes:>6} | {mean:.3} | {p99:.3} | {worst:.3} | \
                 {over_percent:>10.1}% |"
            );
        }
    }
}

fn sampled_max_over_mean(ring: &HashRing, ids: &[String]) -> f64 {
    let mut counts = vec![0usize; ring.hosts().len()];
    for id in ids {
        let owner = ring.owner(id).expect("ring has hosts");
        // hosts() is sorted, so the owner's slot is a binary search away.
        let slot = ring
            .hosts()
            .binary_search_by(|h| h.as_str().cmp(owner))
            .expect("owner is a member");
        counts[slot] += 1;
    }
    let mean = ids.len() as f64 / counts.len() as f64;
    *counts.iter().max().expect("ring has hosts") as f64 / mean
}

fn exact_max_over_mean(ring: &HashRing) -> f64 {
    let fractions = ring.load_fractions();
    let max = fractions.iter().copied().fold(0.0, f64::max);
    max * fractions.len() as f64
}

/// splitmix64: a tiny seeded generator, so the example needs no `rand` and prints the same
/// figures everywhere.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

//! Property tests of the consistent-hash ring: the guarantees placement and every host rely on
//! when they compute owners independently from the same table.
//!
//! - balance: on 10 hosts at the default vnodes, no host gets more than 1.10× the mean, for
//!   any host names;
//! - minimal movement: removing hosts moves only their keys; adding hosts moves keys only to
//!   them;
//! - determinism: the owner depends on the member set only, not on the order or repetition in
//!   which members are listed.
//!
//! Case counts are set so the file runs in a few seconds in debug builds on 2 cores.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::RngSeed;
use rookery_placement::ring::{HashRing, DEFAULT_VNODES_PER_HOST};

/// Host ids as operators might write them: names, addresses, ports.
const HOST_ID: &str = "[a-z0-9][a-z0-9.:-]{0,23}";

/// A fixed, reproducible sample of actor ids of varied shapes (splitmix64-seeded).
fn ids(count: usize) -> &'static [String] {
    static IDS: OnceLock<Vec<String>> = OnceLock::new();
    let all = IDS.get_or_init(|| {
        let mut state = 7u64;
        (0..BALANCE_IDS)
            .map(|i| {
                let r = splitmix64(&mut state);
                match i % 3 {
                    0 => format!("actor-{r:016x}"),
                    1 => format!("order/{}", r % 10_000_000),
                    _ => format!("user:{:x}@tenant-{}", r >> 20, r % 97),
                }
            })
            .collect()
    });
    &all[..count]
}

/// Ids for the balance test. At 200k ids a host's sampled share on 10 hosts has a relative
/// standard deviation of ~0.7%, small next to the ~2.2% of the layout itself at 2000 vnodes.
const BALANCE_IDS: usize = 200_000;
/// Ids for the movement and determinism tests, which are exact and need no statistics.
const MOVEMENT_IDS: usize = 20_000;

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn ring_of(hosts: &BTreeSet<String>, vnodes_per_host: u32) -> HashRing {
    HashRing::new(hosts.iter().map(String::as_str), vnodes_per_host)
}

/// Vnode counts for the exact properties: tiny rings (where a bug in wrap-around or collision
/// handling shows most) as well as the default.
fn vnodes() -> impl Strategy<Value = u32> {
    prop_oneof![1u32..=8, 9u32..=300, Just(DEFAULT_VNODES_PER_HOST)]
}

proptest! {
    // Balance is statistical: over random name sets a 1.10 bound at 2000 vnodes fails for
    // about 1 set in 10^4–10^5 (see the `ring_balance` example). A fixed seed keeps CI from
    // ever flaking on that tail while still covering a spread of name sets.
    #![proptest_config(ProptestConfig {
        cases: 24,
        rng_seed: RngSeed::Fixed(0x7269_6e67),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn ten_hosts_at_default_vnodes_stay_within_ten_percent_of_the_mean(
        hosts in prop::collection::btree_set(HOST_ID, 10),
    ) {
        let ring = ring_of(&hosts, DEFAULT_VNODES_PER_HOST);
        let mut counts = vec![0usize; ring.hosts().len()];
        for id in ids(BALANCE_IDS) {
            let owner = ring.owner(id).unwrap();
            counts[ring.hosts().binary_search_by(|h| h.as_str().cmp(owner)).unwrap()] += 1;
        }
        let mean = BALANCE_IDS as f64 / counts.len() as f64;
        let max_over_mean = *counts.iter().max().unwrap() as f64 / mean;
        prop_assert!(max_over_mean <= 1.10, "max/mean {max_over_mean:.4}, counts {counts:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn removing_hosts_moves_only_their_keys(
        hosts in prop::collection::btree_set(HOST_ID, 2..=12),
        removed in prop::collection::vec(any::<Index>(), 1..=3),
        vnodes in vnodes(),
    ) {
        let before = ring_of(&hosts, vnodes);
        let removed: BTreeSet<String> =
            removed.iter().map(|i| i.get(before.hosts()).clone()).collect();
        // Keep at least one host, so that every key still has an owner afterwards.
        prop_assume!(removed.len() < hosts.len());
        let remaining: BTreeSet<String> = hosts.difference(&removed).cloned().collect();
        let after = ring_of(&remaining, vnodes);

        for id in ids(MOVEMENT_IDS) {
            let old = before.owner(id).unwrap();
            let new = after.owner(id).unwrap();
            if removed.contains(old) {
                prop_assert!(remaining.contains(new), "{id}: moved to {new}, not a member");
            } else {
                prop_assert_eq!(old, new, "{} moved although {} was not removed", id, old);
            }
        }
    }

    #[test]
    fn adding_hosts_moves_keys_only_to_them(
        hosts in prop::collection::btree_set(HOST_ID, 1..=10),
        added in prop::collection::btree_set(HOST_ID, 1..=3),
        vnodes in vnodes(),
    ) {
        let added: BTreeSet<String> = added.difference(&hosts).cloned().collect();
        prop_assume!(!added.is_empty());
        let before = ring_of(&hosts, vnodes);
        let all: BTreeSet<String> = hosts.union(&added).cloned().collect();
        let after = ring_of(&all, vnodes);

        let mut moved = 0usize;
        for id in ids(MOVEMENT_IDS) {
            let old = before.owner(id).unwrap();
            let new = after.owner(id).unwrap();
            if old != new {
                prop_assert!(added.contains(new), "{id}: moved from {old} to old member {new}");
                moved += 1;
            }
        }
        if vnodes >= 100 {
            // With ≥ 100 points each the new hosts get about their fair share; zero would mean
            // they were never placed.
            prop_assert!(moved > 0);
        }
    }

    #[test]
    fn member_order_and_repetition_do_not_change_owners(
        members in prop::collection::vec(HOST_ID, 1..=12)
            .prop_flat_map(|hosts| {
                let doubled: Vec<String> = hosts.iter().chain(&hosts).cloned().collect();
                (Just(hosts), Just(doubled).prop_shuffle())
            }),
        vnodes in vnodes(),
    ) {
        let (listed, shuffled_with_duplicates) = members;
        let a = HashRing::new(listed.iter().map(String::as_str), vnodes);
        let b = HashRing::new(shuffled_with_duplicates.iter().map(String::as_str), vnodes);
        prop_assert_eq!(a.hosts(), b.hosts());
        prop_assert_eq!(a.load_fractions(), b.load_fractions());
        for id in ids(MOVEMENT_IDS) {
            prop_assert_eq!(a.owner(id), b.owner(id), "owner of {} differs", id);
        }
    }
}

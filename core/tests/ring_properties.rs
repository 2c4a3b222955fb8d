//! Property tests of the consistent-hash ring: the guarantees placement and every host rely on
//! when they compute owners independently from the same table.
//!
//! - balance: on 10 hosts at the default vnodes, no host gets more than 1.10× the mean, for
//!   any host names;
//! - minimal movement: removing hosts moves only their keys; adding hosts moves keys only to
//!   them;
//! - determinism: the owner depends on the member set only, not on the order or repetition in
//!   which members are listed;
//! - incremental building: a ring derived from the previous ring over a sequence of joins and
//!   leaves, and the rings of a table derived from the previous table's, are identical to
//!   rings built from scratch (same points, hence the same owner for every actor).
//!
//! Case counts are set so the file runs in a few seconds in debug builds on 2 cores.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::RngSeed;
use rookery_core::ring::{HashRing, DEFAULT_VNODES_PER_HOST};
use rookery_core::table::{HostInfo, PlacementTable, TableVersion};

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

/// One membership change of a join/leave sequence.
#[derive(Clone, Debug)]
enum Change {
    /// These hosts join (those already members stay).
    Join(BTreeSet<String>),
    /// The members at these positions leave.
    Leave(Vec<Index>),
    /// Both at once, as when a host is replaced under a new id.
    Replace(Index, String),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => prop::collection::btree_set(HOST_ID, 1..=2).prop_map(Change::Join),
        3 => prop::collection::vec(any::<Index>(), 1..=2).prop_map(Change::Leave),
        1 => prop::collection::btree_set(HOST_ID, 3..=12).prop_map(Change::Join),
        1 => (any::<Index>(), HOST_ID).prop_map(|(i, host)| Change::Replace(i, host)),
    ]
}

impl Change {
    fn apply(&self, hosts: &mut BTreeSet<String>) {
        let members: Vec<String> = hosts.iter().cloned().collect();
        match self {
            Change::Join(joined) => hosts.extend(joined.iter().cloned()),
            Change::Leave(_) | Change::Replace(..) if members.is_empty() => {}
            Change::Leave(left) => {
                for i in left {
                    hosts.remove(i.get(&members));
                }
            }
            Change::Replace(i, host) => {
                hosts.remove(i.get(&members));
                hosts.insert(host.clone());
            }
        }
    }
}

/// Vnode counts for the incremental tests: the default is rarer than in [`vnodes`] because
/// every case builds each ring twice per change.
fn incremental_vnodes() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0u32..=8, 4 => 9u32..=300, 1 => Just(DEFAULT_VNODES_PER_HOST)]
}

/// Actor types the table tests draw from: few, so that types often share member sets.
const ACTOR_TYPES: [&str; 3] = ["Cart", "Order", "User"];

/// A table whose hosts register the types of their bitmask in `ACTOR_TYPES`.
fn table(version: u64, vnodes_per_host: u32, hosts: &BTreeMap<String, u8>) -> PlacementTable {
    PlacementTable {
        version: TableVersion(version),
        vnodes_per_host,
        hosts: hosts
            .iter()
            .map(|(id, types)| HostInfo {
                id: id.clone(),
                address: format!("{id}:7000"),
                app_id: "app".to_owned(),
                actor_types: ACTOR_TYPES
                    .iter()
                    .enumerate()
                    .filter(|(bit, _)| types & (1 << bit) != 0)
                    .map(|(_, name)| name.to_string())
                    .collect(),
            })
            .collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn derived_rings_equal_full_builds_over_join_leave_sequences(
        initial in prop::collection::btree_set(HOST_ID, 0..=10),
        changes in prop::collection::vec(change(), 1..=8),
        vnodes in incremental_vnodes(),
    ) {
        let mut hosts = initial;
        let mut ring = ring_of(&hosts, vnodes);
        for change in &changes {
            change.apply(&mut hosts);
            // Chained: each ring is derived from the previous derived ring, so a discrepancy
            // would compound rather than be repaired by a full build in between.
            let derived = HashRing::new_after(hosts.iter().map(String::as_str), vnodes, Some(&ring));
            let built = ring_of(&hosts, vnodes);
            prop_assert_eq!(derived.hosts(), built.hosts());
            for id in &ids(MOVEMENT_IDS)[..2000] {
                prop_assert_eq!(derived.owner(id), built.owner(id), "owner of {} after {:?}", id, change);
            }
            prop_assert!(derived == built, "layout differs after {:?}", change);
            ring = derived;
        }
    }

    #[test]
    fn table_rings_derived_from_the_previous_table_equal_fresh_ones(
        initial in prop::collection::btree_map(HOST_ID, 1u8..8, 0..=8),
        changes in prop::collection::vec(
            prop_oneof![
                // A host joins or re-registers with the types of the mask; mask 0 leaves.
                (HOST_ID, 0u8..8).prop_map(|(host, types)| (None, host, types)),
                (any::<Index>(), 0u8..8).prop_map(|(i, types)| (Some(i), String::new(), types)),
            ],
            1..=8,
        ),
        vnodes in incremental_vnodes(),
    ) {
        let mut hosts = initial;
        let mut version = 1;
        let mut rings = table(version, vnodes, &hosts).shared_rings();
        for (existing, new_host, types) in changes {
            let host = match existing {
                Some(i) if !hosts.is_empty() => {
                    i.get(&hosts.keys().cloned().collect::<Vec<_>>()).clone()
                }
                _ => new_host,
            };
            if types == 0 {
                hosts.remove(&host);
            } else {
                hosts.insert(host, types);
            }
            version += 1;
            let next = table(version, vnodes, &hosts);
            let derived = next.rings_after(Some(&rings));
            let fresh = next.shared_rings();
            prop_assert_eq!(derived.keys().collect::<Vec<_>>(), fresh.keys().collect::<Vec<_>>());
            for (actor_type, ring) in &derived {
                prop_assert!(**ring == *fresh[actor_type], "ring of {} differs", actor_type);
                // Unchanged member sets keep their ring; equal ones share it.
                if let Some(before) = rings.get(actor_type) {
                    if before.hosts() == ring.hosts() {
                        prop_assert!(Arc::ptr_eq(before, ring), "ring of {} rebuilt", actor_type);
                    }
                }
                for (other_type, other) in &derived {
                    prop_assert_eq!(
                        Arc::ptr_eq(ring, other),
                        ring.hosts() == other.hosts(),
                        "{} and {} sharing", actor_type, other_type
                    );
                }
            }
            rings = derived;
        }
    }
}

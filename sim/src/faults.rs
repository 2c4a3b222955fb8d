//! The fault schedule of one run, drawn entirely from its seed.
//!
//! Between the warm-up and the end of the fault window the plan injects, at random times:
//! process crashes and restarts of placement nodes and hosts, network partitions (held: the
//! links queue messages and deliver them on heal, as TCP retransmission would; or dropped:
//! segments are lost and the connections they belonged to never recover, as behind a firewall
//! that forgets its connection state), slow links (message delay), and graceful leaves and
//! joins of hosts. Every fault ends by the end of the window, so the cluster is whole again
//! from then on and liveness can be judged.

use std::fmt;

/// Which kinds of fault a run may inject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultMix {
    pub crashes: bool,
    pub partitions: bool,
    /// Partitions that drop segments (connections die silently) instead of holding them.
    pub drop_partitions: bool,
    pub delays: bool,
    pub leaves: bool,
}

impl Default for FaultMix {
    fn default() -> Self {
        FaultMix {
            crashes: true,
            partitions: true,
            drop_partitions: true,
            delays: true,
            leaves: true,
        }
    }
}

impl FaultMix {
    pub fn none() -> FaultMix {
        FaultMix {
            crashes: false,
            partitions: false,
            drop_partitions: false,
            delays: false,
            leaves: false,
        }
    }
}

/// One thing the driver does to the simulated cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Stops a node's software at once (its sockets reset, its memory lost, its disk kept).
    Crash(String),
    /// Starts a crashed node's software again on the same data dir.
    Restart(String),
    /// Cuts every link between the two sides.
    Partition {
        side_a: Vec<String>,
        side_b: Vec<String>,
        /// Drop segments (connections die silently) rather than hold them until the heal.
        drop: bool,
    },
    /// Ends the partition in force: held messages are delivered.
    Heal,
    /// Slows every link of a node down to this maximum latency.
    Slow { node: String, max_latency_ms: u64 },
    /// Brings a node's links back to the run's base latency.
    Unslow(String),
    /// A host leaves gracefully (`Host::leave`).
    Leave(String),
    /// A host that left starts again (a host still leaving is killed first).
    Join(String),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Crash(n) => write!(f, "crash {n}"),
            Action::Restart(n) => write!(f, "restart {n}"),
            Action::Partition {
                side_a,
                side_b,
                drop,
            } => write!(
                f,
                "partition ({}) {} {{{}}} | {{{}}}",
                if *drop { "drop" } else { "hold" },
                side_a.len(),
                side_a.join(","),
                side_b.join(",")
            ),
            Action::Heal => write!(f, "heal partition"),
            Action::Slow {
                node,
                max_latency_ms,
            } => write!(f, "slow {node} to {max_latency_ms} ms"),
            Action::Unslow(n) => write!(f, "unslow {n}"),
            Action::Leave(n) => write!(f, "leave {n}"),
            Action::Join(n) => write!(f, "join {n}"),
        }
    }
}

/// An action and when (ms of simulated time) the driver takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scheduled {
    pub at_ms: u64,
    pub action: Action,
}

/// Shortest and longest pause between the starts of two faults.
pub const FAULT_GAP_MS: (u64, u64) = (300, 3_000);
/// Shortest and longest duration of one fault.
pub const FAULT_DURATION_MS: (u64, u64) = (300, 10_000);
/// Longest latency of a slowed link: above the Raft heartbeat, below the host timeout.
pub const SLOW_LINK_MAX_MS: (u64, u64) = (50, 1_500);

/// Draws the schedule of faults in `[start_ms, end_ms)` over `placement` and `hosts`.
pub fn plan(
    rng: &mut fastrand::Rng,
    mix: &FaultMix,
    placement: &[String],
    hosts: &[String],
    start_ms: u64,
    end_ms: u64,
) -> Vec<Scheduled> {
    let mut kinds: Vec<u8> = Vec::new();
    if mix.crashes {
        kinds.extend([0, 1]); // placement node, host
    }
    if mix.partitions || mix.drop_partitions {
        kinds.extend([2, 2]);
    }
    if mix.delays {
        kinds.push(3);
    }
    if mix.leaves {
        kinds.push(4);
    }
    let mut plan = Vec::new();
    if kinds.is_empty() {
        return plan;
    }
    let all: Vec<String> = placement.iter().chain(hosts).cloned().collect();
    // Until when each node is busy with a crash or leave, and the network with a partition:
    // faults of one kind on one target never overlap, so every one has a clean end.
    let mut node_busy_until: std::collections::BTreeMap<String, u64> =
        all.iter().map(|n| (n.clone(), 0)).collect();
    let mut slow_until: std::collections::BTreeMap<String, u64> =
        all.iter().map(|n| (n.clone(), 0)).collect();
    let mut network_busy_until = 0u64;
    let mut at = start_ms;
    loop {
        at += rng.u64(FAULT_GAP_MS.0..=FAULT_GAP_MS.1);
        if at >= end_ms {
            break;
        }
        let until = (at + rng.u64(FAULT_DURATION_MS.0..=FAULT_DURATION_MS.1)).min(end_ms);
        let kind = kinds[rng.usize(..kinds.len())];
        match kind {
            0 | 1 => {
                let pool = if kind == 0 { placement } else { hosts };
                let node = &pool[rng.usize(..pool.len())];
                if node_busy_until[node] > at {
                    continue;
                }
                node_busy_until.insert(node.clone(), until);
                plan.push(Scheduled {
                    at_ms: at,
                    action: Action::Crash(node.clone()),
                });
                plan.push(Scheduled {
                    at_ms: until,
                    action: Action::Restart(node.clone()),
                });
            }
            2 => {
                if network_busy_until > at {
                    continue;
                }
                network_busy_until = until;
                let drop = match (mix.partitions, mix.drop_partitions) {
                    (true, true) => rng.bool(),
                    (_, drop) => drop,
                };
                // Half the time one node is cut off from all others; otherwise a random split.
                let (side_a, side_b): (Vec<String>, Vec<String>) = if rng.bool() {
                    let lone = all[rng.usize(..all.len())].clone();
                    let rest = all.iter().filter(|n| **n != lone).cloned().collect();
                    (vec![lone], rest)
                } else {
                    let mut a = Vec::new();
                    let mut b = Vec::new();
                    for node in &all {
                        if rng.bool() {
                            a.push(node.clone())
                        } else {
                            b.push(node.clone())
                        }
                    }
                    if a.is_empty() || b.is_empty() {
                        continue;
                    }
                    (a, b)
                };
                plan.push(Scheduled {
                    at_ms: at,
                    action: Action::Partition {
                        side_a,
                        side_b,
                        drop,
                    },
                });
                plan.push(Scheduled {
                    at_ms: until,
                    action: Action::Heal,
                });
            }
            3 => {
                let node = &all[rng.usize(..all.len())];
                if slow_until[node] > at {
                    continue;
                }
                slow_until.insert(node.clone(), until);
                plan.push(Scheduled {
                    at_ms: at,
                    action: Action::Slow {
                        node: node.clone(),
                        max_latency_ms: rng.u64(SLOW_LINK_MAX_MS.0..=SLOW_LINK_MAX_MS.1),
                    },
                });
                plan.push(Scheduled {
                    at_ms: until,
                    action: Action::Unslow(node.clone()),
                });
            }
            _ => {
                let node = &hosts[rng.usize(..hosts.len())];
                if node_busy_until[node] > at {
                    continue;
                }
                node_busy_until.insert(node.clone(), until);
                plan.push(Scheduled {
                    at_ms: at,
                    action: Action::Leave(node.clone()),
                });
                plan.push(Scheduled {
                    at_ms: until,
                    action: Action::Join(node.clone()),
                });
            }
        }
    }
    // Stable: actions at one instant keep the order they were drawn in.
    plan.sort_by_key(|s| s.at_ms);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("{prefix}-{i}")).collect()
    }

    #[test]
    fn same_seed_same_plan_and_every_fault_ends_in_the_window() {
        let placement = names("placement", 3);
        let hosts = names("host", 4);
        let draw = |seed| {
            plan(
                &mut fastrand::Rng::with_seed(seed),
                &FaultMix::default(),
                &placement,
                &hosts,
                5_000,
                35_000,
            )
        };
        for seed in 0..50 {
            let a = draw(seed);
            assert_eq!(a, draw(seed));
            assert!(a.iter().all(|s| s.at_ms <= 35_000));
            let starts = a
                .iter()
                .filter(|s| {
                    matches!(
                        s.action,
                        Action::Crash(_)
                            | Action::Partition { .. }
                            | Action::Slow { .. }
                            | Action::Leave(_)
                    )
                })
                .count();
            assert_eq!(starts * 2, a.len(), "every fault has its end");
        }
    }
}

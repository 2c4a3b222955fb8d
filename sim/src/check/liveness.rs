//! Liveness: once faults stop, the cluster converges and every actor answers.
//!
//! Every fault has ended (crashed nodes restarted, partitions healed, links fast again, left
//! hosts joined) by the end of the fault window. Then:
//!
//! - `liveness/converged`: [`SETTLE_MS`] later, every host runs, and holds an unlocked table
//!   with a valid lease; all hold the same version, and that table lists every host.
//! - `liveness/answers`: after that, each actor called through each host (one call at a time)
//!   answers within [`PROBE_TIMEOUT_MS`].
//!
//! The settle bound covers the worst chain of recoveries the defaults allow: an election
//! after restarts (≤ 2 s), hosts' reconnection back-off (≤ 2 s), removal of a host that
//! came back as a new session (host timeout 3 s + debounce), and two rounds that each may wait
//! for a missing ack in all three phases (2 × 3 × 3 s), about 25 s; 30 s leaves a margin.

use std::collections::BTreeMap;

use crate::check::timeline::Timeline;
use crate::check::{capped, fmt_time, Violation};
use crate::cluster::SimConfig;
use crate::ledger::{CallOutcome, Event, Record};

/// How long after the last fault the cluster has to converge.
pub const SETTLE_MS: u64 = 30_000;
/// How long each probe call may take.
pub const PROBE_TIMEOUT_MS: u64 = 5_000;

pub fn check(t: &Timeline, records: &[Record], config: &SimConfig) -> Vec<Violation> {
    let probe_at = config.probe_at_ms() * 1_000_000;
    let mut converged = Vec::new();
    let mut versions: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for host in config.host_names() {
        // The host's incarnation running at probe time.
        let running = t
            .incarnations
            .iter()
            .filter(|(inc, (start, end))| inc.node == host && *start <= probe_at && *end > probe_at)
            .map(|(inc, _)| inc)
            .next_back();
        let Some(incarnation) = running else {
            converged.push(Violation {
                property: "liveness/converged",
                at: Some(probe_at),
                message: format!(
                    "{host} is not running when faults have been over for {} ms",
                    config.settle_ms
                ),
            });
            continue;
        };
        let state = t
            .states
            .get(incarnation)
            .and_then(|states| states.iter().rev().find(|s| s.at <= probe_at));
        let Some(state) = state else {
            converged.push(Violation {
                property: "liveness/converged",
                at: Some(probe_at),
                message: format!("{incarnation} has no table state"),
            });
            continue;
        };
        let Some(table) = &state.table else {
            converged.push(Violation {
                property: "liveness/converged",
                at: Some(probe_at),
                message: format!("{incarnation} has received no table"),
            });
            continue;
        };
        let mut problems = Vec::new();
        if state.locked {
            problems.push("its table is locked".to_owned());
        }
        if state.lease_until.is_none_or(|until| until <= probe_at) {
            problems.push(format!(
                "its lease is not valid (until {})",
                state
                    .lease_until
                    .map(fmt_time)
                    .unwrap_or_else(|| "never".into())
            ));
        }
        let missing: Vec<String> = config
            .host_names()
            .into_iter()
            .filter(|h| table.table.table.host(h).is_none())
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "its table v{} lacks {}",
                table.version(),
                missing.join(", ")
            ));
        }
        if !problems.is_empty() {
            converged.push(Violation {
                property: "liveness/converged",
                at: Some(probe_at),
                message: format!("{incarnation}: {}", problems.join("; ")),
            });
        }
        versions.entry(table.version()).or_default().push(host);
    }
    if versions.len() > 1 {
        converged.push(Violation {
            property: "liveness/converged",
            at: Some(probe_at),
            message: format!(
                "hosts hold different versions: {}",
                versions
                    .iter()
                    .map(|(v, hosts)| format!("v{v} on {}", hosts.join(",")))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        });
    }

    let mut answers = Vec::new();
    let mut probes = 0usize;
    for record in records {
        let Event::Call {
            via,
            actor,
            started,
            outcome,
            probe: true,
            ..
        } = &record.event
        else {
            continue;
        };
        probes += 1;
        let took = record.at.saturating_sub(*started);
        match outcome {
            CallOutcome::Ok { .. } if took <= PROBE_TIMEOUT_MS * 1_000_000 => {}
            CallOutcome::Ok { .. } => answers.push(Violation {
                property: "liveness/answers",
                at: Some(*started),
                message: format!("{actor} via {via} took {} ms", took / 1_000_000),
            }),
            CallOutcome::Failed { code } => answers.push(Violation {
                property: "liveness/answers",
                at: Some(*started),
                message: format!(
                    "{actor} via {via} failed: {code} after {} ms",
                    took / 1_000_000
                ),
            }),
        }
    }
    let expected = config.hosts * config.actors;
    if probes < expected {
        answers.push(Violation {
            property: "liveness/answers",
            at: None,
            message: format!("only {probes} of {expected} probe calls ended"),
        });
    }
    let mut found = capped(converged);
    found.extend(capped(answers));
    found
}

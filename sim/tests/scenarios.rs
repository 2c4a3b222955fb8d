//! Named scenarios: fixed fault schedules that once broke (or nearly broke) a property, pinned
//! so they keep passing. Each runs in this process with the checkers of a seeded run; a run
//! that stops making progress (a deadlock in the code under test) fails after
//! [`SCENARIO_TIMEOUT`] instead of hanging the test.

use std::sync::mpsc;
use std::time::Duration;

use rookery_sim::cluster::{self, SimConfig};
use rookery_sim::faults::{Action, Scheduled};

/// Real time a scenario may take (a debug build runs a 30 s scenario in well under a minute).
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(240);

fn at(at_ms: u64, action: Action) -> Scheduled {
    Scheduled { at_ms, action }
}

fn run_scenario(name: &str, plan: Vec<Scheduled>) {
    let config = SimConfig {
        fault_ms: 15_000,
        plan: Some(plan),
        ..SimConfig::default()
    };
    let (tx, rx) = mpsc::channel();
    // Detached: a deadlocked run is abandoned with its thread.
    std::thread::spawn(move || {
        let _ = tx.send(cluster::run(7, &config).map_err(|e| e.to_string()));
    });
    let report = match rx.recv_timeout(SCENARIO_TIMEOUT) {
        Ok(Ok(report)) => report,
        Ok(Err(e)) => panic!("scenario {name} could not run: {e}"),
        Err(_) => panic!("scenario {name} hung: a deadlock in the code under test"),
    };
    let violations: Vec<String> = report.violations.iter().map(|v| v.to_string()).collect();
    assert!(
        violations.is_empty(),
        "scenario {name}:\n{}",
        violations.join("\n")
    );
}

/// A host cut off from everything (segments dropped, connections dead) long enough to lose
/// its lease and be removed, then back: it must not serve its old actors with a lease renewed
/// against a table it does not hold yet (`lease_table_version`), and must rejoin.
#[test]
fn host_cut_off_past_its_lease_then_back() {
    let everyone_else = [
        "placement-1",
        "placement-2",
        "placement-3",
        "host-1",
        "host-3",
        "host-4",
        "workload",
    ]
    .map(String::from)
    .to_vec();
    run_scenario(
        "host_cut_off_past_its_lease_then_back",
        vec![
            at(
                6_000,
                Action::Partition {
                    side_a: vec!["host-2".into()],
                    side_b: everyone_else,
                    drop: true,
                },
            ),
            at(12_000, Action::Heal),
        ],
    );
}

/// The placement leader (node 1 leads a fresh cluster) crashes and restarts.
#[test]
fn placement_leader_crash_and_restart() {
    run_scenario(
        "placement_leader_crash_and_restart",
        vec![
            at(6_000, Action::Crash("placement-1".into())),
            at(10_000, Action::Restart("placement-1".into())),
        ],
    );
}

/// A graceful leave and a later join. Hung in `Host::leave` (a `watch` read guard held across
/// `shutdown().await`, blocking the placement client's next `send_modify` on the same thread).
#[test]
fn graceful_leave_then_join() {
    run_scenario(
        "graceful_leave_then_join",
        vec![
            at(6_000, Action::Leave("host-2".into())),
            at(16_000, Action::Join("host-2".into())),
        ],
    );
}

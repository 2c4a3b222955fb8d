//! The same seed gives the same trace: a few seeds of the full fault mix run twice, each run
//! in a fresh process, and their trace hashes must match.
//!
//! Every seed is expected to match (`--seeds 0..100 --determinism` measured 100/100; see
//! sim/README.md, "Determinism"), so one that does not is a new leak of real time or real
//! randomness into the code under test: compare the two runs' traces (`--trace`) to find it.

use std::process::Command;

/// Seeds run twice. Each run takes several seconds in a debug build.
const SEEDS: &str = "0..3";

#[test]
fn same_seed_same_trace() {
    let output = Command::new(env!("CARGO_BIN_EXE_rookery-sim"))
        .args(["--seeds", SEEDS, "--jobs", "2", "--determinism"])
        .output()
        .expect("run rookery-sim");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        stdout.contains("determinism: 3/3 "),
        "traces differ between two runs of one seed:\n{stdout}"
    );
}

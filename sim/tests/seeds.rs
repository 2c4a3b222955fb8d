//! The CI batch: seeds of the full fault mix, each in its own `rookery-sim` child process, as
//! `cargo run -p rookery-sim --release -- --seeds 0..N` runs them.
//!
//! `ROOKERY_SIM_SEEDS` sets N (default [`RELEASE_SEEDS`] in an optimized build,
//! [`DEBUG_SEEDS`] in a debug one, where a run is several times slower);
//! `ROOKERY_SIM_WITHOUT` leaves fault kinds out (as `--without`). A failure prints each failing
//! seed's violations and the command that replays it.

use std::process::Command;

/// Seeds in an optimized build: about a second of wall time each on two cores.
const RELEASE_SEEDS: u64 = 200;
/// Seeds in a debug build (`cargo test --workspace`), to stay within a few minutes.
const DEBUG_SEEDS: u64 = 6;

#[test]
fn seeds_pass_every_checker() {
    let seeds = std::env::var("ROOKERY_SIM_SEEDS")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            DEBUG_SEEDS
        } else {
            RELEASE_SEEDS
        });
    let mut command = Command::new(env!("CARGO_BIN_EXE_rookery-sim"));
    command
        .arg("--seeds")
        .arg(format!("0..{seeds}"))
        .arg("--jobs")
        .arg("2");
    if let Ok(without) = std::env::var("ROOKERY_SIM_WITHOUT") {
        if !without.is_empty() {
            command.arg("--without").arg(without);
        }
    }
    let output = command.output().expect("run rookery-sim");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "some seeds failed (see above for violations and replay commands):\n{stdout}"
    );
}

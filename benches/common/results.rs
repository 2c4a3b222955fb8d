//! Where the benches write their results: `$ROOKERY_BENCH_RESULTS`, else
//! `<target dir>/bench-results`. Every file is JSON carrying the `unix_time_s` it was written
//! at, so the suite folds in only the parts of its own run (see `benches/suite`).

use std::path::PathBuf;

use serde_json::Value;

/// The results directory, created if missing.
pub fn dir() -> PathBuf {
    let dir = std::env::var_os("ROOKERY_BENCH_RESULTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/target").into())
                .join("bench-results")
        });
    std::fs::create_dir_all(&dir).expect("results dir");
    dir
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes `results` (an object; `unix_time_s` is added) as `<dir>/<file>`; returns the path.
#[allow(dead_code)] // not every bench including this module writes a file
pub fn write(file: &str, mut results: Value) -> PathBuf {
    results["unix_time_s"] = unix_now().into();
    let path = dir().join(file);
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&results).expect("results as JSON"),
    )
    .expect("write results");
    path
}

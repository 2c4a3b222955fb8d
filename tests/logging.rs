//! The logging flags as an operator uses them: `--log-format json` (and daprd's `--log-as-json`)
//! write one JSON object per line, and text written to a file carries no ANSI colour codes.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use support::{free_port, run_rookery, wait_until, Cluster, TestDir, DEADLINE};

/// The line the harness writes before each start of a [`support::LoggedChild`].
const HARNESS_MARK: &str = "===== test harness";

/// The log lines the process wrote (the harness's own marks left out).
fn process_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with(HARNESS_MARK))
        .collect()
}

/// Parses every line as a JSON log record with timestamp, level, target and message.
fn parse_json_lines(log: &str) -> Vec<serde_json::Value> {
    process_lines(log)
        .into_iter()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line:?}"));
            for key in ["timestamp", "level", "target", "message"] {
                assert!(
                    record.get(key).is_some_and(|v| v.is_string()),
                    "log line has no string {key:?}: {line:?}"
                );
            }
            record
        })
        .collect()
}

/// The record of the node's start, with its structured fields at the top level.
fn started_record(records: &[serde_json::Value]) -> Option<&serde_json::Value> {
    records
        .iter()
        .find(|r| r["message"] == "placement node started")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_writes_one_json_object_per_line() {
    let cluster = Cluster::builder().arg("--log-format").arg("json").start();
    cluster.wait_for_leader().await;
    let node = cluster.node(1);
    let log = node.log();
    let records = parse_json_lines(&log);
    assert!(!records.is_empty(), "no log lines: {log}");
    let started = started_record(&records).unwrap_or_else(|| panic!("no start record: {log}"));
    assert_eq!(started["level"], "INFO", "{started}");
    assert_eq!(started["node_id"], 1, "fields are flattened: {started}");
    assert!(!log.contains("\x1b["), "ANSI codes in a JSON log: {log}");
}

/// Runs `rookery placement` (one node) with `extra` flags, no `RUST_LOG` and no `NO_COLOR`,
/// its stderr and stdout going to `log_path`, until its start has been logged; returns the log.
async fn placement_log(dir: &TestDir, extra: &[&str]) -> String {
    let log_path = dir.path().join("node.log");
    let log = std::fs::File::create(&log_path).expect("create log");
    let mut child = tokio::process::Command::new(support::rookery_bin())
        .arg("placement")
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--http-port")
        .arg(free_port().to_string())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(extra)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn rookery placement");
    let text = wait_until("the node to log its start", DEADLINE, || {
        let log_path: &Path = &log_path;
        let text = std::fs::read_to_string(log_path).unwrap_or_default();
        async move {
            if text.contains("placement node started") {
                Ok(text)
            } else {
                Err(format!("log so far: {text:?}"))
            }
        }
    })
    .await;
    child.kill().await.expect("kill placement");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_to_a_file_have_no_ansi_codes() {
    let dir = TestDir::new("rookery-logging-test-");
    let log = placement_log(&dir, &[]).await;
    assert!(!log.contains("\x1b["), "ANSI codes in a log file: {log:?}");
    assert!(log.contains(" INFO "), "no INFO line in text format: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_as_json_is_log_format_json() {
    let dir = TestDir::new("rookery-logging-test-");
    let log = placement_log(&dir, &["--log-as-json", "--log-level", "debug"]).await;
    let records = parse_json_lines(&log);
    assert!(started_record(&records).is_some(), "no start record: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_log_level_or_format_is_bad_usage() {
    for (flag, value) in [("--log-level", "loud"), ("--log-format", "xml")] {
        let out = run_rookery(&["status", flag, value], Duration::from_secs(20)).await;
        assert_eq!(out.code, Some(2), "{flag} {value}: {out:?}");
        assert!(out.stderr.contains(flag), "{flag} {value}: {out:?}");
    }
}

//! The sandbox every multi-process integration test of Rookery runs in.
//!
//! - [`app`]: [`app::TestApp`], an application serving actor types to a host over the
//!   `AppChannel` stream, recording what it hears.
//! - [`app_server`]: an HTTP app written in a test (axum), served on an OS-chosen port.
//! - [`cluster`]: placement nodes as real child processes of the `rookery` binary, one temp dir
//!   per cluster, OS-chosen ports, kill -9 on drop, logs dumped when a test fails.
//! - [`python`]: whether the Python parts can run, and the skip-or-fail rule.
//! - [`http`]: a raw HTTP/1.1 client for the host's HTTP API.
//! - [`fault_proxy`]: a TCP proxy that injects faults (delays, resets, black holes, refused
//!   connections) between real processes.
//! - [`host`]: [`TestHost`], a scriptable client of the `ReportHost` stream protocol that records
//!   every order it receives.
//! - [`host_process`]: `rookery host` as real child processes, and the gRPC calls tests make on
//!   them.
//! - [`ledger`]: a ledger of actor turns kept outside the cluster, and the single-activation
//!   checker.
//! - [`postgres`]: a private PostgreSQL server per test (the cluster state store), stopped and
//!   started to cut the store off.
//! - [`process`]: [`LoggedChild`], the child process every placement node, host and app is
//!   run as: output to a log file, SIGTERM stop with a bounded wait, restart, kill -9 on drop.
//! - [`status`]: `rookery status --json`, run as a user would, parsed into typed structs.
//! - [`temp`]: [`TestDir`], the temp dir every test and harness uses, kept when a test fails
//!   (or with `ROOKERY_KEEP_TEST_DIRS=1`).
//! - [`wait`]: condition waits with deadlines. Tests never sleep to synchronize: every wait is a
//!   condition that is polled until it holds or a generous deadline passes, so a loaded box only
//!   makes a test slower, never red.
//!
//! Each integration test crate compiles this module on its own and uses only part of it, hence
//! the blanket `dead_code` and `unused_imports` (of the re-exports) allowances.
#![allow(dead_code, unused_imports)]

pub mod app;
pub mod app_server;
pub mod cluster;
pub mod dapr_app;
pub mod fault_proxy;
pub mod host;
pub mod host_process;
pub mod http;
pub mod ledger;
pub mod postgres;
pub mod process;
pub mod python;
pub mod status;
pub mod temp;
pub mod wait;

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;
use std::time::Duration;

pub use cluster::{Cluster, ClusterBuilder, PlacementNode};
pub use host::{HostBuilder, OrderLog, OrderRecord, Received, TestHost};
pub use process::LoggedChild;
pub use status::{HostStatus, MemberStatus, Status, StatusError};
pub use temp::TestDir;
pub use wait::{wait_until, DEADLINE};

/// Path of the `rookery` binary cargo built for these tests.
pub fn rookery_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rookery")
}

/// A TCP port on 127.0.0.1 that was free a moment ago: bound with port 0, read, released.
///
/// Ports handed out by this process are remembered and never handed out twice, so tests that
/// run in parallel threads of one test binary cannot collide with each other even though the
/// port is released before the child process binds it.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed_out.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

/// Output of a `rookery` command run to completion.
#[derive(Debug)]
pub struct RunOutput {
    /// `None` when the process was killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `rookery <args>` to completion, as a user would from a shell. Panics if it is still
/// running after `within` (the process is killed first): commands under test must not hang.
pub async fn run_rookery(args: &[&str], within: Duration) -> RunOutput {
    let child = tokio::process::Command::new(rookery_bin())
        .args(args)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // A timed-out command is dropped below; this makes dropping it kill the process.
        .kill_on_drop(true)
        .spawn()
        .expect("spawn rookery");
    match tokio::time::timeout(within, child.wait_with_output()).await {
        Ok(output) => {
            let output = output.expect("wait for rookery");
            RunOutput {
                code: output.status.code(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }
        }
        Err(_) => panic!(
            "`rookery {}` still running after {within:?}",
            args.join(" ")
        ),
    }
}

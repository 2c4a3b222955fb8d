//! Placement clusters made of real `rookery placement` processes.
//!
//! A [`Cluster`] owns one temp dir (a data dir and a log file per node) and its child
//! processes. Ports are chosen by the OS. Every child is killed with SIGKILL when the cluster is
//! dropped, including when a test panics; on a panic the nodes' logs are printed (the test
//! harness shows them with the failure) and the temp dir is kept for post-mortems. Set
//! `ROOKERY_KEEP_TEST_DIRS=1` to keep it after passing tests too.

use std::fmt::Display;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::status::{status_of, Status, StatusError};
use super::wait::{wait_until, DEADLINE};
use super::{free_port, rookery_bin};

/// Server defaults from the CLI contract, used when a test does not override them.
const DEFAULT_HOST_TIMEOUT_MS: u64 = 3000;
const DEFAULT_ROUND_TIMEOUT_MS: u64 = 3000;

/// How long a node may take to exit after SIGTERM before the test calls it hung.
const STOP_DEADLINE: Duration = Duration::from_secs(20);

/// Lines of each node's log printed when a test fails (the whole log stays in the kept dir).
const LOG_TAIL_LINES: usize = 300;

/// Settings of a cluster to start. Timeouts left unset are not passed, so the binary's
/// defaults are exercised.
#[derive(Clone, Debug)]
pub struct ClusterBuilder {
    nodes: u64,
    host_timeout_ms: Option<u64>,
    round_timeout_ms: Option<u64>,
    debounce_ms: Option<u64>,
    /// Pass `--peers` to a one-node cluster too (by default it is omitted, the documented way
    /// to run a single node).
    peers_for_single_node: bool,
    extra_args: Vec<String>,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        ClusterBuilder {
            nodes: 1,
            host_timeout_ms: None,
            round_timeout_ms: None,
            debounce_ms: None,
            peers_for_single_node: false,
            extra_args: Vec::new(),
        }
    }
}

impl ClusterBuilder {
    pub fn nodes(mut self, nodes: u64) -> Self {
        assert!(nodes >= 1, "a cluster needs at least one node");
        self.nodes = nodes;
        self
    }

    pub fn host_timeout_ms(mut self, ms: u64) -> Self {
        self.host_timeout_ms = Some(ms);
        self
    }

    pub fn round_timeout_ms(mut self, ms: u64) -> Self {
        self.round_timeout_ms = Some(ms);
        self
    }

    pub fn debounce_ms(mut self, ms: u64) -> Self {
        self.debounce_ms = Some(ms);
        self
    }

    pub fn peers_for_single_node(mut self, yes: bool) -> Self {
        self.peers_for_single_node = yes;
        self
    }

    /// An extra argument passed to every node, after the ones the builder generates.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// Creates the temp dir, picks ports and spawns every node. Does not wait for anything:
    /// follow with [`Cluster::wait_for_leader`].
    pub fn start(self) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("rookery-test-")
            .tempdir()
            .expect("create temp dir");
        let path = dir.path().to_owned();
        let endpoints: Vec<(u64, String, u16)> = (1..=self.nodes)
            .map(|id| (id, format!("127.0.0.1:{}", free_port()), free_port()))
            .collect();
        let peers = endpoints
            .iter()
            .map(|(id, addr, _)| format!("{id}={addr}"))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = endpoints
            .into_iter()
            .map(|(id, addr, http_port)| {
                let data_dir = path.join(format!("node-{id}"));
                let mut args = vec![
                    "placement".to_owned(),
                    "--id".to_owned(),
                    id.to_string(),
                    "--listen".to_owned(),
                    addr.clone(),
                    "--data-dir".to_owned(),
                    data_dir.display().to_string(),
                    "--http-port".to_owned(),
                    http_port.to_string(),
                ];
                if self.nodes > 1 || self.peers_for_single_node {
                    args.extend(["--peers".to_owned(), peers.clone()]);
                }
                let flags = [
                    ("--host-timeout-ms", self.host_timeout_ms),
                    ("--round-timeout-ms", self.round_timeout_ms),
                    ("--debounce-ms", self.debounce_ms),
                ];
                for (flag, value) in flags {
                    if let Some(value) = value {
                        args.extend([flag.to_owned(), value.to_string()]);
                    }
                }
                args.extend(self.extra_args.iter().cloned());
                PlacementNode {
                    id,
                    addr,
                    http_port,
                    data_dir,
                    log_path: path.join(format!("node-{id}.log")),
                    args,
                    child: Mutex::new(None),
                    starts: Mutex::new(0),
                }
            })
            .collect::<Vec<_>>();
        for node in &nodes {
            node.spawn();
        }
        Cluster {
            dir: Some(dir),
            path,
            nodes,
            settings: self,
        }
    }
}

/// One `rookery placement` child process, restartable on the same data dir and port.
pub struct PlacementNode {
    pub id: u64,
    /// `127.0.0.1:port` of its gRPC listener (placement and Raft services).
    pub addr: String,
    pub http_port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
    /// Everything after the binary name; the same on every (re)start.
    args: Vec<String>,
    /// `Some` while the node is supposed to be running.
    child: Mutex<Option<Child>>,
    starts: Mutex<u32>,
}

impl PlacementNode {
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The arguments it runs with (after the binary name).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    /// Whether the test means it to be running (it was started and not stopped or killed).
    pub fn is_up(&self) -> bool {
        self.child().is_some()
    }

    /// The OS pid of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.child().as_ref().map(Child::id)
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        // A panic while holding the lock must not stop Drop from killing the child.
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn spawn(&self) {
        let mut child = self.child();
        assert!(child.is_none(), "node {} is already running", self.id);
        let mut starts = self.starts.lock().unwrap_or_else(|e| e.into_inner());
        *starts += 1;
        // One log file across restarts, each start marked, so a post-mortem sees the history.
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open node log");
        writeln!(
            log,
            "===== test harness: start #{} of node {}: {} {}",
            *starts,
            self.id,
            rookery_bin(),
            self.args.join(" ")
        )
        .expect("write node log");
        let stdout = log.try_clone().expect("clone log handle");
        let rust_log = std::env::var("RUST_LOG")
            .unwrap_or_else(|_| "info,rookery=debug,rookery_placement=debug".to_owned());
        *child = Some(
            Command::new(rookery_bin())
                .args(&self.args)
                .env("RUST_LOG", rust_log)
                .env("RUST_BACKTRACE", "1")
                // The log is a file, not a terminal: no colour codes.
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(log)
                .spawn()
                .expect("spawn rookery placement"),
        );
    }

    /// SIGKILL and reap. No-op if it is not running.
    pub fn kill9(&self) {
        if let Some(mut child) = self.child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for it to exit. Panics if it is still running after
    /// [`STOP_DEADLINE`] (it is killed first): a graceful shutdown must finish.
    pub async fn stop(&self) -> ExitStatus {
        self.send_sigterm();
        self.wait_exit().await
    }

    fn send_sigterm(&self) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("node {} is not running", self.id));
        // `kill` rather than a signals crate: keeps the tests free of extra dependencies.
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
    }

    /// Waits for the process to exit after a SIGTERM; see [`PlacementNode::stop`].
    async fn wait_exit(&self) -> ExitStatus {
        let started = Instant::now();
        loop {
            {
                let mut child = self.child();
                let exited = child
                    .as_mut()
                    .expect("stopped concurrently")
                    .try_wait()
                    .expect("try_wait");
                if let Some(status) = exited {
                    *child = None;
                    return status;
                }
            }
            if started.elapsed() > STOP_DEADLINE {
                self.kill9();
                panic!(
                    "node {} still running {STOP_DEADLINE:?} after SIGTERM; log tail:\n{}",
                    self.id,
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            // Polling the exit status of a process: there is no condition to await instead.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts it again on the same data dir, ports and flags. It must not be running.
    pub fn restart(&self) {
        self.spawn();
    }

    /// `Err` with the exit status if it was supposed to be running but exited.
    pub fn check_alive(&self) -> Result<(), String> {
        let mut child = self.child();
        if let Some(running) = child.as_mut() {
            if let Some(status) = running.try_wait().expect("try_wait") {
                *child = None;
                return Err(format!("node {} exited unexpectedly: {status}", self.id));
            }
        }
        Ok(())
    }

    /// Its whole log (stdout and stderr of every start).
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for PlacementNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A placement cluster of `rookery placement` processes sharing one `--peers` list.
pub struct Cluster {
    /// Taken (and kept on disk) when a test fails.
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    nodes: Vec<PlacementNode>,
    settings: ClusterBuilder,
}

impl Cluster {
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// A cluster of `nodes` nodes with the binary's default timeouts.
    pub fn start(nodes: u64) -> Cluster {
        Cluster::builder().nodes(nodes).start()
    }

    pub fn dir(&self) -> &Path {
        &self.path
    }

    pub fn nodes(&self) -> &[PlacementNode] {
        &self.nodes
    }

    pub fn node(&self, id: u64) -> &PlacementNode {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Every node's gRPC address, in id order.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    /// Every node's gRPC address, comma-separated, as `rookery status --placement` takes them.
    pub fn addr_list(&self) -> String {
        self.addrs().join(",")
    }

    pub fn host_timeout(&self) -> Duration {
        Duration::from_millis(
            self.settings
                .host_timeout_ms
                .unwrap_or(DEFAULT_HOST_TIMEOUT_MS),
        )
    }

    pub fn round_timeout(&self) -> Duration {
        Duration::from_millis(
            self.settings
                .round_timeout_ms
                .unwrap_or(DEFAULT_ROUND_TIMEOUT_MS),
        )
    }

    pub fn kill9(&self, id: u64) {
        self.node(id).kill9();
    }

    pub async fn stop(&self, id: u64) -> ExitStatus {
        self.node(id).stop().await
    }

    pub fn restart(&self, id: u64) {
        self.node(id).restart();
    }

    /// SIGTERM to every running node at once, then waits for all of them: the whole cluster
    /// goes down together rather than one node at a time (which would hand leadership around).
    pub async fn stop_all(&self) {
        let running: Vec<&PlacementNode> = self.nodes.iter().filter(|n| n.is_up()).collect();
        for node in &running {
            node.send_sigterm();
        }
        // One SIGTERM each: servers commonly treat a second one as "exit now".
        for node in &running {
            node.wait_exit().await;
        }
    }

    /// Restarts every node that is not running.
    pub fn restart_all(&self) {
        for node in self.nodes.iter().filter(|n| !n.is_up()) {
            node.restart();
        }
    }

    /// `Err` if a node that should be running has exited: waits stop at once instead of running
    /// into their deadline, and say why.
    pub fn check_alive(&self) -> Result<(), String> {
        for node in &self.nodes {
            node.check_alive()?;
        }
        Ok(())
    }

    /// `rookery status --json` against every node of the cluster (dead ones included, as an
    /// operator's list would be).
    pub async fn status(&self) -> Result<Status, StatusError> {
        status_of(&self.addr_list()).await
    }

    /// Polls `rookery status` until `condition` accepts it; returns that status. A node exiting
    /// unexpectedly fails the wait at once.
    pub async fn wait_status(
        &self,
        what: impl Display,
        within: Duration,
        condition: impl Fn(&Status) -> Result<(), String>,
    ) -> Status {
        let condition = &condition;
        wait_until(what, within, || async move {
            if let Err(dead) = self.check_alive() {
                // The logs are printed by `Drop` while this panic unwinds.
                panic!("{dead}");
            }
            let status = self.status().await.map_err(|e| e.to_string())?;
            condition(&status).map_err(|why| format!("{why}; status: {status}"))?;
            Ok(status)
        })
        .await
    }

    /// Waits until a leader is known, reports itself `Leader`, and every running node answers
    /// (the others are reported unreachable).
    pub async fn wait_for_leader(&self) -> Status {
        self.wait_status("a leader and every running node reachable", DEADLINE, |s| {
            let leader = s.confirmed_leader().ok_or("no confirmed leader")?;
            if !self.node(leader).is_up() {
                return Err(format!("leader {leader} is a node that is down"));
            }
            for node in &self.nodes {
                let member = s
                    .member(node.id)
                    .ok_or_else(|| format!("member {} missing", node.id))?;
                if member.reachable != node.is_up() {
                    return Err(format!(
                        "member {} reachable={} but up={}",
                        node.id,
                        member.reachable,
                        node.is_up()
                    ));
                }
            }
            Ok(())
        })
        .await
    }

    /// The last lines of every node's log, for failure messages.
    pub fn dump_logs(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push_str(&format!(
                "\n===== node {} ({}) log tail, full log: {} =====\n{}\n",
                node.id,
                node.addr,
                node.log_path.display(),
                node.log_tail(LOG_TAIL_LINES)
            ));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Kill first so the logs are complete and nothing outlives the test.
        for node in &self.nodes {
            node.kill9();
        }
        let keep = std::env::var_os("ROOKERY_KEEP_TEST_DIRS").is_some();
        if std::thread::panicking() {
            eprintln!("{}", self.dump_logs());
        }
        if std::thread::panicking() || keep {
            if let Some(dir) = self.dir.take() {
                eprintln!("test dir kept: {}", dir.keep().display());
            }
        }
    }
}

//! Placement clusters made of real `rookery placement` processes.
//!
//! A [`Cluster`] owns one [`TestDir`] (a data dir and a log file per node) and its child
//! processes, each a [`PlacementNode`] run by a [`LoggedChild`]. Ports are chosen by the OS.
//! Every child is killed with SIGKILL when the cluster is dropped, including when a test
//! panics; on a panic the nodes' logs are printed (the test harness shows them with the
//! failure) and the temp dir is kept for post-mortems. Set `ROOKERY_KEEP_TEST_DIRS=1` to keep
//! it after passing tests too.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use super::process::LoggedChild;
use super::status::{status_with, Status, StatusError};
use super::temp::TestDir;
use super::wait::{wait_until, DEADLINE};
use super::{free_port, rookery_bin};

/// Server defaults from the CLI contract, used when a test does not override them.
const DEFAULT_HOST_TIMEOUT_MS: u64 = 3000;
const DEFAULT_ROUND_TIMEOUT_MS: u64 = 3000;

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
    /// Given to every `rookery status` against the cluster too (e.g. its TLS files).
    status_args: Vec<String>,
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
            status_args: Vec::new(),
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

    /// An argument for every `rookery status` against the cluster (e.g. a client's TLS files).
    pub fn status_arg(mut self, arg: impl Into<String>) -> Self {
        self.status_args.push(arg.into());
        self
    }

    /// Creates the temp dir, picks ports and spawns every node. Does not wait for anything:
    /// follow with [`Cluster::wait_for_leader`].
    pub fn start(self) -> Cluster {
        let dir = TestDir::new("rookery-test-");
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
                let rust_log = std::env::var("RUST_LOG")
                    .unwrap_or_else(|_| "info,rookery=debug,rookery_placement=debug".to_owned());
                let envs = vec![
                    ("RUST_LOG".to_owned(), rust_log),
                    // The log is a file, not a terminal: no colour codes.
                    ("NO_COLOR".to_owned(), "1".to_owned()),
                ];
                let process = LoggedChild::spawn(
                    format!("node {id}"),
                    rookery_bin(),
                    args,
                    envs,
                    path.join(format!("node-{id}.log")),
                )
                .log_tail_lines(LOG_TAIL_LINES);
                PlacementNode {
                    id,
                    addr,
                    http_port,
                    data_dir,
                    process,
                }
            })
            .collect::<Vec<_>>();
        Cluster {
            nodes,
            settings: self,
            dir,
        }
    }
}

/// One `rookery placement` child process, restartable on the same data dir and port: what the
/// node is in the cluster (id, addresses, data dir) around the [`LoggedChild`] that runs it.
pub struct PlacementNode {
    pub id: u64,
    /// `127.0.0.1:port` of its gRPC listener (placement and Raft services).
    pub addr: String,
    pub http_port: u16,
    data_dir: PathBuf,
    /// Runs `rookery placement` with the same arguments on every (re)start; SIGKILLs it when
    /// the node is dropped.
    process: LoggedChild,
}

impl PlacementNode {
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The child process, for what the methods below do not cover (signals, its name, …).
    pub fn process(&self) -> &LoggedChild {
        &self.process
    }

    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// The arguments it runs with (after the binary name).
    pub fn args(&self) -> &[String] {
        self.process.args()
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    /// Whether the test means it to be running (it was started and not stopped or killed).
    pub fn is_up(&self) -> bool {
        self.process.is_up()
    }

    /// The OS pid of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// SIGKILL and reap. No-op if it is not running.
    pub fn kill9(&self) {
        self.process.kill9();
    }

    /// SIGTERM, then waits for it to exit. Panics if it is still running after a bounded wait
    /// (it is killed first): a graceful shutdown must finish.
    pub async fn stop(&self) -> ExitStatus {
        self.process.stop().await
    }

    /// Starts it again on the same data dir, ports and flags. It must not be running.
    pub fn restart(&self) {
        self.process.start();
    }

    /// `Err` with the exit status if it was supposed to be running but exited.
    pub fn check_alive(&self) -> Result<(), String> {
        self.process.check_alive()
    }

    /// Its whole log (stdout and stderr of every start).
    pub fn log(&self) -> String {
        self.process.log()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }
}

/// A placement cluster of `rookery placement` processes sharing one `--peers` list.
pub struct Cluster {
    nodes: Vec<PlacementNode>,
    settings: ClusterBuilder,
    // Last: dropped after the nodes are killed, so a kept dir holds complete logs.
    dir: TestDir,
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
        self.dir.path()
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
            node.process.signal("TERM");
        }
        // One SIGTERM each: servers commonly treat a second one as "exit now".
        for node in &running {
            node.process.wait_exit().await;
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
        status_with(&self.addr_list(), &self.settings.status_args).await
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
                node.log_path().display(),
                node.log_tail(LOG_TAIL_LINES)
            ));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Kill first so the logs are complete and nothing outlives the test; the dir is kept
        // (and announced) after this, when its field is dropped.
        for node in &self.nodes {
            node.kill9();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.dump_logs());
        }
    }
}

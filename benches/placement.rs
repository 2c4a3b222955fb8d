//! Placement benchmarks on real sockets and real sled files, all in one process:
//! - Raft commit latency of one membership change on a 3-node cluster;
//! - one dissemination round (LOCK → UPDATE → UNLOCK) to 10 and 50 hosts, measured from the
//!   registration that changes the table until every host holds the new version, unlocked.
//!
//! Run with `cargo bench --bench placement`; results are recorded in benches/README.md.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rookery_core::net::TcpTransport;
use rookery_core::table::HostInfo;
use rookery_placement::node::{PlacementConfig, PlacementNode};
use rookery_placement::state::Command;
use rookery_runtime::cluster::placement_session::{PlacementSession, PlacementSessionConfig};
use tokio::sync::watch;

/// Membership changes committed for the latency figure.
const COMMITS: usize = 300;
/// Rounds measured per host count.
const ROUNDS: usize = 30;
const DEADLINE: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn config(id: u64, members: &BTreeMap<u64, String>, dir: &std::path::Path) -> PlacementConfig {
    let mut config = PlacementConfig::single_node(
        members[&id].clone(),
        members[&id].clone(),
        dir.join(format!("node-{id}")),
    );
    config.node_id = id;
    config.members = members.clone();
    config.debounce_ms = 0;
    config
}

fn host(i: usize) -> HostInfo {
    HostInfo {
        id: format!("host-{i}"),
        address: format!("127.0.0.1:{}", 20_000 + i),
        app_id: "bench".into(),
        actor_types: vec!["Counter".into()],
    }
}

async fn wait_for_leader(nodes: &[PlacementNode]) -> usize {
    let started = Instant::now();
    loop {
        for (i, node) in nodes.iter().enumerate() {
            let m = node.raft().metrics().borrow().clone();
            if m.current_leader == Some(m.id) {
                return i;
            }
        }
        assert!(started.elapsed() < DEADLINE, "no leader elected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "| {name} | {} | {:.2} | {:.2} | {:.2} |",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0),
    );
}

async fn commit_latency() {
    let dir = tempfile::tempdir().expect("temp dir");
    let members: BTreeMap<u64, String> = (1..=3)
        .map(|id| (id, format!("127.0.0.1:{}", free_port())))
        .collect();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(
            PlacementNode::start(config(id, &members, dir.path()), TcpTransport::shared())
                .await
                .expect("node"),
        );
    }
    let leader = wait_for_leader(&nodes).await;
    let raft = nodes[leader].raft().clone();
    let mut samples = Vec::with_capacity(COMMITS);
    for i in 0..COMMITS {
        let command = Command::ChangeMembership {
            upserts: vec![host(i)],
            removals: vec![],
        };
        let started = Instant::now();
        raft.client_write(command).await.expect("commit");
        samples.push(started.elapsed());
    }
    report("membership change commit, 3 nodes, sled flush", samples);
    for node in nodes {
        node.shutdown().await;
    }
}

async fn wait_all(
    states: &mut [watch::Receiver<rookery_runtime::cluster::table::TableState>],
    version: u64,
) {
    for state in states.iter_mut() {
        tokio::time::timeout(
            DEADLINE,
            state.wait_for(|s| {
                !s.locked && s.table.as_ref().is_some_and(|t| t.version().0 >= version)
            }),
        )
        .await
        .expect("round finished in time")
        .expect("client alive");
    }
}

async fn rounds(host_count: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let members = BTreeMap::from([(1, format!("127.0.0.1:{}", free_port()))]);
    let node = PlacementNode::start(config(1, &members, dir.path()), TcpTransport::shared())
        .await
        .expect("node");
    wait_for_leader(std::slice::from_ref(&node)).await;
    let placement = vec![members[&1].clone()];
    let clients: Vec<PlacementSession> = (0..host_count)
        .map(|i| {
            PlacementSession::spawn_without_actors(
                PlacementSessionConfig {
                    placement: placement.clone(),
                    host: host(i),
                    heartbeat_interval_ms: 500,
                },
                TcpTransport::shared(),
            )
        })
        .collect();
    let mut states: Vec<_> = clients.iter().map(PlacementSession::subscribe).collect();
    // Every host registered: the table lists them all.
    for state in states.iter_mut() {
        tokio::time::timeout(
            DEADLINE,
            state.wait_for(|s| {
                !s.locked
                    && s.table
                        .as_ref()
                        .is_some_and(|t| t.table.hosts.len() == host_count)
            }),
        )
        .await
        .expect("all hosts registered")
        .expect("client alive");
    }
    // One extra host flips its actor types: each flip is one membership change, one round.
    let extra = PlacementSession::spawn_without_actors(
        PlacementSessionConfig {
            placement,
            host: host(host_count),
            heartbeat_interval_ms: 500,
        },
        TcpTransport::shared(),
    );
    let mut version = states[0]
        .borrow()
        .table
        .as_ref()
        .map(|t| t.version().0)
        .unwrap_or(0);
    wait_all(&mut states, version + 1).await;
    version += 1;
    let mut samples = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS {
        let mut info = host(host_count);
        info.actor_types = vec![format!("Type{}", i % 2 + 1)];
        let started = Instant::now();
        extra.update_registration(info);
        wait_all(&mut states, version + 1).await;
        samples.push(started.elapsed());
        version += 1;
    }
    report(
        &format!("dissemination round to {} hosts", host_count + 1),
        samples,
    );
    drop(extra);
    drop(clients);
    node.shutdown().await;
}

fn main() {
    // `cargo bench` passes `--bench`; any other run of this target only checks it starts.
    if !std::env::args().any(|a| a == "--bench") {
        println!("placement benches run only under `cargo bench`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!("| benchmark | samples | p50 ms | p99 ms | max ms |");
        println!("|---|---|---|---|---|");
        commit_latency().await;
        rounds(10).await;
        rounds(50).await;
    });
}

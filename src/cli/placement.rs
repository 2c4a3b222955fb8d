//! `rookery placement`: runs one placement node until SIGINT or SIGTERM.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rookery_core::ring::DEFAULT_VNODES_PER_HOST;
use rookery_placement::node::{self, PlacementConfig, PlacementNode};
use rookery_placement::raft_types::NodeId;

#[derive(Args, Debug)]
pub struct PlacementArgs {
    /// This node's id; must appear in --peers when that is given.
    #[arg(long, env = "ROOKERY_PLACEMENT_ID", default_value_t = 1)]
    id: NodeId,
    /// Address the gRPC listener binds to (hosts and placement peers).
    #[arg(long, env = "ROOKERY_PLACEMENT_LISTEN", default_value = "0.0.0.0:50005", value_parser = parse_listen)]
    listen: std::net::SocketAddr,
    /// Address other nodes and hosts dial to reach this node, for a single-node cluster
    /// (default: --listen, with 127.0.0.1 for an unspecified IP). With --peers, this node's
    /// entry there is its address.
    #[arg(long, env = "ROOKERY_PLACEMENT_ADVERTISE", value_parser = super::parse_host_port)]
    advertise_address: Option<String>,
    /// Directory of the Raft log and state (sled).
    #[arg(long, env = "ROOKERY_PLACEMENT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Every member of the cluster as id=host:port, comma-separated, the same on every node.
    /// Absent: a single-node cluster.
    #[arg(long, env = "ROOKERY_PLACEMENT_PEERS", value_parser = parse_peers)]
    peers: Option<Peers>,
    /// Port of the HTTP endpoint (/healthz, /metrics); 0 disables it.
    #[arg(long, env = "ROOKERY_PLACEMENT_HTTP_PORT", default_value_t = 8080)]
    http_port: u16,
    /// A host whose stream breaks or whose heartbeats stop this long is removed.
    #[arg(long, env = "ROOKERY_HOST_TIMEOUT_MS", default_value_t = node::DEFAULT_HOST_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(1..))]
    host_timeout_ms: u64,
    /// How long each dissemination phase waits for every host's ack.
    #[arg(long, env = "ROOKERY_ROUND_TIMEOUT_MS", default_value_t = node::DEFAULT_ROUND_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(1..))]
    round_timeout_ms: u64,
    /// How long a membership change waits to be batched with others.
    #[arg(long, env = "ROOKERY_DEBOUNCE_MS", default_value_t = node::DEFAULT_DEBOUNCE_MS)]
    debounce_ms: u64,
    /// Virtual nodes per host on each actor type's hash ring.
    #[arg(long, env = "ROOKERY_VNODES_PER_HOST", default_value_t = DEFAULT_VNODES_PER_HOST, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    vnodes_per_host: u32,
    /// Cluster name recorded in the data dir; a dir of another cluster is refused.
    #[arg(long, env = "ROOKERY_CLUSTER_NAME", default_value = node::DEFAULT_CLUSTER_NAME)]
    cluster_name: String,
    /// Raft heartbeat interval.
    #[arg(long, env = "ROOKERY_RAFT_HEARTBEAT_MS", default_value_t = node::DEFAULT_RAFT_HEARTBEAT_MS)]
    raft_heartbeat_ms: u64,
    /// Raft election timeout lower bound.
    #[arg(long, env = "ROOKERY_ELECTION_TIMEOUT_MIN_MS", default_value_t = node::DEFAULT_ELECTION_TIMEOUT_MIN_MS)]
    election_timeout_min_ms: u64,
    #[command(flatten)]
    tls: super::tls::TlsArgs,
    /// Raft election timeout upper bound.
    #[arg(long, env = "ROOKERY_ELECTION_TIMEOUT_MAX_MS", default_value_t = node::DEFAULT_ELECTION_TIMEOUT_MAX_MS)]
    election_timeout_max_ms: u64,
}

#[derive(Clone, Debug)]
pub struct Peers(BTreeMap<NodeId, String>);

fn parse_listen(value: &str) -> Result<std::net::SocketAddr, String> {
    value
        .parse()
        .map_err(|_| format!("{value:?} is not an IP:port to bind (e.g. 0.0.0.0:50005)"))
}

fn parse_peers(value: &str) -> Result<Peers, String> {
    let mut peers = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, addr) = entry
            .split_once('=')
            .ok_or_else(|| format!("{entry:?} is not id=host:port"))?;
        let id: NodeId = id
            .trim()
            .parse()
            .map_err(|_| format!("{id:?} in {entry:?} is not a node id (an unsigned integer)"))?;
        let addr = super::parse_host_port(addr.trim())?;
        if peers.insert(id, addr).is_some() {
            return Err(format!("node id {id} appears twice"));
        }
    }
    if peers.is_empty() {
        return Err("no peers given".into());
    }
    Ok(Peers(peers))
}

fn usage_error(message: String) -> anyhow::Result<ExitCode> {
    eprintln!("error: {message}");
    Ok(ExitCode::from(2))
}

pub async fn run(args: PlacementArgs) -> anyhow::Result<ExitCode> {
    let members = match args.peers {
        Some(Peers(peers)) => {
            if !peers.contains_key(&args.id) {
                return usage_error(format!(
                    "invalid value for '--peers': node id {} (from --id) is not listed",
                    args.id
                ));
            }
            peers
        }
        None => {
            let advertise = args.advertise_address.clone().unwrap_or_else(|| {
                let mut addr = args.listen;
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                addr.to_string()
            });
            BTreeMap::from([(args.id, advertise)])
        }
    };
    if args.election_timeout_min_ms >= args.election_timeout_max_ms
        || args.raft_heartbeat_ms >= args.election_timeout_min_ms
    {
        return usage_error(
            "raft timings must satisfy --raft-heartbeat-ms < --election-timeout-min-ms < --election-timeout-max-ms".into(),
        );
    }
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| PathBuf::from(format!(".rookery/placement-{}", args.id)));
    let http_listen =
        (args.http_port != 0).then(|| format!("{}:{}", args.listen.ip(), args.http_port));
    let config = PlacementConfig {
        node_id: args.id,
        listen: args.listen.to_string(),
        members,
        data_dir,
        http_listen,
        cluster_name: args.cluster_name,
        host_timeout_ms: args.host_timeout_ms,
        round_timeout_ms: args.round_timeout_ms,
        debounce_ms: args.debounce_ms,
        vnodes_per_host: args.vnodes_per_host,
        raft_heartbeat_ms: args.raft_heartbeat_ms,
        election_timeout_min_ms: args.election_timeout_min_ms,
        election_timeout_max_ms: args.election_timeout_max_ms,
        store_flush: Default::default(),
        skip_lock_phase: false,
    };
    let transport = args.tls.transport()?;
    let node = PlacementNode::start(config, transport)
        .await
        .context("cannot start the placement node")?;
    super::logging::banner(format_args!(
        "rookery placement: gRPC on {}{}",
        node.listen_addr(),
        node.http_addr()
            .map(|a| format!(", http on {a}"))
            .unwrap_or_default()
    ));
    shutdown_signal().await;
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

//! `rookery status`: asks every placement node it can reach for its view and merges them:
//! the leader's view wins for hosts and the table; each member reports its own Raft role.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use rookery_core::net::{self, SharedTransport};
use rookery_proto::internal::v1::placement_client::PlacementClient;
use rookery_proto::internal::v1::{GetStatusRequest, PlacementStatus};
use serde_json::{json, Value};

/// How long one placement node may take to answer.
const STATUS_TIMEOUT_MS: u64 = 3_000;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Placement addresses (host:port), comma-separated; members found there are asked too.
    #[arg(long, env = "ROOKERY_PLACEMENT", default_value = "127.0.0.1:50005", value_delimiter = ',', value_parser = super::parse_host_port)]
    placement: Vec<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// The placement nodes' mutual TLS, when they use it.
    #[command(flatten)]
    tls: super::tls::TlsArgs,
}

async fn ask(transport: &SharedTransport, address: &str) -> Result<PlacementStatus, String> {
    let channel = net::channel(transport, address).map_err(|e| e.to_string())?;
    let mut request = tonic::Request::new(GetStatusRequest {});
    request.set_timeout(Duration::from_millis(STATUS_TIMEOUT_MS));
    let reply = tokio::time::timeout(
        Duration::from_millis(STATUS_TIMEOUT_MS),
        PlacementClient::new(channel).get_status(request),
    )
    .await
    .map_err(|_| "timed out".to_owned())?;
    reply
        .map(|r| r.into_inner())
        .map_err(|status| format!("{}: {}", status.code(), status.message()))
}

pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let transport = args.tls.transport()?;
    let mut answers: BTreeMap<String, Result<PlacementStatus, String>> = BTreeMap::new();
    let mut to_ask: Vec<String> = args.placement.clone();
    // Ask the given addresses, then any member address learned from their answers that is a
    // literal IP:port. Member names (e.g. container names) often resolve only inside the
    // cluster's network, so they are not looked up from here.
    while !to_ask.is_empty() {
        let batch: Vec<String> = std::mem::take(&mut to_ask)
            .into_iter()
            .filter(|a| !answers.contains_key(a))
            .collect();
        let results = futures::future::join_all(batch.iter().map(|a| ask(&transport, a))).await;
        for (address, result) in batch.into_iter().zip(results) {
            if let Ok(status) = &result {
                for member in &status.members {
                    let literal = member.address.parse::<std::net::SocketAddr>().is_ok();
                    if literal
                        && !answers.contains_key(&member.address)
                        && !to_ask.contains(&member.address)
                    {
                        to_ask.push(member.address.clone());
                    }
                }
            }
            answers.insert(address, result);
        }
        to_ask.retain(|a| !answers.contains_key(a));
    }

    let reachable: Vec<&PlacementStatus> =
        answers.values().filter_map(|r| r.as_ref().ok()).collect();
    if reachable.is_empty() {
        for (address, result) in &answers {
            if let Err(e) = result {
                eprintln!("error: placement {address}: {e}");
            }
        }
        eprintln!("error: no placement node answered");
        return Ok(ExitCode::FAILURE);
    }
    let leader_view = reachable.iter().find(|s| s.raft_state == "Leader").copied();
    let term = reachable.iter().map(|s| s.term).max().unwrap_or(0);
    // Without the leader among the answers, the leader that the most up-to-date follower
    // follows (the highest term) is reported, marked unconfirmed.
    let leader = leader_view.map(|s| s.node_id).or_else(|| {
        reachable
            .iter()
            .filter(|s| s.leader_id.is_some())
            .max_by_key(|s| s.term)
            .and_then(|s| s.leader_id)
    });
    let leader_confirmed = leader_view.is_some();
    // Without a reachable leader, the freshest view is the one that applied the most.
    let best = leader_view.unwrap_or_else(|| {
        reachable
            .iter()
            .max_by_key(|s| (s.last_applied_index, s.table_version))
            .copied()
            .expect("at least one answer")
    });
    let by_id: BTreeMap<u64, &PlacementStatus> =
        reachable.iter().map(|s| (s.node_id, *s)).collect();
    let members: Vec<Value> = best
        .members
        .iter()
        .map(|m| {
            let own = by_id.get(&m.id);
            json!({
                "id": m.id,
                "address": m.address,
                "reachable": own.is_some(),
                "raft_state": own.map(|s| s.raft_state.clone()),
                "term": own.map(|s| s.term),
                "last_applied_index": own.and_then(|s| s.last_applied_index),
            })
        })
        .collect();
    let hosts: Vec<Value> = best
        .hosts
        .iter()
        .filter_map(|h| {
            let host = h.host.as_ref()?;
            Some(json!({
                "id": host.host_id,
                "address": host.address,
                "app_id": host.app_id,
                "actor_types": host.actor_types,
                "connected": h.connected,
                "last_heartbeat_age_ms": h.last_heartbeat_age_ms,
                "active_actors": h.active_actors,
            }))
        })
        .collect();
    let report = json!({
        "leader": leader,
        "leader_confirmed": leader_confirmed,
        "term": term,
        "members": members,
        "table_version": best.table_version,
        "hosts": hosts,
    });
    if args.json {
        println!("{report}");
    } else {
        print_text(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(report: &Value) {
    let leader = report["leader"]
        .as_u64()
        .map(|l| l.to_string())
        .unwrap_or_else(|| "none".into());
    println!(
        "leader: {leader}   term: {}   table version: {}",
        report["term"], report["table_version"]
    );
    println!("\nmembers:");
    for m in report["members"].as_array().into_iter().flatten() {
        println!(
            "  {:>4}  {:<24} {}",
            m["id"],
            m["address"].as_str().unwrap_or(""),
            m["raft_state"].as_str().unwrap_or("unreachable")
        );
    }
    println!("\nhosts:");
    let hosts = report["hosts"].as_array().cloned().unwrap_or_default();
    if hosts.is_empty() {
        println!("  (none)");
    }
    for h in hosts {
        let types: Vec<&str> = h["actor_types"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let active = h["active_actors"]
            .as_u64()
            .map(|n| n.to_string())
            .unwrap_or_else(|| "-".into());
        println!(
            "  {:<20} {:<24} {:<10} {}  {:>8} active  [{}]",
            h["id"].as_str().unwrap_or(""),
            h["address"].as_str().unwrap_or(""),
            h["app_id"].as_str().unwrap_or(""),
            if h["connected"].as_bool() == Some(true) {
                "connected"
            } else {
                "absent   "
            },
            active,
            types.join(", ")
        );
    }
}

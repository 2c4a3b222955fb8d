//! The placement service as a Raft cluster of real `rookery placement` processes, observed the
//! way an operator sees it (`rookery status --json`) and the way hosts see it (test hosts on the
//! ReportHost stream).
//!
//! Goal: a cluster of one or three nodes elects a leader; losing the leader (kill -9) elects a
//! new one without losing the host membership or moving the table version backwards, and the
//! hosts follow the new leader; a full stop and restart recovers membership and table version
//! from the data dirs.

mod support;

use std::collections::BTreeSet;

use support::host::{register_in_turn, table_host_ids};
use support::{Cluster, OrderLog, Status, TestHost, DEADLINE};

/// Versions of the tables a host received, in receive order.
fn update_versions(host: &TestHost) -> Vec<u64> {
    host.orders()
        .iter()
        .filter_map(|r| r.order.table().map(|t| t.version))
        .collect()
}

/// A host must never be handed a table older than one it already got.
fn assert_versions_never_go_down(host: &TestHost) {
    let versions = update_versions(host);
    assert!(
        versions.windows(2).all(|w| w[0] <= w[1]),
        "host {} got table versions going down: {versions:?}",
        host.id
    );
}

fn assert_member_roles(status: &Status, leader: u64) {
    for member in &status.members {
        let expected = if member.id == leader {
            "Leader"
        } else {
            "Follower"
        };
        if member.reachable {
            assert_eq!(
                member.raft_state.as_deref(),
                Some(expected),
                "member {} in {status}",
                member.id
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_cluster_elects_itself_and_keeps_its_state_across_restart() {
    let cluster = Cluster::start(1);
    let status = cluster.wait_for_leader().await;
    assert_eq!(status.leader, Some(1), "{status}");
    assert_eq!(status.members.len(), 1, "{status}");
    let member = status.member(1).expect("member 1");
    // Without --peers the node advertises its --listen address.
    assert_eq!(member.address, cluster.node(1).addr, "{status}");
    assert!(status.hosts.is_empty(), "fresh cluster has hosts: {status}");

    let log = OrderLog::new();
    let mut hosts = register_in_turn(&cluster.addrs(), &log, &["h1"]).await;
    let before = cluster
        .wait_status("h1 in the membership", DEADLINE, |s| {
            if s.host_connected("h1") {
                Ok(())
            } else {
                Err("h1 not connected".into())
            }
        })
        .await;
    assert!(before.table_version >= 1, "{before}");
    hosts[0].disconnect().await;

    // Restart on the same data dir: the cluster is reused, not initialized again.
    cluster.stop(1).await;
    cluster.restart(1);
    let after = cluster.wait_for_leader().await;
    assert_eq!(after.leader, Some(1), "{after}");
    assert!(
        after.term >= before.term,
        "term went down: {before} -> {after}"
    );
    assert!(
        after.table_version >= before.table_version,
        "table version went down across a restart: {before} -> {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_node_cluster_elects_one_leader_that_status_shows() {
    let cluster = Cluster::start(3);
    let status = cluster.wait_for_leader().await;
    let leader = status.leader.expect("leader");
    assert_eq!(status.members.len(), 3, "{status}");
    for node in cluster.nodes() {
        let member = status.member(node.id).expect("every node is a member");
        assert!(member.reachable, "{status}");
        assert_eq!(
            member.address, node.addr,
            "member address is its --peers entry"
        );
    }
    // Followers catch up with the leader's term shortly after an election.
    let status = cluster
        .wait_status("one leader, two followers", DEADLINE, |s| {
            let all_settled = s.members.iter().all(|m| {
                let expected = if Some(m.id) == s.leader {
                    "Leader"
                } else {
                    "Follower"
                };
                m.reachable && m.raft_state.as_deref() == Some(expected)
            });
            if all_settled && s.leader == Some(leader) {
                Ok(())
            } else {
                Err("roles not settled".into())
            }
        })
        .await;
    assert_member_roles(&status, leader);

    // Asking a single node is enough: the CLI learns the other members from it.
    let follower = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let via_one = support::status::status_of(&cluster.node(follower).addr)
        .await
        .expect("status via one follower");
    assert_eq!(via_one.leader, Some(leader), "{via_one}");
    assert_eq!(
        via_one.members.iter().filter(|m| m.reachable).count(),
        3,
        "{via_one}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_elects_a_new_one_and_hosts_follow_it() {
    let cluster = Cluster::start(3);
    let before_election = cluster.wait_for_leader().await;
    let old_leader = before_election.leader.expect("leader");

    let log = OrderLog::new();
    let hosts = register_in_turn(&cluster.addrs(), &log, &["h1", "h2"]).await;
    let before = cluster
        .wait_status("both hosts connected", DEADLINE, |s| {
            if s.host_connected("h1") && s.host_connected("h2") && s.leader == Some(old_leader) {
                Ok(())
            } else {
                Err("hosts not connected to the old leader yet".into())
            }
        })
        .await;
    assert!(before.table_version >= 2, "{before}");
    for host in &hosts {
        assert_eq!(
            host.connected_to().as_deref(),
            Some(cluster.node(old_leader).addr.as_str()),
            "host {} is connected to the leader",
            host.id
        );
    }
    let mark = log.mark();

    cluster.kill9(old_leader);

    let after = cluster
        .wait_status(
            "a new leader with both hosts connected to it",
            DEADLINE,
            |s| {
                let leader = s.confirmed_leader().ok_or("no confirmed leader")?;
                if leader == old_leader {
                    return Err("still the old leader".into());
                }
                if s.member(old_leader).map(|m| m.reachable) != Some(false) {
                    return Err("dead leader not shown unreachable".into());
                }
                if !(s.host_connected("h1") && s.host_connected("h2")) {
                    return Err("hosts not connected to the new leader".into());
                }
                Ok(())
            },
        )
        .await;
    let new_leader = after.leader.expect("leader");
    assert!(
        after.term > before.term,
        "term did not grow: {before} -> {after}"
    );
    assert!(
        after.table_version >= before.table_version,
        "table version went down: {before} -> {after}"
    );
    assert_eq!(after.host_ids(), ["h1", "h2"], "{after}");
    assert_member_roles(&after, new_leader);

    // The hosts really are on the new leader: it sent them the table on their new streams.
    let new_addr = cluster.node(new_leader).addr.clone();
    for host in &hosts {
        host.wait_for("a table from the new leader", DEADLINE, |orders| {
            orders
                .iter()
                .any(|r| r.seq >= mark && r.from == new_addr && r.order.table().is_some())
        })
        .await;
        let table = host.latest_table().expect("a table");
        assert_eq!(table_host_ids(&table), ["h1", "h2"]);
        assert!(table.version >= before.table_version);
        assert_eq!(host.connected_to(), Some(new_addr.clone()));
        assert_versions_never_go_down(host);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_restart_recovers_membership_and_table_version_from_disk() {
    let cluster = Cluster::start(3);
    cluster.wait_for_leader().await;
    let log = OrderLog::new();
    let mut hosts = register_in_turn(&cluster.addrs(), &log, &["h1", "h2", "h3"]).await;
    // h3 leaves again: four versions for a membership of two, so a cluster that lost its state
    // could not get back to this version from the two re-registering hosts alone.
    let mut h3 = hosts.pop().expect("h3");
    h3.disconnect().await;
    for host in &hosts {
        host.wait_settled_on(&["h1", "h2"]).await;
    }
    // Every node has applied everything before the stop, so whichever answers first after the
    // restart must show it.
    let before = cluster
        .wait_status("every node applied the membership of two", DEADLINE, |s| {
            if s.host_ids() != ["h1", "h2"] {
                return Err("membership differs".into());
            }
            let applied: BTreeSet<Option<u64>> =
                s.members.iter().map(|m| m.last_applied_index).collect();
            if applied.len() == 1 && s.members.iter().all(|m| m.reachable) {
                Ok(())
            } else {
                Err("nodes have applied different log prefixes".into())
            }
        })
        .await;
    assert!(before.table_version >= 4, "{before}");

    // The hosts keep running and keep trying to reconnect while placement is down, as real
    // hosts would.
    cluster.stop_all().await;
    cluster.restart_all();

    // The first answer after the restart must already carry the state on disk: a cluster that
    // forgot it would answer with a lower version (the two re-registering hosts could give it
    // at most two versions).
    let first = support::wait_until(
        "any answer from the restarted cluster",
        DEADLINE,
        || async {
            if let Err(dead) = cluster.check_alive() {
                panic!("{dead}");
            }
            cluster.status().await.map_err(|e| e.to_string())
        },
    )
    .await;
    assert!(
        first.table_version >= before.table_version,
        "table version not recovered: before stop {before}, first answer after restart {first}"
    );
    let first_ids: BTreeSet<String> = first.host_ids().into_iter().collect();
    assert!(
        first_ids.contains("h1") && first_ids.contains("h2"),
        "membership not recovered: before stop {before}, first answer after restart {first}"
    );

    let after = cluster
        .wait_status("a leader with both hosts connected", DEADLINE, |s| {
            s.confirmed_leader().ok_or("no confirmed leader")?;
            if s.host_connected("h1") && s.host_connected("h2") {
                Ok(())
            } else {
                Err("hosts not reconnected".into())
            }
        })
        .await;
    assert!(
        after.table_version >= before.table_version,
        "{before} -> {after}"
    );
    assert_eq!(after.host_ids(), ["h1", "h2"], "{after}");
    for host in &hosts {
        let table = host
            .wait_table("both hosts listed", |t| table_host_ids(t) == ["h1", "h2"])
            .await;
        assert!(table.version >= before.table_version);
        assert_versions_never_go_down(host);
    }
}

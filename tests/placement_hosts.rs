//! The host side of the placement service: the ReportHost stream protocol and dissemination
//! rounds, driven by test hosts against a real `rookery placement` node.
//!
//! Goal: every membership change reaches every connected host as LOCK, UPDATE, UNLOCK of the
//! next table version, with each phase a barrier; failed hosts (heartbeats stopped, LOCK never
//! acked) are removed without stalling anyone else; bad registrations are refused with
//! INVALID_ARGUMENT and change nothing; a host with no actor types gets the table without
//! a version bump.
//!
//! A single placement node is enough here (the leader does all of this); fail-over is covered
//! by `placement_cluster`.

mod support;

use std::time::{Duration, Instant};

use support::host::{
    assert_exactly_one_round, assert_round_is_a_barrier, register_in_turn, table_host_ids,
};
use support::{Cluster, OrderLog, Received, TestHost, DEADLINE};
use tonic::Code;

/// Slack on top of the server's own timeouts before a failure detection counts as missing:
/// generous, because the property is that the host is removed, not how fast on a loaded box.
const SLACK: Duration = Duration::from_secs(8);

/// Failure detection fast enough for a test, as in the documentation's example.
fn fast_failure_detection() -> Cluster {
    Cluster::builder()
        .host_timeout_ms(1000)
        .round_timeout_ms(1000)
        .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_reaches_every_host_as_lock_update_unlock_of_the_next_version() {
    let cluster = Cluster::start(1);
    cluster.wait_for_leader().await;
    let log = OrderLog::new();
    let mut hosts = register_in_turn(&cluster.addrs(), &log, &["h1", "h2"]).await;
    let version = hosts[0].latest_table().expect("table").version;

    // A third host joins: one change, one version, one round to everyone.
    let mark = log.mark();
    let h3 = TestHost::builder("h3").log(&log).connect(cluster.addrs());
    for host in &hosts {
        host.wait_unlock(version + 1).await;
        assert_exactly_one_round(host, mark, version + 1, &["h1", "h2", "h3"]);
    }
    let table = h3.wait_settled_on(&["h1", "h2", "h3"]).await;
    assert_eq!(table.version, version + 1);
    assert_round_is_a_barrier(&log, mark, version + 1, &["h1", "h2"]);

    // It leaves (its stream closes): again exactly one version more.
    let mark = log.mark();
    let mut h3 = h3;
    h3.disconnect().await;
    for host in &hosts {
        host.wait_unlock(version + 2).await;
        assert_exactly_one_round(host, mark, version + 2, &["h1", "h2"]);
    }
    assert_round_is_a_barrier(&log, mark, version + 2, &["h1", "h2"]);

    let status = cluster
        .wait_status("h3 gone from status", DEADLINE, |s| {
            if s.host_ids() == ["h1", "h2"] {
                Ok(())
            } else {
                Err("membership differs".into())
            }
        })
        .await;
    assert_eq!(status.table_version, version + 2, "{status}");
    for id in ["h1", "h2"] {
        let host = status.host(id).expect("listed");
        assert_eq!(host.connected, Some(true), "{status}");
        assert_eq!(host.actor_types, ["Counter"], "{status}");
        assert_eq!(host.app_id, "app", "{status}");
        assert!(
            host.last_heartbeat_age_ms.is_some(),
            "leader knows heartbeat age: {status}"
        );
    }
    assert_eq!(status.host("h1").unwrap().address, hosts[0].address());
    hosts.clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_stops_heartbeating_is_removed() {
    let cluster = fast_failure_detection();
    cluster.wait_for_leader().await;
    let log = OrderLog::new();
    let h1 = TestHost::builder("h1").log(&log).connect(cluster.addrs());
    h1.wait_settled_on(&["h1"]).await;
    // Stays down once placement gives up on it, so it cannot come back and blur the result.
    let mute = TestHost::builder("mute")
        .no_reconnect()
        .log(&log)
        .connect(cluster.addrs());
    for host in [&h1, &mute] {
        host.wait_settled_on(&["h1", "mute"]).await;
    }
    let version = h1.latest_table().expect("table").version;

    let mark = log.mark();
    let silenced_at = Instant::now();
    mute.stop_heartbeats();
    let within = cluster.host_timeout() + cluster.round_timeout() + SLACK;
    cluster
        .wait_status("the silent host removed", within, |s| {
            if s.host_ids() == ["h1"] {
                Ok(())
            } else {
                Err("still listed".into())
            }
        })
        .await;
    eprintln!("silent host removed after {:?}", silenced_at.elapsed());

    // Not "exactly one round": with a 1 s host timeout, a stall of the loaded test box could
    // make placement drop and re-add h1 too, which is correct behaviour.
    let table = h1.wait_settled_on(&["h1"]).await;
    assert!(table.version > version, "{}", h1.dump());
    assert!(
        h1.orders_since(mark)
            .iter()
            .any(|r| r.order.table().is_some_and(|t| table_host_ids(t) == ["h1"])),
        "h1 was not sent the table without the silent host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_never_acks_lock_does_not_stall_the_round() {
    // Default host timeout: only the round timeout is under test, and the healthy host must not
    // be dropped for a slow ack on a loaded box (1.5 s is plenty for an ack).
    let cluster = Cluster::builder().round_timeout_ms(1500).start();
    cluster.wait_for_leader().await;
    let log = OrderLog::new();
    let h1 = TestHost::builder("h1").log(&log).connect(cluster.addrs());
    let version = h1.wait_settled_on(&["h1"]).await.version;

    // Its registration starts round version+1, in which it never acks LOCK.
    let mark = log.mark();
    let stuck = TestHost::builder("stuck")
        .never_ack_lock()
        .no_reconnect()
        .log(&log)
        .connect(cluster.addrs());
    let orders = h1
        .wait_for("LOCK of the round", DEADLINE, |orders| {
            orders
                .iter()
                .any(|r| r.seq >= mark && r.order == Received::Lock(version + 1))
        })
        .await;
    let locked_at = orders
        .iter()
        .find(|r| r.order == Received::Lock(version + 1))
        .expect("lock")
        .at;

    // The round goes on without it once the round timeout passes.
    let within = cluster.round_timeout() * 3 + SLACK;
    let orders = h1
        .wait_for("UPDATE and UNLOCK of the round", within, |orders| {
            let update = orders.iter().any(|r| {
                r.seq >= mark && r.order.table().is_some_and(|t| t.version == version + 1)
            });
            update
                && orders
                    .iter()
                    .any(|r| r.seq >= mark && r.order == Received::Unlock(version + 1))
        })
        .await;
    let unlocked_at = orders
        .iter()
        .find(|r| r.order == Received::Unlock(version + 1))
        .expect("unlock")
        .at;
    eprintln!(
        "round with a silent host took {:?}",
        unlocked_at - locked_at
    );

    // Placement dropped it: closed its stream and removed it from the membership.
    stuck
        .wait_closed_by_placement(1, cluster.round_timeout() + SLACK)
        .await;
    let status = cluster
        .wait_status("the silent host removed", DEADLINE, |s| {
            if s.host_ids() == ["h1"] {
                Ok(())
            } else {
                Err("still listed".into())
            }
        })
        .await;
    h1.wait_settled_on(&["h1"]).await;
    assert!(status.table_version > version, "{status}");
    assert!(
        !stuck
            .orders()
            .iter()
            .any(|r| matches!(r.order, Received::Unlock(v) if v == version + 1)),
        "the host that never acked LOCK should not be sent UNLOCK; it got:\n{}",
        stuck.dump()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_registrations_are_refused_with_invalid_argument_and_change_nothing() {
    let cluster = Cluster::start(1);
    cluster.wait_for_leader().await;
    let log = OrderLog::new();
    let h1 = TestHost::builder("h1").log(&log).connect(cluster.addrs());
    let version = h1.wait_settled_on(&["h1"]).await.version;
    let mark = log.mark();

    let too_long = "a".repeat(257);
    let bad = [
        ("empty host id", TestHost::builder("")),
        (
            "host id held by a live stream with another address",
            TestHost::builder("h1").address("127.0.0.1:1"),
        ),
        (
            "empty actor type",
            TestHost::builder("h9").actor_types(["Counter", ""]),
        ),
        (
            "actor type over 256 bytes",
            TestHost::builder("h9").actor_types([too_long.as_str()]),
        ),
    ];
    for (what, builder) in bad {
        // A private log: the impostor shares h1's id, and h1's orders are not its own.
        let host = builder.no_reconnect().connect(cluster.addrs());
        let (code, message) = host.wait_rejected().await;
        assert_eq!(code, Code::InvalidArgument, "{what}: {message}");
        assert!(
            host.orders().is_empty(),
            "{what}: got orders:\n{}",
            host.dump()
        );
        let status = cluster.status().await.expect("status");
        assert_eq!(
            status.table_version, version,
            "{what} changed the version: {status}"
        );
        assert_eq!(
            status.host_ids(),
            ["h1"],
            "{what} changed the membership: {status}"
        );
        let listed = status.host("h1").expect("h1");
        assert_eq!(listed.address, h1.address(), "{what} changed h1: {status}");
        assert!(
            status.host_connected("h1"),
            "{what} disconnected h1: {status}"
        );
    }

    // Nothing happened in between: the next valid change is exactly the next version, and it
    // is the first order h1 got since the bad registrations. 256 bytes is still a valid type.
    let at_limit = "b".repeat(256);
    let h2 = TestHost::builder("h2")
        .actor_types(["Counter", at_limit.as_str()])
        .log(&log)
        .connect(cluster.addrs());
    h1.wait_unlock(version + 1).await;
    assert_exactly_one_round(&h1, mark, version + 1, &["h1", "h2"]);
    h2.wait_settled_on(&["h1", "h2"]).await;
    assert_eq!(h1.connected_to(), Some(cluster.node(1).addr.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_without_actor_types_gets_the_table_without_a_version_bump() {
    let cluster = Cluster::start(1);
    cluster.wait_for_leader().await;
    let log = OrderLog::new();
    let h1 = TestHost::builder("h1").log(&log).connect(cluster.addrs());
    let version = h1.wait_settled_on(&["h1"]).await.version;
    let mark = log.mark();

    let watcher = TestHost::builder("watcher")
        .actor_types(Vec::<String>::new())
        .log(&log)
        .connect(cluster.addrs());
    let table = watcher
        .wait_table("the current table", |t| t.version == version)
        .await;
    assert_eq!(
        table_host_ids(&table),
        ["h1"],
        "it owns nothing, so it is not listed"
    );
    let status = cluster.status().await.expect("status");
    assert_eq!(status.table_version, version, "{status}");
    assert_eq!(status.host_ids(), ["h1"], "{status}");

    // The next change is exactly one version more, and the first order h1 has seen since the
    // watcher came: the watcher's table went to it alone. The watcher, connected, gets the
    // round too.
    let h2 = TestHost::builder("h2").log(&log).connect(cluster.addrs());
    h1.wait_unlock(version + 1).await;
    assert_exactly_one_round(&h1, mark, version + 1, &["h1", "h2"]);
    h2.wait_settled_on(&["h1", "h2"]).await;
    let table = watcher.wait_settled_on(&["h1", "h2"]).await;
    assert_eq!(table.version, version + 1);
    assert!(
        watcher
            .orders()
            .iter()
            .all(|r| r.order.version() <= version + 1),
        "{}",
        watcher.dump()
    );
}

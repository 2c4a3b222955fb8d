//! Membership churn under load: migration, graceful leave and a single activation per actor.
//!
//! A chaos run on a real cluster: 3 placement nodes, 3 hosts with an app each, a client
//! driving Counter actors continuously through the hosts that are up. In turn the test kills
//! a host with SIGKILL and restarts it, kills the placement leader, adds a fourth host, removes
//! one gracefully (SIGTERM), and pauses one (SIGSTOP) for longer than its lease. Every turn the
//! apps run goes to a ledger outside the cluster; the test fails on any overlap of two turns of
//! one actor, or an older activation serving after a newer one. For each event it reports the
//! calls that failed and the time until every actor answers again, and it checks that a
//! graceful leave moves only the leaver's actors. A call whose owner died or stalled while
//! running it is not sent again (it may have run): those are counted apart, and only the
//! events that stop a host mid-call may have them.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::app::{actor_type, TestApp};
use support::cluster::Cluster;
use support::host_process::HostProcess;
use support::ledger::Ledger;
use support::wait::{wait_until, DEADLINE};

const ACTOR_TYPE: &str = "Counter";
/// Distinct actors the load spreads over.
const ACTORS: usize = 120;
/// Concurrent callers of the background load.
const CALLERS: usize = 6;
/// Deadline of each call: generous, since callers should ride through every event with
/// retries rather than errors.
const CALL_DEADLINE: Duration = Duration::from_secs(30);
/// How long the paused host stays stopped: longer than its lease and the host timeout, so
/// placement hands its actors to others meanwhile.
const PAUSE: Duration = Duration::from_secs(6);

fn actor_id(i: usize) -> String {
    format!("c{i}")
}

/// One host and its app, as a slot the load can call through while `callable`.
struct Member {
    host: HostProcess,
    app: TestApp,
    callable: AtomicBool,
}

/// A failed call of the load.
struct Failed {
    at: Instant,
    entry_host: String,
    why: String,
    /// The host answered that the owner broke off the call, which may have run.
    may_have_run: bool,
}

/// The failures of one event, sorted.
#[derive(Default)]
struct Failures {
    /// Calls that entered through the crashed host (the client's own connection died with it).
    lost_with_entry_host: Vec<String>,
    /// Calls whose owner broke off mid-call: not sent again, as they may have run.
    may_have_run: Vec<String>,
    /// Every other failure.
    failed: Vec<String>,
}

struct Load {
    members: Mutex<Vec<Arc<Member>>>,
    ok: AtomicU64,
    failed: Mutex<Vec<Failed>>,
    stop: AtomicBool,
    /// The ledger's epoch, for event times in messages.
    epoch: Instant,
}

impl Load {
    fn callable(&self) -> Vec<Arc<Member>> {
        self.members
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.callable.load(Ordering::SeqCst))
            .cloned()
            .collect()
    }

    /// Failures since `since`, sorted by cause.
    fn failures_since(&self, since: Instant, crashed: Option<&str>) -> Failures {
        let mut sorted = Failures::default();
        for f in self.failed.lock().unwrap().iter().filter(|f| f.at >= since) {
            let bin = if Some(f.entry_host.as_str()) == crashed {
                &mut sorted.lost_with_entry_host
            } else if f.may_have_run {
                &mut sorted.may_have_run
            } else {
                &mut sorted.failed
            };
            bin.push(f.why.clone());
        }
        sorted
    }
}

/// One call; the error says why, and whether the host reported that it may have run.
async fn call(member: &Member, id: &str) -> Result<(), (String, bool)> {
    let mut request = tonic::Request::new(rookery_proto::v1::InvokeRequest {
        actor_type: ACTOR_TYPE.into(),
        actor_id: id.into(),
        method: "increment".into(),
        data: br#"{"by":1}"#.to_vec(),
        metadata: Default::default(),
    });
    request.set_timeout(CALL_DEADLINE);
    member
        .host
        .actors()
        .invoke(request)
        .await
        .map(|_| ())
        .map_err(|status| {
            let may_have_run = status
                .metadata()
                .get("rookery-error")
                .is_some_and(|v| v == "owner-lost");
            let why = format!(
                "{} via {}: {:?} {}",
                id,
                member.host.id,
                status.code(),
                status.message()
            );
            (why, may_have_run)
        })
}

/// Calls random actors through random callable hosts until told to stop.
async fn drive(load: Arc<Load>, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    while !load.stop.load(Ordering::SeqCst) {
        let members = load.callable();
        if members.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let member = &members[rng.usize(..members.len())];
        let id = actor_id(rng.usize(..ACTORS));
        match call(member, &id).await {
            Ok(()) => {
                load.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err((why, may_have_run)) => load.failed.lock().unwrap().push(Failed {
                at: Instant::now(),
                entry_host: member.host.id.clone(),
                why,
                may_have_run,
            }),
        }
    }
}

/// Calls every actor once, concurrently, through callable hosts; returns when all answered.
async fn sweep(load: &Load) -> Result<(), String> {
    let members = load.callable();
    let calls = (0..ACTORS).map(|i| {
        let member = members[i % members.len()].clone();
        async move { call(&member, &actor_id(i)).await }
    });
    let results = futures::future::join_all(calls).await;
    match results.into_iter().find_map(Result::err) {
        None => Ok(()),
        Some((why, _)) => Err(why),
    }
}

struct EventReport {
    event: &'static str,
    failed_calls: usize,
    /// Calls whose owner broke off mid-call, not sent again.
    may_have_run: usize,
    /// Calls in flight on the crashed host itself when it died: lost with the client's
    /// connection, reported but not held against the cluster.
    lost_with_entry_host: usize,
    recovery: Duration,
}

/// Runs `event`, then measures the time until every actor answers again (a full sweep
/// succeeds), and counts the load's failed calls from the event until then.
async fn measure<F, Fut>(
    load: &Load,
    reports: &mut Vec<EventReport>,
    name: &'static str,
    crashed: Option<&str>,
    event: F,
) where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    eprintln!("event {name:?} starts at +{:?}", started - load.epoch);
    event().await;
    wait_until(
        format!("every actor answering after: {name}"),
        DEADLINE * 2,
        || async { sweep(load).await },
    )
    .await;
    let recovery = started.elapsed();
    let failures = load.failures_since(started, crashed);
    eprintln!(
        "event {name:?}: {} failed calls ({} may have run, {} more lost with the crashed entry host), every actor answers after {recovery:?}",
        failures.failed.len(),
        failures.may_have_run.len(),
        failures.lost_with_entry_host.len()
    );
    for why in failures.failed.iter().chain(&failures.may_have_run).take(5) {
        eprintln!("  failed: {why}");
    }
    reports.push(EventReport {
        event: name,
        failed_calls: failures.failed.len(),
        may_have_run: failures.may_have_run.len(),
        lost_with_entry_host: failures.lost_with_entry_host.len(),
        recovery,
    });
}

async fn start_member(cluster: &Cluster, ledger: &Arc<Ledger>, name: &str) -> Arc<Member> {
    let host = HostProcess::builder(cluster.addr_list())
        .app_id(name)
        .start();
    host.wait_ready().await;
    let app = TestApp::builder(host.grpc_addr.clone())
        .app_id(name)
        .serve(actor_type(ACTOR_TYPE))
        .ledger(ledger.clone(), name)
        .start();
    app.wait_registered().await;
    Arc::new(Member {
        host,
        app,
        callable: AtomicBool::new(true),
    })
}

/// Which host each actor is active on, by ListActivations.
async fn placement_of(members: &[Arc<Member>]) -> BTreeMap<String, String> {
    let mut owners = BTreeMap::new();
    for member in members {
        if let Ok(ids) = member.host.active_ids(ACTOR_TYPE).await {
            for id in ids {
                owners.insert(id, member.host.id.clone());
            }
        }
    }
    owners
}

async fn wait_hosts(cluster: &Cluster, want: usize) {
    cluster
        .wait_status(
            format!("{want} hosts serving {ACTOR_TYPE}"),
            DEADLINE,
            |s| {
                let serving = s
                    .hosts
                    .iter()
                    .filter(|h| h.actor_types.iter().any(|t| t == ACTOR_TYPE))
                    .count();
                if serving == want {
                    Ok(())
                } else {
                    Err(format!("{serving} hosts serve {ACTOR_TYPE}"))
                }
            },
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn churn_keeps_one_activation_per_actor_and_calls_ride_through() {
    let cluster = Cluster::builder().nodes(3).start();
    cluster.wait_for_leader().await;
    let ledger = Arc::new(Ledger::default());
    let mut members = Vec::new();
    for name in ["app-1", "app-2", "app-3"] {
        members.push(start_member(&cluster, &ledger, name).await);
    }
    wait_hosts(&cluster, 3).await;
    let load = Arc::new(Load {
        members: Mutex::new(members.clone()),
        ok: AtomicU64::new(0),
        failed: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
        epoch: ledger.epoch,
    });
    sweep(&load)
        .await
        .expect("every actor answers before the churn");
    let drivers: Vec<_> = (0..CALLERS as u64)
        .map(|seed| tokio::spawn(drive(load.clone(), seed)))
        .collect();
    let mut reports = Vec::new();

    // 1. A host crashes and comes back.
    let crashed = members[1].clone();
    let crashed_id = crashed.host.id.clone();
    measure(
        &load,
        &mut reports,
        "kill -9 a host",
        Some(&crashed_id),
        || async {
            crashed.callable.store(false, Ordering::SeqCst);
            crashed.host.kill9();
        },
    )
    .await;
    measure(
        &load,
        &mut reports,
        "restart the killed host",
        None,
        || async {
            crashed.host.restart();
            crashed.host.wait_ready().await;
            crashed.callable.store(true, Ordering::SeqCst);
            wait_hosts(&cluster, 3).await;
        },
    )
    .await;

    // 2. The placement leader crashes.
    measure(
        &load,
        &mut reports,
        "kill -9 the placement leader",
        None,
        || async {
            let leader = cluster
                .status()
                .await
                .expect("status")
                .confirmed_leader()
                .expect("a leader");
            cluster.kill9(leader);
            cluster.wait_for_leader().await;
            cluster.restart(leader);
            cluster.wait_for_leader().await;
        },
    )
    .await;

    // 3. A fourth host joins.
    let joined = start_member(&cluster, &ledger, "app-4").await;
    measure(&load, &mut reports, "a fourth host joins", None, || async {
        load.members.lock().unwrap().push(joined.clone());
        members.push(joined.clone());
        wait_hosts(&cluster, 4).await;
    })
    .await;

    // 4. A host leaves gracefully: only its actors move.
    let leaver = members[2].clone();
    let before = placement_of(&members).await;
    measure(
        &load,
        &mut reports,
        "a host leaves gracefully",
        None,
        || async {
            leaver.callable.store(false, Ordering::SeqCst);
            let status = leaver.host.stop().await;
            assert!(status.success(), "the leaving host exits 0, got {status:?}");
            wait_hosts(&cluster, 3).await;
        },
    )
    .await;
    let after = placement_of(&members).await;
    let mut moved_from_others = Vec::new();
    let mut moved_from_leaver = 0;
    for (id, host) in &before {
        match after.get(id) {
            Some(now) if now == host => {}
            _ if *host == leaver.host.id => moved_from_leaver += 1,
            other => moved_from_others.push(format!("{id}: {host} -> {other:?}")),
        }
    }
    eprintln!(
        "graceful leave: {moved_from_leaver} of the leaver's actors moved, {} others moved",
        moved_from_others.len()
    );
    assert!(
        moved_from_others.is_empty(),
        "a graceful leave moved actors of other hosts: {moved_from_others:?}"
    );

    // 5. A host pauses for longer than its lease, then resumes.
    let paused = members[0].clone();
    measure(
        &load,
        &mut reports,
        "SIGSTOP a host longer than its lease",
        None,
        || async {
            paused.callable.store(false, Ordering::SeqCst);
            paused.host.signal("STOP");
            tokio::time::sleep(PAUSE).await; // the pause itself is the event under test
            paused.host.signal("CONT");
            paused.host.wait_ready().await;
            paused.callable.store(true, Ordering::SeqCst);
            wait_hosts(&cluster, 3).await;
        },
    )
    .await;

    load.stop.store(true, Ordering::SeqCst);
    for driver in drivers {
        driver.await.expect("driver");
    }

    eprintln!(
        "\n| event | failed calls | may have run (owner lost mid-call) | lost with the crashed entry host | every actor answers after |"
    );
    eprintln!("|---|---|---|---|---|");
    for report in &reports {
        eprintln!(
            "| {} | {} | {} | {} | {:.2} s |",
            report.event,
            report.failed_calls,
            report.may_have_run,
            report.lost_with_entry_host,
            report.recovery.as_secs_f64()
        );
    }
    let (summary, violations) = ledger.check();
    eprintln!(
        "ledger: {} actors, {} turns, {} activations; {} calls ok",
        summary.actors,
        summary.turns,
        summary.activations,
        load.ok.load(Ordering::Relaxed)
    );
    assert!(
        violations.is_empty(),
        "single activation violated:\n{}",
        violations.join("\n")
    );
    assert!(
        summary.turns > ACTORS,
        "the load ran ({} turns)",
        summary.turns
    );
    let failed: Vec<_> = reports
        .iter()
        .filter(|r| r.failed_calls > 0)
        .map(|r| r.event)
        .collect();
    assert!(
        failed.is_empty(),
        "calls failed within their deadline during: {failed:?}"
    );
    let stops_a_host_mid_call =
        |event: &str| event.starts_with("kill -9 a host") || event.starts_with("SIGSTOP");
    let unexpected: Vec<_> = reports
        .iter()
        .filter(|r| r.may_have_run > 0 && !stops_a_host_mid_call(r.event))
        .map(|r| r.event)
        .collect();
    assert!(
        unexpected.is_empty(),
        "calls broke off mid-call though no owner stopped, during: {unexpected:?}"
    );
    for member in &members {
        member.app.assert_no_violations();
    }
}

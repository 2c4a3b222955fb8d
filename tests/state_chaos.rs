//! Counter chaos on PostgreSQL: three `rookery host` processes sharing a real PostgreSQL
//! server, each serving the shipped Counter example (`examples/counter.rs`, which keeps its
//! value in actor state), under continuous increments, while hosts are killed with -9 and
//! restarted at random and PostgreSQL itself is stopped and started once.
//!
//! At the end every counter's stored value `v` satisfies `acked ≤ v ≤ acked + in_doubt`:
//! no acknowledged increment is lost (no write lost, none applied by two activations at
//! once), and nothing is applied that was not asked for. A call that failed is *in doubt*:
//! it may have been applied before its answer was lost with its host.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::host_process::{dump_logs, invoke_at, start_placement, wait_for_routing, HostProcess};
use support::postgres::Postgres;
use support::wait::{wait_until, DEADLINE};
use support::TestDir;

#[path = "../examples/counter.rs"]
#[allow(dead_code)]
mod counter_example;

const HOSTS: usize = 3;
const COUNTERS: usize = 12;
const CALLERS: usize = 6;
/// How long the load and the faults run.
const CHAOS: Duration = Duration::from_secs(40);
/// Deadline of one increment: long enough to ride out a host's removal.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default, Debug, Clone, Copy)]
struct Tally {
    acked: u64,
    in_doubt: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_increments_survive_host_crashes_and_a_store_outage() {
    let Some(mut postgres) = Postgres::start().await else {
        return;
    };
    let seed = std::env::var("ROOKERY_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("chaos seed {seed} (ROOKERY_CHAOS_SEED={seed} replays the fault schedule)");
    let mut rng = fastrand::Rng::with_seed(seed);

    let dir = TestDir::new("rookery-state-chaos-");
    let resources = dir.path().join("components");
    postgres.write_component(&resources);
    let cluster = start_placement(1).await;
    let hosts: Vec<Arc<HostProcess>> = (0..HOSTS)
        .map(|_| {
            Arc::new(
                HostProcess::builder(cluster.addr_list())
                    .app_id("counter")
                    .arg("--resources-path")
                    .arg(resources.display().to_string())
                    .start(),
            )
        })
        .collect();
    let mut apps = Vec::new();
    for host in &hosts {
        host.wait_ready().await;
        let grpc = host.grpc_addr.clone();
        apps.push(tokio::spawn(async move {
            counter_example::run(&grpc, "counter").await
        }));
    }
    let refs: Vec<&HostProcess> = hosts.iter().map(|h| h.as_ref()).collect();
    wait_for_routing(&cluster, &refs, &["Counter"]).await;

    let tallies: Arc<Mutex<BTreeMap<String, Tally>>> = Arc::default();
    let up: Arc<Vec<AtomicBool>> = Arc::new((0..HOSTS).map(|_| AtomicBool::new(true)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for caller in 0..CALLERS {
        let (hosts, tallies, up, stop) = (hosts.clone(), tallies.clone(), up.clone(), stop.clone());
        let mut rng = fastrand::Rng::with_seed(seed ^ (caller as u64 + 1));
        callers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Acquire) {
                let id = format!("c{}", rng.usize(..COUNTERS));
                let live: Vec<usize> = (0..HOSTS)
                    .filter(|i| up[*i].load(Ordering::Acquire))
                    .collect();
                let Some(&via) = (!live.is_empty()).then(|| &live[rng.usize(..live.len())]) else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let call = invoke_at(
                    hosts[via].channel(),
                    "Counter",
                    &id,
                    "increment",
                    br#"{"by":1}"#.to_vec(),
                );
                let result = tokio::time::timeout(CALL_TIMEOUT, call).await;
                let ok = matches!(result, Ok(Ok(_)));
                {
                    let mut tallies = tallies.lock().unwrap();
                    let tally = tallies.entry(id).or_default();
                    if ok {
                        tally.acked += 1;
                    } else {
                        tally.in_doubt += 1;
                    }
                }
                if !ok {
                    // Don't hammer a host that is going down.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }

    // The faults: kill -9 a random host and restart it a little later; once, halfway, stop
    // PostgreSQL for a few seconds.
    let started = Instant::now();
    let mut store_outage_done = false;
    let mut crashes = 0;
    while started.elapsed() < CHAOS {
        tokio::time::sleep(Duration::from_millis(rng.u64(1_500..4_000))).await;
        if !store_outage_done && started.elapsed() > CHAOS / 2 {
            store_outage_done = true;
            eprintln!("chaos: stopping PostgreSQL");
            postgres.stop().await;
            tokio::time::sleep(Duration::from_millis(rng.u64(2_000..4_000))).await;
            postgres.restart().await;
            eprintln!("chaos: PostgreSQL back");
            continue;
        }
        let victim = rng.usize(..HOSTS);
        eprintln!("chaos: kill -9 host {victim}");
        up[victim].store(false, Ordering::Release);
        hosts[victim].kill9();
        crashes += 1;
        tokio::time::sleep(Duration::from_millis(rng.u64(500..3_000))).await;
        hosts[victim].restart();
        hosts[victim].wait_ready().await;
        up[victim].store(true, Ordering::Release);
    }
    stop.store(true, Ordering::Release);
    for caller in callers {
        caller.await.expect("caller task");
    }

    // Every host back and routing; then read every counter.
    wait_for_routing(&cluster, &refs, &["Counter"]).await;
    let tallies = tallies.lock().unwrap().clone();
    let mut acked_total = 0;
    for (id, tally) in &tallies {
        let value = wait_until(format!("a final read of {id}"), DEADLINE, || async {
            let body = invoke_at(hosts[0].channel(), "Counter", id, "get", Vec::new())
                .await
                .map_err(|e| e.to_string())?;
            String::from_utf8_lossy(&body)
                .trim()
                .parse::<u64>()
                .map_err(|e| e.to_string())
        })
        .await;
        assert!(
            tally.acked <= value && value <= tally.acked + tally.in_doubt,
            "counter {id}: stored {value}, acknowledged {}, in doubt {} (seed {seed})\n{}",
            tally.acked,
            tally.in_doubt,
            dump_logs(refs.iter().copied())
        );
        acked_total += tally.acked;
    }
    let in_doubt_total: u64 = tallies.values().map(|t| t.in_doubt).sum();
    eprintln!(
        "chaos: {crashes} host crashes, one store outage; {acked_total} increments acknowledged, {in_doubt_total} in doubt"
    );
    assert!(crashes >= 3, "the run crashed hosts ({crashes})");
    assert!(
        acked_total >= 100,
        "the load made progress: {acked_total} acknowledged"
    );
    for app in apps {
        app.abort();
    }
}

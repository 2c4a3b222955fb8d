//! Multi-host tests of `rookery host`: placement on the hash ring, turn-based concurrency and
//! reentrancy across hosts.
//!
//! Every test runs real processes (one `rookery placement`, several `rookery host`) on loopback
//! with OS-chosen ports, and one in-test app per host speaking the public `AppChannel` gRPC
//! stream ([`support::app::TestApp`]). Calls go through the public `Actors` API of any host;
//! where actors live is read back with `HostInternal.ListActivations` and checked against the
//! owner the ring names, computed independently from `rookery status`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use rookery_core::ring::HashRing;
use rookery_proto::v1::ActorTypeOptions;
use serde_json::json;
use support::app::{actor_type, ActorKey, TestApp};
use support::cluster::Cluster;
use support::host_process::{
    dump_logs, expected_rings, start_placement, wait_for_routing, HostProcess,
};
use tonic::Code;

/// Actor calls in flight at once in the 1000-actor test: enough to exercise concurrent
/// routing and forwarding, few enough for a 2-core box.
const CONCURRENT_CALLS: usize = 64;

/// Placement, `hosts` hosts and one app per host serving `types`, routing by a common table.
struct Setup {
    cluster: Cluster,
    hosts: Vec<HostProcess>,
    apps: Vec<TestApp>,
    rings: BTreeMap<String, HashRing>,
}

impl Setup {
    async fn start(hosts: usize, types: &[ActorTypeOptions], turn_work: Duration) -> Setup {
        let names: Vec<&str> = types.iter().map(|t| t.actor_type.as_str()).collect();
        let cluster = start_placement(1).await;
        let hosts: Vec<HostProcess> = (0..hosts)
            .map(|i| {
                HostProcess::builder(cluster.addr_list())
                    .app_id(format!("app-{i}"))
                    .start()
            })
            .collect();
        for host in &hosts {
            host.wait_ready().await;
        }
        let mut apps = Vec::new();
        for (i, host) in hosts.iter().enumerate() {
            let mut app = TestApp::builder(&host.grpc_addr)
                .app_id(format!("app-{i}"))
                .turn_work(turn_work);
            for options in types {
                app = app.serve(options.clone());
            }
            let app = app.start();
            let named = app.wait_registered().await;
            assert_eq!(named, host.id, "Registered names the host's id");
            apps.push(app);
        }
        let refs: Vec<&HostProcess> = hosts.iter().collect();
        let status = wait_for_routing(&cluster, &refs, &names).await;
        let rings = expected_rings(&status);
        for name in &names {
            let mut want: Vec<String> = hosts.iter().map(|h| h.id.clone()).collect();
            want.sort();
            assert_eq!(rings[*name].hosts(), want, "ring of {name}");
        }
        Setup {
            cluster,
            hosts,
            apps,
            rings,
        }
    }

    /// The app connected to the host with this id.
    fn app_of(&self, host_id: &str) -> &TestApp {
        let index = self
            .hosts
            .iter()
            .position(|h| h.id == host_id)
            .unwrap_or_else(|| panic!("no host {host_id}"));
        &self.apps[index]
    }

    fn owner(&self, actor_type: &str, actor_id: &str) -> &str {
        self.rings[actor_type]
            .owner(actor_id)
            .expect("the ring has hosts")
    }

    /// Some id with prefix `prefix` whose owner is `host_id`.
    fn id_owned_by(&self, actor_type: &str, prefix: &str, host_id: &str) -> String {
        (0..10_000)
            .map(|n| format!("{prefix}-{n}"))
            .find(|id| self.owner(actor_type, id) == host_id)
            .unwrap_or_else(|| panic!("no {prefix}-* owned by {host_id}"))
    }

    fn logs(&self) -> String {
        format!("{}{}", self.cluster.dump_logs(), dump_logs(&self.hosts))
    }

    fn assert_no_violations(&self) {
        for app in &self.apps {
            app.assert_no_violations();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_actors_each_run_on_the_host_the_ring_names() {
    let setup = Setup::start(3, &[actor_type("Counter")], Duration::ZERO).await;
    let seed = fastrand::u64(..);
    println!("host choice seed: {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    // (id, increment, host the increment goes through, host the read goes through)
    let calls: Vec<(String, i64, usize, usize)> = (0..1000)
        .map(|i| {
            (
                format!("counter-{i}"),
                i % 7 + 1,
                rng.usize(..setup.hosts.len()),
                rng.usize(..setup.hosts.len()),
            )
        })
        .collect();

    let failures: Vec<String> = stream::iter(&calls)
        .map(|(id, by, via_write, via_read)| {
            let setup = &setup;
            async move {
                let writer = &setup.hosts[*via_write];
                let reader = &setup.hosts[*via_read];
                let written = writer
                    .invoke_json("Counter", id, "increment", json!({ "by": by }))
                    .await
                    .map_err(|e| format!("increment {id} via {}: {e}", writer.id))?;
                if written != json!(by) {
                    return Err(format!("increment {id} by {by} answered {written}"));
                }
                let read = reader
                    .invoke_json("Counter", id, "get", json!(null))
                    .await
                    .map_err(|e| format!("get {id} via {}: {e}", reader.id))?;
                if read != json!(by) {
                    return Err(format!(
                        "get {id} via {} answered {read}, want {by}",
                        reader.id
                    ));
                }
                Ok(())
            }
        })
        .buffer_unordered(CONCURRENT_CALLS)
        .filter_map(|result| async move { result.err() })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} of 1000 actors failed, first ones: {:#?}{}",
        failures.len(),
        &failures[..failures.len().min(10)],
        setup.logs()
    );

    // Where every actor is active, according to each host.
    let mut placed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let status = setup.cluster.status().await.expect("status");
    for host in &setup.hosts {
        let listed = host
            .list_activations("Counter")
            .await
            .unwrap_or_else(|e| panic!("ListActivations on {}: {e}", host.id));
        assert_eq!(listed.host_id, host.id, "ListActivations names its host");
        assert_eq!(
            listed.table_version, status.table_version,
            "host {} changed tables during the test (membership changed?)",
            host.id
        );
        for actor in listed.actors {
            assert_eq!(actor.actor_type, "Counter", "listed for type Counter only");
            placed
                .entry(actor.actor_id)
                .or_default()
                .push(host.id.clone());
        }
    }
    let mut wrong = Vec::new();
    let mut per_host: BTreeMap<String, usize> = BTreeMap::new();
    for (id, _, _, _) in &calls {
        let owner = setup.owner("Counter", id);
        *per_host.entry(owner.to_owned()).or_default() += 1;
        match placed.get(id).map(Vec::as_slice) {
            Some([only]) if only == owner => {}
            other => wrong.push(format!("{id}: active on {other:?}, ring owner {owner}")),
        }
        // The owner's app activated it exactly once; no other app heard of it.
        for host in &setup.hosts {
            let heard = setup.app_of(&host.id).actor("Counter", id);
            let want = u32::from(host.id == owner);
            if heard.activations != want {
                wrong.push(format!(
                    "{id}: app of {} heard {} activations, want {want}",
                    host.id, heard.activations
                ));
            }
        }
    }
    let expected: BTreeSet<&String> = calls.iter().map(|(id, ..)| id).collect();
    let extra: Vec<&String> = placed.keys().filter(|id| !expected.contains(id)).collect();
    assert!(
        extra.is_empty(),
        "actors nobody called are active: {extra:?}"
    );
    assert!(
        wrong.is_empty(),
        "{} misplaced actors, first ones: {:#?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    for app in &setup.apps {
        let overlapped: Vec<ActorKey> = app
            .record()
            .actors
            .into_iter()
            .filter(|(_, actor)| actor.overlapped())
            .map(|(key, _)| key)
            .collect();
        assert!(overlapped.is_empty(), "calls overlapped on {overlapped:?}");
    }
    println!("actors per host: {per_host:?}");
    assert_eq!(
        per_host.len(),
        3,
        "every host owns some of 1000 actors: {per_host:?}"
    );
    setup.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_one_actor_take_turns() {
    // Each increment holds its turn 2 ms between reading and writing the value: overlapping
    // turns would both be seen by the app and lose updates.
    let setup = Setup::start(2, &[actor_type("Counter")], Duration::from_millis(2)).await;
    let owner = setup.owner("Counter", "hot").to_owned();
    let calls = (0..200).map(|i| {
        // Half the calls arrive at the owner, half are forwarded by the other host.
        let host = &setup.hosts[i % 2];
        async move {
            host.invoke_json("Counter", "hot", "increment", json!({ "by": 1 }))
                .await
                .map_err(|e| format!("via {}: {e}", host.id))
        }
    });
    let results = futures::future::join_all(calls).await;
    let mut answers: Vec<i64> = Vec::new();
    for result in results {
        match result {
            Ok(value) => answers.push(value.as_i64().expect("a number")),
            Err(e) => panic!("an increment failed: {e}{}", setup.logs()),
        }
    }
    answers.sort_unstable();
    assert_eq!(
        answers,
        (1..=200).collect::<Vec<i64>>(),
        "each increment saw the previous one's value"
    );
    let total = setup.hosts[1]
        .invoke_json("Counter", "hot", "get", json!(null))
        .await
        .expect("get");
    assert_eq!(total, json!(200));

    let heard = setup.app_of(&owner).actor("Counter", "hot");
    assert_eq!(heard.invocations, 201, "the owner's app ran every call");
    assert_eq!(heard.activations, 1);
    assert!(
        !heard.overlapped(),
        "two calls on one actor overlapped: {heard:?}"
    );
    for host in &setup.hosts {
        if host.id != owner {
            assert_eq!(
                setup.app_of(&host.id).actor("Counter", "hot").invocations,
                0,
                "a non-owner ran the actor"
            );
        }
    }
    setup.assert_no_violations();
}

/// `A.call → B.call → A.increment`: the request that makes actor `a` call actor `b`, which
/// calls `a` back, in one call chain.
fn round_trip(actor_type: &str, a: &str, b: &str) -> serde_json::Value {
    json!({
        "type": actor_type, "id": b, "method": "call",
        "data": { "type": actor_type, "id": a, "method": "increment", "data": { "by": 1 } },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reentrant_chains_across_hosts() {
    let types = [
        ActorTypeOptions {
            reentrancy: Some(true),
            ..actor_type("Reentrant")
        },
        ActorTypeOptions {
            reentrancy: Some(false),
            call_timeout_ms: Some(2000),
            ..actor_type("Strict")
        },
    ];
    let setup = Setup::start(2, &types, Duration::ZERO).await;
    let (first, second) = (setup.hosts[0].id.clone(), setup.hosts[1].id.clone());

    // Reentrancy enabled: A (on the first host) → B (on the second) → A succeeds.
    let a = setup.id_owned_by("Reentrant", "a", &first);
    let b = setup.id_owned_by("Reentrant", "b", &second);
    let answer = setup.hosts[1]
        .invoke_json("Reentrant", &a, "call", round_trip("Reentrant", &a, &b))
        .await
        .unwrap_or_else(|e| panic!("A → B → A with reentrancy: {e}{}", setup.logs()));
    assert_eq!(
        answer,
        json!(1),
        "A's re-entrant increment answered through B"
    );
    let heard_a = setup.app_of(&first).actor("Reentrant", &a);
    assert_eq!(
        heard_a.max_in_flight, 2,
        "A was re-entered during its own call"
    );
    let chains: BTreeSet<String> = setup
        .apps
        .iter()
        .flat_map(|app| app.record().call_chains)
        .filter(|((t, _), _)| t == "Reentrant")
        .map(|(_, chain)| chain)
        .collect();
    assert_eq!(
        chains.len(),
        1,
        "the three calls share one call chain: {chains:?}"
    );
    assert!(
        !chains.iter().next().unwrap().is_empty(),
        "the call chain has an id"
    );
    let total = setup.hosts[0]
        .invoke_json("Reentrant", &a, "get", json!(null))
        .await
        .expect("get A");
    assert_eq!(total, json!(1));

    // Reentrancy admits only the same chain: while A waits in a call to B (which never
    // answers until Strict's 2 s call timeout), a call to A from outside the chain waits for
    // A's turn to end instead of entering.
    let a = setup.id_owned_by("Reentrant", "isolated", &first);
    let b = setup.id_owned_by("Strict", "sleeper", &second);
    let busy = {
        let host = &setup.hosts[1];
        let request = json!({ "type": "Strict", "id": b, "method": "hang" });
        let a = a.clone();
        async move { host.invoke_json("Reentrant", &a, "call", request).await }
    };
    let outsider = async {
        // Starts once A is inside its call and B holds the hanging request.
        setup
            .app_of(&second)
            .wait_for("B to receive the hanging call", |record| {
                match record.actor("Strict", &b).invocations {
                    0 => Err("not yet".to_owned()),
                    _ => Ok(()),
                }
            })
            .await;
        setup.hosts[0]
            .invoke_json("Reentrant", &a, "increment", json!({ "by": 1 }))
            .await
    };
    let (busy_result, outsider_result) = tokio::join!(busy, outsider);
    let error = busy_result.expect_err("A's call into a hanging B fails");
    assert!(
        error.message().contains("DeadlineExceeded"),
        "A's call failed because B timed out: {error:?}"
    );
    assert_eq!(
        outsider_result.unwrap_or_else(|e| panic!("the outside call: {e}{}", setup.logs())),
        json!(1),
        "the outside call ran once A's turn ended"
    );
    let heard = setup.app_of(&first).actor("Reentrant", &a);
    assert!(
        !heard.overlapped(),
        "a call from another chain entered busy A: {heard:?}"
    );

    // Reentrancy disabled: the same chain fails fast and names reentrancy.
    let a = setup.id_owned_by("Strict", "a", &first);
    let b = setup.id_owned_by("Strict", "b", &second);
    let started = Instant::now();
    let error = setup.hosts[1]
        .invoke_json("Strict", &a, "call", round_trip("Strict", &a, &b))
        .await
        .expect_err("A → B → A without reentrancy must fail");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "the refusal took {took:?}: it must come at once, not at a timeout"
    );
    assert_ne!(error.code(), Code::DeadlineExceeded, "{error:?}");
    assert!(
        error.message().to_lowercase().contains("reentran"),
        "the error reaching the client names reentrancy: {error:?}"
    );
    // B's call into A itself was refused with FAILED_PRECONDITION naming reentrancy.
    let nested = setup.app_of(&second).record().nested_errors;
    assert!(
        nested
            .iter()
            .any(|(code, message)| *code == Code::FailedPrecondition
                && message.to_lowercase().contains("reentran")),
        "B's call into busy A: want FAILED_PRECONDITION about reentrancy, got {nested:?}"
    );
    // Both turns were released: the actors answer again.
    for id in [&a, &b] {
        let value = setup.hosts[0]
            .invoke_json("Strict", id, "get", json!(null))
            .await
            .unwrap_or_else(|e| panic!("Strict/{id} after the refusal: {e}{}", setup.logs()));
        assert_eq!(value, json!(0), "A's increment never ran");
    }
    assert!(
        !setup.app_of(&first).actor("Strict", &a).overlapped(),
        "A without reentrancy was never entered twice"
    );
    setup.assert_no_violations();
}

//! Durable actor state, through the public API: apps read and write it over the app channel
//! (the in-test [`TestApp`]'s `state_*` methods), clients read it with `Actors.GetState`.
//!
//! Real processes throughout: `rookery placement`, `rookery host` (sled in its data dir, or a
//! real PostgreSQL server of the test's own through a Dapr component in `--resources-path`),
//! kill -9 for crashes, SIGSTOP for a paused host, and the PostgreSQL server stopped and
//! started for a store outage. The PostgreSQL store's batched transactions are also tested
//! directly, against a real server, through the `StateStore` a host uses.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use rookery_proto::v1::GetActorStateRequest;
use rookery_runtime::state::postgres_store::{
    PostgresConfig, PostgresStore, DEFAULT_TABLE_NAME, MAX_BATCH_EXECUTORS,
};
use rookery_runtime::state::{StateError, StateOp, StateStore};
use rookery_runtime::ActorKey;
use serde_json::{json, Value};
use support::app::{actor_type, TestApp};
use support::cluster::Cluster;
use support::host_process::{is_application_error, start_placement, wait_for_routing, HostProcess};
use support::postgres::Postgres;
use support::wait::{wait_until, DEADLINE};
use support::TestDir;
use tonic::{Code, Status};

const TYPE: &str = "Counter";

/// `Actors.GetState` of `TYPE/id` key `key` on `host`: the value as text, `None` if absent.
async fn get_state(host: &HostProcess, id: &str, key: &str) -> Result<Option<String>, Status> {
    let mut request = tonic::Request::new(GetActorStateRequest {
        actor_type: TYPE.into(),
        actor_id: id.into(),
        key: key.into(),
    });
    request.set_timeout(Duration::from_secs(20));
    let response = host.actors().get_state(request).await?.into_inner();
    Ok(response
        .found
        .then(|| String::from_utf8_lossy(&response.data).into_owned()))
}

async fn increment(host: &HostProcess, id: &str) -> Result<i64, Status> {
    let value = host
        .invoke_json(TYPE, id, "state_increment", json!({}))
        .await?;
    Ok(value.as_i64().expect("a number"))
}

/// A host of `cluster` with `args`, and an app serving `TYPE` on it.
async fn host_with_app(cluster: &Cluster, args: &[String]) -> (HostProcess, TestApp) {
    let mut builder = HostProcess::builder(cluster.addr_list());
    for arg in args {
        builder = builder.arg(arg.clone());
    }
    let host = builder.start();
    host.wait_ready().await;
    let app = TestApp::builder(&host.grpc_addr)
        .serve(actor_type(TYPE))
        .start();
    app.wait_registered().await;
    (host, app)
}

/// `--resources-path` naming `postgres` through a Dapr component file.
fn postgres_args(postgres: &Postgres, dir: &TestDir) -> Vec<String> {
    let resources: PathBuf = dir.path().join("components");
    postgres.write_component(&resources);
    vec!["--resources-path".into(), resources.display().to_string()]
}

/// Two hosts with an app each, sharing a private PostgreSQL server, routing ready.
struct TwoHosts {
    cluster: Cluster,
    a: (HostProcess, TestApp),
    b: (HostProcess, TestApp),
    // Bound by name where destructured (`..` would drop them at once).
    _dir: TestDir,
    _postgres: Postgres,
}

impl TwoHosts {
    /// `None` when PostgreSQL is not installed (and not required): the test returns.
    async fn on_postgres() -> Option<TwoHosts> {
        let postgres = Postgres::start().await?;
        let dir = TestDir::new("rookery-state-test-");
        let args = postgres_args(&postgres, &dir);
        let cluster = start_placement(1).await;
        let a = host_with_app(&cluster, &args).await;
        let b = host_with_app(&cluster, &args).await;
        wait_for_routing(&cluster, &[&a.0, &b.0], &[TYPE]).await;
        Some(TwoHosts {
            cluster,
            a,
            b,
            _dir: dir,
            _postgres: postgres,
        })
    }
}

/// The first of `ids` active on `host` after each was called through `via`.
async fn actor_owned_by(host: &HostProcess, via: &HostProcess, ids: &[String]) -> String {
    for id in ids {
        increment(via, id).await.expect("increment");
    }
    let active = host.active_ids(TYPE).await.expect("list activations");
    ids.iter()
        .find(|id| active.contains(id))
        .cloned()
        .unwrap_or_else(|| panic!("none of {ids:?} is owned by {}", host.id))
}

/// A single host on sled (the default store) keeps its actors' state across a crash and a
/// graceful restart; ttl'd values disappear; deleted keys are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sled_host_keeps_state_across_restarts() {
    let cluster = start_placement(1).await;
    let (host, app) = host_with_app(&cluster, &[]).await;
    wait_for_routing(&cluster, &[&host], &[TYPE]).await;
    for want in 1..=5 {
        assert_eq!(increment(&host, "a").await.expect("increment"), want);
    }
    assert_eq!(
        get_state(&host, "a", "count").await.unwrap().as_deref(),
        Some("5")
    );

    host.kill9();
    host.restart();
    host.wait_ready().await;
    app.wait_registered_n(2).await;
    let after_crash = wait_until("a call after the crash", DEADLINE, || async {
        increment(&host, "a").await.map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(after_crash, 6, "every acknowledged write survived kill -9");

    let exit = host.stop().await;
    assert!(exit.success(), "graceful stop: {exit}");
    host.restart();
    host.wait_ready().await;
    app.wait_registered_n(3).await;
    let after_restart = wait_until("a call after the restart", DEADLINE, || async {
        increment(&host, "a").await.map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(after_restart, 7);

    // ttl: gone once it has passed; delete: gone at once.
    host.invoke_json(
        TYPE,
        "b",
        "state_set",
        json!({"key": "tmp", "value": "v", "ttl": 1}),
    )
    .await
    .expect("set with ttl");
    host.invoke_json(TYPE, "b", "state_set", json!({"key": "k", "value": "kept"}))
        .await
        .expect("set");
    assert_eq!(
        host.invoke_json(TYPE, "b", "state_get", json!({"key": "k"}))
            .await
            .unwrap(),
        json!("kept")
    );
    wait_until("the ttl'd value to expire", DEADLINE, || async {
        match get_state(&host, "b", "tmp")
            .await
            .map_err(|e| e.to_string())?
        {
            None => Ok(()),
            Some(v) => Err(format!("still {v:?}")),
        }
    })
    .await;
    host.invoke_json(TYPE, "b", "state_delete", json!({"key": "k"}))
        .await
        .expect("delete");
    assert_eq!(
        host.invoke_json(TYPE, "b", "state_get", json!({"key": "k"}))
            .await
            .unwrap(),
        Value::Null
    );
    app.assert_no_violations();
}

/// Many actors writing at once on sled (their transactions share flushes): see
/// [`acknowledged_writes_survive_kill9`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_acknowledged_writes_on_sled_survive_kill9() {
    acknowledged_writes_survive_kill9(&[]).await;
}

/// Many actors writing at once on PostgreSQL (their transactions share batches): see
/// [`acknowledged_writes_survive_kill9`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_acknowledged_writes_on_postgres_survive_kill9() {
    let Some(postgres) = Postgres::start().await else {
        return;
    };
    let dir = TestDir::new("rookery-state-test-");
    acknowledged_writes_survive_kill9(&postgres_args(&postgres, &dir)).await;
}

/// 64 actors writing at once on a host started with `args`: after kill -9 of the host
/// mid-load, every actor's stored count (read through the restarted host) is at least its
/// last acknowledged one, and at most one more (the call in flight when the host died, whose
/// answer was lost).
async fn acknowledged_writes_survive_kill9(args: &[String]) {
    const ACTORS: usize = 64;
    let cluster = start_placement(1).await;
    let (host, app) = host_with_app(&cluster, args).await;
    wait_for_routing(&cluster, &[&host], &[TYPE]).await;

    let acked_total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writers: Vec<_> = (0..ACTORS)
        .map(|i| {
            let (channel, acked_total) = (host.channel(), acked_total.clone());
            tokio::spawn(async move {
                let id = format!("w{i}");
                // The count of the last acknowledged increment; the writer stops at its first
                // failed call (the one in flight when the host died).
                let mut acked = 0i64;
                loop {
                    let call = support::host_process::invoke_at(
                        channel.clone(),
                        TYPE,
                        &id,
                        "state_increment",
                        b"{}".to_vec(),
                    );
                    match tokio::time::timeout(Duration::from_secs(30), call).await {
                        Ok(Ok(body)) => {
                            acked = serde_json::from_slice::<Value>(&body)
                                .ok()
                                .and_then(|v| v.as_i64())
                                .expect("a count");
                            acked_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        _ => return (id, acked),
                    }
                }
            })
        })
        .collect();
    wait_until("a few acknowledged writes per actor", DEADLINE, || async {
        let n = acked_total.load(std::sync::atomic::Ordering::Relaxed);
        if n >= (ACTORS * 5) as u64 {
            Ok(())
        } else {
            Err(format!("{n} acknowledged"))
        }
    })
    .await;
    host.kill9();
    let mut last_acked = Vec::new();
    for writer in writers {
        last_acked.push(writer.await.expect("writer task"));
    }

    let acked_before_kill: i64 = last_acked.iter().map(|(_, acked)| acked).sum();
    eprintln!("{acked_before_kill} writes acknowledged by {ACTORS} actors before kill -9");

    host.restart();
    host.wait_ready().await;
    app.wait_registered_n(2).await;
    for (id, acked) in last_acked {
        let stored = wait_until(format!("a read of {id}"), DEADLINE, || async {
            get_state(&host, &id, "count")
                .await
                .map_err(|e| e.to_string())
        })
        .await
        .map(|v| v.parse::<i64>().expect("a number"))
        .unwrap_or(0);
        assert!(
            acked <= stored && stored <= acked + 1,
            "{id}: stored {stored}, last acknowledged {acked}"
        );
    }
    app.assert_no_violations();
}

/// On PostgreSQL, an actor finds its state on whichever host it lands: after its owner is
/// killed with -9, and after its owner leaves gracefully. Its timers move with it on a
/// graceful hand-off: the leaving host wakes the actor on its new owner, where they tick on
/// without being registered anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_and_timers_follow_the_actor_across_hosts() {
    let Some(TwoHosts {
        cluster,
        a: (a, app_a),
        b: (b, app_b),
        _dir: _kept_dir,
        _postgres: _store,
    }) = TwoHosts::on_postgres().await
    else {
        return;
    };

    let ids: Vec<String> = (0..16).map(|i| format!("m{i}")).collect();
    let on_a = actor_owned_by(&a, &b, &ids).await;
    for _ in 0..2 {
        increment(&b, &on_a).await.expect("increment");
    }
    assert_eq!(
        get_state(&b, &on_a, "count").await.unwrap().as_deref(),
        Some("3")
    );

    // A crash: the actor comes back on b with its state.
    a.kill9();
    let value = increment(&b, &on_a)
        .await
        .expect("increment after the crash");
    assert_eq!(value, 4, "the new owner read the last committed state");
    assert!(b.active_ids(TYPE).await.unwrap().contains(&on_a));

    // A graceful hand-off with a timer: a registers nothing anew after the move.
    a.restart();
    a.wait_ready().await;
    app_a.wait_registered_n(2).await;
    wait_for_routing(&cluster, &[&a, &b], &[TYPE]).await;
    let on_b = actor_owned_by(&b, &a, &ids).await;
    b.invoke_json(
        TYPE,
        &on_b,
        "start_timer",
        json!({"name": "tick", "due": "0s", "period": "200ms", "callback": "onTick"}),
    )
    .await
    .expect("register a timer");
    app_b
        .wait_for("two timer ticks on b", |r| {
            let n = r.actor(TYPE, &on_b).timers.len();
            if n >= 2 {
                Ok(())
            } else {
                Err(format!("{n} ticks"))
            }
        })
        .await;
    let before = increment(&a, &on_b).await.expect("increment");
    let exit = b.stop().await;
    assert!(exit.success(), "graceful leave: {exit}");
    // Without any call: the leaving host wakes the actor on a, where the timer resumes.
    app_a
        .wait_for("the handed-off timer ticking on a", |r| {
            let ticks = &r.actor(TYPE, &on_b).timers;
            if ticks.len() >= 2 {
                Ok(())
            } else {
                Err(format!("{} ticks", ticks.len()))
            }
        })
        .await;
    assert_eq!(
        increment(&a, &on_b).await.expect("increment on a"),
        before + 1
    );
    let ticks = app_a.actor(TYPE, &on_b).timers;
    assert!(
        ticks
            .iter()
            .all(|(name, callback, _)| name == "tick" && callback == "onTick"),
        "{ticks:?}"
    );
    app_a.assert_no_violations();
    app_b.assert_no_violations();
}

/// A paused host wakes up after its actor moved: the write its app then sends for the old
/// activation is rejected by the store itself (the new activation's claim fenced it), and
/// the new owner's value stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_from_a_superseded_activation_is_rejected() {
    let Some(TwoHosts {
        cluster: _cluster,
        a: (a, app_a),
        b: (b, _app_b),
        _dir: _kept_dir,
        _postgres: _store,
    }) = TwoHosts::on_postgres().await
    else {
        return;
    };
    let ids: Vec<String> = (0..16).map(|i| format!("f{i}")).collect();
    let id = actor_owned_by(&a, &b, &ids).await;

    // A turn on a that writes 6 s after it starts; a is paused 0.5 s into it.
    let invocations = app_a.actor(TYPE, &id).invocations;
    let slow = tokio::spawn({
        let channel = b.channel();
        let id = id.clone();
        async move {
            support::host_process::invoke_at(
                channel,
                TYPE,
                &id,
                "sleep_then_set",
                json!({"key": "who", "value": "stale", "sleep_ms": 6000})
                    .to_string()
                    .into_bytes(),
            )
            .await
        }
    });
    app_a
        .wait_for("the slow turn to start on a", |r| {
            if r.actor(TYPE, &id).invocations > invocations {
                Ok(())
            } else {
                Err("not yet".into())
            }
        })
        .await;
    a.signal("STOP");
    // Placement drops a; b takes the actor over, claims it and writes.
    wait_until(
        "b to serve the actor and write",
        Duration::from_secs(60),
        || async {
            b.invoke_json(
                TYPE,
                &id,
                "state_set",
                json!({"key": "who", "value": "fresh"}),
            )
            .await
            .map_err(|e| e.to_string())
        },
    )
    .await;
    // The app's write was sent to a while it was paused (or is sent now): a handles it when
    // it resumes, before it can learn from placement that the actor moved.
    a.signal("CONT");
    let error = app_a
        .wait_for("the stale write's answer", |r| {
            r.state_errors
                .first()
                .cloned()
                .ok_or_else(|| "no answer yet".to_owned())
        })
        .await;
    assert!(
        error.starts_with("FailedPrecondition") && error.contains("superseded"),
        "the store fenced the write: {error}"
    );
    assert_eq!(
        get_state(&b, &id, "who").await.unwrap().as_deref(),
        Some("fresh"),
        "the stale write changed nothing"
    );
    let _ = slow.await;
}

/// While PostgreSQL is down, calls that need it fail with UNAVAILABLE (an actor that must
/// claim its state first) or with the app's error naming the outage (an active actor whose
/// write failed), nothing is half-written, and everything works again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_fails_calls_and_recovers() {
    let Some(mut postgres) = Postgres::start().await else {
        return;
    };
    let dir = TestDir::new("rookery-state-test-");
    let args = postgres_args(&postgres, &dir);
    let cluster = start_placement(1).await;
    let (host, app) = host_with_app(&cluster, &args).await;
    wait_for_routing(&cluster, &[&host], &[TYPE]).await;
    for want in 1..=3 {
        assert_eq!(increment(&host, "o").await.unwrap(), want);
    }

    postgres.stop().await;
    let error = increment(&host, "o").await.expect_err("the store is down");
    assert!(
        is_application_error(&error) && error.message().contains("Unavailable"),
        "an active actor's app hears the outage: {error:?}"
    );
    let error = increment(&host, "new-actor")
        .await
        .expect_err("cannot claim");
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    assert!(error.message().contains("state store"), "{error:?}");
    let error = get_state(&host, "o", "count")
        .await
        .expect_err("cannot read");
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");

    postgres.restart().await;
    let value = wait_until("calls to work again", DEADLINE, || async {
        increment(&host, "o").await.map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(
        value, 4,
        "the failed increment wrote nothing; the others are all there"
    );
    assert_eq!(increment(&host, "new-actor").await.unwrap(), 1);
    host.assert_alive();
    app.assert_no_violations();
}

/// Bad state requests get a clear error and write nothing: an empty key, a transaction over
/// `--max-request-size`, a request for an actor not active on this host; and the client
/// API's read with an empty key, or on a host without a store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_state_requests_are_refused_without_writing() {
    let cluster = start_placement(1).await;
    let (host, app) = host_with_app(&cluster, &["--max-request-size".into(), "1".into()]).await;
    wait_for_routing(&cluster, &[&host], &[TYPE]).await;

    let refused = |result: Result<Value, Status>| {
        let status = result.expect_err("refused");
        assert!(is_application_error(&status), "{status:?}");
        status.message().to_owned()
    };
    let empty = refused(
        host.invoke_json(TYPE, "x", "state_set", json!({"key": "", "value": "v"}))
            .await,
    );
    assert!(
        empty.contains("InvalidArgument") && empty.contains("must not be empty"),
        "{empty}"
    );
    let big = refused(
        host.invoke_json(
            TYPE,
            "x",
            "state_big",
            json!({"key": "big", "bytes": 2 * 1024 * 1024}),
        )
        .await,
    );
    assert!(
        big.contains("InvalidArgument") && big.contains("over the limit"),
        "{big}"
    );
    assert_eq!(
        get_state(&host, "x", "big").await.unwrap(),
        None,
        "nothing written"
    );
    let elsewhere = refused(
        host.invoke_json(
            TYPE,
            "x",
            "state_set",
            json!({"key": "k", "value": "v", "actor": "never-called"}),
        )
        .await,
    );
    assert!(
        elsewhere.contains("FailedPrecondition") && elsewhere.contains("not active"),
        "{elsewhere}"
    );
    assert_eq!(get_state(&host, "never-called", "k").await.unwrap(), None);

    let status = get_state(&host, "x", "").await.expect_err("empty key");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = host
        .actors()
        .get_state(GetActorStateRequest {
            actor_type: String::new(),
            actor_id: "x".into(),
            key: "k".into(),
        })
        .await
        .expect_err("empty type");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let (stateless, _app) = host_with_app(&cluster, &["--state-store".into(), "none".into()]).await;
    let status = get_state(&stateless, "x", "k").await.expect_err("no store");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    host.assert_alive();
    app.assert_no_violations();
}

/// A store of the runtime on `postgres`, as a host opens it.
fn postgres_store(postgres: &Postgres) -> PostgresStore {
    PostgresStore::new(PostgresConfig {
        connection_string: postgres.connection_string(),
        table_name: DEFAULT_TABLE_NAME.into(),
    })
    .expect("postgres store")
}

fn upsert(key: &str, value: &str, ttl_seconds: Option<u64>) -> StateOp {
    StateOp::Upsert {
        key: key.into(),
        value: Bytes::from(value.to_owned()),
        ttl_seconds,
    }
}

fn delete(key: &str) -> StateOp {
    StateOp::Delete { key: key.into() }
}

/// `key` of `actor` as text, read through `store`.
async fn stored(store: &PostgresStore, actor: &ActorKey, key: &str) -> Option<String> {
    store
        .get(actor, key)
        .await
        .expect("read")
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Many actors' transactions at once (they share batches): every one is acknowledged, and
/// every write is there, also for a store opened afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_transactions_of_many_actors_all_land() {
    const ACTORS: usize = 300;
    let Some(postgres) = Postgres::start().await else {
        return;
    };
    let store = std::sync::Arc::new(postgres_store(&postgres));
    let actors: Vec<ActorKey> = (0..ACTORS)
        .map(|i| ActorKey::new("Batch", format!("a{i}")))
        .collect();
    let claims = futures::future::try_join_all(actors.iter().map(|a| store.claim(a)))
        .await
        .expect("claims");
    let writes = actors.iter().zip(&claims).map(|(actor, claim)| {
        let ops = vec![
            upsert("n", &actor.actor_id, None),
            upsert("m", "x", None),
            delete("m"),
        ];
        let (store, actor, epoch) = (store.clone(), actor.clone(), claim.epoch);
        tokio::spawn(async move { store.transact(&actor, epoch, &ops).await })
    });
    for write in futures::future::join_all(writes).await {
        write.expect("writer task").expect("acknowledged");
    }
    let fresh = postgres_store(&postgres);
    for actor in &actors {
        assert_eq!(
            stored(&fresh, actor, "n").await.as_deref(),
            Some(actor.actor_id.as_str())
        );
        assert_eq!(stored(&fresh, actor, "m").await, None);
    }
}

/// Within one transaction the operations apply in order; ttl'd values expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_transaction_applies_its_operations_in_order() {
    let Some(postgres) = Postgres::start().await else {
        return;
    };
    let store = postgres_store(&postgres);
    let actor = ActorKey::new("Batch", "ordered");
    let epoch = store.claim(&actor).await.expect("claim").epoch;
    store
        .transact(&actor, epoch, &[upsert("gone", "1", None)])
        .await
        .expect("first");
    let ops = [
        upsert("gone", "2", None),
        delete("gone"),
        upsert("twice", "a", None),
        upsert("twice", "b", None),
        delete("back"),
        upsert("back", "c", None),
        upsert("short", "t", Some(1)),
        upsert("long", "t", Some(3600)),
    ];
    store.transact(&actor, epoch, &ops).await.expect("second");
    assert_eq!(stored(&store, &actor, "gone").await, None);
    assert_eq!(stored(&store, &actor, "twice").await.as_deref(), Some("b"));
    assert_eq!(stored(&store, &actor, "back").await.as_deref(), Some("c"));
    assert_eq!(stored(&store, &actor, "long").await.as_deref(), Some("t"));
    wait_until("the 1 s ttl to pass", DEADLINE, || async {
        match stored(&store, &actor, "short").await {
            None => Ok(()),
            Some(v) => Err(format!("still {v:?}")),
        }
    })
    .await;
    assert_eq!(stored(&store, &actor, "long").await.as_deref(), Some("t"));
}

/// Waits until `n` of the server's backends wait for a lock.
async fn wait_for_lock_waiters(postgres: &Postgres, n: usize) {
    wait_until(
        format!("{n} backends waiting for a lock"),
        DEADLINE,
        || async {
            let waiting = postgres
                .query("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                .await;
            match waiting.first().and_then(|c| c.parse::<usize>().ok()) {
                Some(count) if count >= n => Ok(()),
                other => Err(format!("{other:?} waiting")),
            }
        },
    )
    .await
}

/// A transaction of a superseded activation, in one batch with transactions of other actors
/// (and two of one actor, in order): it is rejected and writes nothing, the others commit.
/// Every batch executor is held first on a fence row this test locks, so that everything
/// queued meanwhile forms the next batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_transaction_writes_nothing_while_its_batch_commits() {
    let Some(postgres) = Postgres::start().await else {
        return;
    };
    let store = std::sync::Arc::new(postgres_store(&postgres));
    let claim = |id: String| {
        let store = store.clone();
        async move {
            let actor = ActorKey::new("Batch", id);
            let epoch = store.claim(&actor).await.expect("claim").epoch;
            (actor, epoch)
        }
    };
    let blockers: Vec<_> =
        futures::future::join_all((0..MAX_BATCH_EXECUTORS).map(|i| claim(format!("block{i}"))))
            .await;
    let good: Vec<_> = futures::future::join_all((0..16).map(|i| claim(format!("good{i}")))).await;
    let (stale, stale_epoch) = claim("stale".into()).await;
    let (repeat, repeat_epoch) = claim("repeat".into()).await;
    // A newer activation of `stale` claims it: `stale_epoch` is superseded.
    store.claim(&stale).await.expect("second claim");

    let (locker, connection) =
        tokio_postgres::connect(&postgres.connection_string(), tokio_postgres::NoTls)
            .await
            .expect("connect");
    tokio::spawn(connection);
    locker
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM {DEFAULT_TABLE_NAME}_fences
             WHERE actor_type = 'Batch' AND actor_id LIKE 'block%' FOR UPDATE"
        ))
        .await
        .expect("lock the blockers' fences");
    let transact = |actor: ActorKey, epoch, ops: Vec<StateOp>| {
        let store = store.clone();
        tokio::spawn(async move { store.transact(&actor, epoch, &ops).await })
    };
    let mut blocked = Vec::new();
    for (n, (actor, epoch)) in blockers.iter().enumerate() {
        blocked.push(transact(
            actor.clone(),
            *epoch,
            vec![upsert("b", "1", None)],
        ));
        wait_for_lock_waiters(&postgres, n + 1).await;
    }

    // Queued in this order while every executor waits.
    let queued = |actor: &ActorKey, epoch, ops: Vec<StateOp>| {
        let store = store.clone();
        let actor = actor.clone();
        let mut write = Box::pin(async move { store.transact(&actor, epoch, &ops).await });
        let polled = futures::FutureExt::now_or_never(&mut write);
        assert!(polled.is_none(), "queued, not answered");
        tokio::spawn(write)
    };
    let stale_write = queued(&stale, stale_epoch, vec![upsert("who", "stale", None)]);
    let good_writes: Vec<_> = good
        .iter()
        .map(|(actor, epoch)| queued(actor, *epoch, vec![upsert("who", "good", None)]))
        .collect();
    let first = queued(
        &repeat,
        repeat_epoch,
        vec![upsert("k", "1", None), upsert("j", "1", None)],
    );
    let second = queued(
        &repeat,
        repeat_epoch,
        vec![upsert("k", "2", None), delete("j")],
    );
    locker.batch_execute("COMMIT").await.expect("unlock");

    let error = stale_write
        .await
        .expect("task")
        .expect_err("the superseded activation's write");
    assert!(
        matches!(error, StateError::Fenced(ref a) if *a == stale),
        "{error:?}"
    );
    for write in blocked
        .into_iter()
        .chain(good_writes)
        .chain([first, second])
    {
        write.await.expect("task").expect("acknowledged");
    }
    assert_eq!(stored(&store, &stale, "who").await, None, "nothing written");
    for (actor, _) in &good {
        assert_eq!(stored(&store, actor, "who").await.as_deref(), Some("good"));
    }
    assert_eq!(stored(&store, &repeat, "k").await.as_deref(), Some("2"));
    assert_eq!(stored(&store, &repeat, "j").await, None);
}

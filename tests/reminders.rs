//! Durable reminders, end to end: created through a host's client API or the CLI, stored in the
//! placement Raft state, fired on the host that owns the actor — never before their due time —
//! and surviving the loss of that host, of the placement leader, and a restart of every
//! placement node.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rookery_core::ring::{HashRing, DEFAULT_VNODES_PER_HOST};
use rookery_proto::v1::reminders_client::RemindersClient;
use rookery_proto::v1::{CreateActorReminderRequest, ReminderRef};
use support::app::{actor_type, TestApp};
use support::cluster::Cluster;
use support::host_process::HostProcess;
use support::wait::{wait_until, DEADLINE};
use tonic::Code;

const COUNTER: &str = "Counter";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn create(
    host: &HostProcess,
    id: &str,
    name: &str,
    due: &str,
    period: &str,
    ttl: &str,
) -> Result<(), tonic::Status> {
    let mut request = tonic::Request::new(CreateActorReminderRequest {
        reminder: Some(ReminderRef {
            actor_type: COUNTER.into(),
            actor_id: id.into(),
            name: name.into(),
        }),
        due_time: due.into(),
        period: period.into(),
        ttl: ttl.into(),
        data: b"tick".to_vec(),
        fail_if_exists: false,
    });
    request.set_timeout(Duration::from_secs(30));
    RemindersClient::new(host.channel())
        .create_reminder(request)
        .await
        .map(|_| ())
}

/// A host with an app serving Counter.
async fn member(cluster: &Cluster) -> (HostProcess, TestApp) {
    let host = HostProcess::builder(cluster.addr_list()).start();
    host.wait_ready().await;
    let app = TestApp::builder(host.grpc_addr.clone())
        .serve(actor_type(COUNTER))
        .start();
    app.wait_registered().await;
    (host, app)
}

/// Ticks of reminder `name` of actor `id` heard by any of `apps`: (due, heard) instants.
fn ticks(apps: &[&TestApp], id: &str, name: &str) -> Vec<(u64, u64)> {
    let mut ticks: Vec<(u64, u64)> = apps
        .iter()
        .flat_map(|app| app.actor(COUNTER, id).reminders)
        .filter(|(n, _, _)| n == name)
        .map(|(_, due, heard)| (due, heard))
        .collect();
    ticks.sort();
    ticks
}

async fn wait_ticks(apps: &[&TestApp], id: &str, name: &str, n: usize) -> Vec<(u64, u64)> {
    wait_until(format!("{n} ticks of {id}/{name}"), DEADLINE, || async {
        let seen = ticks(apps, id, name);
        if seen.len() >= n {
            Ok(seen)
        } else {
            Err(format!("{} ticks so far", seen.len()))
        }
    })
    .await
}

async fn wait_serving(cluster: &Cluster, hosts: usize) {
    cluster
        .wait_status(format!("{hosts} hosts serving {COUNTER}"), DEADLINE, |s| {
            let n = s
                .hosts
                .iter()
                .filter(|h| h.actor_types.iter().any(|t| t == COUNTER))
                .count();
            if n == hosts {
                Ok(())
            } else {
                Err(format!("{n} hosts"))
            }
        })
        .await;
}

/// One-shot fires once, not before its due time; R3/PT1S exactly three times; a ttl stops a
/// periodic reminder; delete stops it; bad durations are refused naming field and value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_fire_on_schedule_and_stop_when_told() {
    let cluster = Cluster::builder().nodes(1).start();
    cluster.wait_for_leader().await;
    let (host, app) = member(&cluster).await;
    wait_serving(&cluster, 1).await;
    let apps = [&app];

    let registered_at = now_ms();
    create(&host, "once", "r", "PT1S", "", "")
        .await
        .expect("create one-shot");
    create(&host, "thrice", "r", "0s", "R3/PT1S", "")
        .await
        .expect("create R3");
    create(&host, "ttl", "r", "0s", "PT0.5S", "PT1.6S")
        .await
        .expect("create with ttl");
    create(&host, "deleted", "r", "0s", "PT0.5S", "")
        .await
        .expect("create periodic");

    let once = wait_ticks(&apps, "once", "r", 1).await;
    assert!(
        once[0].1 >= registered_at + 1_000,
        "fired at {} before its due time {}",
        once[0].1,
        registered_at + 1_000
    );
    assert!(
        once[0].1 >= once[0].0,
        "a tick heard before its due instant: {once:?}"
    );

    wait_ticks(&apps, "deleted", "r", 2).await;
    let mut request = tonic::Request::new(ReminderRef {
        actor_type: COUNTER.into(),
        actor_id: "deleted".into(),
        name: "r".into(),
    });
    request.set_timeout(Duration::from_secs(30));
    let deleted = RemindersClient::new(host.channel())
        .delete_reminder(request)
        .await
        .expect("delete");
    assert!(deleted.into_inner().deleted);
    let at_delete = ticks(&apps, "deleted", "r").len();

    wait_ticks(&apps, "thrice", "r", 3).await;
    wait_ticks(&apps, "ttl", "r", 4).await;
    // Time for any wrong extra tick to show up: two periods of the fastest reminder and more.
    let settle = Instant::now();
    wait_until("extra ticks to have had their chance", DEADLINE, || async {
        if settle.elapsed() >= Duration::from_secs(3) {
            Ok(())
        } else {
            Err("settling".to_owned())
        }
    })
    .await;
    assert_eq!(
        ticks(&apps, "once", "r").len(),
        1,
        "a one-shot reminder fires once"
    );
    assert_eq!(
        ticks(&apps, "thrice", "r").len(),
        3,
        "R3/PT1S fires exactly three times"
    );
    assert_eq!(
        ticks(&apps, "ttl", "r").len(),
        4,
        "PT0.5S with ttl PT1.6S fires at 0, 0.5, 1.0, 1.5 s"
    );
    // A tick already in flight when the delete committed may still land.
    assert!(
        ticks(&apps, "deleted", "r").len() <= at_delete + 1,
        "delete stops a reminder"
    );
    for id in ["once", "thrice", "ttl", "deleted"] {
        for (due, heard) in ticks(&apps, id, "r") {
            assert!(
                heard >= due,
                "{id}: tick due {due} heard at {heard}, before its due time"
            );
        }
    }

    let bad = create(&host, "bad", "r", "5 seconds", "", "")
        .await
        .expect_err("a bad due time");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().contains("dueTime") && bad.message().contains("5 seconds"),
        "{}",
        bad.message()
    );
    let bad = create(&host, "bad", "r", "", "R0/PT1S", "")
        .await
        .expect_err("R0");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("period"), "{}", bad.message());
    app.assert_no_violations();
}

/// A periodic reminder keeps firing through kill -9 of the host that owns its actor (on the new
/// owner), kill -9 of the placement leader, and a stop and restart of every placement node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_survive_host_and_placement_failures() {
    let cluster = Cluster::builder().nodes(3).start();
    cluster.wait_for_leader().await;
    let (host_a, app_a) = member(&cluster).await;
    let (host_b, app_b) = member(&cluster).await;
    wait_serving(&cluster, 2).await;
    let apps = [&app_a, &app_b];
    // Actors of both hosts, four each, chosen by the ring placement computes (its default
    // vnodes), so that host A surely owns some.
    let ring = HashRing::new(
        [host_a.id.as_str(), host_b.id.as_str()],
        DEFAULT_VNODES_PER_HOST,
    );
    let owned = |host: &str| {
        (0..)
            .map(|i| format!("r{i}"))
            .filter(|id| ring.owner(id) == Some(host))
            .take(4)
            .collect::<Vec<_>>()
    };
    let ids: Vec<String> = owned(&host_a.id)
        .into_iter()
        .chain(owned(&host_b.id))
        .collect();
    for id in &ids {
        create(&host_a, id, "beat", "0s", "PT0.5S", "")
            .await
            .expect("create");
    }
    for id in &ids {
        wait_ticks(&apps, id, "beat", 1).await;
    }
    let owned_by_a: Vec<&String> = ids
        .iter()
        .filter(|id| !app_a.actor(COUNTER, id).reminders.is_empty())
        .collect();
    assert!(!owned_by_a.is_empty(), "host A owns some of the actors");

    // The owner crashes: its actors' reminders fire on host B.
    host_a.kill9();
    drop(app_a);
    let apps = [&app_b];
    for id in &owned_by_a {
        let before = ticks(&apps, id, "beat").len();
        wait_ticks(&apps, id, "beat", before + 2).await;
    }

    // The placement leader crashes.
    let leader = cluster
        .status()
        .await
        .expect("status")
        .confirmed_leader()
        .expect("leader");
    cluster.kill9(leader);
    let before = ticks(&apps, &ids[0], "beat").len();
    wait_ticks(&apps, &ids[0], "beat", before + 3).await;
    cluster.restart(leader);
    cluster.wait_for_leader().await;

    // Every placement node stops and starts again: the reminders come back from disk.
    cluster.stop_all().await;
    cluster.restart_all();
    cluster.wait_for_leader().await;
    for id in &ids {
        let before = ticks(&apps, id, "beat").len();
        wait_ticks(&apps, id, "beat", before + 2).await;
    }
    for (id, (due, heard)) in ids
        .iter()
        .flat_map(|id| ticks(&apps, id, "beat").into_iter().map(move |t| (id, t)))
    {
        assert!(heard >= due, "{id}: tick due {due} heard at {heard}");
    }
    drop(host_b);
}

/// 10,000 reminders across 3 hosts all fire, never before their due time, and once the
/// registrations are over each keeps its schedule: its first firing due after the last
/// registration comes within one period plus a slack of its due time. Firings due while the
/// 10,000 registrations still load the machine are checked for never being early only: how
/// late they are is a figure of the machine's speed, measured by the reminders bench.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_reminders_all_fire_and_keep_their_schedule() {
    const REMINDERS: usize = 10_000;
    const CONCURRENCY: usize = 64;
    /// Stated slack beyond one period: fetch interval, batching and a loaded 2-core machine.
    const SLACK_MS: u64 = 3_000;
    const PERIOD_MS: u64 = 10_000;
    let cluster = Cluster::builder().nodes(3).start();
    cluster.wait_for_leader().await;
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(member(&cluster).await);
    }
    wait_serving(&cluster, 3).await;
    let started = Instant::now();
    let hosts: Vec<&HostProcess> = members.iter().map(|(h, _)| h).collect();
    futures::future::join_all((0..CONCURRENCY).map(|worker| {
        let hosts = &hosts;
        async move {
            let mut i = worker;
            while i < REMINDERS {
                let host = hosts[i % hosts.len()];
                create(host, &format!("m{i}"), "r", "PT2S", "PT10S", "")
                    .await
                    .expect("create");
                i += CONCURRENCY;
            }
        }
    }))
    .await;
    let registered_ms = now_ms();
    eprintln!(
        "{REMINDERS} reminders registered in {:?}",
        started.elapsed()
    );
    let apps: Vec<&TestApp> = members.iter().map(|(_, a)| a).collect();
    // Each reminder's first firing due after the registrations ended.
    let steady_ticks = wait_until(
        format!("every one of {REMINDERS} reminders fired after the registrations"),
        DEADLINE * 4,
        || async {
            let mut steady = Vec::with_capacity(REMINDERS);
            for i in 0..REMINDERS {
                let id = format!("m{i}");
                match ticks(&apps, &id, "r")
                    .into_iter()
                    .find(|(due, _)| *due >= registered_ms)
                {
                    Some(tick) => steady.push(tick),
                    None => {
                        return Err(format!(
                            "{id} has no firing due after the registrations; {} have",
                            steady.len()
                        ))
                    }
                }
            }
            Ok(steady)
        },
    )
    .await;
    for i in 0..REMINDERS {
        let id = format!("m{i}");
        for (due, heard) in ticks(&apps, &id, "r") {
            assert!(heard >= due, "{id}: tick due {due} heard at {heard}, early");
        }
    }
    let mut late: Vec<u64> = steady_ticks
        .iter()
        .map(|(due, heard)| heard - due)
        .collect();
    late.sort();
    eprintln!(
        "firing due after the registrations, ms late: p50 {} p99 {} max {}",
        late[late.len() / 2],
        late[late.len() * 99 / 100],
        late[late.len() - 1]
    );
    assert!(
        late[late.len() - 1] <= PERIOD_MS + SLACK_MS,
        "a reminder fired {} ms after its due time, more than one period plus slack",
        late[late.len() - 1]
    );
    let per_host: Vec<usize> = apps
        .iter()
        .map(|app| {
            app.record()
                .actors
                .values()
                .filter(|a| !a.reminders.is_empty())
                .count()
        })
        .collect();
    eprintln!("actors with fired reminders per host: {per_host:?}");
    assert!(
        per_host.iter().all(|n| *n > 0),
        "every host fired some: {per_host:?}"
    );
}

/// Timers belong to an activation: registered from the actor's code over the app channel, they
/// fire as turns on schedule, do not keep an idle actor active, and end with the activation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_as_turns_and_end_with_their_activation() {
    let cluster = Cluster::builder().nodes(1).start();
    cluster.wait_for_leader().await;
    let host = HostProcess::builder(cluster.addr_list())
        .config_yaml("actors:\n  idle_timeout_ms: 1500\n  scan_interval_ms: 200\n")
        .start();
    host.wait_ready().await;
    let app = TestApp::builder(host.grpc_addr.clone())
        .serve(actor_type(COUNTER))
        .start();
    app.wait_registered().await;
    wait_serving(&cluster, 1).await;
    let timer =
        serde_json::json!({"name": "t", "due": "0s", "period": "PT0.3S", "callback": "tick"});
    host.invoke_json(COUNTER, "tm", "start_timer", timer)
        .await
        .expect("start a timer");
    let bad = serde_json::json!({"name": "bad", "due": "soon", "period": "", "callback": "x"});
    host.invoke_json(COUNTER, "tm", "start_timer", bad)
        .await
        .expect("ask for a bad timer");
    wait_until("three timer ticks", DEADLINE, || async {
        let n = app.actor(COUNTER, "tm").timers.len();
        if n >= 3 {
            Ok(())
        } else {
            Err(format!("{n} ticks"))
        }
    })
    .await;
    // The timer alone does not keep the actor active: it is collected when idle.
    let deactivated_at = app
        .wait_for("the timer's actor collected while idle", |r| {
            r.actors
                .get(&(COUNTER.to_owned(), "tm".to_owned()))
                .and_then(|a| a.last_deactivated_at)
                .ok_or("still active".to_owned())
        })
        .await;
    let record = app.actor(COUNTER, "tm");
    assert!(record
        .timers
        .iter()
        .all(|(name, callback, _)| name == "t" && callback == "tick"));
    let settle = Instant::now();
    wait_until("a late tick to have had its chance", DEADLINE, || async {
        if settle.elapsed() >= Duration::from_secs(1) {
            Ok(())
        } else {
            Err("settling".to_owned())
        }
    })
    .await;
    let after: Vec<_> = app
        .actor(COUNTER, "tm")
        .timers
        .into_iter()
        .filter(|(_, _, at)| *at > deactivated_at)
        .collect();
    assert!(
        after.is_empty(),
        "timer ticks after the activation ended: {after:?}"
    );
    let errors = app.record().timer_errors;
    assert!(
        errors
            .iter()
            .any(|e| e.contains("dueTime") && e.contains("soon")),
        "bad timer refused: {errors:?}"
    );
    app.assert_no_violations();
}

/// An app manages reminders on its own stream (the app channel): created there, they fire like
/// any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_creates_reminders_over_its_channel() {
    let cluster = Cluster::builder().nodes(1).start();
    cluster.wait_for_leader().await;
    let (host, app) = member(&cluster).await;
    wait_serving(&cluster, 1).await;
    let ask = serde_json::json!({"name": "self", "due": "0s", "period": "R2/PT0.3S"});
    host.invoke_json(COUNTER, "a1", "remind_me", ask)
        .await
        .expect("ask for a reminder");
    wait_ticks(&[&app], "a1", "self", 2).await;
    let answers = app.record().reminder_answers;
    assert!(
        answers.iter().any(|a| a.contains("Reminder(")),
        "the host confirmed: {answers:?}"
    );
    let bad = serde_json::json!({"name": "bad", "due": "later", "period": ""});
    host.invoke_json(COUNTER, "a1", "remind_me", bad)
        .await
        .expect("ask for a bad reminder");
    app.wait_for("the bad reminder refused", |r| {
        r.reminder_answers
            .iter()
            .find(|a| a.contains("InvalidArgument") && a.contains("later"))
            .cloned()
            .ok_or_else(|| format!("answers: {:?}", r.reminder_answers))
    })
    .await;
    app.assert_no_violations();
}

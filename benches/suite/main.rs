//! The benchmark suite (issue 8): Rookery as real processes, side by side with the physical
//! limit (a bare tonic echo server, same client, payload and concurrency) and with peers.
//!
//! `scripts/bench.sh` is the one command (builds, runs the `invoke` bench and the peers,
//! then this). Alone: `cargo build --release --bin rookery --example counter && cargo bench
//! --bench suite`. Without `--bench` among its arguments (CI's `cargo test --all-targets`)
//! it returns at once. Set `ROOKERY_SUITE_QUICK=1` for a short smoke run; `cargo bench
//! --bench suite -- --in-process` runs only the in-process part (for profiling).
//!
//! What runs (every process on this machine, loopback, OS-chosen ports):
//! - `echo`: the bare tonic server ([`servers`]), a process of its own;
//! - `two-hop`: a bare tonic proxy process in front of it;
//! - a cluster ([`cluster`]): 1 placement node and 3 hosts of the `rookery` binary, each host
//!   with the `counter` example app and the suite's minimal echo app (type `AppEcho`);
//! - `app`: AppEcho calls entering the host that owns each actor (client → host → app stream
//!   → host → client), one actor per call in flight;
//! - `counter`: the same with `Counter.get` (each call also reads the actor's state);
//! - `non-owner`: AppEcho calls entering a host that does not own the actor (forwarded once);
//! - `hot actor`: every call in flight to one Counter (its turns run one at a time);
//! - `storm` / `steady`: 10,000 new Counter actors (`ROOKERY_SUITE_STORM=n` for another
//!   count) called once each, entering the 3 hosts in turn, then calls to random ones of them;
//! - idle memory: the hosts' and apps' RSS growth over more new, then idle, Counter actors;
//! - open loop: `echo`, `two-hop`, `app` and `counter` at half of the peak calls/s the
//!   closed-loop sweep found for `app` (and for `counter`), latency from the intended send time;
//! - in process ([`inprocess`]): embedded actors called through `Host::invoke`.
//!
//! The load generator ([`load`]) is one tonic client (one HTTP/2 connection per host or
//! server), 64-byte payloads. Results: `target/bench-results/suite.json`, `suite.md`,
//! `suite-latency.png`, `suite-throughput.png`; folded in when written within the hour before
//! (by the same run of scripts/bench.sh):
//! `invoke.json` (embedded actors over gRPC, `cargo bench --bench invoke`), `peers.json`
//! (`benches/peers`) and `ray.json` (`benches/peers/ray_bench.py`).

#[path = "../common/results.rs"]
mod results;
#[path = "../../tests/support/mod.rs"]
mod support;

mod cluster;
mod inprocess;
mod load;
mod report;
mod servers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use rookery_core::net::{self, TcpTransport};
use rookery_proto::v1::actors_client::ActorsClient;
use serde_json::{json, Value};

use cluster::{Cluster, APP_ECHO, COUNTER};
use load::{LoadResult, Pick, Target};

const PAYLOAD_BYTES: usize = 64;
/// The closed-loop sweep's calls in flight.
const SWEEP: [usize; 5] = [1, 4, 16, 64, 256];
/// Concurrency of the single-point scenarios (and of the `invoke` bench).
const CONCURRENCY: usize = 64;
const STORM_ACTORS: usize = 10_000;
const IDLE_ACTORS: usize = 30_000;

struct Timing {
    warmup: Duration,
    sweep: Duration,
    measure: Duration,
    storm: usize,
    idle: usize,
}

fn timing() -> Timing {
    let storm = |default: usize| {
        std::env::var("ROOKERY_SUITE_STORM")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    if std::env::var_os("ROOKERY_SUITE_QUICK").is_some() {
        Timing {
            warmup: Duration::from_millis(300),
            sweep: Duration::from_millis(700),
            measure: Duration::from_secs(1),
            storm: storm(1_000),
            idle: 2_000,
        }
    } else {
        Timing {
            warmup: Duration::from_secs(1),
            sweep: Duration::from_secs(3),
            measure: Duration::from_secs(5),
            storm: storm(STORM_ACTORS),
            idle: IDLE_ACTORS,
        }
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A results file of another part of the same run: written at most an hour before `since`
/// (scripts/bench.sh runs those parts just before the suite).
fn fold_in(dir: &std::path::Path, file: &str, since: u64) -> Value {
    let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
        return Value::Null;
    };
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    match value["unix_time_s"].as_u64() {
        Some(t) if t + 3600 >= since => value,
        // Older than this run: not mixed into its figures.
        _ => Value::Null,
    }
}

/// The highest calls/s of `name`'s closed-loop runs.
fn peak(runs: &[LoadResult], name: &str) -> f64 {
    runs.iter()
        .filter(|r| r.scenario == name && r.mode == "closed")
        .map(LoadResult::calls_per_s)
        .fold(0.0f64, f64::max)
}

fn ids(prefix: &str, n: usize) -> Arc<Vec<String>> {
    Arc::new((0..n).map(|i| format!("{prefix}{i}")).collect())
}

fn target(
    clients: Vec<ActorsClient<tonic::transport::Channel>>,
    actor_type: &str,
    method: &str,
    ids: Arc<Vec<String>>,
    pick: Pick,
) -> Target {
    Target {
        clients,
        actor_type: actor_type.into(),
        method: method.into(),
        ids,
        pick,
        payload: Arc::new(vec![0xa5; PAYLOAD_BYTES]),
    }
}

async fn run(progress: &ProgressBar) -> Value {
    let t = timing();
    let started_unix = results::unix_now();
    let load_before = load_average();
    let dir = results::dir();
    let logs = dir.join("suite-logs");
    std::fs::create_dir_all(&logs).expect("results dir");
    let transport = TcpTransport::shared();

    progress.set_message("starting the servers and the cluster");
    let (echo_proc, echo_addr) = cluster::spawn_server("echo", &["echo"]);
    let (proxy_proc, proxy_addr) = cluster::spawn_server("proxy", &["proxy", &echo_addr]);
    let cluster = Cluster::start(&transport, &logs).await;
    // The hosts' resident memory as each step begins: where it grows.
    let host_status_paths: Vec<String> = cluster
        .hosts
        .iter()
        .map(|h| format!("/proc/{}/status", h.proc.pid()))
        .collect();
    let hosts_rss = || -> u64 { host_status_paths.iter().map(|p| cluster::rss_of(p)).sum() };
    let hosts_rss_by_step = std::cell::RefCell::new(Vec::new());
    let step = |message: &str| {
        let hosts_rss = hosts_rss();
        if hosts_rss > 0 {
            hosts_rss_by_step
                .borrow_mut()
                .push(json!({"step": message, "hosts_rss_bytes": hosts_rss}));
        }
        progress.set_message(message.to_owned());
        progress.inc(1);
    };
    let echo = ActorsClient::new(net::channel(&transport, &echo_addr).expect("address"));
    let proxy = ActorsClient::new(net::channel(&transport, &proxy_addr).expect("address"));
    let hosts: Vec<_> = cluster
        .hosts
        .iter()
        .map(|h| cluster.client(&transport, h))
        .collect();
    step("finding which host owns which actor");

    // Activate probe ids through host 1 and ask every host which it holds: calls to ids
    // host 1 holds enter their owner; calls to ids host 2 holds, sent to host 1, are forwarded.
    let probe = 1200;
    let mut owned: std::collections::HashMap<(&str, usize), Vec<String>> = Default::default();
    for (actor_type, prefix) in [(APP_ECHO, "o-"), (COUNTER, "c-")] {
        let probe_target = target(
            vec![hosts[0].clone()],
            actor_type,
            "get",
            ids(prefix, probe),
            Pick::PerSlot,
        );
        let warm = load::each_once("probe", &probe_target, CONCURRENCY).await;
        assert_eq!(warm.errors, 0, "probe calls failed: {:?}", warm.first_error);
        for (host, id) in cluster.owners(&transport, actor_type).await {
            if id.starts_with(prefix) {
                owned.entry((actor_type, host)).or_default().push(id);
            }
        }
    }
    let take = |actor_type: &str, host: usize, n: usize| -> Arc<Vec<String>> {
        let ids = owned.get(&(actor_type, host)).cloned().unwrap_or_default();
        assert!(
            ids.len() >= n,
            "only {} {actor_type} ids on host {host}",
            ids.len()
        );
        Arc::new(ids.into_iter().take(n).collect())
    };
    let max_c = *SWEEP.iter().max().expect("a sweep");
    let app_ids = take(APP_ECHO, 0, max_c);
    let counter_ids = take(COUNTER, 0, max_c);
    let forwarded_ids = take(APP_ECHO, 1, CONCURRENCY);

    let mut runs: Vec<LoadResult> = Vec::new();
    let scenarios = |c: usize| {
        let per_slot = |ids: &Arc<Vec<String>>| Arc::new(ids[..c].to_vec());
        [
            (
                "echo",
                target(
                    vec![echo.clone()],
                    APP_ECHO,
                    "get",
                    per_slot(&app_ids),
                    Pick::PerSlot,
                ),
            ),
            (
                "two-hop",
                target(
                    vec![proxy.clone()],
                    APP_ECHO,
                    "get",
                    per_slot(&app_ids),
                    Pick::PerSlot,
                ),
            ),
            (
                "app",
                target(
                    vec![hosts[0].clone()],
                    APP_ECHO,
                    "get",
                    per_slot(&app_ids),
                    Pick::PerSlot,
                ),
            ),
            (
                "counter",
                target(
                    vec![hosts[0].clone()],
                    COUNTER,
                    "get",
                    per_slot(&counter_ids),
                    Pick::PerSlot,
                ),
            ),
        ]
    };
    // The sweep: every scenario at every concurrency, interleaved, so a burst of outside load
    // lands on several scenarios of one concurrency rather than on one scenario.
    for &c in &SWEEP {
        for (name, target) in scenarios(c) {
            step(&format!("closed loop: {name} at {c} in flight"));
            runs.push(load::closed(name, &target, c, t.warmup, t.sweep).await);
        }
    }

    step("non-owner");
    let non_owner = target(
        vec![hosts[0].clone()],
        APP_ECHO,
        "get",
        forwarded_ids,
        Pick::PerSlot,
    );
    runs.push(load::closed("non-owner", &non_owner, CONCURRENCY, t.warmup, t.measure).await);

    step("one hot actor");
    // Its owner: the first id host 1 holds.
    let hot = Arc::new(vec![counter_ids[0].clone()]);
    let hot_counter = target(
        vec![hosts[0].clone()],
        COUNTER,
        "get",
        hot.clone(),
        Pick::PerSlot,
    );
    runs.push(
        load::closed(
            "hot actor (Counter)",
            &hot_counter,
            CONCURRENCY,
            t.warmup,
            t.measure,
        )
        .await,
    );
    let hot_app = target(
        vec![hosts[0].clone()],
        APP_ECHO,
        "get",
        Arc::new(vec![app_ids[0].clone()]),
        Pick::PerSlot,
    );
    runs.push(
        load::closed(
            "hot actor (AppEcho)",
            &hot_app,
            CONCURRENCY,
            t.warmup,
            t.measure,
        )
        .await,
    );

    step("state transactions through a host");
    // `Counter.increment`: the app reads the value and writes it back in a state transaction
    // on the host's sled store, acknowledged once flushed.
    let increment_payload = format!("{:<PAYLOAD_BYTES$}", r#"{"by":1}"#).into_bytes();
    for c in [1, CONCURRENCY] {
        let mut increment = target(
            vec![hosts[0].clone()],
            COUNTER,
            "increment",
            Arc::new(counter_ids[..c].to_vec()),
            Pick::PerSlot,
        );
        increment.payload = Arc::new(increment_payload.clone());
        runs.push(load::closed("counter increment", &increment, c, t.warmup, t.measure).await);
    }

    // Open loop at half of the peak the sweep found.
    let half_app = (peak(&runs, "app") / 2.0).max(100.0);
    let half_counter = (peak(&runs, "counter") / 2.0).max(100.0);
    let at_c = |ids: &Arc<Vec<String>>| Arc::new(ids[..CONCURRENCY].to_vec());
    for (name, target, rate) in [
        (
            "echo",
            target(
                vec![echo.clone()],
                APP_ECHO,
                "get",
                at_c(&app_ids),
                Pick::PerSlot,
            ),
            half_app,
        ),
        (
            "two-hop",
            target(
                vec![proxy.clone()],
                APP_ECHO,
                "get",
                at_c(&app_ids),
                Pick::PerSlot,
            ),
            half_app,
        ),
        (
            "app",
            target(
                vec![hosts[0].clone()],
                APP_ECHO,
                "get",
                at_c(&app_ids),
                Pick::PerSlot,
            ),
            half_app,
        ),
        (
            "counter",
            target(
                vec![hosts[0].clone()],
                COUNTER,
                "get",
                at_c(&counter_ids),
                Pick::PerSlot,
            ),
            half_counter,
        ),
    ] {
        step(&format!("open loop: {name} at {rate:.0}/s"));
        runs.push(load::open(name, &target, rate, t.warmup, t.measure).await);
    }
    // And at a quarter of the peak: how the tail grows with the load.
    let quarter_app = half_app / 2.0;
    for (name, client) in [("echo", &echo), ("app", &hosts[0])] {
        step(&format!("open loop: {name} at {quarter_app:.0}/s"));
        let target = target(
            vec![client.clone()],
            APP_ECHO,
            "get",
            at_c(&app_ids),
            Pick::PerSlot,
        );
        runs.push(load::open(name, &target, quarter_app, t.warmup, t.measure).await);
    }

    step("activation storm");
    let storm_ids = ids("storm-", t.storm);
    let storm_target = target(
        hosts.clone(),
        COUNTER,
        "get",
        storm_ids.clone(),
        Pick::PerSlot,
    );
    let storm_hosts_before = hosts_rss();
    let storm = load::each_once("storm", &storm_target, CONCURRENCY).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let storm_hosts_after = hosts_rss();
    step("steady state over the storm's actors");
    let steady = target(hosts.clone(), COUNTER, "get", storm_ids, Pick::Random);
    runs.push(load::closed("steady", &steady, CONCURRENCY, t.warmup, t.measure).await);

    step("idle memory");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (hosts_before, apps_before) = cluster.rss();
    let idle_target = target(
        hosts.clone(),
        COUNTER,
        "get",
        ids("idle-", t.idle),
        Pick::PerSlot,
    );
    let idle = load::each_once("idle", &idle_target, CONCURRENCY).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (hosts_after, apps_after) = cluster.rss();
    let alive = cluster
        .owners(&transport, COUNTER)
        .await
        .iter()
        .filter(|(_, id)| id.starts_with("idle-"))
        .count();
    let idle_memory = json!({
        "activations": alive,
        "errors": idle.errors,
        "activations_per_s": idle.calls_per_s().round(),
        "hosts_rss_before_bytes": hosts_before,
        "hosts_rss_after_bytes": hosts_after,
        "apps_rss_before_bytes": apps_before,
        "apps_rss_after_bytes": apps_after,
        "host_bytes_per_activation":
            (hosts_after.saturating_sub(hosts_before) as f64 / alive.max(1) as f64).round(),
        "app_bytes_per_activation":
            (apps_after.saturating_sub(apps_before) as f64 / alive.max(1) as f64).round(),
    });
    let mut storm_json = storm.json();
    storm_json["hosts_rss_before_bytes"] = json!(storm_hosts_before);
    storm_json["hosts_rss_after_bytes"] = json!(storm_hosts_after);
    storm_json["host_bytes_per_actor"] =
        json!((storm_hosts_after.saturating_sub(storm_hosts_before) as f64
            / storm.calls.max(1) as f64)
            .round());
    step("done with the cluster");
    let hosts_rss_by_step = hosts_rss_by_step.take();
    let processes = cluster.process_names();
    drop(cluster);
    drop(proxy_proc);
    drop(echo_proc);

    step("in process: embedded dispatch");
    let in_process = tokio::task::spawn_blocking(inprocess::run_in_child)
        .await
        .expect("in-process part");

    // Every figure also as a ratio to the bare echo at the same concurrency (closed loop).
    let echo_at = |c: Option<usize>| {
        runs.iter()
            .find(|r| r.scenario == "echo" && r.mode == "closed" && r.concurrency == c)
            .map(LoadResult::calls_per_s)
    };
    let runs_json: Vec<Value> = runs
        .iter()
        .map(|r| {
            let mut v = r.json();
            let ratio = if r.mode == "closed" {
                echo_at(r.concurrency).map(|e| r.calls_per_s() / e)
            } else {
                None
            };
            v["ratio_to_echo"] = json!(ratio.map(|x| (x * 1000.0).round() / 1000.0));
            v
        })
        .collect();

    let find = |name: &str, c: Option<usize>, mode: &str| {
        runs.iter().find(|r| {
            r.scenario == name && r.mode == mode && (mode == "open" || r.concurrency == c)
        })
    };
    let c = Some(CONCURRENCY);
    let invoke = fold_in(&dir, "invoke.json", started_unix);
    let ray = fold_in(&dir, "ray.json", started_unix);
    let embedded_calls_per_s = invoke["scenarios"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "(a) embedded"))
        .and_then(|s| s["calls_per_s"].as_f64());
    let ray_n_to_n = ray["n_to_n_calls_per_s"].as_f64();
    let over_ray = |calls_per_s: Option<f64>| calls_per_s.zip(ray_n_to_n).map(|(r, n)| r / n);
    let goals = json!({
        "embedded_over_ray_n_to_n": over_ray(embedded_calls_per_s),
        "app_over_ray_n_to_n": over_ray(find("app", c, "closed").map(LoadResult::calls_per_s)),
        "embedded_over_echo": invoke["ratios"]["a_over_echo"],
        "embedded_over_echo_by_cpu": invoke["ratios"]["a_over_echo_by_cpu"],
        "app_over_two_hop": find("app", c, "closed").zip(find("two-hop", c, "closed"))
            .map(|(a, b)| a.calls_per_s() / b.calls_per_s()),
        "app_over_echo": find("app", c, "closed").zip(find("echo", c, "closed"))
            .map(|(a, b)| a.calls_per_s() / b.calls_per_s()),
        "app_p99_us_at_half_peak": find("app", None, "open").map(|r| r.p(0.99)),
        "counter_p99_us_at_half_peak": find("counter", None, "open").map(|r| r.p(0.99)),
        "in_process_activations_per_s": in_process["activations"]["first_per_s"],
        "in_process_activations_per_s_over_1m": in_process["activations"]["per_s"],
        "in_process_bytes_per_idle": in_process["activations"]["bytes_per_idle_activation"],
        "host_bytes_per_idle": idle_memory["host_bytes_per_activation"],
    });
    let summary = json!({
        "app_sequential_calls_per_s": find("app", Some(1), "closed").map(|r| r.calls_per_s().round()),
        "app_hot_calls_per_s": find("hot actor (AppEcho)", c, "closed").map(|r| r.calls_per_s().round()),
        "app_many_calls_per_s": find("app", c, "closed").map(|r| r.calls_per_s().round()),
        "peak_app_calls_per_s": peak(&runs, "app").round(),
        "peak_counter_calls_per_s": peak(&runs, "counter").round(),
    });

    step("plots");
    let closed_at_c: Vec<&LoadResult> =
        ["echo", "two-hop", "app", "counter", "non-owner", "steady"]
            .iter()
            .filter_map(|name| find(name, c, "closed"))
            .collect();
    // The runs at half of the peak (the quarter-load runs are in the tables only).
    let open: Vec<&LoadResult> = runs
        .iter()
        .filter(|r| r.mode == "open" && r.offered_per_s != Some(quarter_app))
        .collect();
    let mut plots = Vec::new();
    let latency_png = dir.join("suite-latency.png");
    match report::plot_latency(&latency_png, &closed_at_c, &open) {
        Ok(()) => plots.push(latency_png.display().to_string()),
        Err(e) => eprintln!("latency plot: {e}"),
    }
    let sweep: Vec<(String, Vec<(usize, f64)>)> = ["echo", "two-hop", "app", "counter"]
        .iter()
        .map(|name| {
            let points = SWEEP
                .iter()
                .filter_map(|&c| find(name, Some(c), "closed").map(|r| (c, r.calls_per_s())))
                .collect();
            (name.to_string(), points)
        })
        .collect();
    let throughput_png = dir.join("suite-throughput.png");
    match report::plot_throughput(&throughput_png, &sweep) {
        Ok(()) => plots.push(throughput_png.display().to_string()),
        Err(e) => eprintln!("throughput plot: {e}"),
    }

    json!({
        "unix_time_s": started_unix,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "payload_bytes": PAYLOAD_BYTES,
        "warmup_s": t.warmup.as_secs_f64(),
        "sweep_measure_s": t.sweep.as_secs_f64(),
        "measure_s": t.measure.as_secs_f64(),
        "processes": processes,
        "runs": runs_json,
        "storm": storm_json,
        "hosts_rss_by_step": hosts_rss_by_step,
        "storm_actors": t.storm,
        "idle_memory": idle_memory,
        "in_process": in_process,
        "summary": summary,
        "goals": goals,
        "invoke": invoke,
        "peers": fold_in(&dir, "peers.json", started_unix),
        "ray": ray,
        "state": fold_in(&dir, "state.json", started_unix),
        "reminders": fold_in(&dir, "reminders.json", started_unix),
        "plots": plots,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        servers::run(&args[i + 1..]);
        return;
    }
    // `cargo bench` passes `--bench`; any other run of this target only checks it starts.
    if !args.iter().any(|a| a == "--bench") {
        println!("the suite runs only under `cargo bench` (or scripts/bench.sh)");
        return;
    }
    // As in benches/invoke.rs: no `log` fallback for every h2 span.
    tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default())
        .expect("no subscriber set yet");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Only the in-process part (the suite runs it so, in a child; or alone, to profile it):
    // prints its JSON, writes nothing.
    if args.iter().any(|a| a == "--in-process") {
        let result = runtime.block_on(inprocess::run());
        println!("{}", serde_json::to_string_pretty(&result).expect("json"));
        return;
    }
    // After the cluster starts; the sweep; non-owner, hot actor, state, 6 open loops, storm,
    // steady, memory, in process, plots.
    let steps = 1 + SWEEP.len() as u64 * 4 + 1 + 1 + 1 + 6 + 2 + 1 + 1 + 1 + 1;
    let progress = ProgressBar::new(steps).with_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let results = runtime.block_on(run(&progress));
    progress.finish_with_message(format!("done in {:.0} s", started.elapsed().as_secs_f64()));
    let dir = results::dir();
    let markdown = report::markdown(&results);
    println!("{markdown}");
    std::fs::write(
        dir.join("suite.json"),
        serde_json::to_string_pretty(&results).expect("json"),
    )
    .expect("write suite.json");
    std::fs::write(dir.join("suite.md"), markdown).expect("write suite.md");
    println!(
        "results written to {}/suite.json, suite.md and the plots",
        dir.display()
    );
}

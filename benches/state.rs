//! Actor state transactions: sled against PostgreSQL, through the `StateStore` the hosts use.
//!
//! Each transaction is one upsert of a 64-byte value under the actor's epoch check, and is
//! counted once it is acknowledged, i.e. durable (sled: in the store's log, `fdatasync`ed;
//! PostgreSQL: committed with the server's default `synchronous_commit = on` and
//! `fsync = on`). Scenarios:
//! - *one actor*: one actor's transactions one after another (a host runs one turn of an actor
//!   at a time, so this is the most one actor can write);
//! - *many actors*: 64 actors, each writing one after another, all at once.
//!
//! PostgreSQL is a private server started for the run (Debian's `postgresql` package), as the
//! tests do. Run with `cargo bench --bench state`; results are recorded in benches/README.md.

#[path = "common/results.rs"]
mod results;
#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rookery_runtime::state::postgres_store::{PostgresConfig, PostgresStore, DEFAULT_TABLE_NAME};
use rookery_runtime::state::sled_store::SledStore;
use rookery_runtime::state::{StateOp, StateStore};
use rookery_runtime::ActorKey;
use serde_json::{json, Value};

const ONE_ACTOR_TRANSACTIONS: usize = 2_000;
const MANY_ACTORS: usize = 64;
const TRANSACTIONS_PER_ACTOR: usize = 100;
const VALUE_BYTES: usize = 64;

fn percentile_us(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1e6
}

/// `per_actor` transactions by each of `actors` actors, actors concurrently: (tx/s, latencies).
async fn run(store: Arc<dyn StateStore>, actors: usize, per_actor: usize) -> (f64, Vec<Duration>) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..actors)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let actor = ActorKey::new("Bench", format!("a{i}-{}", fastrand::u64(..)));
                let claim = store.claim(&actor).await.expect("claim");
                let mut latencies = Vec::with_capacity(per_actor);
                for n in 0..per_actor {
                    let op = [StateOp::Upsert {
                        key: "value".into(),
                        value: Bytes::from(vec![(n % 251) as u8; VALUE_BYTES]),
                        ttl_seconds: None,
                    }];
                    let t = Instant::now();
                    store
                        .transact(&actor, claim.epoch, &op)
                        .await
                        .expect("transact");
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::with_capacity(actors * per_actor);
    for task in tasks {
        all.extend(task.await.expect("bench task"));
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort();
    (rate, all)
}

async fn bench(name: &str, store: Arc<dyn StateStore>) -> Vec<Value> {
    // Warm-up (schema, pool, sled's first segments).
    run(store.clone(), 4, 20).await;
    let mut rows = Vec::new();
    for (scenario, actors, per_actor) in [
        ("one actor", 1, ONE_ACTOR_TRANSACTIONS),
        ("64 actors", MANY_ACTORS, TRANSACTIONS_PER_ACTOR),
    ] {
        let (rate, latencies) = run(store.clone(), actors, per_actor).await;
        let row = json!({
            "store": name,
            "scenario": scenario,
            "actors": actors,
            "transactions": latencies.len(),
            "per_s": rate.round(),
            "p50_us": percentile_us(&latencies, 0.50).round(),
            "p99_us": percentile_us(&latencies, 0.99).round(),
        });
        eprintln!("{}", markdown_row(&row));
        rows.push(row);
    }
    rows
}

fn markdown_row(row: &Value) -> String {
    format!(
        "| {} | {} | {} | {} | {} | {} |",
        row["store"].as_str().unwrap_or(""),
        row["scenario"].as_str().unwrap_or(""),
        row["transactions"],
        row["per_s"],
        row["p50_us"],
        row["p99_us"]
    )
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("state benches run only under `cargo bench`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut rows = Vec::new();
        let dir = tempfile::tempdir().expect("temp dir");
        let sled = SledStore::open(&dir.path().join("state")).expect("open sled");
        rows.extend(bench("sled", Arc::new(sled)).await);
        match support::postgres::Postgres::start().await {
            Some(postgres) => {
                let store = PostgresStore::new(PostgresConfig {
                    connection_string: postgres.connection_string(),
                    table_name: DEFAULT_TABLE_NAME.into(),
                })
                .expect("postgres store");
                rows.extend(bench("postgresql", Arc::new(store)).await);
            }
            None => eprintln!("PostgreSQL not installed: its rows are skipped"),
        }
        println!();
        println!("| store | scenario | transactions | tx/s | p50 µs | p99 µs |");
        println!("| --- | --- | --- | --- | --- | --- |");
        for row in &rows {
            println!("{}", markdown_row(row));
        }
        let path = results::write(
            "state.json",
            json!({ "value_bytes": VALUE_BYTES, "results": rows }),
        );
        println!("results written to {}", path.display());
    });
}

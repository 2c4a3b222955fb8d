//! In-process Rust actor crates (actix, ractor, kameo), measured the way the suite measures
//! Rookery's embedded local dispatch (`benches/suite/inprocess.rs`):
//! - `ask, one actor`: [`ASKERS`] tasks each asking the same actor, one request at a time;
//! - `ask, many actors`: [`ASKERS`] tasks, each asking an actor of its own;
//! - `tell, one actor`: one sender queues [`TELLS`] one-way messages to one actor, then one
//!   ask waits until the actor has handled them all;
//! - `spawn`: [`SPAWNS`] new actors, each spawned and asked once (a fresh activation's
//!   cost), then the resident memory (VmRSS) they hold while idle.
//!
//! `cargo run --release --manifest-path benches/peers/Cargo.toml` (or `scripts/bench.sh`).
//! Writes `target/bench-results/peers.json` in the main workspace's target dir (or under
//! `$ROOKERY_BENCH_RESULTS`) and prints a markdown table.
//!
//! ractor and kameo run on a tokio multi-thread runtime with one worker per core, as
//! Rookery's host does; actix runs its actors on one arbiter thread, its usual setup.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Concurrent askers (the suite's gRPC scenarios use 64 calls in flight, too).
const ASKERS: usize = 64;
/// Asks per asker.
const ASKS_PER_ASKER: usize = 20_000;
/// One-way messages in the tell scenario.
const TELLS: usize = 1_000_000;
/// Actors spawned (and asked once each) in the spawn scenario.
const SPAWNS: usize = 100_000;

#[derive(Debug)]
struct Measured {
    crate_name: &'static str,
    scenario: &'static str,
    count: usize,
    elapsed: Duration,
    extra: Value,
}

impl Measured {
    fn per_s(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }

    fn json(&self) -> Value {
        json!({
            "crate": self.crate_name,
            "scenario": self.scenario,
            "count": self.count,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "per_s": self.per_s().round(),
            "extra": self.extra,
        })
    }
}

/// Resident set size of this process, in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn spawn_memory(before: u64, count: usize) -> Value {
    let after = rss_bytes();
    json!({
        "rss_before_bytes": before,
        "rss_after_bytes": after,
        "bytes_per_idle_actor": (after.saturating_sub(before) as f64 / count as f64).round(),
    })
}

// ---- actix ----

mod with_actix {
    use super::*;
    use actix::prelude::*;

    pub struct Echo {
        pub handled: u64,
    }

    impl Actor for Echo {
        type Context = Context<Self>;
    }

    pub struct Ping(pub u64);
    impl Message for Ping {
        type Result = u64;
    }

    impl Handler<Ping> for Echo {
        type Result = u64;
        fn handle(&mut self, msg: Ping, _ctx: &mut Context<Self>) -> u64 {
            self.handled += 1;
            msg.0
        }
    }

    pub struct Note;
    impl Message for Note {
        type Result = ();
    }

    impl Handler<Note> for Echo {
        type Result = ();
        fn handle(&mut self, _msg: Note, _ctx: &mut Context<Self>) {
            self.handled += 1;
        }
    }

    async fn ask(addrs: Vec<Addr<Echo>>) -> Duration {
        let started = Instant::now();
        let askers: Vec<_> = addrs
            .into_iter()
            .map(|addr| {
                actix::spawn(async move {
                    for i in 0..ASKS_PER_ASKER as u64 {
                        assert_eq!(addr.send(Ping(i)).await.expect("answer"), i);
                    }
                })
            })
            .collect();
        for asker in askers {
            asker.await.expect("asker");
        }
        started.elapsed()
    }

    pub fn run() -> Vec<Measured> {
        let system = actix::System::new();
        let results = system.block_on(async {
            let mut results = Vec::new();
            let one = Echo { handled: 0 }.start();
            let elapsed = ask(vec![one.clone(); ASKERS]).await;
            results.push(Measured {
                crate_name: "actix",
                scenario: "ask, one actor",
                count: ASKERS * ASKS_PER_ASKER,
                elapsed,
                extra: Value::Null,
            });
            let many = (0..ASKERS).map(|_| Echo { handled: 0 }.start()).collect();
            let elapsed = ask(many).await;
            results.push(Measured {
                crate_name: "actix",
                scenario: "ask, many actors",
                count: ASKERS * ASKS_PER_ASKER,
                elapsed,
                extra: Value::Null,
            });
            let target = Echo { handled: 0 }.start();
            let started = Instant::now();
            for _ in 0..TELLS {
                // `do_send` ignores the mailbox bound, as a fire-and-forget tell does.
                target.do_send(Note);
            }
            target.send(Ping(0)).await.expect("flush");
            results.push(Measured {
                crate_name: "actix",
                scenario: "tell, one actor",
                count: TELLS,
                elapsed: started.elapsed(),
                extra: Value::Null,
            });
            let before = rss_bytes();
            let started = Instant::now();
            let mut actors = Vec::with_capacity(SPAWNS);
            for i in 0..SPAWNS as u64 {
                let addr = Echo { handled: 0 }.start();
                assert_eq!(addr.send(Ping(i)).await.expect("first answer"), i);
                actors.push(addr);
            }
            let elapsed = started.elapsed();
            tokio::time::sleep(Duration::from_millis(300)).await;
            results.push(Measured {
                crate_name: "actix",
                scenario: "spawn + first ask",
                count: SPAWNS,
                elapsed,
                extra: spawn_memory(before, SPAWNS),
            });
            drop(actors);
            results
        });
        System::current().stop();
        results
    }
}

// ---- ractor ----

mod with_ractor {
    use super::*;
    use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

    pub struct Echo;

    pub enum Msg {
        Ping(u64, RpcReplyPort<u64>),
        Note,
    }

    impl Actor for Echo {
        type Msg = Msg;
        type State = u64;
        type Arguments = ();

        async fn pre_start(
            &self,
            _myself: ActorRef<Msg>,
            _args: (),
        ) -> Result<u64, ActorProcessingErr> {
            Ok(0)
        }

        async fn handle(
            &self,
            _myself: ActorRef<Msg>,
            message: Msg,
            handled: &mut u64,
        ) -> Result<(), ActorProcessingErr> {
            *handled += 1;
            match message {
                Msg::Ping(n, reply) => {
                    let _ = reply.send(n);
                }
                Msg::Note => {}
            }
            Ok(())
        }
    }

    async fn ping(actor: &ActorRef<Msg>, n: u64) -> u64 {
        match actor
            .call(|reply| Msg::Ping(n, reply), None)
            .await
            .expect("call")
        {
            ractor::rpc::CallResult::Success(v) => v,
            other => panic!("ractor call: {other:?}"),
        }
    }

    async fn spawn() -> ActorRef<Msg> {
        Actor::spawn(None, Echo, ()).await.expect("spawn").0
    }

    async fn ask(actors: Vec<ActorRef<Msg>>) -> Duration {
        let started = Instant::now();
        let askers: Vec<_> = actors
            .into_iter()
            .map(|actor| {
                tokio::spawn(async move {
                    for i in 0..ASKS_PER_ASKER as u64 {
                        assert_eq!(ping(&actor, i).await, i);
                    }
                })
            })
            .collect();
        for asker in askers {
            asker.await.expect("asker");
        }
        started.elapsed()
    }

    pub async fn run() -> Vec<Measured> {
        let mut results = Vec::new();
        let one = spawn().await;
        let elapsed = ask(vec![one.clone(); ASKERS]).await;
        results.push(Measured {
            crate_name: "ractor",
            scenario: "ask, one actor",
            count: ASKERS * ASKS_PER_ASKER,
            elapsed,
            extra: Value::Null,
        });
        let mut many = Vec::new();
        for _ in 0..ASKERS {
            many.push(spawn().await);
        }
        let elapsed = ask(many.clone()).await;
        results.push(Measured {
            crate_name: "ractor",
            scenario: "ask, many actors",
            count: ASKERS * ASKS_PER_ASKER,
            elapsed,
            extra: Value::Null,
        });
        let target = spawn().await;
        let started = Instant::now();
        for _ in 0..TELLS {
            target.cast(Msg::Note).expect("cast");
        }
        ping(&target, 0).await;
        results.push(Measured {
            crate_name: "ractor",
            scenario: "tell, one actor",
            count: TELLS,
            elapsed: started.elapsed(),
            extra: Value::Null,
        });
        let before = rss_bytes();
        let started = Instant::now();
        let mut actors = Vec::with_capacity(SPAWNS);
        for i in 0..SPAWNS as u64 {
            let actor = spawn().await;
            assert_eq!(ping(&actor, i).await, i);
            actors.push(actor);
        }
        let elapsed = started.elapsed();
        tokio::time::sleep(Duration::from_millis(300)).await;
        results.push(Measured {
            crate_name: "ractor",
            scenario: "spawn + first ask",
            count: SPAWNS,
            elapsed,
            extra: spawn_memory(before, SPAWNS),
        });
        for actor in actors.into_iter().chain(many).chain([one, target]) {
            actor.stop(None);
        }
        results
    }
}

// ---- kameo ----

mod with_kameo {
    use super::*;
    use kameo::actor::{ActorRef, Spawn};
    use kameo::message::{Context, Message};
    use kameo::Actor;

    #[derive(Actor)]
    pub struct Echo {
        handled: u64,
    }

    pub struct Ping(u64);
    pub struct Note;

    impl Message<Ping> for Echo {
        type Reply = u64;
        async fn handle(&mut self, msg: Ping, _ctx: &mut Context<Self, Self::Reply>) -> u64 {
            self.handled += 1;
            msg.0
        }
    }

    impl Message<Note> for Echo {
        type Reply = ();
        async fn handle(&mut self, _msg: Note, _ctx: &mut Context<Self, Self::Reply>) {
            self.handled += 1;
        }
    }

    fn spawn() -> ActorRef<Echo> {
        Echo::spawn(Echo { handled: 0 })
    }

    async fn ask(actors: Vec<ActorRef<Echo>>) -> Duration {
        let started = Instant::now();
        let askers: Vec<_> = actors
            .into_iter()
            .map(|actor| {
                tokio::spawn(async move {
                    for i in 0..ASKS_PER_ASKER as u64 {
                        assert_eq!(actor.ask(Ping(i)).await.expect("answer"), i);
                    }
                })
            })
            .collect();
        for asker in askers {
            asker.await.expect("asker");
        }
        started.elapsed()
    }

    pub async fn run() -> Vec<Measured> {
        let mut results = Vec::new();
        let one = spawn();
        let elapsed = ask(vec![one.clone(); ASKERS]).await;
        results.push(Measured {
            crate_name: "kameo",
            scenario: "ask, one actor",
            count: ASKERS * ASKS_PER_ASKER,
            elapsed,
            extra: Value::Null,
        });
        let many: Vec<_> = (0..ASKERS).map(|_| spawn()).collect();
        let elapsed = ask(many.clone()).await;
        results.push(Measured {
            crate_name: "kameo",
            scenario: "ask, many actors",
            count: ASKERS * ASKS_PER_ASKER,
            elapsed,
            extra: Value::Null,
        });
        let target = spawn();
        let started = Instant::now();
        for _ in 0..TELLS {
            // Waits for mailbox space (kameo's mailboxes are bounded by default).
            target.tell(Note).await.expect("tell");
        }
        target.ask(Ping(0)).await.expect("flush");
        results.push(Measured {
            crate_name: "kameo",
            scenario: "tell, one actor",
            count: TELLS,
            elapsed: started.elapsed(),
            extra: Value::Null,
        });
        let before = rss_bytes();
        let started = Instant::now();
        let mut actors = Vec::with_capacity(SPAWNS);
        for i in 0..SPAWNS as u64 {
            let actor = spawn();
            assert_eq!(actor.ask(Ping(i)).await.expect("first answer"), i);
            actors.push(actor);
        }
        let elapsed = started.elapsed();
        tokio::time::sleep(Duration::from_millis(300)).await;
        results.push(Measured {
            crate_name: "kameo",
            scenario: "spawn + first ask",
            count: SPAWNS,
            elapsed,
            extra: spawn_memory(before, SPAWNS),
        });
        for actor in actors.iter().chain(&many).chain([&one, &target]) {
            actor.kill();
        }
        results
    }
}

fn main() {
    let mut results = Vec::new();
    // Each crate in a process phase of its own: memory of one does not count against the next
    // only as far as the allocator returns it; the spawn figures are deltas, so they hold.
    results.extend(with_actix::run());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    results.extend(runtime.block_on(with_ractor::run()));
    results.extend(runtime.block_on(with_kameo::run()));

    println!("| crate | scenario | count | per second | notes |");
    println!("|---|---|---:|---:|---|");
    for m in &results {
        let notes = m.extra["bytes_per_idle_actor"]
            .as_f64()
            .map(|b| format!("{b:.0} bytes RSS per idle actor"))
            .unwrap_or_default();
        println!(
            "| {} | {} | {} | {:.0} | {} |",
            m.crate_name,
            m.scenario,
            m.count,
            m.per_s(),
            notes
        );
    }
    let dir = std::env::var_os("ROOKERY_BENCH_RESULTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/bench-results").into()
        });
    std::fs::create_dir_all(&dir).expect("results dir");
    let out = json!({
        "askers": ASKERS,
        "asks_per_asker": ASKS_PER_ASKER,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "unix_time_s": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "results": results.iter().map(Measured::json).collect::<Vec<_>>(),
    });
    let path = dir.join("peers.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out).expect("json")).expect("write");
    println!("results written to {}", path.display());
}

//! `rookery-sim`: runs seeds of the deterministic cluster simulation, or the scale model.
//!
//! ```text
//! cargo run -p rookery-sim --release -- --seeds 0..1000
//! cargo run -p rookery-sim --release -- --seeds 17..18 --trace   # replay one, write its trace
//! cargo run -p rookery-sim --release -- scale --hosts 1000 --actors 10000000
//! ```
//!
//! A failing seed prints the exact command that replays it. `anyhow` lives only here.

mod seeded_random;

use std::io::Write;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rookery_sim::batch::{self, ChildCommand, SeedResult, Verdict};
use rookery_sim::cluster::{self, InjectedBug, SimConfig};
use rookery_sim::faults::FaultMix;
use rookery_sim::scale;

#[derive(Parser, Debug)]
#[command(
    name = "rookery-sim",
    about = "Deterministic simulation of a Rookery cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The scale model: balance, movement, table size and dissemination time of the ring.
    Scale(scale::ScaleArgs),
}

#[derive(Args, Debug, Clone)]
struct RunArgs {
    /// Seeds to run, `A..B` (B excluded) or one seed `A`.
    #[arg(long, default_value = "0..100", value_parser = parse_seeds)]
    seeds: Range<u64>,
    /// Worker threads; each runs one seed at a time.
    #[arg(long, default_value_t = default_jobs())]
    jobs: usize,
    /// Run every seed twice and report the fraction whose two traces match.
    #[arg(long)]
    determinism: bool,
    /// Write the full trace of each run to target/sim/trace-<seed>.txt (with --determinism,
    /// a seed whose two runs differ also keeps the first as trace-<seed>.first.txt).
    #[arg(long)]
    trace: bool,
    /// Log the cluster's tracing output (RUST_LOG filter, default `info`) to stderr.
    #[arg(long)]
    log: bool,
    /// Internal: run the first seed of `--seeds` in this process and report on stdout.
    #[arg(long, hide = true)]
    child: bool,
    #[arg(long, default_value_t = SimConfig::default().hosts)]
    hosts: usize,
    #[arg(long, default_value_t = SimConfig::default().actors)]
    actors: usize,
    #[arg(long, default_value_t = SimConfig::default().callers)]
    callers: usize,
    #[arg(long, default_value_t = SimConfig::default().warmup_ms)]
    warmup_ms: u64,
    /// Length of the fault window.
    #[arg(long, default_value_t = SimConfig::default().fault_ms)]
    fault_ms: u64,
    #[arg(long, default_value_t = SimConfig::default().settle_ms)]
    settle_ms: u64,
    #[arg(long, default_value_t = SimConfig::default().tick_ms)]
    tick_ms: u64,
    /// Fault kinds to leave out (comma-separated): crashes, partitions, drop-partitions,
    /// delays, leaves, or all.
    #[arg(long, value_delimiter = ',')]
    without: Vec<String>,
    /// Turn off one safety mechanism of the code under test, to see the checkers catch it.
    #[arg(long, value_enum)]
    inject_bug: Option<InjectedBug>,
}

fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn parse_seeds(text: &str) -> Result<Range<u64>, String> {
    let parse = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|e| format!("bad seed {s:?}: {e}"))
    };
    match text.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (parse(a)?, parse(b)?);
            if a >= b {
                return Err(format!("empty seed range {text}"));
            }
            Ok(a..b)
        }
        None => {
            let a = parse(text)?;
            Ok(a..a + 1)
        }
    }
}

impl RunArgs {
    fn config(&self) -> anyhow::Result<SimConfig> {
        let mut faults = FaultMix::default();
        for kind in &self.without {
            match kind.as_str() {
                "crashes" => faults.crashes = false,
                "partitions" => faults.partitions = false,
                "drop-partitions" => faults.drop_partitions = false,
                "delays" => faults.delays = false,
                "leaves" => faults.leaves = false,
                "all" => faults = FaultMix::none(),
                other => bail!("unknown fault kind {other:?} in --without"),
            }
        }
        if self.hosts == 0 || self.actors == 0 {
            bail!("--hosts and --actors must be at least 1");
        }
        Ok(SimConfig {
            hosts: self.hosts,
            actors: self.actors,
            callers: self.callers,
            warmup_ms: self.warmup_ms,
            fault_ms: self.fault_ms,
            settle_ms: self.settle_ms,
            tick_ms: self.tick_ms,
            faults,
            data_root: None,
            plan: None,
            inject_bug: self.inject_bug,
        })
    }

    /// [`RunArgs::shape_flags`] as separate arguments, for a child process.
    fn shape_args(&self) -> Vec<String> {
        let mut args: Vec<String> = self
            .shape_flags()
            .split(' ')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        if self.log {
            args.push("--log".into());
        }
        args
    }

    /// The flags that shape a run, when they differ from the defaults: what a replay needs.
    fn shape_flags(&self) -> String {
        let d = SimConfig::default();
        let mut flags = Vec::new();
        let mut flag = |name: &str, value: u64, default: u64| {
            if value != default {
                flags.push(format!("--{name} {value}"));
            }
        };
        flag("hosts", self.hosts as u64, d.hosts as u64);
        flag("actors", self.actors as u64, d.actors as u64);
        flag("callers", self.callers as u64, d.callers as u64);
        flag("warmup-ms", self.warmup_ms, d.warmup_ms);
        flag("fault-ms", self.fault_ms, d.fault_ms);
        flag("settle-ms", self.settle_ms, d.settle_ms);
        flag("tick-ms", self.tick_ms, d.tick_ms);
        if !self.without.is_empty() {
            flags.push(format!("--without {}", self.without.join(",")));
        }
        if let Some(bug) = self.inject_bug.and_then(|b| b.to_possible_value()) {
            flags.push(format!("--inject-bug {}", bug.get_name()));
        }
        flags.join(" ")
    }

    fn replay_command(&self, seed: u64) -> String {
        let shape = self.shape_flags();
        let space = if shape.is_empty() { "" } else { " " };
        format!(
            "cargo run -p rookery-sim --release -- --seeds {seed}..{}{space}{shape} --trace",
            seed + 1
        )
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Scale(args)) => scale::run_cli(&args).context("scale model"),
        None if cli.run.child => run_child(&cli.run),
        None => run_seeds(&cli.run),
    }
}

/// One run in this process (a child of a batch): on a fresh thread whose hidden randomness is
/// seeded (see `seeded_random`), watched for hangs from this thread.
fn run_child(args: &RunArgs) -> anyhow::Result<()> {
    if args.log {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info".into()),
            )
            .with_writer(std::io::stderr)
            .init();
    }
    let config = args.config()?;
    let seed = args.seeds.start;
    let steps = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let thread_steps = steps.clone();
    let trace = args.trace;
    std::thread::Builder::new()
        .name("sim".into())
        .spawn(move || {
            seeded_random::seed_this_thread(seed);
            let report = cluster::run_observed(seed, &config, &thread_steps);
            let trace_path = match &report {
                Ok(report) if trace => {
                    let path = format!("target/sim/trace-{seed}.txt");
                    let written = std::fs::create_dir_all("target/sim").and_then(|_| {
                        std::fs::File::create(&path)
                            .and_then(|mut f| f.write_all(batch::render_trace(report).as_bytes()))
                    });
                    written.ok().map(|_| path)
                }
                _ => None,
            };
            let text =
                batch::child_report(&report.map_err(|e| e.to_string()), trace_path.as_deref());
            let _ = done_tx.send(text);
        })
        .context("spawning the simulation thread")?;
    let mut last = (0u64, Instant::now());
    loop {
        match done_rx.recv_timeout(Duration::from_millis(500)) {
            Ok(text) => {
                print!("{text}");
                std::io::stdout().flush().context("writing the report")?;
                return Ok(());
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                bail!("the simulation thread ended without a report (it panicked)")
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        let now = steps.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(batch::HANG_SECS) {
            // The simulation thread is stuck for good: report, and end the process with it.
            println!("hung {now}");
            std::io::stdout().flush().context("writing the report")?;
            std::process::exit(3);
        }
    }
}

fn run_seeds(args: &RunArgs) -> anyhow::Result<()> {
    args.config()?;
    let child = ChildCommand {
        exe: std::env::current_exe().context("locating the rookery-sim binary")?,
        shape_args: args.shape_args(),
        trace: args.trace,
    };
    let count = args.seeds.end - args.seeds.start;
    let bar = ProgressBar::new(count);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} seeds  {msg}  (eta {eta})",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    let failures = AtomicU64::new(0);
    let progress = |result: &SeedResult| {
        if result.failed() {
            let n = failures.fetch_add(1, Ordering::Relaxed) + 1;
            bar.println(format!(
                "seed {} FAILED: {}\n  replay: {}",
                result.seed,
                result.verdict.summary(),
                args.replay_command(result.seed)
            ));
            bar.set_message(format!("{n} failed"));
        }
        bar.inc(1);
    };
    let results = batch::run_batch(
        args.seeds.clone(),
        args.jobs,
        args.determinism,
        &child,
        &progress,
    );
    bar.finish();

    let failed: Vec<&SeedResult> = results.iter().filter(|r| r.failed()).collect();
    let runs_per_seed = if args.determinism { 2.0 } else { 1.0 };
    let total_secs: f64 = results.iter().map(|r| r.took.as_secs_f64()).sum();
    println!(
        "{} seeds: {} passed, {} failed  ({:.2} s of wall time per run on average)",
        results.len(),
        results.len() - failed.len(),
        failed.len(),
        total_secs / results.len().max(1) as f64 / runs_per_seed
    );
    if args.determinism {
        let matched = results
            .iter()
            .filter(|r| r.deterministic == Some(true))
            .count();
        println!(
            "determinism: {matched}/{} seeds produced the same trace twice ({:.1}%)",
            results.len(),
            100.0 * matched as f64 / results.len().max(1) as f64
        );
        let differing: Vec<String> = results
            .iter()
            .filter(|r| r.deterministic == Some(false))
            .map(|r| r.seed.to_string())
            .collect();
        if !differing.is_empty() {
            println!("  traces differed for seeds {}", differing.join(" "));
        }
    }
    for result in &failed {
        println!("\nseed {}: {}", result.seed, result.verdict.summary());
        if let Verdict::Violations(violations) = &result.verdict {
            for v in violations {
                println!("  {v}");
            }
        }
        if let Some(path) = &result.trace_path {
            println!("  trace: {}", path.display());
        }
        println!("  replay: {}", args.replay_command(result.seed));
    }
    if !failed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

//! Many seeds: each run in a child process of the `rookery-sim` binary, on worker threads of
//! the parent, which collects the verdicts and tells which seeds failed and how to replay each.
//!
//! One process per run, because what the code under test draws from outside the seed is
//! process state: tokio hashes a process-wide counter into every runtime's RNG seed, and std
//! keeps hash keys per thread (see `seeded_random.rs` in the binary). A run in a fresh process
//! is the same run whether it is part of a batch or replayed alone.
//!
//! A seed fails when a checker reports a violation, when the run could not complete (a node's
//! software returned an error, the run overran its simulated time), or when it hangs: every
//! node runs on the child's one simulation thread, so a deadlock in cluster code (a blocking
//! lock held across an await) stops it for good. The child's watchdog notices a run whose
//! step count has not moved for [`HANG_SECS`] of real time and exits with a `hung` verdict.
//!
//! With `determinism` on, every seed runs twice and the two trace hashes are compared; a
//! mismatch is reported but is not a failure (it measures how much nondeterminism still leaks
//! in, see sim/README.md). With traces on as well, a seed whose runs differ leaves both traces
//! (`trace-<seed>.first.txt` and `trace-<seed>.txt`).

use std::ops::Range;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cluster::{RunReport, RunStats};

/// Real seconds without a single simulation step after which a run counts as hung. A step
/// takes well under a millisecond; opening sled or building rings takes milliseconds.
pub const HANG_SECS: u64 = 10;

/// How one seed ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Each violation as its checker rendered it (`[property] at …: …`).
    Violations(Vec<String>),
    Error(String),
    /// No progress for [`HANG_SECS`]: a deadlock in the code under test.
    Hung {
        steps: u64,
    },
}

impl Verdict {
    /// One line: the kinds of violation, the error or the hang.
    pub fn summary(&self) -> String {
        match self {
            Verdict::Pass => "pass".into(),
            Verdict::Error(e) => e.clone(),
            Verdict::Hung { steps } => format!(
                "hung: no simulation step for {HANG_SECS} s of real time after {steps} steps (a deadlock in the cluster code)"
            ),
            Verdict::Violations(v) => {
                let mut properties: Vec<&str> = v
                    .iter()
                    .filter_map(|line| line.strip_prefix('[')?.split(']').next())
                    .collect();
                properties.sort();
                properties.dedup();
                format!("{} violation(s): {}", v.len(), properties.join(", "))
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct SeedResult {
    pub seed: u64,
    pub verdict: Verdict,
    pub trace_hash: u64,
    /// With determinism on: whether the second run's trace hash matched.
    pub deterministic: Option<bool>,
    pub stats: RunStats,
    pub took: Duration,
    /// Where the child wrote the trace, if asked to.
    pub trace_path: Option<PathBuf>,
}

impl SeedResult {
    pub fn failed(&self) -> bool {
        !matches!(self.verdict, Verdict::Pass)
    }
}

/// How to start a child run.
#[derive(Clone, Debug)]
pub struct ChildCommand {
    /// The `rookery-sim` binary.
    pub exe: PathBuf,
    /// Flags that shape the run (`--hosts 5`, `--without leaves`, …), passed through.
    pub shape_args: Vec<String>,
    /// Ask children to write the trace of a failing run.
    pub trace: bool,
}

/// The child's report on stdout, one line per item: `hash <hex>`, `stats <8 numbers>`,
/// `violation <text>`, `error <text>`, `hung <steps>`, `trace <path>`.
pub fn child_report(report: &Result<RunReport, String>, trace_path: Option<&str>) -> String {
    let mut out = String::new();
    match report {
        Ok(report) => {
            let s = &report.stats;
            out.push_str(&format!("hash {:016x}\n", report.trace_hash));
            out.push_str(&format!(
                "stats {} {} {} {} {} {} {} {}\n",
                s.events,
                s.calls_ok,
                s.calls_failed,
                s.activations,
                s.faults,
                s.max_version,
                s.steps,
                s.sim_ms
            ));
            for v in &report.violations {
                out.push_str(&format!("violation {v}\n"));
            }
        }
        Err(e) => out.push_str(&format!("error {}\n", e.replace('\n', " "))),
    }
    if let Some(path) = trace_path {
        out.push_str(&format!("trace {path}\n"));
    }
    out
}

/// Parses what [`child_report`] printed.
fn parse_child(seed: u64, stdout: &str, took: Duration) -> SeedResult {
    let mut result = SeedResult {
        seed,
        verdict: Verdict::Pass,
        trace_hash: 0,
        deterministic: None,
        stats: RunStats::default(),
        took,
        trace_path: None,
    };
    let mut violations = Vec::new();
    let mut saw_hash = false;
    for line in stdout.lines() {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        match kind {
            "hash" => {
                saw_hash = true;
                result.trace_hash = u64::from_str_radix(rest, 16).unwrap_or(0);
            }
            "stats" => {
                let n: Vec<u64> = rest.split(' ').filter_map(|x| x.parse().ok()).collect();
                if let [events, calls_ok, calls_failed, activations, faults, max_version, steps, sim_ms] =
                    n[..]
                {
                    result.stats = RunStats {
                        events: events as usize,
                        calls_ok: calls_ok as usize,
                        calls_failed: calls_failed as usize,
                        activations: activations as usize,
                        faults: faults as usize,
                        max_version,
                        steps,
                        sim_ms,
                    };
                }
            }
            "violation" => violations.push(rest.to_owned()),
            "error" => result.verdict = Verdict::Error(rest.to_owned()),
            "hung" => {
                result.verdict = Verdict::Hung {
                    steps: rest.parse().unwrap_or(0),
                }
            }
            "trace" => result.trace_path = Some(PathBuf::from(rest)),
            _ => {}
        }
    }
    if result.verdict == Verdict::Pass {
        if !violations.is_empty() {
            result.verdict = Verdict::Violations(violations);
        } else if !saw_hash {
            result.verdict = Verdict::Error("the child run ended without a report".into());
        }
    }
    result
}

/// Runs one seed in a child process.
pub fn run_child(child: &ChildCommand, seed: u64) -> SeedResult {
    let started = Instant::now();
    let mut command = Command::new(&child.exe);
    command
        .arg("--child")
        .arg("--seeds")
        .arg(seed.to_string())
        .args(&child.shape_args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    if child.trace {
        command.arg("--trace");
    }
    match command.output() {
        Ok(output) => {
            let mut result = parse_child(
                seed,
                &String::from_utf8_lossy(&output.stdout),
                started.elapsed(),
            );
            if result.verdict == Verdict::Pass && !output.status.success() {
                result.verdict =
                    Verdict::Error(format!("the child run exited with {}", output.status));
            }
            result
        }
        Err(e) => SeedResult {
            seed,
            verdict: Verdict::Error(format!("cannot start {}: {e}", child.exe.display())),
            trace_hash: 0,
            deterministic: None,
            stats: RunStats::default(),
            took: started.elapsed(),
            trace_path: None,
        },
    }
}

/// Runs `seeds` in child processes, `jobs` at a time; `progress` hears of each finished seed.
/// With `determinism`, each seed runs twice and the hashes are compared. Results come back in
/// seed order.
pub fn run_batch(
    seeds: Range<u64>,
    jobs: usize,
    determinism: bool,
    child: &ChildCommand,
    progress: &(dyn Fn(&SeedResult) + Sync),
) -> Vec<SeedResult> {
    let next = AtomicU64::new(seeds.start);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds.end {
                    return;
                }
                let mut result = run_child(child, seed);
                if determinism {
                    // The second run writes its trace where the first did: keep the first
                    // apart, and both when they differ, to compare.
                    let first_trace = result.trace_path.as_ref().and_then(|path| {
                        let kept = path.with_extension("first.txt");
                        std::fs::rename(path, &kept).ok().map(|_| kept)
                    });
                    let again = run_child(child, seed);
                    let same = again.trace_hash == result.trace_hash && result.trace_hash != 0;
                    if let Some(kept) = first_trace {
                        if same {
                            let _ = std::fs::remove_file(&kept);
                        }
                    }
                    result.deterministic = Some(same);
                    result.took += again.took;
                }
                progress(&result);
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(result);
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|r| r.seed);
    results
}

/// The whole trace of a run as text, one record a line, for reading a failure.
pub fn render_trace(report: &RunReport) -> String {
    let mut out = String::new();
    for s in &report.plan {
        out.push_str(&format!("plan {:>7} ms  {}\n", s.at_ms, s.action));
    }
    for record in &report.records {
        out.push_str(&format!(
            "{}  {:?}\n",
            crate::check::fmt_time(record.at),
            record.event
        ));
    }
    for v in &report.violations {
        out.push_str(&format!("VIOLATION {v}\n"));
    }
    out
}

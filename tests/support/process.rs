//! [`LoggedChild`]: the one kind of child process the tests start — placement nodes, hosts,
//! `rookery up`, the Python example app.
//!
//! Its stdout and stderr go to one log file that is appended to across restarts (each start
//! marked with its command line). It can be signalled, stopped with SIGTERM and a bounded wait,
//! killed with SIGKILL and started again with the same command line, and it is killed with
//! SIGKILL when dropped, also when a test panics. The owners ([`super::cluster::PlacementNode`],
//! [`super::host_process::HostProcess`], a test's own processes) add what the process is: its
//! ports, data dir and arguments.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a process may take to exit after SIGTERM before the test calls it hung.
const STOP_DEADLINE: Duration = Duration::from_secs(20);

/// Lines of a log printed when a test fails, unless the owner sets another number with
/// [`LoggedChild::log_tail_lines`] (the whole log stays in the kept dir).
pub const LOG_TAIL_LINES: usize = 200;

/// A child process whose stdout and stderr go to one log file; SIGKILLed on drop.
pub struct LoggedChild {
    /// For messages: "node 2", "host 127.0.0.1:4242", "python counter app", …
    name: String,
    program: PathBuf,
    /// Everything after the program; the same on every (re)start.
    args: Vec<String>,
    envs: Vec<(String, String)>,
    log_path: PathBuf,
    /// Lines of the log that failure messages show.
    tail_lines: usize,
    /// `Some` while the process is supposed to be running.
    child: Mutex<Option<Child>>,
    starts: Mutex<u32>,
}

impl LoggedChild {
    /// Spawns `program args` with `envs` (and `RUST_BACKTRACE=1`), its output appended to
    /// `log_path`.
    pub fn spawn(
        name: impl Into<String>,
        program: impl Into<PathBuf>,
        args: Vec<String>,
        envs: Vec<(String, String)>,
        log_path: PathBuf,
    ) -> LoggedChild {
        let child = LoggedChild {
            name: name.into(),
            program: program.into(),
            args,
            envs,
            log_path,
            tail_lines: LOG_TAIL_LINES,
            child: Mutex::new(None),
            starts: Mutex::new(0),
        };
        child.start();
        child
    }

    /// How many lines of its log failure messages show (default [`LOG_TAIL_LINES`]).
    pub fn log_tail_lines(mut self, lines: usize) -> LoggedChild {
        self.tail_lines = lines;
        self
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        // A panic while holding the lock must not stop Drop from killing the child.
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts it (again) with the same program, arguments and log. It must not be running.
    pub fn start(&self) {
        let mut child = self.child();
        assert!(child.is_none(), "{} is already running", self.name);
        let mut starts = self.starts.lock().unwrap_or_else(|e| e.into_inner());
        *starts += 1;
        // One log across restarts, each start marked, so a post-mortem sees the history.
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open log");
        writeln!(
            log,
            "===== test harness: start #{} of {}: {} {}",
            *starts,
            self.name,
            self.program.display(),
            self.args.join(" ")
        )
        .expect("write log");
        let stdout = log.try_clone().expect("clone log handle");
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log);
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        *child = Some(
            command
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", self.name)),
        );
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The arguments it runs with (after the program).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Whether the test means it to be running (it was started and not stopped or killed).
    pub fn is_up(&self) -> bool {
        self.child().is_some()
    }

    /// The OS pid of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.child().as_ref().map(Child::id)
    }

    /// Sends a signal by name (`TERM`, `STOP`, `CONT`, …) with `kill`. Panics if it is not
    /// running.
    pub fn signal(&self, signal: &str) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("{} is not running", self.name));
        // `kill` rather than a signals crate: keeps the tests free of extra dependencies.
        let sent = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} {pid} failed");
    }

    /// SIGKILL and reap. No-op if it is not running.
    pub fn kill9(&self) {
        if let Some(mut child) = self.child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the exit; see [`LoggedChild::wait_exit`].
    pub async fn stop(&self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit().await
    }

    /// Waits for the process to exit after a SIGTERM. Panics (after a SIGKILL) if it is still
    /// running after [`STOP_DEADLINE`]: a graceful shutdown must finish.
    pub async fn wait_exit(&self) -> ExitStatus {
        let started = Instant::now();
        loop {
            {
                let mut child = self.child();
                let exited = child
                    .as_mut()
                    .expect("stopped concurrently")
                    .try_wait()
                    .expect("try_wait");
                if let Some(status) = exited {
                    *child = None;
                    return status;
                }
            }
            if started.elapsed() > STOP_DEADLINE {
                self.kill9();
                panic!(
                    "{} still running {STOP_DEADLINE:?} after SIGTERM; log tail:\n{}",
                    self.name,
                    self.log_tail(self.tail_lines)
                );
            }
            // Polling a process's exit status: there is no condition to await instead.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `Err` with the exit status if it was supposed to be running but exited.
    pub fn check_alive(&self) -> Result<(), String> {
        let mut child = self.child();
        if let Some(running) = child.as_mut() {
            if let Some(status) = running.try_wait().expect("try_wait") {
                *child = None;
                return Err(format!("{} exited unexpectedly: {status}", self.name));
            }
        }
        Ok(())
    }

    /// Panics with the log tail if it exited: waits call this so that a crash fails them at
    /// once, with the reason, instead of at their deadline.
    pub fn assert_alive(&self) {
        if let Err(dead) = self.check_alive() {
            panic!("{dead}; log tail:\n{}", self.log_tail(self.tail_lines));
        }
    }

    /// Its whole log (stdout and stderr of every start).
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The log tail under a header, for failure output.
    pub fn dump_log(&self) -> String {
        format!(
            "\n===== {} log tail, full log: {} =====\n{}\n",
            self.name,
            self.log_path.display(),
            self.log_tail(self.tail_lines)
        )
    }
}

impl Drop for LoggedChild {
    fn drop(&mut self) {
        self.kill9();
    }
}

//! The host's health, split as Kubernetes probes it: liveness (the process serves), startup
//! (it has joined the cluster: it holds a placement table) and readiness (it can serve calls
//! now: a table, a session with the placement leader, a valid lease, and a reachable state
//! store). Each answer lists every check with its outcome, so an operator sees why.
//!
//! Dapr's `/v1.0/healthz` is readiness; `/v1.0/healthz/outbound` is what the host needs from
//! outside (placement, the state store), which apps wait on before they start.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rookery_core::shutdown::Shutdown;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cluster::lease::ServingGate;
use crate::cluster::table::TableState;
use crate::state::ActorStateAccess;

/// How long a state-store check stands before the next probe checks again.
pub const STORE_CHECK_TTL_MS: u64 = 1_000;
/// How long one state-store check may take before it counts as a failure.
pub const STORE_CHECK_TIMEOUT_MS: u64 = 2_000;

/// One check of a probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// A probe's answer: healthy when every check is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// One line per check: `ok table: v7` or `FAIL lease: expired`.
    pub fn text(&self) -> String {
        self.checks
            .iter()
            .map(|c| {
                format!(
                    "{} {}: {}\n",
                    if c.ok { "ok" } else { "FAIL" },
                    c.name,
                    c.detail
                )
            })
            .collect()
    }

    /// The failing checks, for an error message.
    pub fn failures(&self) -> String {
        let failing: Vec<String> = self
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        failing.join("; ")
    }
}

/// The outcome of one state-store check, and when it was made.
type StoreCheck = Option<(Instant, Result<(), String>)>;

/// The host's probes.
#[derive(Clone)]
pub struct Probes {
    table: watch::Receiver<TableState>,
    gate: ServingGate,
    state: Option<ActorStateAccess>,
    shutdown: Shutdown,
    /// The last state-store check: when, and its outcome.
    store_check: Arc<Mutex<StoreCheck>>,
}

fn check(name: &'static str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name,
        ok,
        detail: detail.into(),
    }
}

impl Probes {
    pub fn new(
        table: watch::Receiver<TableState>,
        gate: ServingGate,
        state: Option<ActorStateAccess>,
        shutdown: Shutdown,
    ) -> Probes {
        Probes {
            table,
            gate,
            state,
            shutdown,
            store_check: Arc::default(),
        }
    }

    /// The process serves (false once it is shutting down).
    pub fn liveness(&self) -> Report {
        let stopping = self.shutdown.is_fired();
        Report {
            checks: vec![check(
                "process",
                !stopping,
                if stopping { "shutting down" } else { "serving" },
            )],
        }
    }

    /// The host has joined the cluster: it holds a placement table.
    pub fn startup(&self) -> Report {
        Report {
            checks: vec![self.table_check()],
        }
    }

    /// The host can serve calls now.
    pub async fn readiness(&self) -> Report {
        let mut checks = vec![self.table_check(), self.placement_check()];
        checks.push(if self.gate.is_open() {
            check("lease", true, "valid")
        } else {
            check(
                "lease",
                false,
                "lapsed: turns are held back until placement renews it",
            )
        });
        checks.push(self.store_check().await);
        Report { checks }
    }

    /// What the host needs from outside: placement and the state store.
    pub async fn outbound(&self) -> Report {
        Report {
            checks: vec![self.placement_check(), self.store_check().await],
        }
    }

    fn table_check(&self) -> Check {
        let state = self.table.borrow();
        match &state.table {
            Some(table) => check(
                "table",
                true,
                format!(
                    "{}{}",
                    table.version(),
                    if state.locked { ", locked" } else { "" }
                ),
            ),
            None => check("table", false, "no placement table yet"),
        }
    }

    fn placement_check(&self) -> Check {
        if self.table.borrow().connected {
            check("placement", true, "session with the leader open")
        } else {
            check("placement", false, "no session with a placement leader")
        }
    }

    /// Pings the state store, at most once per [`STORE_CHECK_TTL_MS`].
    async fn store_check(&self) -> Check {
        let Some(state) = &self.state else {
            return check("state store", true, "none configured");
        };
        let cached = self
            .store_check
            .lock()
            .expect("store check lock")
            .clone()
            .filter(|(at, _)| at.elapsed() < Duration::from_millis(STORE_CHECK_TTL_MS));
        let outcome = match cached {
            Some((_, outcome)) => outcome,
            None => {
                let ping = tokio::time::timeout(
                    Duration::from_millis(STORE_CHECK_TIMEOUT_MS),
                    state.store.ping(),
                )
                .await;
                let outcome = match ping {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {STORE_CHECK_TIMEOUT_MS} ms")),
                };
                *self.store_check.lock().expect("store check lock") =
                    Some((Instant::now(), outcome.clone()));
                outcome
            }
        };
        match outcome {
            Ok(()) => check(
                "state store",
                true,
                format!("{} reachable", state.store.kind()),
            ),
            Err(e) => check("state store", false, e),
        }
    }
}

//! The ledger: what happened in one simulated run, recorded outside the cluster.
//!
//! The embedded Counter actors, a table watcher on every host, the workload and the fault
//! driver append [`Event`]s stamped with the simulated time. The checkers read the ledger
//! after the run; the cluster never reads it, so recording cannot change what it does.
//!
//! Times are nanoseconds of simulated time since the run began (`turmoil::sim_elapsed` inside
//! a host, `Sim::elapsed` in the driver). Within one turmoil step hosts run one after another,
//! so events are not appended in time order across hosts; each carries its own exact time.

use std::fmt;
use std::sync::{Arc, Mutex};

use rookery_runtime::cluster::table::RoutingTable;

/// Nanoseconds of simulated time since the run began.
pub type SimNanos = u64;

/// Names one run of a host's or placement node's software: restarts get a new incarnation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Incarnation {
    pub node: String,
    pub run: u64,
}

impl fmt::Display for Incarnation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.node, self.run)
    }
}

/// A table as one host held it. Debug prints only its version and content hash, so the trace
/// stays short and its hash stable.
#[derive(Clone)]
pub struct TableSnapshot {
    pub table: Arc<RoutingTable>,
    /// xxh3 of the table's content (version, vnodes, hosts and their types).
    pub content_hash: u64,
}

impl TableSnapshot {
    pub fn new(table: Arc<RoutingTable>) -> TableSnapshot {
        let content_hash = xxhash_rust::xxh3::xxh3_64(format!("{:?}", table.table).as_bytes());
        TableSnapshot {
            table,
            content_hash,
        }
    }

    pub fn version(&self) -> u64 {
        self.table.version().0
    }
}

impl fmt::Debug for TableSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}/{:016x}", self.version(), self.content_hash)
    }
}

/// How a workload call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// The actor answered: which activation, and the counter value it returned.
    Ok { activation: u64, value: u64 },
    /// The call failed with this gRPC code.
    Failed { code: String },
}

/// One thing that happened.
#[derive(Clone, Debug)]
pub enum Event {
    /// The driver injected or healed a fault.
    Fault {
        description: String,
    },
    /// A host's or placement node's software started.
    Started {
        incarnation: Incarnation,
    },
    /// The driver crashed a node: everything running on it stops now.
    Crashed {
        incarnation: Incarnation,
    },
    /// A host's software finished on its own (after a graceful leave).
    Stopped {
        incarnation: Incarnation,
    },
    /// A host's table state changed (seen by a watcher task on the host).
    TableState {
        incarnation: Incarnation,
        table: Option<TableSnapshot>,
        locked: bool,
        /// When the host's lease ends, in simulated time; `None` before the first grant.
        lease_until: Option<SimNanos>,
        /// The leader's table version the lease was granted against: the lease counts only
        /// while the host holds that version or a newer one.
        lease_version: u64,
        /// The host's serving epoch: activations of an older epoch may not run turns.
        epoch: u64,
    },
    Activated {
        actor: String,
        activation: u64,
        incarnation: Incarnation,
    },
    Deactivated {
        actor: String,
        activation: u64,
    },
    TurnStarted {
        actor: String,
        activation: u64,
    },
    TurnEnded {
        actor: String,
        activation: u64,
        value: u64,
    },
    /// A workload call ended (`started` is when it was sent).
    Call {
        caller: String,
        via: String,
        actor: String,
        started: SimNanos,
        outcome: CallOutcome,
        /// A liveness probe after the faults stopped, rather than regular load.
        probe: bool,
    },
}

/// An event and when it happened.
#[derive(Clone, Debug)]
pub struct Record {
    pub at: SimNanos,
    pub event: Event,
}

#[derive(Default)]
struct Inner {
    records: Vec<Record>,
    next_activation: u64,
}

/// Shared by everything in one run. Cheap to clone.
#[derive(Clone, Default)]
pub struct Ledger {
    inner: Arc<Mutex<Inner>>,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Appends an event stamped with the simulated time of the host running the caller.
    /// Outside a host (the driver), use [`Ledger::record_at`].
    pub fn record(&self, event: Event) {
        self.record_at(now(), event);
    }

    pub fn record_at(&self, at: SimNanos, event: Event) {
        self.lock().records.push(Record { at, event });
    }

    /// A fresh activation number, unique in the run.
    pub fn next_activation(&self) -> u64 {
        let mut inner = self.lock();
        inner.next_activation += 1;
        inner.next_activation
    }

    /// A copy of everything recorded so far.
    pub fn records(&self) -> Vec<Record> {
        self.lock().records.clone()
    }

    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// xxh3 of the whole trace (every record, in the order it was appended). Two runs of one
    /// seed are deterministic exactly when their hashes match.
    pub fn trace_hash(&self) -> u64 {
        let inner = self.lock();
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for record in &inner.records {
            hasher.update(format!("{record:?}\n").as_bytes());
        }
        hasher.digest()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while recording poisons nothing worth losing the trace for.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The simulated time of the host running the caller, or 0 outside the simulation.
pub fn now() -> SimNanos {
    turmoil::sim_elapsed()
        .map(|d| d.as_nanos() as SimNanos)
        .unwrap_or(0)
}

/// A tokio instant on the calling host's clock, as simulated time.
pub fn to_sim_time(instant: tokio::time::Instant) -> SimNanos {
    let now_sim = now();
    let now = tokio::time::Instant::now();
    if instant >= now {
        now_sim + (instant - now).as_nanos() as SimNanos
    } else {
        now_sim.saturating_sub((now - instant).as_nanos() as SimNanos)
    }
}

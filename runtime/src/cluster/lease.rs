//! The lease gate: whether this host may run turns of its actors now, and the wall-clock
//! fence (`not_after_ms`) apps check before starting a turn.
//!
//! The placement session renews the lease with every acknowledged heartbeat (see
//! [`TableState::lease_until`]); the gate reads it from the table state.

use rookery_core::clock::now_ms;
use tokio::sync::watch;

use crate::cluster::table::{read_current, TableState};

/// Whether this host may run turns of its actors now: while its placement lease holds, or
/// always when the operator chose availability over safety (`--serve-without-lease`).
#[derive(Clone)]
pub struct ServingGate {
    state: watch::Receiver<TableState>,
    always_open: bool,
}

impl ServingGate {
    pub fn new(state: watch::Receiver<TableState>, always_open: bool) -> ServingGate {
        ServingGate { state, always_open }
    }

    pub fn is_open(&self) -> bool {
        self.always_open || read_current(&self.state, |s| s.may_serve(tokio::time::Instant::now()))
    }

    /// The wall-clock instant (Unix-epoch ms) after which no turn may start under the current
    /// lease: the fence apps check (`not_after_ms`). 0 when serving without a lease.
    pub fn not_after_ms(&self) -> u64 {
        if self.always_open {
            return 0;
        }
        let now = tokio::time::Instant::now();
        match self.state.borrow().lease_until {
            Some(until) if until > now => now_ms() + (until - now).as_millis() as u64,
            // Expired or never granted: any turn would be late already.
            _ => 1,
        }
    }

    /// The current serving epoch (see [`TableState::epoch`]).
    pub fn epoch(&self) -> u64 {
        read_current(&self.state, |s| s.epoch)
    }

    /// Waits until the gate opens (a lease renewal), up to `timeout`. Returns whether it is
    /// open. (An open gate answers at once: the clock is read once, to check the lease.)
    pub async fn wait_open_for(&self, timeout: std::time::Duration) -> bool {
        if self.is_open() {
            return true;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut state = self.state.clone();
        loop {
            if self.is_open() {
                return true;
            }
            match tokio::time::timeout_at(deadline, state.changed()).await {
                Ok(Ok(())) => continue,
                _ => return self.is_open(),
            }
        }
    }
}

//! Rookery's deterministic simulation: the real placement and host code on a simulated
//! network (turmoil), under faults drawn from a seed, checked against the properties the
//! architecture promises; and the scale model of the hash ring.
//!
//! # Layout
//! - [`transport`]: the turmoil [`rookery_core::net::Transport`].
//! - [`ledger`]: what happened in a run, recorded outside the cluster.
//! - [`counter`]: the embedded Counter actor that records its turns.
//! - [`faults`]: the seeded fault schedule.
//! - [`cluster`]: one run: nodes, workload, the driver loop.
//! - [`check`]: one checker per property.
//! - [`batch`]: many seeds, with replay commands for failures.
//! - [`scale`]: the scale model (balance, movement, table size, dissemination time).

pub mod batch;
pub mod check;
pub mod cluster;
pub mod counter;
pub mod faults;
pub mod ledger;
pub mod scale;
pub mod transport;

//! What every Rookery node shares, host or placement: the pieces both sides of the placement
//! protocol must compute identically, and the seams both run on. No Raft, no storage, no
//! actors: a host depends on this crate and never on the placement service.
//!
//! # Layout
//! - [`ring`]: the consistent-hash ring of actor ids to hosts.
//! - [`table`]: the disseminated table, its version, and its wire form.
//! - [`net`]: the listener/connector seam every socket goes through (the simulator swaps it).
//! - [`tls`]: mutual TLS over that seam, for every internal connection, with reloading.
//! - [`ops_http`]: the operational HTTP listener (`/healthz`, `/metrics`) of nodes and hosts.
//! - [`schedule`]: Dapr's due time, period and ttl formats, and when a schedule fires next.
//! - [`reminders`]: reminder keys, stored reminders, their checks and wire conversions.
//! - [`jobs`]: Dapr's Jobs API: job names, schedules (cron, `@every`) and specs, checked, and
//!   when a job fires.
//! - [`job_reminders`]: how a job is kept and fired as a reminder of its app's jobs type.
//! - [`limits`]: bounds on names both sides check.
//! - [`clock`]: the wall clock in Unix-epoch milliseconds.
//! - [`shutdown`]: the one stop signal every task of a node watches.

pub mod clock;
pub mod job_reminders;
pub mod jobs;
pub mod limits;
pub mod net;
pub mod ops_http;
pub mod reminders;
pub mod ring;
pub mod schedule;
pub mod shutdown;
pub mod table;
pub mod tls;

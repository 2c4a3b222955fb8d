//! Rookery's host node: where actors live.
//!
//! # Layout
//! - [`placement_client`]: the host's session with the placement leader: registration,
//!   heartbeats, and the LOCK → UPDATE → UNLOCK orders that deliver each table version.
//! - [`routing`]: the table a host routes by, with one hash ring per actor type.
//!
//! Activations, app channels and the client API build on these.

pub mod placement_client;
pub mod routing;

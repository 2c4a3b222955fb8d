//! Rookery's placement service: a Raft group (openraft, with log and state in sled) that keeps
//! the membership of hosts, disseminates each new table version to every host, and stores
//! durable reminders. What hosts share with it (ring, table, schedules, reminder keys) lives
//! in `rookery-core`.
//!
//! # Layout
//! - [`state`]: the replicated state and the commands that change it.
//! - [`reminder_index`]: the reminders the state machine keeps, by key and by due time.
//! - [`raft_types`]: openraft's type configuration.
//! - [`store`]: the sled-backed Raft log and state machine.
//! - [`raft_network`] / [`peer_service`]: Raft RPCs between placement nodes over tonic.
//! - [`leader`]: what the leader does: host sessions, failure detection, dissemination rounds.
//! - [`host_service`]: the gRPC `Placement` service hosts and operators call.
//! - [`reminder_service`]: the gRPC `PlacementReminders` service hosts call.
//! - [`http`], [`metrics`]: `/healthz` and Prometheus `/metrics`.
//! - [`node`]: wires one placement node together and runs it until shutdown.

pub mod raft_types;
pub mod reminder_index;
pub mod state;
pub mod store;

pub mod host_service;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod node;
pub mod peer_service;
pub mod raft_network;
pub mod reminder_service;

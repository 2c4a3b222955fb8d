//! Rookery's placement service, and the small library hosts share with it.
//!
//! The placement service is a Raft group (openraft, with log and state in sled) that keeps the
//! membership of hosts and disseminates each new table version to every host.
//!
//! # Layout
//! Shared with hosts (no Raft, no sled):
//! - [`ring`]: the consistent-hash ring of actor ids to hosts.
//! - [`table`]: the disseminated table and its version.
//! - [`net`]: the listener/connector seam every socket goes through.
//! - [`ops_http`]: the operational HTTP listener (`/healthz`, `/metrics`) of nodes and hosts.
//! - [`schedule`]: Dapr's due time, period and ttl formats, and when a schedule fires next.
//! - [`reminders`]: durable reminders: keys, progress, and the index placement keeps.
//!
//! The service itself:
//! - [`state`]: the replicated state and the commands that change it.
//! - [`raft_types`]: openraft's type configuration.
//! - [`store`]: the sled-backed Raft log and state machine.
//! - [`raft_network`] / [`peer_service`]: Raft RPCs between placement nodes over tonic.
//! - [`leader`]: what the leader does: host sessions, failure detection, dissemination rounds.
//! - [`host_service`]: the gRPC `Placement` service hosts and operators call.
//! - [`node`]: wires one placement node together and runs it until shutdown.

pub mod net;
pub mod ops_http;
pub mod reminders;
pub mod ring;
pub mod schedule;
pub mod table;

pub mod raft_types;
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

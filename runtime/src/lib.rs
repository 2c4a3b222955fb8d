//! Rookery's host node: where actors live.
//!
//! A host keeps a session with the placement leader and routes every call by the table it
//! receives: to a local activation, or to the owner host. Actor types are served by app
//! processes over the gRPC app channel, or by Rust code embedded in the host process.
//!
//! # Layout
//! - [`host`]: wires one host node together and runs it until shutdown.
//! - [`config`]: flags and per-type options (`--config` YAML).
//! - [`placement_client`]: the session with placement (register, heartbeat, table orders).
//! - [`routing`]: the table a host routes by, with one hash ring per actor type.
//! - [`router`]: routes a call locally or to its owner, with retries and the ownership fence.
//! - [`activations`] / [`activation`]: one task and mailbox per active actor, one turn at a
//!   time, reentrancy by call chain, idle collection.
//! - [`actor`]: the channel traits, and the embedded [`actor::Actor`] API.
//! - [`app_channel`]: the gRPC app channel; [`embedded`]: the in-process one.
//! - [`types`]: which actor types this host serves, and who provides each.
//! - [`reminder_api`], [`reminder_scheduler`], [`placement_rpc`]: durable reminders: the
//!   client API, firing them on the owner, and the calls to the placement leader.
//! - [`state`]: durable actor state behind the `StateStore` trait (sled, PostgreSQL),
//!   fenced by each activation's claim; [`timers`]: an activation's timers, handed off with
//!   the actor when it moves.
//! - [`services`]: the `Actors` client API and the `HostInternal` service.
//! - [`error`]: call errors and their one mapping to gRPC status codes.
//! - [`http`], [`metrics`]: `/healthz` and Prometheus `/metrics`.

pub mod activation;
pub mod activations;
pub mod actor;
pub mod app_channel;
pub mod config;
pub mod embedded;
pub mod error;
pub mod host;
pub mod http;
pub mod metrics;
pub mod placement_client;
pub mod placement_rpc;
pub mod reminder_api;
pub mod reminder_scheduler;
pub mod router;
pub mod routing;
pub mod services;
pub mod state;
pub mod timers;
pub mod types;

//! Rookery's host node: where actors live.
//!
//! A host keeps a session with the placement leader and routes every call by the table it
//! receives: to a local activation, or to the owner host. Actor types are served by app
//! processes over the gRPC app channel, or by Rust code embedded in the host process. An
//! idle activation is data only; a driver task runs only while its calls are queued.
//!
//! # Layers
//! Each layer may use the ones above it in this list, never one below, and no files import
//! each other in a cycle (`scripts/check_layers.py` checks both; the test command runs it):
//! 1. [`call`] (what a call is), [`error`] (its errors), [`grpc`] (deadlines, sizes),
//!    [`dapr_wire`] (Dapr's header names and JSON forms of data), [`resources`] (the
//!    documents of `--resources-path`), [`secrets`] (its local secret stores).
//! 2. [`state`]: durable actor state behind the `StateStore` trait (sled, PostgreSQL).
//! 3. [`metrics`].
//! 4. [`resiliency`]: Dapr's Resiliency policies (timeouts, retries, circuit breakers).
//! 5. [`config`]: flags and per-type options.
//! 6. [`cluster`]: the placement session, the routing table, the lease gate, leader calls.
//! 7. [`actors`]: served types, activations (one turn at a time), timers, lifecycle.
//! 8. [`routing`]: the router, calls forwarded between hosts, the `HostInternal` service.
//! 9. [`reminders`]: the reminder client and the scheduler that fires them (jobs too);
//!    [`jobs`]: the Jobs API's client of the jobs placement keeps as reminders.
//! 10. [`channels`]: the actor-side API and the channels that serve actor code (gRPC apps,
//!     embedded Rust).
//! 11. [`bindings`]: Dapr's cron input binding, fired by each host to its app.
//! 12. [`api`]: the client-facing services (`Actors`, `Reminders`, `/healthz`, `/metrics`).
//! 13. [`host`]: wiring, servers, background tasks, leave and shutdown.

pub mod call;
pub mod dapr_wire;
pub mod error;
pub mod grpc;
pub mod resources;
pub mod secrets;

pub mod state;

pub mod metrics;

pub mod resiliency;

pub mod config;

pub mod cluster;

pub mod actors;

pub mod routing;

pub mod jobs;
pub mod reminders;

pub mod channels;

pub mod bindings;

pub mod api;

pub mod host;

pub use call::{ActorKey, Call, CallKind, ReminderTick, TimerTick};
pub use channels::embedded::{Actor, ActorContext, ActorError};
pub use channels::triggers::{AppTriggers, BindingEvent, JobPayload, TriggerError};
pub use error::CallError;
pub use host::Host;

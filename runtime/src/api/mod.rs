//! What a host offers clients and operators.
//!
//! - [`actors`]: the `Actors` gRPC service (invoke any actor, read its state).
//! - [`dapr`]: Dapr's actor API, over HTTP and gRPC.
//! - [`reminders`]: the `Reminders` gRPC service.
//! - [`probes`]: liveness, startup and readiness.
//! - [`ops_http`]: `/healthz`, `/livez`, `/startupz`, `/readyz` and Prometheus `/metrics`.
//! - [`token`]: the API token every client API requires when one is set.

pub mod actors;
pub mod dapr;
pub mod ops_http;
pub mod probes;
pub mod reminders;
pub mod token;

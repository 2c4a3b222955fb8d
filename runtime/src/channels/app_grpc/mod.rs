//! The gRPC app channel: how an application process in any language serves actor types
//! (`AppChannel.Connect` in `proto/rookery/v1/runtime.proto`).
//!
//! - [`service`]: the gRPC service: registration, the app's requests for its actors.
//! - [`connection`]: one app's stream: requests to the app and their replies, and the
//!   channel the host drives the app's types through.
//! - [`health`]: with `--app-port` and `--enable-app-health-check`, `grpc.health.v1` probes
//!   of the app, which suspend the types of every connection while the app is unhealthy.

pub mod connection;
pub mod health;
pub mod service;

pub use service::{
    AppChannelService, APP_KEEPALIVE_INTERVAL_MS, APP_KEEPALIVE_TIMEOUT_MS, MAX_APP_MESSAGE_BYTES,
};

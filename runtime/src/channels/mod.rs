//! The channels actor code is served through, and the one API they share.
//!
//! - [`actor_api`]: what an actor's own code may do (state, timers, reminders, nested calls),
//!   whichever channel serves it.
//! - [`app_grpc`]: apps in any language, over the gRPC `AppChannel` stream.
//! - [`app_http`]: apps that speak Dapr's HTTP app protocol (the Dapr SDKs').
//! - [`app_health`]: the app health checks both kinds of app share; each brings its probe.
//! - [`embedded`]: Rust actors in the host process.
//! - [`triggers`]: what the host delivers to its app outside actor turns (jobs, bindings).

pub mod actor_api;
pub mod app_grpc;
pub mod app_health;
pub mod app_http;
pub mod embedded;
pub mod triggers;

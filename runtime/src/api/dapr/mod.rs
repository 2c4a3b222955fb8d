//! Dapr's actor API and Jobs API, so apps and clients written with the Dapr SDKs run
//! unchanged: the HTTP API daprd serves on 3500 ([`http`]) and its gRPC RPCs on 50001
//! ([`grpc`]), both on one set of operations ([`actors::DaprActors`]) with one error mapping
//! ([`errors`]); [`jobs`] holds the wire forms of a job both front ends share.

pub mod actors;
pub mod errors;
pub mod grpc;
pub mod http;
pub mod jobs;

pub use actors::DaprActors;
pub use errors::DaprError;

//! Dapr's actor API, so apps and clients written with the Dapr SDKs run unchanged: the HTTP
//! API daprd serves on 3500 ([`http`]) and its gRPC actor RPCs on 50001 ([`grpc`]), both on
//! one set of operations ([`actors::DaprActors`]) with one error mapping ([`errors`]).

pub mod actors;
pub mod errors;
pub mod grpc;
pub mod http;

pub use actors::DaprActors;
pub use errors::DaprError;

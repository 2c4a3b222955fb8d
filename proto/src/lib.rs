//! Rookery's wire protocol: the tonic/prost code generated from `rookery/v1/*.proto`.
//!
//! Only this crate knows protobuf types by their generated names; conversions to domain types
//! live next to the code that uses them.

/// Generated types and services of the `rookery.v1` package.
pub mod v1 {
    tonic::include_proto!("rookery.v1");
}

/// The encoded `FileDescriptorSet` of every Rookery proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/rookery_descriptor.bin"));

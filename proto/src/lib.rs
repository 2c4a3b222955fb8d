//! Rookery's wire protocol: the tonic/prost code generated from `rookery/**/*.proto`.
//!
//! Two packages, two audiences:
//! - [`v1`] (`rookery.v1`): the public protocol — the `Actors` client API, `Reminders` and the
//!   `AppChannel` apps serve actor types over. Served on a host's public port.
//! - [`internal::v1`] (`rookery.internal.v1`): what cluster members say to each other —
//!   `Placement` (host sessions, status), `RaftPeer`, `PlacementReminders` and `HostInternal`
//!   (calls forwarded between hosts). Never for apps or clients.
//!
//! Only this crate knows protobuf types by their generated names; conversions to domain types
//! live next to the code that uses them.

/// The public protocol (`rookery.v1`).
pub mod v1 {
    tonic::include_proto!("rookery.v1");
}

/// The internal protocol between cluster members.
pub mod internal {
    /// `rookery.internal.v1`.
    pub mod v1 {
        tonic::include_proto!("rookery.internal.v1");
    }
}

/// The encoded `FileDescriptorSet` of the public protocol, for gRPC reflection on a host's
/// public port (the internal services are not listed there).
pub const PUBLIC_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/rookery_public_descriptor.bin"));

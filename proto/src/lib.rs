//! Rookery's wire protocol: the tonic/prost code generated from `proto/**/*.proto`.
//!
//! Three packages, two audiences:
//! - [`v1`] (`rookery.v1`): the public protocol — the `Actors` client API, `Reminders` and the
//!   `AppChannel` apps serve actor types over. Served on a host's public port.
//! - [`dapr::proto::runtime::v1`] (`dapr.proto.runtime.v1`): the actor RPCs of Dapr's gRPC API
//!   (service `Dapr`), so Dapr SDKs and clients call a host as they call daprd; with
//!   [`dapr::proto::common::v1`] for the one common type they use. Also public, on the same
//!   port. The `.proto` files were written for Rookery with daprd's names and field numbers.
//! - [`internal::v1`] (`rookery.internal.v1`): what cluster members say to each other —
//!   `Placement` (host sessions, status), `RaftPeer`, `PlacementReminders` and `HostInternal`
//!   (calls forwarded between hosts). Never for apps or clients.
//!
//! [`google::protobuf`] holds the well-known types the Dapr messages use (`Any`, `Empty`,
//! `Duration`), generated here as plain messages. Only this crate knows protobuf types by
//! their generated names; conversions to domain types live next to the code that uses them.

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

/// Dapr's API (`dapr.proto.*`): the module tree mirrors the packages, as the generated code
/// refers to other packages by relative paths.
pub mod dapr {
    pub mod proto {
        /// `dapr.proto.common.v1`.
        pub mod common {
            pub mod v1 {
                tonic::include_proto!("dapr.proto.common.v1");
            }
        }
        /// `dapr.proto.runtime.v1`: the `Dapr` service.
        pub mod runtime {
            pub mod v1 {
                tonic::include_proto!("dapr.proto.runtime.v1");
            }
        }
    }
}

/// Google's well-known types used by the Dapr messages (`google.protobuf`).
pub mod google {
    pub mod protobuf {
        tonic::include_proto!("google.protobuf");
    }
}

/// The encoded `FileDescriptorSet` of the public protocol (`rookery.v1`, Dapr's actor API and
/// the well-known types they import), for gRPC reflection on a host's public port (the
/// internal services are not listed there).
pub const PUBLIC_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/rookery_public_descriptor.bin"));

//! openraft's type configuration for the placement service.

use std::io::Cursor;

use crate::state::{Command, CommandResponse};

/// Placement node ids, as given by `--id` and `--peers`.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// Raft types of the placement service: commands are [`Command`]s, nodes are addressed by
    /// their `host:port`.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The placement service's Raft handle.
pub type PlacementRaft = openraft::Raft<TypeConfig>;

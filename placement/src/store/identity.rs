//! Data-dir identity: the node id and cluster name a data dir was created for.
//!
//! A Raft log and vote are only meaningful for the node that wrote them. Starting node 1 on node
//! 2's data dir, or on a dir of another cluster, would let it vote twice in one term or replay a
//! foreign log, so opening such a dir is refused.

use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::raft_types::NodeId;

const TREE: &str = "identity";
/// One record rather than two keys, so a crash can never leave half an identity.
const KEY: &str = "identity";

#[derive(Serialize, Deserialize)]
struct Identity {
    node_id: NodeId,
    cluster_name: String,
}

/// Records `node_id` and `cluster_name` in a fresh `db`; on a `db` that already has an identity,
/// fails with [`StoreError::IdentityMismatch`] unless both match.
pub fn check_identity(
    db: &sled::Db,
    node_id: NodeId,
    cluster_name: &str,
) -> Result<(), StoreError> {
    let tree = db.open_tree(TREE)?;
    match tree.get(KEY)? {
        Some(bytes) => {
            let found: Identity =
                serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                    what: "data dir identity",
                    source,
                })?;
            if found.node_id == node_id && found.cluster_name == cluster_name {
                Ok(())
            } else {
                Err(StoreError::IdentityMismatch {
                    found_node: found.node_id,
                    found_cluster: found.cluster_name,
                    node: node_id,
                    cluster: cluster_name.to_owned(),
                })
            }
        }
        None => {
            let identity = Identity {
                node_id,
                cluster_name: cluster_name.to_owned(),
            };
            let bytes = serde_json::to_vec(&identity).map_err(|source| StoreError::Encode {
                what: "data dir identity",
                source,
            })?;
            tree.insert(KEY, bytes)?;
            // Flushed before the node writes any Raft state, so no dir ever holds a vote without
            // the identity of the node that cast it.
            db.flush()?;
            Ok(())
        }
    }
}

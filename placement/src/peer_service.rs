//! The `RaftPeer` gRPC service: hands Raft RPCs from peers to the local openraft instance.
//!
//! Trust boundary: this service is for placement peers only. It accepts any well-formed Raft
//! message, so it must be reachable only on a network the placement nodes share.

use rookery_proto::internal::v1::raft_peer_server::RaftPeer;
use rookery_proto::internal::v1::RaftPayload;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use crate::raft_types::PlacementRaft;

pub struct PeerService {
    raft: PlacementRaft,
}

impl PeerService {
    pub fn new(raft: PlacementRaft) -> PeerService {
        PeerService { raft }
    }
}

fn decode<T: DeserializeOwned>(request: Request<RaftPayload>) -> Result<T, Status> {
    serde_json::from_slice(&request.into_inner().json)
        .map_err(|e| Status::invalid_argument(format!("malformed raft message: {e}")))
}

/// The peer gets Raft's own result (success or Raft error) so it can react as openraft expects.
fn encode<T: Serialize>(result: T) -> Result<Response<RaftPayload>, Status> {
    serde_json::to_vec(&result)
        .map(|json| Response::new(RaftPayload { json }))
        .map_err(|e| Status::internal(format!("cannot encode raft reply: {e}")))
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc = decode(request)?;
        encode(self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc = decode(request)?;
        encode(self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc = decode(request)?;
        encode(self.raft.install_snapshot(rpc).await)
    }
}

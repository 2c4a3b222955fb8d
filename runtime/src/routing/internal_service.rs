//! The `HostInternal` gRPC service: calls other hosts forward to this one as their owner, and
//! the list of this host's activations (for operators and tests). Internal protocol: for
//! cluster members only.

use std::sync::Arc;
use std::time::Duration;

use rookery_proto::internal::v1::host_internal_server::HostInternal;
use rookery_proto::internal::v1::{
    ActorRef, ForwardRequest, ForwardResponse, ListActivationsRequest, ListActivationsResponse,
};
use tonic::{Request, Response, Status};

use crate::grpc::grpc_timeout;
use crate::routing::forward;
use crate::routing::router::{Router, DEFAULT_INVOKE_TIMEOUT_MS};

pub struct HostInternalService {
    router: Arc<Router>,
}

impl HostInternalService {
    pub fn new(router: Arc<Router>) -> HostInternalService {
        HostInternalService { router }
    }
}

#[tonic::async_trait]
impl HostInternal for HostInternalService {
    /// Every outcome of the call is in the answer; only a malformed forward is a gRPC error.
    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardResponse>, Status> {
        let header_timeout = grpc_timeout(request.metadata());
        let request = request.into_inner();
        let timeout = header_timeout
            .or((request.timeout_ms > 0).then(|| Duration::from_millis(request.timeout_ms)))
            .unwrap_or(Duration::from_millis(DEFAULT_INVOKE_TIMEOUT_MS));
        let (call, sender_version) = forward::from_wire(request).map_err(Status::from)?;
        let result = self
            .router
            .serve_forwarded(call, sender_version, timeout)
            .await;
        Ok(Response::new(forward::answer(result)))
    }

    async fn list_activations(
        &self,
        request: Request<ListActivationsRequest>,
    ) -> Result<Response<ListActivationsResponse>, Status> {
        let actor_type = request.into_inner().actor_type;
        let filter = (!actor_type.is_empty()).then_some(actor_type.as_str());
        let actors = self
            .router
            .activations()
            .list(filter)
            .into_iter()
            .map(|key| ActorRef {
                actor_type: key.actor_type,
                actor_id: key.actor_id,
            })
            .collect();
        Ok(Response::new(ListActivationsResponse {
            host_id: self.router.host_id().to_owned(),
            actors,
            table_version: self.router.table().map(|t| t.version().0).unwrap_or(0),
        }))
    }
}

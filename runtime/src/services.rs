//! The host's gRPC services for callers: `Actors` (the client API) and `HostInternal`
//! (calls forwarded between hosts, and the list of activations).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rookery_placement::table::TableVersion;
use rookery_proto::v1::actors_server::Actors;
use rookery_proto::v1::host_internal_server::HostInternal;
use rookery_proto::v1::{
    ActorRef, ForwardRequest, GetActorStateRequest, GetActorStateResponse, InvokeRequest,
    InvokeResponse, ListActivationsRequest, ListActivationsResponse,
};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::actor::{ActorKey, Call, CallKind};
use crate::error::CallError;
use crate::metrics::{CallLabels, HostMetrics};
use crate::router::Router;

/// Metadata key carrying the call chain of an actor's nested calls.
pub const CALL_CHAIN_KEY: &str = "rookery-call-chain";

fn to_call(request: InvokeRequest, call_chain_id: String) -> Call {
    Call {
        key: ActorKey {
            actor_type: request.actor_type,
            actor_id: request.actor_id,
        },
        method: request.method,
        data: Bytes::from(request.data),
        metadata: request.metadata,
        call_chain_id,
        kind: CallKind::Method,
    }
}

/// The caller's deadline, from the standard `grpc-timeout` header (e.g. `250m`, `5S`).
pub fn grpc_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    if value.len() < 2 {
        return None;
    }
    let (amount, unit) = value.split_at(value.len() - 1);
    let amount: u64 = amount.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

fn outcome(result: &Result<Bytes, CallError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(CallError::Application(_)) => "application_error",
        Err(CallError::UnknownType(_)) => "not_found",
        Err(CallError::InvalidArgument(_)) => "invalid_argument",
        Err(CallError::TooLarge(_)) => "too_large",
        Err(CallError::DeadlineExceeded(_)) => "deadline_exceeded",
        Err(CallError::Unavailable(_) | CallError::Moved(_) | CallError::AppDisconnected(_)) => {
            "unavailable"
        }
        Err(CallError::Reentrancy(_)) => "reentrancy",
        Err(CallError::Overloaded(_)) => "overloaded",
        Err(CallError::FailedPrecondition(_)) => "failed_precondition",
        Err(CallError::Fenced(_)) => "fenced",
        Err(CallError::StoreUnavailable(_)) => "state_store_unavailable",
        Err(CallError::Internal(_)) => "internal",
    }
}

pub struct ActorsService {
    router: Arc<Router>,
    metrics: Arc<HostMetrics>,
}

impl ActorsService {
    pub fn new(router: Arc<Router>, metrics: Arc<HostMetrics>) -> ActorsService {
        ActorsService { router, metrics }
    }
}

#[tonic::async_trait]
impl Actors for ActorsService {
    async fn invoke(
        &self,
        request: Request<InvokeRequest>,
    ) -> Result<Response<InvokeResponse>, Status> {
        let started = Instant::now();
        let timeout = grpc_timeout(request.metadata());
        let request = request.into_inner();
        let chain = request
            .metadata
            .get(CALL_CHAIN_KEY)
            .cloned()
            .unwrap_or_default();
        let actor_type = request.actor_type.clone();
        let result = self.router.invoke(to_call(request, chain), timeout).await;
        self.metrics
            .call_latency_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .calls_total
            .get_or_create(&CallLabels {
                actor_type,
                outcome: outcome(&result),
            })
            .inc();
        result
            .map(|data| {
                Response::new(InvokeResponse {
                    data: data.to_vec(),
                })
            })
            .map_err(Status::from)
    }

    /// Reads a key of an actor's state from this host's store: with PostgreSQL, what any host
    /// committed; with sled, what this host's activations committed.
    async fn get_state(
        &self,
        request: Request<GetActorStateRequest>,
    ) -> Result<Response<GetActorStateResponse>, Status> {
        let request = request.into_inner();
        if request.actor_type.is_empty() || request.actor_id.is_empty() {
            return Err(Status::invalid_argument(
                "actor_type and actor_id must not be empty",
            ));
        }
        let access = self.router.activations().state().ok_or_else(|| {
            Status::failed_precondition("this host has no state store configured")
        })?;
        crate::state::validate_key(&request.key).map_err(|e| Status::from(CallError::from(e)))?;
        let key = ActorKey::new(request.actor_type, request.actor_id);
        let value = access
            .store
            .get(&key, &request.key)
            .await
            .map_err(|e| Status::from(CallError::from(e)))?;
        Ok(Response::new(GetActorStateResponse {
            found: value.is_some(),
            data: value.map(|v| v.to_vec()).unwrap_or_default(),
        }))
    }
}

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
    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<InvokeResponse>, Status> {
        let header_timeout = grpc_timeout(request.metadata());
        let forward = request.into_inner();
        let invoke = forward
            .request
            .ok_or_else(|| Status::invalid_argument("forward without a request"))?;
        let timeout = header_timeout
            .or((forward.timeout_ms > 0).then(|| Duration::from_millis(forward.timeout_ms)))
            .unwrap_or(Duration::from_millis(
                crate::router::DEFAULT_INVOKE_TIMEOUT_MS,
            ));
        let mut call = to_call(invoke, forward.call_chain_id);
        if call.metadata.remove(crate::actor::WAKE_KEY).is_some() {
            call.kind = CallKind::Wake;
        }
        self.router
            .serve_forwarded(call, TableVersion(forward.table_version), timeout)
            .await
            .map(|data| {
                Response::new(InvokeResponse {
                    data: data.to_vec(),
                })
            })
            .map_err(Status::from)
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

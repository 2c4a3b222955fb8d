//! The `Actors` gRPC service: the client API every host serves (call any actor, read a key
//! of its state).
//!
//! Client metadata is passed to the actor as is, but keys starting with `rookery-` are
//! reserved: only `rookery-call-chain` (an actor's nested call passing on its chain) is
//! accepted, any other is refused, so no client can reach the host's own machinery.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rookery_proto::v1::actors_server::Actors;
use rookery_proto::v1::{
    GetActorStateRequest, GetActorStateResponse, InvokeRequest, InvokeResponse,
};
use tonic::{Request, Response, Status};

use crate::call::{trace, ActorKey, Call, CallKind};
use crate::channels::actor_api::ActorApi;
use crate::error::CallError;
use crate::grpc::grpc_timeout;
use crate::metrics::{CallLabels, HostMetrics};
use crate::routing::Router;

/// Metadata key carrying the call chain of an actor's nested calls.
pub const CALL_CHAIN_KEY: &str = "rookery-call-chain";
/// The prefix of metadata keys reserved for the host.
pub const RESERVED_METADATA_PREFIX: &str = "rookery-";

/// The call a client's request asks for. Reserved metadata other than the call chain is
/// refused.
fn to_call(request: InvokeRequest) -> Result<Call, CallError> {
    if let Some(reserved) = request
        .metadata
        .keys()
        .find(|k| k.starts_with(RESERVED_METADATA_PREFIX) && k.as_str() != CALL_CHAIN_KEY)
    {
        return Err(CallError::InvalidArgument(format!(
            "metadata key {reserved:?} is reserved (keys starting with {RESERVED_METADATA_PREFIX:?}, other than {CALL_CHAIN_KEY:?})"
        )));
    }
    let call_chain_id = request
        .metadata
        .get(CALL_CHAIN_KEY)
        .cloned()
        .unwrap_or_default();
    Ok(Call {
        key: ActorKey {
            actor_type: request.actor_type,
            actor_id: request.actor_id,
        },
        method: request.method,
        data: Bytes::from(request.data),
        metadata: request.metadata,
        call_chain_id,
        kind: CallKind::Method,
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
        Err(
            CallError::Unavailable(_)
            | CallError::Moved(_)
            | CallError::AppDisconnected(_)
            | CallError::OwnerLost(_)
            | CallError::CircuitOpen(_),
        ) => "unavailable",
        Err(CallError::Reentrancy(_) | CallError::StackDepth(_)) => "reentrancy",
        Err(CallError::Overloaded(_)) => "overloaded",
        Err(CallError::FailedPrecondition(_) | CallError::NotActive(_)) => "failed_precondition",
        Err(CallError::Fenced(_)) => "fenced",
        Err(CallError::StoreUnavailable(_)) => "state_store_unavailable",
        Err(CallError::Internal(_)) => "internal",
    }
}

pub struct ActorsService {
    router: Arc<Router>,
    api: ActorApi,
    metrics: Arc<HostMetrics>,
}

impl ActorsService {
    pub fn new(router: Arc<Router>, api: ActorApi, metrics: Arc<HostMetrics>) -> ActorsService {
        ActorsService {
            router,
            api,
            metrics,
        }
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
        let mut trace_headers = std::collections::HashMap::new();
        trace::carry(&mut trace_headers, |name| {
            request.metadata().get(name).and_then(|v| v.to_str().ok())
        });
        let request = request.into_inner();
        let actor_type = request.actor_type.clone();
        let result = match to_call(request) {
            Ok(mut call) => {
                // The trace context of the gRPC metadata, unless the call's metadata has one.
                trace::carry(&mut call.metadata, |name| {
                    trace_headers.get(name).map(String::as_str)
                });
                self.router.invoke(call, timeout).await
            }
            Err(refused) => Err(refused),
        };
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
        let key = ActorKey::new(request.actor_type, request.actor_id);
        let value = self.api.read_state(&key, &request.key).await?;
        Ok(Response::new(GetActorStateResponse {
            found: value.is_some(),
            data: value.map(|v| v.to_vec()).unwrap_or_default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(metadata: &[(&str, &str)]) -> InvokeRequest {
        InvokeRequest {
            actor_type: "Counter".into(),
            actor_id: "c1".into(),
            method: "get".into(),
            data: Vec::new(),
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn reserved_metadata_from_a_client_is_refused() {
        for key in ["rookery-wake", "rookery-moved", "rookery-error"] {
            let refused = to_call(request(&[(key, "1")]));
            assert!(
                matches!(&refused, Err(CallError::InvalidArgument(m)) if m.contains(key)),
                "{key}: {refused:?}"
            );
        }
    }

    #[test]
    fn the_call_chain_and_other_metadata_pass() {
        let call =
            to_call(request(&[(CALL_CHAIN_KEY, "chain-1"), ("tenant", "t1")])).expect("accepted");
        assert_eq!(call.call_chain_id, "chain-1");
        assert_eq!(call.kind, CallKind::Method);
        assert_eq!(call.metadata.get("tenant").map(String::as_str), Some("t1"));
    }
}

//! Dapr's gRPC actor and Jobs RPCs (`dapr.proto.runtime.v1.Dapr`) on the host's gRPC port,
//! the port Dapr SDKs and clients know as daprd's 50001.
//!
//! [`DaprGrpcService`] turns each RPC into one operation of [`DaprActors`] (shared with the
//! HTTP API) and each failure into daprd's status ([`DaprError`]'s gRPC code and message). What
//! is particular to gRPC lives here:
//! - the API token: with `--api-token` set, every RPC needs metadata `dapr-api-token`, else
//!   UNAUTHENTICATED with daprd's messages;
//! - reminder and timer `data`: bytes, stored and delivered as a base64 JSON string, as daprd
//!   does (it `json.Marshal`s the bytes), so the app gets `"data":"<base64>"`;
//! - state transactions: `operationType` `upsert`/`delete` (anything else UNIMPLEMENTED), the
//!   upsert value is the `Any`'s raw `value`, `ttlInSeconds` metadata becomes the value's ttl;
//! - `GetActorState` answers OK with empty `data` for a key without a value (no NOT_FOUND);
//! - jobs (`ScheduleJobAlpha1`, `GetJobAlpha1`, `DeleteJobAlpha1`, `ListJobsAlpha1`): a job's
//!   `data` `Any` is stored as is ([`super::jobs`]); a bad job is INVALID_ARGUMENT with the
//!   field in the message, a name taken without `overwrite` ALREADY_EXISTS, a missing job
//!   NOT_FOUND on get and OK on delete (as daprd); jobs are listed by name.
//!
//! The other methods of Dapr's service are not declared in Rookery's `dapr.proto`, so tonic
//! answers them UNIMPLEMENTED.

use std::collections::HashMap;

use axum::http::StatusCode;
use bytes::Bytes;
use rookery_proto::dapr::proto::runtime::v1 as pb;
use rookery_proto::google::protobuf::Empty;
use tonic::{Code, Request, Response, Status};

use super::actors::{
    DaprActors, Metadata, ReminderRegistration, API_TOKEN_HEADER, REENTRANCY_ID_HEADER,
};
use super::errors::{DaprError, JobOp};
use super::jobs;
use crate::call::trace;
use crate::dapr_wire::bytes_as_json;
use crate::state::StateOp;

pub use pb::dapr_server::DaprServer;

/// The metadata key of an upsert's ttl, in seconds (`-1`: never expires).
pub const TTL_METADATA_KEY: &str = "ttlInSeconds";

/// The `Dapr` gRPC service of one host.
#[derive(Clone)]
pub struct DaprGrpcService {
    actors: DaprActors,
}

impl DaprGrpcService {
    pub fn new(actors: DaprActors) -> DaprGrpcService {
        DaprGrpcService { actors }
    }

    /// UNAUTHENTICATED unless the request carries the host's API token (when it has one).
    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let token = request.metadata().get(API_TOKEN_HEADER);
        if self.actors.token_accepted(token.map(|t| t.as_bytes())) {
            Ok(())
        } else {
            Err(token_refused(token.is_some()))
        }
    }
}

/// daprd's answers to a missing or wrong API token.
fn token_refused(present: bool) -> Status {
    if present {
        Status::unauthenticated("authentication error: api token mismatch")
    } else {
        Status::unauthenticated("missing api token in request metadata")
    }
}

/// The reentrancy id of an InvokeActor (`Dapr-Reentrancy-Id`; the key matched as HTTP headers
/// are, ignoring case), if it names one.
fn reentrancy_id(metadata: &HashMap<String, String>) -> Option<String> {
    metadata
        .get(REENTRANCY_ID_HEADER)
        .or_else(|| {
            metadata
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(REENTRANCY_ID_HEADER))
                .map(|(_, value)| value)
        })
        .filter(|id| !id.is_empty())
        .cloned()
}

/// Why a transaction's operations cannot be applied, before they reach the store.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateOpError {
    /// An `operationType` other than `upsert` and `delete`.
    #[error("operation type {0} not supported")]
    Unsupported(String),
    /// An operation without a key.
    #[error("missing key")]
    MissingKey,
    /// A `ttlInSeconds` that is not an integer of -1 or more.
    #[error("incorrect value for metadata '{TTL_METADATA_KEY}': {0:?} (must be an integer, -1 or greater)")]
    BadTtl(String),
}

impl From<StateOpError> for DaprError {
    fn from(error: StateOpError) -> DaprError {
        match error {
            // daprd answers with a kit error of its own code (UNIMPLEMENTED, HTTP 500).
            StateOpError::Unsupported(_) => DaprError::new(
                "ERR_NOT_SUPPORTED_STATE_OPERATION",
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::Unimplemented,
                error.to_string(),
            ),
            StateOpError::MissingKey | StateOpError::BadTtl(_) => DaprError::new(
                "ERR_ACTOR_STATE_TRANSACTION_SAVE",
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::Internal,
                format!("error saving actor transaction state: {error}"),
            ),
        }
    }
}

/// The ttl an upsert's metadata asks for: `None` without `ttlInSeconds`, or with `-1`.
fn ttl_seconds(metadata: &HashMap<String, String>) -> Result<Option<u64>, StateOpError> {
    let Some(raw) = metadata.get(TTL_METADATA_KEY).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match raw.trim().parse::<i64>() {
        Ok(-1) => Ok(None),
        Ok(seconds) => u64::try_from(seconds)
            .map(Some)
            .map_err(|_| StateOpError::BadTtl(raw.clone())),
        Err(_) => Err(StateOpError::BadTtl(raw.clone())),
    }
}

/// A transaction's operations as Rookery's state operations.
pub fn state_ops(
    operations: Vec<pb::TransactionalActorStateOperation>,
) -> Result<Vec<StateOp>, StateOpError> {
    operations
        .into_iter()
        .map(|op| match op.operation_type.as_str() {
            "upsert" | "delete" if op.key.is_empty() => Err(StateOpError::MissingKey),
            "upsert" => Ok(StateOp::Upsert {
                ttl_seconds: ttl_seconds(&op.metadata)?,
                key: op.key,
                value: op
                    .value
                    .map(|any| Bytes::from(any.value))
                    .unwrap_or_default(),
            }),
            "delete" => Ok(StateOp::Delete { key: op.key }),
            other => Err(StateOpError::Unsupported(other.to_owned())),
        })
        .collect()
}

/// `GetMetadata`'s answer: the counts go in both the deprecated `active_actors_count` (which
/// the Python SDK reads) and `actor_runtime.active_actors`.
fn metadata_response(metadata: Metadata) -> pb::GetMetadataResponse {
    let counts: Vec<pb::ActiveActorsCount> = metadata
        .actors
        .into_iter()
        .map(|actors| pb::ActiveActorsCount {
            r#type: actors.actor_type,
            count: i32::try_from(actors.count).unwrap_or(i32::MAX),
        })
        .collect();
    let placement = if metadata.placement_connected {
        "placement: connected"
    } else {
        "placement: disconnected"
    };
    #[allow(deprecated)]
    pb::GetMetadataResponse {
        id: metadata.app_id,
        active_actors_count: counts.clone(),
        runtime_version: metadata.runtime_version.to_owned(),
        actor_runtime: Some(pb::ActorRuntime {
            runtime_status: pb::actor_runtime::ActorRuntimeStatus::Running.into(),
            active_actors: counts,
            host_ready: metadata.host_ready,
            placement: placement.to_owned(),
        }),
    }
}

#[tonic::async_trait]
impl pb::dapr_server::Dapr for DaprGrpcService {
    async fn invoke_actor(
        &self,
        request: Request<pb::InvokeActorRequest>,
    ) -> Result<Response<pb::InvokeActorResponse>, Status> {
        self.authorize(&request)?;
        // The trace context: in the request's metadata map, else in its gRPC metadata.
        let mut metadata = HashMap::new();
        trace::carry(&mut metadata, |name| {
            request.get_ref().metadata.get(name).map(String::as_str)
        });
        trace::carry(&mut metadata, |name| {
            request.metadata().get(name).and_then(|v| v.to_str().ok())
        });
        let request = request.into_inner();
        let data = self
            .actors
            .invoke(
                &request.actor_type,
                &request.actor_id,
                &request.method,
                Bytes::from(request.data),
                reentrancy_id(&request.metadata),
                metadata,
            )
            .await?;
        Ok(Response::new(pb::InvokeActorResponse {
            data: data.to_vec(),
        }))
    }

    async fn register_actor_timer(
        &self,
        request: Request<pb::RegisterActorTimerRequest>,
    ) -> Result<Response<Empty>, Status> {
        self.authorize(&request)?;
        let r = request.into_inner();
        self.actors.create_timer(
            &r.actor_type,
            &r.actor_id,
            &r.name,
            &r.due_time,
            &r.period,
            &r.ttl,
            &r.callback,
            bytes_as_json(&r.data),
        )?;
        Ok(Response::new(Empty {}))
    }

    async fn unregister_actor_timer(
        &self,
        request: Request<pb::UnregisterActorTimerRequest>,
    ) -> Result<Response<Empty>, Status> {
        self.authorize(&request)?;
        let r = request.into_inner();
        self.actors
            .delete_timer(&r.actor_type, &r.actor_id, &r.name)?;
        Ok(Response::new(Empty {}))
    }

    async fn register_actor_reminder(
        &self,
        request: Request<pb::RegisterActorReminderRequest>,
    ) -> Result<Response<Empty>, Status> {
        self.authorize(&request)?;
        let r = request.into_inner();
        if r.name.is_empty() {
            return Err(DaprError::bad_request("reminder name cannot be empty").into());
        }
        let registration = ReminderRegistration {
            due_time: r.due_time,
            period: r.period,
            ttl: r.ttl,
            data: bytes_as_json(&r.data),
            overwrite: r.overwrite.unwrap_or(true),
        };
        self.actors
            .create_reminder(&r.actor_type, &r.actor_id, &r.name, registration)
            .await?;
        Ok(Response::new(Empty {}))
    }

    async fn unregister_actor_reminder(
        &self,
        request: Request<pb::UnregisterActorReminderRequest>,
    ) -> Result<Response<Empty>, Status> {
        self.authorize(&request)?;
        let r = request.into_inner();
        self.actors
            .delete_reminder(&r.actor_type, &r.actor_id, &r.name)
            .await?;
        Ok(Response::new(Empty {}))
    }

    async fn get_actor_state(
        &self,
        request: Request<pb::GetActorStateRequest>,
    ) -> Result<Response<pb::GetActorStateResponse>, Status> {
        self.authorize(&request)?;
        let r = request.into_inner();
        let value = self
            .actors
            .get_state(&r.actor_type, &r.actor_id, &r.key)
            .await?;
        Ok(Response::new(pb::GetActorStateResponse {
            data: value.map(|v| v.to_vec()).unwrap_or_default(),
            metadata: HashMap::new(),
        }))
    }

    async fn execute_actor_state_transaction(
        &self,
        request: Request<pb::ExecuteActorStateTransactionRequest>,
    ) -> Result<Response<Empty>, Status> {
        self.authorize(&request)?;
        let r = request.into_inner();
        let operations = state_ops(r.operations).map_err(DaprError::from)?;
        self.actors
            .transact_state(&r.actor_type, &r.actor_id, operations)
            .await?;
        Ok(Response::new(Empty {}))
    }

    async fn schedule_job_alpha1(
        &self,
        request: Request<pb::ScheduleJobRequest>,
    ) -> Result<Response<pb::ScheduleJobResponse>, Status> {
        self.authorize(&request)?;
        let input = jobs::input_from_grpc(request.into_inner())?;
        self.actors
            .jobs()
            .schedule(input, rookery_core::clock::now_ms())
            .await
            .map_err(|e| DaprError::job(JobOp::Schedule, e))?;
        Ok(Response::new(pb::ScheduleJobResponse {}))
    }

    async fn get_job_alpha1(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::GetJobResponse>, Status> {
        self.authorize(&request)?;
        let name = request.into_inner().name;
        jobs::check_name(JobOp::Get, &name)?;
        let spec = self
            .actors
            .jobs()
            .get(&name)
            .await
            .map_err(|e| DaprError::job(JobOp::Get, e))?;
        Ok(Response::new(pb::GetJobResponse {
            job: Some(jobs::job_to_wire(&spec)),
        }))
    }

    async fn delete_job_alpha1(
        &self,
        request: Request<pb::DeleteJobRequest>,
    ) -> Result<Response<pb::DeleteJobResponse>, Status> {
        self.authorize(&request)?;
        let name = request.into_inner().name;
        jobs::check_name(JobOp::Delete, &name)?;
        self.actors
            .jobs()
            .delete(&name)
            .await
            .map_err(|e| DaprError::job(JobOp::Delete, e))?;
        Ok(Response::new(pb::DeleteJobResponse {}))
    }

    async fn list_jobs_alpha1(
        &self,
        request: Request<pb::ListJobsRequestAlpha1>,
    ) -> Result<Response<pb::ListJobsResponseAlpha1>, Status> {
        self.authorize(&request)?;
        let mut specs = self
            .actors
            .jobs()
            .list()
            .await
            .map_err(|e| DaprError::job(JobOp::List, e))?;
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Response::new(pb::ListJobsResponseAlpha1 {
            jobs: specs.iter().map(jobs::job_to_wire).collect(),
        }))
    }

    async fn get_metadata(
        &self,
        request: Request<pb::GetMetadataRequest>,
    ) -> Result<Response<pb::GetMetadataResponse>, Status> {
        self.authorize(&request)?;
        Ok(Response::new(metadata_response(self.actors.metadata())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::dapr::actors::{ActiveActors, RUNTIME_VERSION};
    use rookery_proto::google::protobuf::Any;

    fn op(
        kind: &str,
        key: &str,
        value: Option<&[u8]>,
        meta: &[(&str, &str)],
    ) -> pb::TransactionalActorStateOperation {
        pb::TransactionalActorStateOperation {
            operation_type: kind.to_owned(),
            key: key.to_owned(),
            value: value.map(|v| Any {
                type_url: "ignored".to_owned(),
                value: v.to_vec(),
            }),
            metadata: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn transaction_operations_convert_with_raw_values_and_ttls() {
        let ops = state_ops(vec![
            op("upsert", "a", Some(br#"{"x":1}"#), &[]),
            op("upsert", "b", Some(b"\"v\""), &[("ttlInSeconds", "60")]),
            op("upsert", "c", None, &[("ttlInSeconds", "-1")]),
            op("delete", "d", Some(b"ignored"), &[]),
        ])
        .unwrap();
        assert_eq!(
            ops,
            vec![
                StateOp::Upsert {
                    key: "a".into(),
                    value: Bytes::from_static(br#"{"x":1}"#),
                    ttl_seconds: None
                },
                StateOp::Upsert {
                    key: "b".into(),
                    value: Bytes::from_static(b"\"v\""),
                    ttl_seconds: Some(60)
                },
                StateOp::Upsert {
                    key: "c".into(),
                    value: Bytes::new(),
                    ttl_seconds: None
                },
                StateOp::Delete { key: "d".into() },
            ]
        );
    }

    #[test]
    fn unknown_operations_are_unimplemented_and_bad_ttls_internal() {
        let error = state_ops(vec![
            op("upsert", "a", None, &[]),
            op("merge", "b", None, &[]),
        ])
        .unwrap_err();
        assert_eq!(error, StateOpError::Unsupported("merge".into()));
        let status = DaprError::from(error).to_status();
        assert_eq!(status.code(), Code::Unimplemented);
        assert_eq!(status.message(), "operation type merge not supported");
        assert_eq!(
            state_ops(vec![op("delete", "", None, &[])]).unwrap_err(),
            StateOpError::MissingKey
        );
        for bad in ["soon", "-2", "1.5"] {
            let error =
                state_ops(vec![op("upsert", "a", None, &[("ttlInSeconds", bad)])]).unwrap_err();
            assert_eq!(error, StateOpError::BadTtl(bad.into()));
            let status = DaprError::from(error).to_status();
            assert_eq!(status.code(), Code::Internal);
            assert!(
                status
                    .message()
                    .starts_with("error saving actor transaction state: "),
                "{status:?}"
            );
        }
    }

    #[test]
    fn the_reentrancy_id_is_read_from_the_metadata_map() {
        let map = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            reentrancy_id(&map(&[("Dapr-Reentrancy-Id", "r1"), ("other", "x")])),
            Some("r1".into())
        );
        assert_eq!(
            reentrancy_id(&map(&[("dapr-reentrancy-id", "r2")])),
            Some("r2".into())
        );
        assert_eq!(reentrancy_id(&map(&[("Dapr-Reentrancy-Id", "")])), None);
        assert_eq!(reentrancy_id(&map(&[])), None);
    }

    #[test]
    fn tokens_are_refused_with_daprds_messages() {
        let missing = token_refused(false);
        assert_eq!(missing.code(), Code::Unauthenticated);
        assert_eq!(missing.message(), "missing api token in request metadata");
        let wrong = token_refused(true);
        assert_eq!(wrong.code(), Code::Unauthenticated);
        assert_eq!(wrong.message(), "authentication error: api token mismatch");
    }

    #[test]
    #[allow(deprecated)]
    fn metadata_fills_both_count_lists() {
        let response = metadata_response(Metadata {
            app_id: "app".into(),
            runtime_version: RUNTIME_VERSION,
            actors: vec![
                ActiveActors {
                    actor_type: "Counter".into(),
                    count: 2,
                },
                ActiveActors {
                    actor_type: "Idle".into(),
                    count: 0,
                },
            ],
            placement_connected: false,
            host_ready: true,
        });
        assert_eq!(response.id, "app");
        assert_eq!(response.runtime_version, RUNTIME_VERSION);
        let counts: Vec<(String, i32)> = response
            .active_actors_count
            .iter()
            .map(|c| (c.r#type.clone(), c.count))
            .collect();
        assert_eq!(counts, vec![("Counter".into(), 2), ("Idle".into(), 0)]);
        let runtime = response.actor_runtime.expect("actor runtime");
        assert_eq!(runtime.active_actors, response.active_actors_count);
        assert_eq!(
            runtime.runtime_status,
            i32::from(pb::actor_runtime::ActorRuntimeStatus::Running)
        );
        assert!(runtime.host_ready);
        assert_eq!(runtime.placement, "placement: disconnected");
    }
}

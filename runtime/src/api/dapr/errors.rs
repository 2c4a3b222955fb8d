//! Errors as daprd sends them: an `errorCode` and a message, with the HTTP status and gRPC
//! code daprd pairs with each code, so Dapr SDKs and clients see what they expect. HTTP bodies
//! are `{"errorCode": …, "message": …}`; gRPC errors a status with the code and message.
//!
//! One place maps Rookery's errors to them: [`DaprError::invoke`] for actor calls,
//! [`DaprError::state_transaction`] and friends for the actor-side operations, and
//! [`DaprError::job`] for the Jobs API.
//!
//! # Jobs API codes
//!
//! The codes are daprd's (`dapr/dapr` `pkg/messages/errorcodes`, "Scheduler/Jobs API"):
//! `DAPR_SCHEDULER_SCHEDULE_JOB`, `DAPR_SCHEDULER_GET_JOB`, `DAPR_SCHEDULER_LIST_JOBS`,
//! `DAPR_SCHEDULER_DELETE_JOB` for the failures of each operation, and
//! `DAPR_SCHEDULER_JOB_NAME_EMPTY`, `DAPR_SCHEDULER_JOB_NAME`, `DAPR_SCHEDULER_EMPTY` and
//! `DAPR_SCHEDULER_SCHEDULE_EMPTY` for the checks daprd makes itself, with daprd's message
//! prefix (`failed to schedule job due to: …`). daprd answers every failure of the Scheduler
//! with 500 / INTERNAL; Rookery tells them apart: a job refused by its checks is 400 /
//! INVALID_ARGUMENT (the message names the field), a name taken without `overwrite` 409 /
//! ALREADY_EXISTS, a job not found 404 / NOT_FOUND, a host without an app id 412 /
//! FAILED_PRECONDITION, the placement service out of reach 503 / UNAVAILABLE.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tonic::Code;

use crate::error::CallError;
use crate::jobs::JobsError;
use rookery_core::jobs::JobError;

/// A Jobs API operation, for the code and message of its errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobOp {
    Schedule,
    Get,
    List,
    Delete,
}

impl JobOp {
    /// daprd's code for the operation's failures.
    pub fn code(self) -> &'static str {
        match self {
            JobOp::Schedule => "DAPR_SCHEDULER_SCHEDULE_JOB",
            JobOp::Get => "DAPR_SCHEDULER_GET_JOB",
            JobOp::List => "DAPR_SCHEDULER_LIST_JOBS",
            JobOp::Delete => "DAPR_SCHEDULER_DELETE_JOB",
        }
    }

    /// daprd's message prefix for the operation's failures.
    fn what(self) -> &'static str {
        match self {
            JobOp::Schedule => "failed to schedule job",
            JobOp::Get => "failed to get job",
            JobOp::List => "failed to list jobs",
            JobOp::Delete => "failed to delete job",
        }
    }
}

/// One error of the Dapr API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaprError {
    /// daprd's error code, e.g. `ERR_ACTOR_INSTANCE_MISSING`.
    pub code: &'static str,
    pub http: StatusCode,
    pub grpc: Code,
    pub message: String,
}

impl DaprError {
    pub fn new(
        code: &'static str,
        http: StatusCode,
        grpc: Code,
        message: impl Into<String>,
    ) -> DaprError {
        DaprError {
            code,
            http,
            grpc,
            message: message.into(),
        }
    }

    /// `ERR_BAD_REQUEST`: an invalid name or parameter.
    pub fn bad_request(message: impl std::fmt::Display) -> DaprError {
        DaprError::new(
            "ERR_BAD_REQUEST",
            StatusCode::BAD_REQUEST,
            Code::InvalidArgument,
            format!("invalid request: {message}"),
        )
    }

    /// `ERR_MALFORMED_REQUEST`: a body that does not deserialize.
    pub fn malformed(message: impl std::fmt::Display) -> DaprError {
        DaprError::new(
            "ERR_MALFORMED_REQUEST",
            StatusCode::BAD_REQUEST,
            Code::InvalidArgument,
            format!("failed deserializing HTTP body: {message}"),
        )
    }

    /// A request body over `--max-request-size`.
    pub fn too_large(message: impl std::fmt::Display) -> DaprError {
        DaprError::new(
            "ERR_BODY_READ",
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::ResourceExhausted,
            format!("failed to read request body: {message}"),
        )
    }

    /// `ERR_ACTOR_INSTANCE_MISSING`: a state or timer request for an actor not active here.
    pub fn instance_missing() -> DaprError {
        DaprError::new(
            "ERR_ACTOR_INSTANCE_MISSING",
            StatusCode::BAD_REQUEST,
            Code::Internal,
            "actor instance is missing",
        )
    }

    /// `ERR_ACTOR_RUNTIME_NOT_FOUND`: this host has no actor state store.
    pub fn no_state_store() -> DaprError {
        DaprError::new(
            "ERR_ACTOR_RUNTIME_NOT_FOUND",
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::Internal,
            "the state store is not configured to use the actor runtime (this host runs with --state-store none)",
        )
    }

    /// `ERR_ACTOR_REMINDER_NON_HOSTED`: reminder operations for a type this host does not serve.
    pub fn reminder_not_hosted() -> DaprError {
        DaprError::new(
            "ERR_ACTOR_REMINDER_NON_HOSTED",
            StatusCode::FORBIDDEN,
            Code::PermissionDenied,
            "operations on actor reminders are only possible on hosted actor types",
        )
    }

    /// The error of an actor method call, as daprd reports it.
    pub fn invoke(error: CallError) -> DaprError {
        let invoke = |http: StatusCode, grpc: Code, message: &str| {
            DaprError::new(
                "ERR_ACTOR_INVOKE_METHOD",
                http,
                grpc,
                format!("error invoke actor method: {message}"),
            )
        };
        match &error {
            CallError::InvalidArgument(m) => DaprError::bad_request(m),
            CallError::TooLarge(m) => DaprError::too_large(m),
            CallError::Application(m) => invoke(
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::Internal,
                &format!("error from actor service: {m}"),
            ),
            CallError::UnknownType(actor_type) => invoke(
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::Internal,
                &format!(
                    "failed to lookup actor: did not find address for actor type {actor_type:?}"
                ),
            ),
            CallError::StackDepth(m) => DaprError::new(
                "ERR_ACTOR_STACK_DEPTH",
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::ResourceExhausted,
                format!("maximum stack depth exceeded: {m}"),
            ),
            CallError::DeadlineExceeded(m) => {
                invoke(StatusCode::INTERNAL_SERVER_ERROR, Code::DeadlineExceeded, m)
            }
            CallError::Overloaded(m) => {
                invoke(StatusCode::TOO_MANY_REQUESTS, Code::ResourceExhausted, m)
            }
            CallError::Unavailable(m)
            | CallError::Moved(m)
            | CallError::AppDisconnected(m)
            | CallError::OwnerLost(m)
            | CallError::CircuitOpen(m)
            | CallError::StoreUnavailable(m) => {
                invoke(StatusCode::INTERNAL_SERVER_ERROR, Code::Unavailable, m)
            }
            other => invoke(
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::Internal,
                &other.to_string(),
            ),
        }
    }

    /// The error of an actor state transaction (`ERR_ACTOR_STATE_TRANSACTION_SAVE`).
    pub fn state_transaction(error: CallError) -> DaprError {
        DaprError::actor_side(
            error,
            "ERR_ACTOR_STATE_TRANSACTION_SAVE",
            "error saving actor transaction state",
        )
    }

    /// The error of an actor state read (`ERR_ACTOR_STATE_GET`).
    pub fn state_get(error: CallError) -> DaprError {
        DaprError::actor_side(error, "ERR_ACTOR_STATE_GET", "error getting actor state")
    }

    /// The error of a timer registration (`ERR_ACTOR_TIMER_CREATE`).
    pub fn timer_create(error: CallError) -> DaprError {
        match error {
            CallError::NotActive(_) => DaprError::new(
                "ERR_ACTOR_TIMER_CREATE",
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::Internal,
                "error creating actor timer: actor instance is missing",
            ),
            other => DaprError::actor_side(
                other,
                "ERR_ACTOR_TIMER_CREATE",
                "error creating actor timer",
            ),
        }
    }

    /// An operation of the actor's own code: not active here, no store, or the operation's
    /// own error code.
    fn actor_side(error: CallError, code: &'static str, what: &str) -> DaprError {
        match error {
            CallError::NotActive(_) => DaprError::instance_missing(),
            CallError::TooLarge(m) => DaprError::too_large(m),
            other => DaprError::new(
                code,
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::Internal,
                format!("{what}: {other}"),
            ),
        }
    }

    /// A reminder operation's error (`ERR_ACTOR_REMINDER_{CREATE,GET,DELETE}`), from the
    /// status the reminder client answers with.
    pub fn reminder(status: tonic::Status, code: &'static str, what: &str) -> DaprError {
        match status.code() {
            Code::AlreadyExists => DaprError::new(
                "ERR_ACTOR_REMINDER_ALREADY_EXISTS",
                StatusCode::CONFLICT,
                Code::AlreadyExists,
                format!("actor reminder already exists: {}", status.message()),
            ),
            Code::NotFound => DaprError::new(
                "ERR_ACTOR_REMINDER_NOT_FOUND",
                StatusCode::NOT_FOUND,
                Code::NotFound,
                format!("actor reminder not found: {}", status.message()),
            ),
            Code::ResourceExhausted => DaprError::too_large(status.message()),
            _ => DaprError::new(
                code,
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::Internal,
                format!("{what}: {}", status.message()),
            ),
        }
    }

    /// The error of a Jobs API operation.
    pub fn job(op: JobOp, error: JobsError) -> DaprError {
        let new =
            |code: &'static str, http: StatusCode, grpc: Code, error: &dyn std::fmt::Display| {
                DaprError::new(code, http, grpc, format!("{} due to: {error}", op.what()))
            };
        match &error {
            JobsError::Invalid(JobError::NoSchedule) => new(
                "DAPR_SCHEDULER_SCHEDULE_EMPTY",
                StatusCode::BAD_REQUEST,
                Code::InvalidArgument,
                &error,
            ),
            JobsError::Invalid(JobError::Name { name, .. }) if name.is_empty() => {
                DaprError::job_name_empty(op)
            }
            JobsError::Invalid(_) => new(
                op.code(),
                StatusCode::BAD_REQUEST,
                Code::InvalidArgument,
                &error,
            ),
            JobsError::AlreadyExists(_) => {
                new(op.code(), StatusCode::CONFLICT, Code::AlreadyExists, &error)
            }
            JobsError::NotFound(_) => new(op.code(), StatusCode::NOT_FOUND, Code::NotFound, &error),
            JobsError::NoApp(_) => new(
                op.code(),
                StatusCode::PRECONDITION_FAILED,
                Code::FailedPrecondition,
                &error,
            ),
            JobsError::Store(status) => {
                let (http, grpc) = match status.code() {
                    Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable),
                    Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, Code::DeadlineExceeded),
                    Code::ResourceExhausted => {
                        (StatusCode::INTERNAL_SERVER_ERROR, Code::ResourceExhausted)
                    }
                    _ => (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal),
                };
                new(op.code(), http, grpc, &error)
            }
        }
    }

    /// `DAPR_SCHEDULER_JOB_NAME_EMPTY`: a job request without a name.
    pub fn job_name_empty(op: JobOp) -> DaprError {
        DaprError::new(
            "DAPR_SCHEDULER_JOB_NAME_EMPTY",
            StatusCode::BAD_REQUEST,
            Code::InvalidArgument,
            format!("{} due to: the job name is empty", op.what()),
        )
    }

    /// `DAPR_SCHEDULER_JOB_NAME_EMPTY` too, as daprd answers a job name with a `|` in it.
    pub fn job_name_with_bar(name: &str) -> DaprError {
        DaprError::new(
            "DAPR_SCHEDULER_JOB_NAME_EMPTY",
            StatusCode::BAD_REQUEST,
            Code::InvalidArgument,
            format!(
                "{} due to: invalid job name {name:?}: '|' is not allowed in a job name",
                JobOp::Schedule.what()
            ),
        )
    }

    /// `DAPR_SCHEDULER_JOB_NAME`: an HTTP request naming its job in the body too.
    pub fn job_name_in_body() -> DaprError {
        DaprError::new(
            "DAPR_SCHEDULER_JOB_NAME",
            StatusCode::BAD_REQUEST,
            Code::InvalidArgument,
            "Set the job name in the url only",
        )
    }

    /// `DAPR_SCHEDULER_EMPTY`: a `ScheduleJobAlpha1` without a job.
    pub fn job_empty() -> DaprError {
        DaprError::new(
            "DAPR_SCHEDULER_EMPTY",
            StatusCode::BAD_REQUEST,
            Code::InvalidArgument,
            format!("{} due to: the request has no job", JobOp::Schedule.what()),
        )
    }

    /// The error as a gRPC status.
    pub fn to_status(&self) -> tonic::Status {
        tonic::Status::new(self.grpc, self.message.clone())
    }
}

impl IntoResponse for DaprError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"errorCode": self.code, "message": self.message});
        (self.http, axum::Json(body)).into_response()
    }
}

impl From<DaprError> for tonic::Status {
    fn from(error: DaprError) -> tonic::Status {
        error.to_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actor_not_active_here_is_instance_missing() {
        let error = DaprError::state_transaction(CallError::NotActive("a/1".into()));
        assert_eq!(error.code, "ERR_ACTOR_INSTANCE_MISSING");
        assert_eq!(error.http, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn an_application_error_is_invoke_method_500() {
        let error = DaprError::invoke(CallError::Application("(500) boom".into()));
        assert_eq!(error.code, "ERR_ACTOR_INVOKE_METHOD");
        assert_eq!(error.http, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(error.grpc, Code::Internal);
        assert!(
            error
                .message
                .contains("error from actor service: (500) boom"),
            "{error:?}"
        );
    }

    #[test]
    fn reminder_conflicts_and_misses_keep_their_codes() {
        let exists = DaprError::reminder(
            tonic::Status::already_exists("r"),
            "ERR_ACTOR_REMINDER_CREATE",
            "error creating actor reminder",
        );
        assert_eq!(
            (exists.code, exists.http),
            ("ERR_ACTOR_REMINDER_ALREADY_EXISTS", StatusCode::CONFLICT)
        );
        let missing = DaprError::reminder(
            tonic::Status::not_found("r"),
            "ERR_ACTOR_REMINDER_GET",
            "error getting actor reminder",
        );
        assert_eq!(
            (missing.code, missing.http),
            ("ERR_ACTOR_REMINDER_NOT_FOUND", StatusCode::NOT_FOUND)
        );
        let bad = DaprError::reminder(
            tonic::Status::invalid_argument("dueTime"),
            "ERR_ACTOR_REMINDER_CREATE",
            "error creating actor reminder",
        );
        assert_eq!(
            (bad.code, bad.http),
            (
                "ERR_ACTOR_REMINDER_CREATE",
                StatusCode::INTERNAL_SERVER_ERROR
            )
        );
    }

    #[test]
    fn job_errors_keep_daprds_codes_with_telling_statuses() {
        let invalid = DaprError::job(
            JobOp::Schedule,
            JobsError::Invalid(JobError::Repeats {
                value: -1,
                reason: "must be at least 1".into(),
            }),
        );
        assert_eq!(
            (invalid.code, invalid.http, invalid.grpc),
            (
                "DAPR_SCHEDULER_SCHEDULE_JOB",
                StatusCode::BAD_REQUEST,
                Code::InvalidArgument
            )
        );
        assert!(
            invalid
                .message
                .starts_with("failed to schedule job due to: invalid repeats -1"),
            "{invalid:?}"
        );
        let none = DaprError::job(JobOp::Schedule, JobsError::Invalid(JobError::NoSchedule));
        assert_eq!(none.code, "DAPR_SCHEDULER_SCHEDULE_EMPTY");
        let cases = [
            (
                JobOp::Schedule,
                JobsError::AlreadyExists("j".into()),
                "DAPR_SCHEDULER_SCHEDULE_JOB",
                StatusCode::CONFLICT,
                Code::AlreadyExists,
            ),
            (
                JobOp::Get,
                JobsError::NotFound("j".into()),
                "DAPR_SCHEDULER_GET_JOB",
                StatusCode::NOT_FOUND,
                Code::NotFound,
            ),
            (
                JobOp::List,
                JobsError::NoApp("no --app-id".into()),
                "DAPR_SCHEDULER_LIST_JOBS",
                StatusCode::PRECONDITION_FAILED,
                Code::FailedPrecondition,
            ),
            (
                JobOp::Delete,
                JobsError::Store(tonic::Status::unavailable("no leader")),
                "DAPR_SCHEDULER_DELETE_JOB",
                StatusCode::SERVICE_UNAVAILABLE,
                Code::Unavailable,
            ),
            (
                JobOp::Get,
                JobsError::Store(tonic::Status::internal("boom")),
                "DAPR_SCHEDULER_GET_JOB",
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::Internal,
            ),
        ];
        for (op, error, code, http, grpc) in cases {
            let what = format!("{op:?} {error:?}");
            let mapped = DaprError::job(op, error);
            assert_eq!(
                (mapped.code, mapped.http, mapped.grpc),
                (code, http, grpc),
                "{what}"
            );
            assert!(mapped.message.contains(" due to: "), "{mapped:?}");
        }
    }
}

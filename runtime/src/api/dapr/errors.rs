//! Errors as daprd sends them: an `errorCode` and a message, with the HTTP status and gRPC
//! code daprd pairs with each code, so Dapr SDKs and clients see what they expect. HTTP bodies
//! are `{"errorCode": …, "message": …}`; gRPC errors a status with the code and message.
//!
//! One place maps Rookery's errors to them: [`DaprError::invoke`] for actor calls,
//! [`DaprError::state_transaction`] and friends for the actor-side operations.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tonic::Code;

use crate::error::CallError;

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
}

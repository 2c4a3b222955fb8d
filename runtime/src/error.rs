//! Errors of an actor call, and their one mapping to gRPC status codes.
//!
//! Retryable errors (`Moved`, `Unavailable`) are retried by the router until the caller's
//! deadline; the others reach the caller at once.

use tonic::{Code, Status};

/// Response metadata key marking an error returned by the actor's own code.
pub const APPLICATION_ERROR_KEY: &str = "rookery-error";
pub const APPLICATION_ERROR_VALUE: &str = "application";
/// Response metadata key marking "this host does not own the actor; refresh and retry".
pub const MOVED_KEY: &str = "rookery-moved";
/// `rookery-error` value marking a call the app took but never answered (it disconnected).
pub const APP_DISCONNECTED_VALUE: &str = "app-disconnected";
/// `rookery-error` value marking a state write refused because its activation was superseded.
pub const FENCED_VALUE: &str = "fenced";
/// `rookery-error` value marking a call that needed the state store while it was unreachable.
pub const STATE_STORE_VALUE: &str = "state-store";

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("no host serves actor type {0:?}")]
    UnknownType(String),
    #[error("{0}")]
    TooLarge(String),
    /// The actor's own code failed; the message is the actor's.
    #[error("{0}")]
    Application(String),
    #[error("{0}")]
    DeadlineExceeded(String),
    /// Retryable: the owner could not be reached or is not ready.
    #[error("{0}")]
    Unavailable(String),
    /// Retryable: the receiver does not own the actor under its table.
    #[error("{0}")]
    Moved(String),
    /// A same-chain call into a busy actor whose type does not allow reentrancy, or deeper
    /// than the type's limit.
    #[error("{0}")]
    Reentrancy(String),
    #[error("{0}")]
    Overloaded(String),
    /// The app took the call but disconnected before answering: whether it ran is unknown,
    /// so it is not retried.
    #[error("{0}")]
    AppDisconnected(String),
    /// The request cannot be served in the system's current state (e.g. a state request for
    /// an actor not active on this host, or a host without a state store).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A state write from an activation the store no longer recognizes (another activation
    /// claimed the actor since): nothing was written.
    #[error("{0}")]
    Fenced(String),
    /// The state store could not be reached: nothing was written. Not retried by the router,
    /// so callers hear about an outage at once instead of at their deadline.
    #[error("{0}")]
    StoreUnavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl CallError {
    /// Whether the router should try again (until the caller's deadline).
    pub fn is_retryable(&self) -> bool {
        matches!(self, CallError::Unavailable(_) | CallError::Moved(_))
    }

    /// Reads an error back from a forwarded call's status.
    pub fn from_status(status: &Status) -> CallError {
        let message = status.message().to_owned();
        let marked = |key: &str, value: Option<&str>| {
            status
                .metadata()
                .get(key)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| value.is_none_or(|want| v == want))
        };
        match status.code() {
            Code::FailedPrecondition if marked(MOVED_KEY, None) => CallError::Moved(message),
            Code::FailedPrecondition if marked(APPLICATION_ERROR_KEY, Some(FENCED_VALUE)) => {
                CallError::Fenced(message)
            }
            Code::Unavailable if marked(APPLICATION_ERROR_KEY, Some(STATE_STORE_VALUE)) => {
                CallError::StoreUnavailable(message)
            }
            Code::FailedPrecondition => CallError::Reentrancy(message),
            Code::Unknown if marked(APPLICATION_ERROR_KEY, Some(APPLICATION_ERROR_VALUE)) => {
                CallError::Application(message)
            }
            Code::Unavailable if marked(APPLICATION_ERROR_KEY, Some(APP_DISCONNECTED_VALUE)) => {
                CallError::AppDisconnected(message)
            }
            Code::InvalidArgument => CallError::InvalidArgument(message),
            Code::NotFound => CallError::UnknownType(message),
            Code::ResourceExhausted if message.contains("mailbox") => {
                CallError::Overloaded(message)
            }
            Code::ResourceExhausted => CallError::TooLarge(message),
            Code::DeadlineExceeded => CallError::DeadlineExceeded(message),
            // CANCELLED from a forward is the connection to the owner dropping mid-call (the
            // owner died): retryable like UNAVAILABLE.
            Code::Cancelled => CallError::Unavailable(message),
            // A bare UNKNOWN is what tonic reports for a connection that broke mid-call (the
            // peer died): our hosts only send UNKNOWN marked as an application error.
            Code::Unavailable | Code::Aborted | Code::Unknown => CallError::Unavailable(message),
            _ => CallError::Internal(format!("{}: {message}", status.code())),
        }
    }
}

impl From<CallError> for Status {
    fn from(error: CallError) -> Status {
        match error {
            CallError::InvalidArgument(m) => Status::invalid_argument(m),
            e @ CallError::UnknownType(_) => Status::not_found(e.to_string()),
            CallError::TooLarge(m) => Status::resource_exhausted(m),
            CallError::Application(m) => {
                let mut status = Status::unknown(m);
                status.metadata_mut().insert(
                    APPLICATION_ERROR_KEY,
                    tonic::metadata::MetadataValue::from_static(APPLICATION_ERROR_VALUE),
                );
                status
            }
            CallError::DeadlineExceeded(m) => Status::deadline_exceeded(m),
            CallError::Unavailable(m) => Status::unavailable(m),
            CallError::Moved(m) => {
                let mut status = Status::failed_precondition(m);
                status
                    .metadata_mut()
                    .insert(MOVED_KEY, tonic::metadata::MetadataValue::from_static("1"));
                status
            }
            CallError::Reentrancy(m) => Status::failed_precondition(m),
            CallError::Overloaded(m) => Status::resource_exhausted(m),
            CallError::AppDisconnected(m) => {
                let mut status = Status::unavailable(m);
                status.metadata_mut().insert(
                    APPLICATION_ERROR_KEY,
                    tonic::metadata::MetadataValue::from_static(APP_DISCONNECTED_VALUE),
                );
                status
            }
            CallError::FailedPrecondition(m) => Status::failed_precondition(m),
            CallError::Fenced(m) => marked(Status::failed_precondition(m), FENCED_VALUE),
            CallError::StoreUnavailable(m) => marked(Status::unavailable(m), STATE_STORE_VALUE),
            CallError::Internal(m) => Status::internal(m),
        }
    }
}

/// `status` with `rookery-error: <value>`.
fn marked(mut status: Status, value: &'static str) -> Status {
    status.metadata_mut().insert(
        APPLICATION_ERROR_KEY,
        tonic::metadata::MetadataValue::from_static(value),
    );
    status
}

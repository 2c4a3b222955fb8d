//! Errors of an actor call: their one mapping to gRPC status codes for clients, and their
//! typed form between hosts (`ForwardError` of the internal protocol), so no message text or
//! metadata carries meaning from one host to another.
//!
//! Every error says whether the call may have run ([`CallError::may_have_run`]). Only errors
//! of calls that surely did not run are ever sent again: `Moved` is followed until the
//! caller's deadline, and transient ones ([`CallError::is_transient`]) as the resiliency
//! policies say (`crate::resiliency`); the others reach the caller at once.

use rookery_proto::internal::v1::{ForwardError, ForwardErrorKind};
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
/// `rookery-error` value marking a call whose owner host broke off mid-call: it may have run.
pub const OWNER_LOST_VALUE: &str = "owner-lost";
/// `rookery-error` value marking a call refused by an open circuit breaker.
pub const CIRCUIT_OPEN_VALUE: &str = "circuit-open";

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
    /// A same-chain call into a busy actor whose type does not allow reentrancy.
    #[error("{0}")]
    Reentrancy(String),
    /// A re-entrant call nested deeper than the type's `max_reentrancy_depth`.
    #[error("{0}")]
    StackDepth(String),
    #[error("{0}")]
    Overloaded(String),
    /// The app took the call but disconnected before answering: whether it ran is unknown,
    /// so it is not retried.
    #[error("{0}")]
    AppDisconnected(String),
    /// The request cannot be served in the system's current state (e.g. a host without a
    /// state store).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A request of an actor's own code (state, timers) for an actor that is not active on
    /// this host.
    #[error("{0}")]
    NotActive(String),
    /// A state write from an activation the store no longer recognizes (another activation
    /// claimed the actor since): nothing was written.
    #[error("{0}")]
    Fenced(String),
    /// The state store could not be reached: nothing was written. Not retried by the router,
    /// so callers hear about an outage at once instead of at their deadline.
    #[error("{0}")]
    StoreUnavailable(String),
    /// The owner host broke off a forwarded call (it died, or the connection to it broke
    /// after the call was sent): whether it ran is unknown, so it is not retried.
    #[error("{0}")]
    OwnerLost(String),
    /// A circuit breaker of the resiliency policies is open: the call was not attempted.
    #[error("{0}")]
    CircuitOpen(String),
    #[error("{0}")]
    Internal(String),
}

impl CallError {
    /// Whether a failure of this kind may pass if the call is sent again later: what a retry
    /// policy may retry, if the call surely did not run.
    pub fn is_transient(&self) -> bool {
        // Not `StoreUnavailable`: actor code may meet it mid-turn; store operations have their
        // own policies (the component target).
        matches!(self, CallError::Unavailable(_) | CallError::Overloaded(_))
    }

    /// Whether the failure says something about the target's health, so that circuit
    /// breakers count it: not a caller's bad request, a redirect or a refusal by the
    /// breaker itself.
    pub fn counts_as_failure(&self) -> bool {
        !matches!(
            self,
            CallError::InvalidArgument(_)
                | CallError::UnknownType(_)
                | CallError::TooLarge(_)
                | CallError::Moved(_)
                | CallError::Reentrancy(_)
                | CallError::StackDepth(_)
                | CallError::FailedPrecondition(_)
                | CallError::NotActive(_)
                | CallError::Fenced(_)
                | CallError::CircuitOpen(_)
        )
    }

    /// The gRPC code clients get for this error (what retry policies' `gRPCStatusCodes`
    /// match).
    pub fn grpc_code(&self) -> Code {
        Status::from(self.clone()).code()
    }

    /// The HTTP status Dapr's HTTP API answers with for this error (what retry policies'
    /// `httpStatusCodes` match).
    pub fn http_status(&self) -> u16 {
        match self {
            CallError::InvalidArgument(_) => 400,
            CallError::TooLarge(_) => 413,
            CallError::Overloaded(_) => 429,
            _ => 500,
        }
    }

    /// Whether the actor may have started the call that failed so (false: it surely did not,
    /// so sending it again cannot run it twice).
    pub fn may_have_run(&self) -> bool {
        matches!(
            self,
            CallError::Application(_)
                | CallError::DeadlineExceeded(_)
                | CallError::AppDisconnected(_)
                | CallError::Fenced(_)
                | CallError::OwnerLost(_)
                | CallError::Internal(_)
        )
    }

    /// The error as a forwarded call's owner reports it (the internal protocol).
    pub fn to_forward_error(&self) -> ForwardError {
        let kind = match self {
            CallError::InvalidArgument(_) => ForwardErrorKind::InvalidArgument,
            CallError::UnknownType(_) => ForwardErrorKind::UnknownType,
            CallError::TooLarge(_) => ForwardErrorKind::TooLarge,
            CallError::Application(_) => ForwardErrorKind::Application,
            CallError::DeadlineExceeded(_) => ForwardErrorKind::DeadlineExceeded,
            CallError::Unavailable(_) => ForwardErrorKind::Unavailable,
            CallError::Moved(_) => ForwardErrorKind::Moved,
            CallError::Reentrancy(_) => ForwardErrorKind::Reentrancy,
            CallError::StackDepth(_) => ForwardErrorKind::StackDepth,
            CallError::Overloaded(_) => ForwardErrorKind::Overloaded,
            CallError::AppDisconnected(_) => ForwardErrorKind::AppDisconnected,
            CallError::FailedPrecondition(_) => ForwardErrorKind::FailedPrecondition,
            CallError::NotActive(_) => ForwardErrorKind::NotActive,
            CallError::Fenced(_) => ForwardErrorKind::Fenced,
            CallError::StoreUnavailable(_) => ForwardErrorKind::StateStoreUnavailable,
            CallError::OwnerLost(_) => ForwardErrorKind::OwnerLost,
            CallError::CircuitOpen(_) => ForwardErrorKind::CircuitOpen,
            CallError::Internal(_) => ForwardErrorKind::Internal,
        };
        let message = match self {
            // The type name alone: `Display` adds the sentence around it.
            CallError::UnknownType(actor_type) => actor_type.clone(),
            other => other.message().to_owned(),
        };
        ForwardError {
            kind: kind as i32,
            message,
            may_have_run: self.may_have_run(),
        }
    }

    /// An error a forwarded call's owner reported.
    pub fn from_forward_error(error: ForwardError) -> CallError {
        let m = error.message;
        match ForwardErrorKind::try_from(error.kind).unwrap_or(ForwardErrorKind::Unspecified) {
            ForwardErrorKind::InvalidArgument => CallError::InvalidArgument(m),
            ForwardErrorKind::UnknownType => CallError::UnknownType(m),
            ForwardErrorKind::TooLarge => CallError::TooLarge(m),
            ForwardErrorKind::Application => CallError::Application(m),
            ForwardErrorKind::DeadlineExceeded => CallError::DeadlineExceeded(m),
            ForwardErrorKind::Unavailable => CallError::Unavailable(m),
            ForwardErrorKind::Moved => CallError::Moved(m),
            ForwardErrorKind::Reentrancy => CallError::Reentrancy(m),
            ForwardErrorKind::StackDepth => CallError::StackDepth(m),
            ForwardErrorKind::Overloaded => CallError::Overloaded(m),
            ForwardErrorKind::AppDisconnected => CallError::AppDisconnected(m),
            ForwardErrorKind::FailedPrecondition => CallError::FailedPrecondition(m),
            ForwardErrorKind::NotActive => CallError::NotActive(m),
            ForwardErrorKind::Fenced => CallError::Fenced(m),
            ForwardErrorKind::StateStoreUnavailable => CallError::StoreUnavailable(m),
            ForwardErrorKind::OwnerLost => CallError::OwnerLost(m),
            ForwardErrorKind::CircuitOpen => CallError::CircuitOpen(m),
            ForwardErrorKind::Internal => CallError::Internal(m),
            ForwardErrorKind::Unspecified => {
                CallError::Internal(format!("forward failed with an unknown error kind: {m}"))
            }
        }
    }

    /// The failure of a forward itself (no answer from the owner). Retryable (`Unavailable`)
    /// only when the call surely never reached the owner: the connection could not be made,
    /// or the owner refused the stream unprocessed. A connection that broke after the call
    /// was sent (the owner died, a keepalive expired) is `OwnerLost`: it may have run.
    pub fn from_forward_status(status: &Status) -> CallError {
        let message = status.message().to_owned();
        if timed_out(status) {
            return CallError::DeadlineExceeded(message);
        }
        match status.code() {
            Code::DeadlineExceeded => CallError::DeadlineExceeded(message),
            Code::ResourceExhausted => CallError::TooLarge(message),
            code @ (Code::Unavailable
            | Code::Cancelled
            | Code::Aborted
            | Code::Unknown
            | Code::Internal) => match (code, sent(status)) {
                (_, Sent::No) | (Code::Unavailable, Sent::Unknown) => {
                    CallError::Unavailable(message)
                }
                _ => CallError::OwnerLost(format!(
                    "the owner host broke off the call, which may have run: {message}"
                )),
            },
            code => CallError::Internal(format!("forward failed: {code}: {message}")),
        }
    }

    /// The message, without the variant's framing.
    fn message(&self) -> &str {
        match self {
            CallError::InvalidArgument(m)
            | CallError::UnknownType(m)
            | CallError::TooLarge(m)
            | CallError::Application(m)
            | CallError::DeadlineExceeded(m)
            | CallError::Unavailable(m)
            | CallError::Moved(m)
            | CallError::Reentrancy(m)
            | CallError::StackDepth(m)
            | CallError::Overloaded(m)
            | CallError::AppDisconnected(m)
            | CallError::FailedPrecondition(m)
            | CallError::NotActive(m)
            | CallError::Fenced(m)
            | CallError::StoreUnavailable(m)
            | CallError::OwnerLost(m)
            | CallError::CircuitOpen(m)
            | CallError::Internal(m) => m,
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
            CallError::Reentrancy(m) | CallError::StackDepth(m) => Status::failed_precondition(m),
            CallError::Overloaded(m) => Status::resource_exhausted(m),
            CallError::AppDisconnected(m) => {
                let mut status = Status::unavailable(m);
                status.metadata_mut().insert(
                    APPLICATION_ERROR_KEY,
                    tonic::metadata::MetadataValue::from_static(APP_DISCONNECTED_VALUE),
                );
                status
            }
            CallError::FailedPrecondition(m) | CallError::NotActive(m) => {
                Status::failed_precondition(m)
            }
            CallError::Fenced(m) => marked(Status::failed_precondition(m), FENCED_VALUE),
            CallError::StoreUnavailable(m) => marked(Status::unavailable(m), STATE_STORE_VALUE),
            CallError::OwnerLost(m) => marked(Status::unavailable(m), OWNER_LOST_VALUE),
            CallError::CircuitOpen(m) => marked(Status::unavailable(m), CIRCUIT_OPEN_VALUE),
            CallError::Internal(m) => Status::internal(m),
        }
    }
}

/// Whether the forward ended because its own deadline passed (tonic reports that as
/// CANCELLED with a `TimeoutExpired` source).
fn timed_out(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.downcast_ref::<tonic::TimeoutExpired>().is_some() {
            return true;
        }
        source = error.source();
    }
    false
}

/// `status` with `rookery-error: <value>`.
fn marked(mut status: Status, value: &'static str) -> Status {
    status.metadata_mut().insert(
        APPLICATION_ERROR_KEY,
        tonic::metadata::MetadataValue::from_static(value),
    );
    status
}

/// What a forward's failure tells of whether the call left this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    /// Surely not: the connection could not be made (`tonic::ConnectError`), the connection
    /// closed before the call was written (hyper's "canceled": the request came back
    /// unprocessed), or the owner refused the stream (HTTP/2 `REFUSED_STREAM`, which
    /// guarantees it was not processed).
    No,
    /// Perhaps: the failure came from a connection that was up.
    Perhaps,
    /// The status says nothing of the transport.
    Unknown,
}

fn sent(status: &Status) -> Sent {
    let mut source = std::error::Error::source(status);
    let mut verdict = Sent::Unknown;
    while let Some(error) = source {
        if error.downcast_ref::<tonic::ConnectError>().is_some() {
            return Sent::No;
        }
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            return match h2.reason() {
                Some(h2::Reason::REFUSED_STREAM) => Sent::No,
                _ => Sent::Perhaps,
            };
        }
        if let Some(hyper) = error.downcast_ref::<hyper::Error>() {
            if hyper.is_canceled() {
                return Sent::No;
            }
            verdict = Sent::Perhaps;
        }
        source = error.source();
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_error() -> Vec<CallError> {
        let m = || "message".to_owned();
        vec![
            CallError::InvalidArgument(m()),
            CallError::UnknownType("Counter".into()),
            CallError::TooLarge(m()),
            CallError::Application(m()),
            CallError::DeadlineExceeded(m()),
            CallError::Unavailable(m()),
            CallError::Moved(m()),
            CallError::Reentrancy(m()),
            CallError::StackDepth(m()),
            CallError::Overloaded(m()),
            CallError::AppDisconnected(m()),
            CallError::FailedPrecondition(m()),
            CallError::NotActive(m()),
            CallError::Fenced(m()),
            CallError::StoreUnavailable(m()),
            CallError::OwnerLost(m()),
            CallError::CircuitOpen(m()),
            CallError::Internal(m()),
        ]
    }

    #[test]
    fn every_error_crosses_between_hosts_unchanged() {
        for error in every_error() {
            let wire = error.to_forward_error();
            assert_eq!(wire.may_have_run, error.may_have_run(), "{error:?}");
            assert_eq!(CallError::from_forward_error(wire), error);
        }
    }

    #[test]
    fn transient_errors_and_redirects_never_may_have_run() {
        for error in every_error()
            .into_iter()
            .filter(|e| e.is_transient() || matches!(e, CallError::Moved(_)))
        {
            assert!(!error.may_have_run(), "{error:?}");
        }
    }

    #[test]
    fn a_forward_that_broke_after_sending_may_have_run() {
        for code in [
            Code::Cancelled,
            Code::Unknown,
            Code::Internal,
            Code::Aborted,
        ] {
            let error = CallError::from_forward_status(&Status::new(code, "broken pipe"));
            assert!(
                matches!(error, CallError::OwnerLost(_)),
                "{code:?}: {error:?}"
            );
            assert!(error.may_have_run());
        }
        let refused = CallError::from_forward_status(&Status::unavailable("connection refused"));
        assert!(matches!(refused, CallError::Unavailable(_)), "{refused:?}");
        let unsent = Status::from_error(Box::new(tonic::ConnectError("refused".into())));
        assert_eq!(unsent.code(), Code::Unavailable);
        assert!(matches!(
            CallError::from_forward_status(&unsent),
            CallError::Unavailable(_)
        ));
    }

    #[test]
    fn an_unknown_kind_is_an_internal_error() {
        let error = CallError::from_forward_error(ForwardError {
            kind: 999,
            message: "m".into(),
            may_have_run: true,
        });
        assert!(matches!(error, CallError::Internal(_)), "{error:?}");
    }
}

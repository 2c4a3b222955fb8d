//! The host's API token (`--api-token`, `DAPR_API_TOKEN`): the one check of it, used by every
//! client API on the host — Dapr's HTTP and gRPC APIs and Rookery's own `Actors`, `Reminders`
//! and `AppChannel` services — so that all of them accept and refuse the same requests.
//!
//! Clients present it as the `dapr-api-token` HTTP header or gRPC metadata key
//! ([`API_TOKEN_HEADER`]). It is compared in constant time and never printed: not by `Debug`,
//! not in a refusal.
//!
//! [`ApiToken`] is also a tonic [`Interceptor`]: wrapped around a gRPC service it refuses, with
//! UNAUTHENTICATED, every request without the right token.

use std::fmt;
use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::{Request, Status};

pub use crate::dapr_wire::API_TOKEN_HEADER;

/// The token clients must present, or none (every request accepted).
#[derive(Clone, Default)]
pub struct ApiToken {
    expected: Option<Arc<[u8]>>,
}

impl ApiToken {
    /// Requires `token` of clients; `None` or an empty token requires nothing.
    pub fn new(token: Option<String>) -> ApiToken {
        ApiToken {
            expected: token
                .filter(|t| !t.is_empty())
                .map(|t| Arc::from(t.into_bytes())),
        }
    }

    /// Whether a token is required.
    pub fn is_required(&self) -> bool {
        self.expected.is_some()
    }

    /// Whether a request presenting `presented` may use the API (always when no token is
    /// required). Compared in constant time.
    pub fn accepts(&self, presented: Option<&[u8]>) -> bool {
        match &self.expected {
            None => true,
            Some(expected) => presented.is_some_and(|t| bool::from(t.ct_eq(expected))),
        }
    }

    /// `Ok` when the request's metadata carries an accepted token, else UNAUTHENTICATED
    /// saying whether the token was missing or wrong (never what it was).
    pub fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let presented = request.metadata().get(API_TOKEN_HEADER);
        if self.accepts(presented.map(|t| t.as_bytes())) {
            Ok(())
        } else if presented.is_some() {
            Err(Status::unauthenticated(format!(
                "the {API_TOKEN_HEADER} metadata does not match the host's API token"
            )))
        } else {
            Err(Status::unauthenticated(format!(
                "missing {API_TOKEN_HEADER} metadata: the host requires its API token"
            )))
        }
    }

    /// `service`, refusing every request without the token.
    pub fn guard<S>(&self, service: S) -> InterceptedService<S, ApiToken> {
        InterceptedService::new(service, self.clone())
    }
}

impl Interceptor for ApiToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check(&request)?;
        Ok(request)
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = if self.is_required() {
            "<redacted>"
        } else {
            "<none>"
        };
        f.debug_tuple("ApiToken").field(&shown).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_token_everything_is_accepted() {
        for token in [ApiToken::new(None), ApiToken::new(Some(String::new()))] {
            assert!(!token.is_required());
            assert!(token.accepts(None));
            assert!(token.accepts(Some(b"anything")));
        }
    }

    #[test]
    fn with_a_token_only_that_token_is_accepted() {
        let token = ApiToken::new(Some("s3cret".to_owned()));
        assert!(token.accepts(Some(b"s3cret")));
        for wrong in [&b""[..], b"s3cre", b"s3cret!", b"S3CRET", b"guess"] {
            assert!(!token.accepts(Some(wrong)), "{wrong:?}");
        }
        assert!(!token.accepts(None));
    }

    #[test]
    fn refusals_say_why_without_the_token() {
        let mut token = ApiToken::new(Some("s3cret".to_owned()));
        let missing = token.call(Request::new(())).expect_err("missing");
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert!(
            missing.message().contains("missing dapr-api-token"),
            "{missing:?}"
        );
        let mut wrong = Request::new(());
        wrong
            .metadata_mut()
            .insert(API_TOKEN_HEADER, "guess".parse().expect("ascii"));
        let wrong = token.call(wrong).expect_err("wrong");
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
        assert!(!wrong.message().contains("guess"), "{wrong:?}");
        assert!(!wrong.message().contains("s3cret"), "{wrong:?}");
        let mut right = Request::new(());
        right
            .metadata_mut()
            .insert(API_TOKEN_HEADER, "s3cret".parse().expect("ascii"));
        assert!(token.call(right).is_ok());
    }

    #[test]
    fn debug_does_not_print_the_token() {
        let shown = format!("{:?}", ApiToken::new(Some("s3cret".to_owned())));
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }
}

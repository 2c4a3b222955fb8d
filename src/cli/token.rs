//! The `--api-token` flag (`DAPR_API_TOKEN`) of the commands that call a host's client APIs
//! (`invoke`, `reminders`, `state`), and the requests that carry it as `dapr-api-token`
//! metadata. The value is never printed: clap hides the variable's value in `--help`, and
//! `Debug` of [`ApiTokenArg`] shows only whether one is set.

use std::fmt;
use std::time::Duration;

use clap::Args;
use rookery_runtime::dapr_wire::API_TOKEN_HEADER;
use tonic::metadata::{Ascii, MetadataValue};

/// The `--api-token` flag, flattened into a command's arguments.
#[derive(Args, Clone)]
pub struct ApiTokenArg {
    /// The host's API token, when it has one (sent as `dapr-api-token` metadata).
    #[arg(long, global = true, env = "DAPR_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
}

impl fmt::Debug for ApiTokenArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.api_token.as_ref().map(|_| "<redacted>");
        f.debug_struct("ApiTokenArg")
            .field("api_token", &shown)
            .finish()
    }
}

impl ApiTokenArg {
    /// The token to send (none when unset or empty), or why it cannot be sent.
    pub fn to_send(&self) -> Result<SendToken, String> {
        match self.api_token.as_deref().filter(|t| !t.is_empty()) {
            None => Ok(SendToken(None)),
            Some(token) => MetadataValue::try_from(token)
                .map(|value| SendToken(Some(value)))
                .map_err(|_| "the API token is not a valid metadata value".to_owned()),
        }
    }
}

/// What every request of a command carries.
pub struct SendToken(Option<MetadataValue<Ascii>>);

impl SendToken {
    /// A request of `message` bounded by `timeout`, with the token when there is one.
    pub fn request<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert(API_TOKEN_HEADER, token.clone());
        }
        request
    }
}

//! The host's HTTP/1.1 client of one app (`--app-channel-address`:`--app-port`): every request
//! carries `dapr-api-token` when `APP_API_TOKEN` is set, and every answer is read whole, up
//! to a bound.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::HttpAppConfig;
use crate::dapr_wire::API_TOKEN_HEADER;

/// One answer of the app.
#[derive(Debug)]
pub struct AppResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why a request to the app got no answer.
#[derive(Debug, thiserror::Error)]
pub enum AppHttpError {
    /// The app could not be reached: the request surely did not arrive.
    #[error("cannot reach the app at {address}: {reason}")]
    Unreachable { address: String, reason: String },
    /// The connection broke or timed out after the request was sent: the app may have run it.
    #[error("the app at {address} did not answer: {reason}")]
    NoAnswer { address: String, reason: String },
    #[error("the app's answer is over {limit} bytes")]
    TooLarge { limit: usize },
}

/// An HTTP client of one app.
#[derive(Clone)]
pub struct AppHttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
    address: String,
    token: Option<HeaderValue>,
    max_response_bytes: usize,
}

/// `segment` as one URL path segment: every byte but the unreserved ones percent-encoded.
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl AppHttpClient {
    pub fn new(config: &HttpAppConfig, max_response_bytes: usize) -> AppHttpClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        AppHttpClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
            address: config.address.clone(),
            token: config
                .app_api_token
                .as_deref()
                .and_then(|t| HeaderValue::from_str(t).ok())
                .map(|mut v| {
                    v.set_sensitive(true);
                    v
                }),
            max_response_bytes,
        }
    }

    /// `host:port` of the app.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends one request (`path` already encoded) and reads the whole answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<AppResponse, AppHttpError> {
        let uri = format!("http://{}{path}", self.address);
        let mut request = Request::builder().method(method).uri(&uri);
        if let Some(token) = &self.token {
            request = request.header(API_TOKEN_HEADER, token.clone());
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| AppHttpError::Unreachable {
                address: self.address.clone(),
                reason: format!("bad request {uri:?}: {e}"),
            })?;
        let response = self.client.request(request).await.map_err(|e| {
            let reason = e.to_string();
            if e.is_connect() {
                AppHttpError::Unreachable {
                    address: self.address.clone(),
                    reason,
                }
            } else {
                AppHttpError::NoAnswer {
                    address: self.address.clone(),
                    reason,
                }
            }
        })?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, self.max_response_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    AppHttpError::TooLarge {
                        limit: self.max_response_bytes,
                    }
                } else {
                    AppHttpError::NoAnswer {
                        address: self.address.clone(),
                        reason: e.to_string(),
                    }
                }
            })?
            .to_bytes();
        Ok(AppResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("c1"), "c1");
        assert_eq!(encode_segment("my actor/1"), "my%20actor%2F1");
        assert_eq!(encode_segment("ü"), "%C3%BC");
    }
}

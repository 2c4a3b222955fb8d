//! gRPC plumbing every service of a host shares: the caller's deadline from `grpc-timeout`,
//! and RESOURCE_EXHAUSTED for an oversized message, the code gRPC and Dapr use.

use std::time::Duration;

use tonic::metadata::MetadataMap;

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

/// Answers tonic's own "message too large" (OUT_OF_RANGE) as RESOURCE_EXHAUSTED, the code
/// gRPC and Dapr use for an oversized request (a layer on every server of the host).
pub fn map_too_large<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let too_large = headers.get("grpc-status").is_some_and(|v| v == "11")
        && headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| {
                m.contains("message%20length%20too%20large")
                    || m.contains("message length too large")
            });
    if too_large {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    response
}

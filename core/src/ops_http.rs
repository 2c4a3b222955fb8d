//! The operational HTTP listener shared by placement nodes and hosts: serves an axum router
//! (`/healthz`, `/metrics`) until shutdown, and the Prometheus content type.
//!
//! For operators and scrapers only, so it binds real TCP directly rather than going through
//! [`crate::net`]: the simulator has no use for it.

use std::future::Future;

use crate::net::ListenError;

/// The content type of the Prometheus/OpenMetrics text exposition.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` and serves `app` until `shutdown` resolves. Returns the bound address.
pub async fn serve(
    addr: &str,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>), ListenError> {
    let failed = |source| ListenError {
        addr: addr.to_owned(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(failed)?;
    let local = listener.local_addr().map_err(failed)?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
    });
    Ok((local, task))
}

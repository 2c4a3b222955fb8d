//! The operational HTTP listener shared by placement nodes and hosts: serves an axum router
//! (`/healthz`, `/metrics`) until shutdown, and the Prometheus content type.
//!
//! For operators and scrapers only, so it binds real TCP directly rather than going through
//! [`crate::net`]: the simulator has no use for it.

use std::future::Future;

/// The content type of the Prometheus/OpenMetrics text exposition.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` and serves `app` until `shutdown` resolves. Returns the bound address.
pub async fn serve(
    addr: &str,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
    });
    Ok((local, task))
}

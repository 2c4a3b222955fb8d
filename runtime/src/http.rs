//! The host's operational HTTP endpoint: `/healthz` and Prometheus `/metrics`.
//!
//! For operators and scrapers only, so it binds real TCP directly rather than going through
//! the transport seam.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use crate::metrics::HostMetrics;
use crate::routing::TableState;

#[derive(Clone)]
struct HttpState {
    table: watch::Receiver<TableState>,
    metrics: Arc<HostMetrics>,
}

/// Serves until `shutdown` fires; returns the bound address.
pub async fn serve(
    addr: String,
    table: watch::Receiver<TableState>,
    metrics: Arc<HostMetrics>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(HttpState { table, metrics });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await;
    });
    Ok((local, task))
}

/// 200 once the host holds a placement table (it can route calls), 503 before.
async fn healthz(State(state): State<HttpState>) -> (StatusCode, String) {
    let current = state.table.borrow().clone();
    match current.table {
        Some(table) => (
            StatusCode::OK,
            format!(
                "ok: table {}{}{}\n",
                table.version(),
                if current.locked { ", locked" } else { "" },
                if current.connected {
                    ""
                } else {
                    ", placement unreachable"
                }
            ),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no placement table yet\n".into(),
        ),
    }
}

async fn metrics_text(
    State(state): State<HttpState>,
) -> ([(&'static str, &'static str); 1], String) {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

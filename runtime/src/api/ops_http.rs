//! The host's operational HTTP endpoint: `/healthz` and Prometheus `/metrics`.
//!
//! Served by the listener shared with placement nodes (`rookery_core::ops_http`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use rookery_core::ops_http::OPENMETRICS_CONTENT_TYPE;
use rookery_core::shutdown::Shutdown;
use tokio::sync::watch;

use crate::cluster::table::TableState;
use crate::metrics::HostMetrics;

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
    shutdown: Shutdown,
) -> Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>), rookery_core::net::ListenError> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(HttpState { table, metrics });
    rookery_core::ops_http::serve(&addr, app, shutdown.fired()).await
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
        [("content-type", OPENMETRICS_CONTENT_TYPE)],
        state.metrics.render(),
    )
}

//! The host's operational HTTP routes: `/healthz` (on the HTTP API's port) and Prometheus
//! `/metrics` (on `--metrics-port`, as daprd serves it).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use rookery_core::ops_http::OPENMETRICS_CONTENT_TYPE;
use tokio::sync::watch;

use crate::cluster::table::TableState;
use crate::metrics::HostMetrics;

/// `/healthz` (for the HTTP API's port): the host's own readiness.
pub fn health_routes(table: watch::Receiver<TableState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(table)
}

/// `/metrics` (for `--metrics-port`): Prometheus text.
pub fn metrics_routes(metrics: Arc<HostMetrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .with_state(metrics)
}

/// 200 once the host holds a placement table (it can route calls), 503 before.
async fn healthz(State(table): State<watch::Receiver<TableState>>) -> (StatusCode, String) {
    let current = table.borrow().clone();
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
    State(metrics): State<Arc<HostMetrics>>,
) -> ([(&'static str, &'static str); 1], String) {
    (
        [("content-type", OPENMETRICS_CONTENT_TYPE)],
        metrics.render(),
    )
}

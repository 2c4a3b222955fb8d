//! The host's operational HTTP routes: the probes `/livez`, `/startupz`, `/readyz` and
//! `/healthz` (on the HTTP API's port; see [`crate::api::probes`]) and Prometheus `/metrics`
//! (on `--metrics-port`, as daprd serves it). Each probe answers 200 or 503 with one line per
//! check.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use rookery_core::ops_http::OPENMETRICS_CONTENT_TYPE;
use tokio::sync::watch;

use crate::api::probes::{Probes, Report};
use crate::cluster::table::TableState;
use crate::metrics::HostMetrics;

/// The probes (for the HTTP API's port). `/healthz` keeps its first meaning: the host holds
/// a placement table (as `/startupz`, with the table's state in its body).
pub fn health_routes(table: watch::Receiver<TableState>, probes: Probes) -> Router {
    let by_table = Router::new()
        .route("/healthz", get(healthz))
        .with_state(table);
    Router::new()
        .route("/livez", get(livez))
        .route("/startupz", get(startupz))
        .route("/readyz", get(readyz))
        .with_state(probes)
        .merge(by_table)
}

fn answer(report: Report) -> (StatusCode, String) {
    let status = if report.ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, report.text())
}

async fn livez(State(probes): State<Probes>) -> (StatusCode, String) {
    answer(probes.liveness())
}

async fn startupz(State(probes): State<Probes>) -> (StatusCode, String) {
    answer(probes.startup())
}

async fn readyz(State(probes): State<Probes>) -> (StatusCode, String) {
    answer(probes.readiness().await)
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

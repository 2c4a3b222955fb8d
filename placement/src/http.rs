//! The operational HTTP endpoint of a placement node: the probes `/livez`, `/startupz`,
//! `/readyz` (and `/healthz`, the same as `/readyz`) and Prometheus `/metrics`.
//!
//! Served by the operational listener (`rookery_core::ops_http`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use rookery_core::shutdown::Shutdown;

use crate::metrics::PlacementMetrics;
use crate::raft_types::PlacementRaft;
use rookery_core::ops_http::OPENMETRICS_CONTENT_TYPE;

#[derive(Clone)]
struct HttpState {
    raft: PlacementRaft,
    metrics: Arc<PlacementMetrics>,
}

/// Serves until `shutdown` fires. Returns the bound address once listening.
pub async fn serve(
    addr: String,
    raft: PlacementRaft,
    metrics: Arc<PlacementMetrics>,
    shutdown: Shutdown,
) -> Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>), rookery_core::net::ListenError> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(livez))
        .route("/startupz", get(startupz))
        .route("/readyz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(HttpState { raft, metrics });
    rookery_core::ops_http::serve(&addr, app, shutdown.fired()).await
}

/// 200 while the process serves.
async fn livez() -> (StatusCode, &'static str) {
    (StatusCode::OK, "ok process: serving\n")
}

/// 200 once this node has joined a cluster (its Raft membership is known: initialized here
/// or learned from the leader), 503 before.
async fn startupz(State(state): State<HttpState>) -> (StatusCode, String) {
    let metrics = state.raft.metrics().borrow().clone();
    let members = metrics.membership_config.membership().voter_ids().count();
    if members > 0 {
        (StatusCode::OK, format!("ok membership: {members} voters\n"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "FAIL membership: not initialized yet\n".into(),
        )
    }
}

/// Readiness (`/readyz`, and `/healthz` as before): 200 while this node knows a leader (it
/// is part of a working cluster, so hosts it redirects find one), 503 otherwise.
async fn healthz(State(state): State<HttpState>) -> (StatusCode, String) {
    let metrics = state.raft.metrics().borrow().clone();
    match metrics.current_leader {
        Some(leader) => (
            StatusCode::OK,
            format!(
                "ok: node {} {:?}, leader {leader}, term {}\n",
                metrics.id, metrics.state, metrics.current_term
            ),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "no leader known: node {} {:?}, term {}\n",
                metrics.id, metrics.state, metrics.current_term
            ),
        ),
    }
}

async fn metrics_text(
    State(state): State<HttpState>,
) -> ([(&'static str, &'static str); 1], String) {
    let term = state.raft.metrics().borrow().current_term;
    state.metrics.raft_term.set(term as i64);
    (
        [("content-type", OPENMETRICS_CONTENT_TYPE)],
        state.metrics.render(),
    )
}

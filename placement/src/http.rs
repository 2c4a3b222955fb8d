//! The operational HTTP endpoint of a placement node: `/healthz` and Prometheus `/metrics`.
//!
//! This listener is for operators and scrapers only, so it binds real TCP directly rather than
//! going through [`crate::net`]: the simulator has no use for it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use crate::metrics::PlacementMetrics;
use crate::raft_types::PlacementRaft;

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
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(HttpState { raft, metrics });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await;
    });
    Ok((local, task))
}

/// 200 while this node knows a leader (it is part of a working cluster), 503 otherwise.
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
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

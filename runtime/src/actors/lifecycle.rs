//! What ends activations besides their own calls: a new table that gives them to another host
//! ([`OwnedActors`], which the placement session consults before it acknowledges the table),
//! a lease lapse across which the table changed ([`end_stale_activations`]), and idleness
//! ([`collect_idle`]).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rookery_core::shutdown::Shutdown;
use tokio::sync::watch;

use crate::actors::activation::StopReason;
use crate::actors::activations::Activations;
use crate::cluster::placement_session::LocalActors;
use crate::cluster::table::{RoutingTable, TableState};

/// This host's activations as the placement session sees them.
pub struct OwnedActors {
    activations: Arc<Activations>,
    host_id: String,
}

impl OwnedActors {
    pub fn new(activations: Arc<Activations>, host_id: String) -> OwnedActors {
        OwnedActors {
            activations,
            host_id,
        }
    }
}

impl LocalActors for OwnedActors {
    /// Ends the activations this host no longer owns under `table` and waits for them (their
    /// turn in progress finishes, the app hears "deactivate"), up to the longest drain timeout
    /// among them. Their new owners activate them only after UNLOCK, which placement sends
    /// once every host acknowledged the UPDATE: the two never overlap, provided turns end
    /// within the drain timeout.
    fn release_moved(&self, table: Arc<RoutingTable>) -> BoxFuture<'static, ()> {
        let host_id = self.host_id.clone();
        let moved = self.activations.stop_where(StopReason::Moved, |key| {
            table
                .owner(&key.actor_type, &key.actor_id)
                .is_none_or(|owner| owner.id != host_id)
        });
        Box::pin(async move {
            if moved.is_empty() {
                return;
            }
            let drain = moved
                .iter()
                .map(|a| a.options().drain_timeout())
                .max()
                .unwrap_or_default();
            tracing::info!(moved = moved.len(), version = %table.version(), "draining actors owned elsewhere now");
            let all_finished = futures::future::join_all(moved.iter().map(|a| a.finished()));
            if tokio::time::timeout(drain, all_finished).await.is_err() {
                tracing::warn!(version = %table.version(), "some moved actors did not finish within their drain timeout");
            }
        })
    }

    fn active_count(&self) -> u64 {
        self.activations.len() as u64
    }
}

/// Ends the activations of an older serving epoch. The epoch moves on when this host may
/// serve again after a lapse of its lease during which the table changed: placement may have
/// handed its actors to others meanwhile, so those activations are stale. (Their turns are
/// already refused by the activation itself; this tells the apps and frees memory.)
pub async fn end_stale_activations(
    mut table: watch::Receiver<TableState>,
    activations: Arc<Activations>,
    shutdown: Shutdown,
) {
    let mut epoch = table.borrow_and_update().epoch;
    loop {
        tokio::select! {
            changed = table.changed() => if changed.is_err() { return },
            _ = shutdown.fired() => return,
        }
        let now_epoch = table.borrow_and_update().epoch;
        if now_epoch != epoch {
            epoch = now_epoch;
            let ended = activations.stop_where(StopReason::Moved, |_| true);
            tracing::warn!(
                ended = ended.len(),
                epoch,
                "lease renewed after the table changed: ending activations from before the lapse"
            );
        }
    }
}

/// Ends idle activations every `interval`.
pub async fn collect_idle(activations: Arc<Activations>, interval: Duration, shutdown: Shutdown) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let collected = activations.collect_idle();
                if collected > 0 {
                    tracing::debug!(collected, "collecting idle actors");
                }
            }
            _ = shutdown.fired() => return,
        }
    }
}

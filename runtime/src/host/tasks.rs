//! The host's background tasks: the waker of handed-off actors, the reminder scheduler,
//! re-registration with placement when the served types change, the lifecycle tasks that
//! end stale and idle activations, the HTTP app's registration (`--app-port`) and the gRPC
//! app's health checks (`--app-protocol grpc --enable-app-health-check`) and the cron
//! bindings. All stop when the host's shutdown signal fires.

use std::sync::Arc;
use std::time::Duration;

use rookery_core::shutdown::Shutdown;
use rookery_core::table::HostInfo;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::actors::activations::{Activations, HandOffs};
use crate::actors::lifecycle::{collect_idle, end_stale_activations};
use crate::actors::types::TypeRegistry;
use crate::channels::triggers::TriggerSlot;
use crate::cluster::leader_rpc::LeaderRpc;
use crate::cluster::placement_session::PlacementSession;
use crate::cluster::table::TableState;
use crate::config::HostConfig;
use crate::metrics::HostMetrics;
use crate::reminders::scheduler::{ReminderScheduler, ScheduleChangesRx};
use crate::routing::waker::wake_handed_off;
use crate::routing::Router;

/// What the background tasks work on.
pub struct TaskParts {
    pub router: Arc<Router>,
    pub activations: Arc<Activations>,
    pub hand_offs: HandOffs,
    pub placement: Arc<PlacementSession>,
    pub leader_rpc: Arc<LeaderRpc>,
    /// Deletions and replacements made through this host, for its scheduler.
    pub schedule_changes: ScheduleChangesRx,
    pub metrics: Arc<HostMetrics>,
    pub types: watch::Receiver<Vec<String>>,
    pub types_registry: Arc<TypeRegistry>,
    pub table: watch::Receiver<TableState>,
    /// Who receives the app's jobs and binding events.
    pub triggers: TriggerSlot,
}

/// Starts every background task.
pub fn spawn(config: &HostConfig, parts: TaskParts, shutdown: &Shutdown) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![
        tokio::spawn(wake_handed_off(
            parts.hand_offs,
            parts.router.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(
            ReminderScheduler::new(
                config.host_id.clone(),
                parts.leader_rpc,
                parts.router,
                parts.metrics.clone(),
            )
            .run(
                parts.table.clone(),
                parts.schedule_changes,
                shutdown.clone(),
            ),
        ),
        tokio::spawn(reregister_on_type_change(
            parts.types,
            parts.placement,
            config.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(collect_idle(
            parts.activations.clone(),
            Duration::from_millis(config.actors.scan_interval_ms),
            shutdown.clone(),
        )),
    ];
    if let Some(app) = &config.http_app {
        tasks.push(tokio::spawn(crate::channels::app_http::connect(
            app.clone(),
            config.app_id.clone(),
            config.actors.clone(),
            parts.types_registry.clone(),
            parts.activations.clone(),
            parts.metrics.clone(),
            parts.triggers.clone(),
            shutdown.clone(),
        )));
    }
    tasks.extend(crate::bindings::spawn(
        config,
        &parts.triggers,
        &parts.types_registry,
        &parts.metrics,
        shutdown,
    ));
    if let Some(health) = &config.grpc_app_health {
        tasks.push(tokio::spawn(crate::channels::app_grpc::health::run(
            health.clone(),
            parts.types_registry,
            parts.activations.clone(),
            parts.metrics.clone(),
            shutdown.clone(),
        )));
    }
    if !config.serve_without_lease {
        tasks.push(tokio::spawn(end_stale_activations(
            parts.table,
            parts.activations,
            shutdown.clone(),
        )));
    }
    tasks
}

/// This host as it registers with placement, serving `actor_types`.
pub fn host_info(config: &HostConfig, actor_types: Vec<String>) -> HostInfo {
    HostInfo {
        id: config.host_id.clone(),
        address: config.internal_advertise_address(),
        app_id: config.app_id.clone(),
        actor_types,
    }
}

/// Tells placement whenever the served types change (an app connects or leaves).
async fn reregister_on_type_change(
    mut names: watch::Receiver<Vec<String>>,
    placement: Arc<PlacementSession>,
    config: HostConfig,
    shutdown: Shutdown,
) {
    loop {
        let current = names.borrow_and_update().clone();
        placement.update_registration(host_info(&config, current));
        tokio::select! {
            changed = names.changed() => if changed.is_err() { return },
            _ = shutdown.fired() => return,
        }
    }
}

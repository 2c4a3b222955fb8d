//! Dapr's input bindings that a host runs itself: the cron binding (`bindings.cron`).
//!
//! - [`component`]: the `bindings.cron` components of `--resources-path`, checked into
//!   [`crate::config::CronBindingConfig`]s (the CLI puts them in `HostConfig::bindings`).
//! - [`cron`]: one task per binding that sends the app an event at each instant of its
//!   schedule, through the app's triggers (`channels::triggers`).
//!
//! As with daprd, every host with a component fires its own events: bindings are not
//! shared out across the cluster.

pub mod component;
pub mod cron;

use crate::metrics::HostMetrics;
use std::sync::Arc;
use std::time::Duration;

use rookery_core::shutdown::Shutdown;
use tokio::task::JoinHandle;

use crate::actors::types::TypeRegistry;
use crate::channels::triggers::TriggerSlot;
use crate::config::HostConfig;

/// Starts one task per cron binding of `config`; each ends when `shutdown` fires.
pub fn spawn(
    config: &HostConfig,
    slot: &TriggerSlot,
    types: &Arc<TypeRegistry>,
    metrics: &Arc<HostMetrics>,
    shutdown: &Shutdown,
) -> Vec<JoinHandle<()>> {
    if !config.bindings.is_empty() && config.app_id.is_empty() {
        tracing::warn!(
            bindings = config.bindings.len(),
            "no --app-id: no app receives triggers, so the cron bindings send no events"
        );
    }
    config
        .bindings
        .iter()
        .map(|binding| {
            let task = cron::CronTask {
                binding: binding.clone(),
                app_id: config.app_id.clone(),
                slot: slot.clone(),
                types: types.clone(),
                delivery_timeout: Duration::from_millis(config.actors.call_timeout_ms),
                metrics: metrics.clone(),
            };
            tokio::spawn(task.run(shutdown.clone()))
        })
        .collect()
}

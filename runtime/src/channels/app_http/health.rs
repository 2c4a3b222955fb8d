//! App health checks of the HTTP app, as daprd's (`--enable-app-health-check`): `GET
//! --app-health-check-path` every `--app-health-probe-interval`, each bounded by
//! `--app-health-probe-timeout`; a 2xx answer is healthy. After `--app-health-threshold`
//! failed probes in a row the app is unhealthy: its types are withdrawn (their activations
//! end, and placement moves its actors, with their reminders, to hosts whose apps are
//! healthy). The first successful probe afterwards registers the same types again.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use rookery_core::shutdown::Shutdown;
use tokio::time::MissedTickBehavior;

use super::client::AppHttpClient;
use crate::actors::activation::StopReason;
use crate::actors::activations::Activations;
use crate::actors::channel::ActorChannel;
use crate::actors::types::{Provider, TypeRegistry};
use crate::config::{AppHealthConfig, TypeOptions};
use crate::metrics::{HostMetrics, ProbeLabels};

/// The app's types as registered, kept to register them again.
pub type Registrations = Vec<(String, Arc<dyn ActorChannel>, TypeOptions)>;

/// What a probe's outcome changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    BecameUnhealthy,
    BecameHealthy,
}

/// Healthy or not, from the outcomes of the probes so far. Starts healthy: the app has just
/// served its configuration.
#[derive(Clone, Debug)]
pub struct HealthState {
    threshold: u32,
    failures: u32,
    healthy: bool,
}

impl HealthState {
    pub fn new(threshold: u32) -> HealthState {
        HealthState {
            threshold: threshold.max(1),
            failures: 0,
            healthy: true,
        }
    }

    pub fn healthy(&self) -> bool {
        self.healthy
    }

    /// Takes one probe's outcome.
    pub fn observe(&mut self, ok: bool) -> Option<Change> {
        if ok {
            self.failures = 0;
            if self.healthy {
                return None;
            }
            self.healthy = true;
            return Some(Change::BecameHealthy);
        }
        self.failures = self.failures.saturating_add(1);
        if self.healthy && self.failures >= self.threshold {
            self.healthy = false;
            return Some(Change::BecameUnhealthy);
        }
        None
    }

    /// A re-registration failed: still unhealthy, the next success tries again.
    fn back_to_unhealthy(&mut self) {
        self.healthy = false;
    }
}

/// What the health checks act on.
pub struct HealthParts {
    pub client: AppHttpClient,
    pub config: AppHealthConfig,
    pub app_id: String,
    pub registrations: Registrations,
    pub types: Arc<TypeRegistry>,
    pub activations: Arc<Activations>,
    pub metrics: Arc<HostMetrics>,
}

/// One probe: whether the app answered 2xx within the timeout.
async fn probe(parts: &HealthParts) -> bool {
    let headers = [("dapr-app-id", parts.app_id.clone())];
    let answer = tokio::time::timeout(
        Duration::from_millis(parts.config.timeout_ms),
        parts
            .client
            .send(Method::GET, &parts.config.path, &headers, Bytes::new()),
    )
    .await;
    match answer {
        Ok(Ok(response)) if response.status.is_success() => true,
        Ok(Ok(response)) => {
            tracing::debug!(app = %parts.client.address(), status = %response.status, "app health probe failed");
            false
        }
        Ok(Err(e)) => {
            tracing::debug!(app = %parts.client.address(), error = %e, "app health probe failed");
            false
        }
        Err(_) => {
            tracing::debug!(app = %parts.client.address(), timeout_ms = parts.config.timeout_ms, "app health probe timed out");
            false
        }
    }
}

/// Probes the app until the host shuts down, withdrawing and registering its types again as
/// its health changes. The types are registered when this starts.
pub async fn run(parts: HealthParts, shutdown: Shutdown) {
    let mut state = HealthState::new(parts.config.threshold);
    parts.metrics.app_healthy.set(1);
    let mut ticks = tokio::time::interval(Duration::from_millis(parts.config.interval_ms.max(1)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick is immediate: the first probe comes one interval after registration.
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.fired() => return,
        }
        let ok = tokio::select! {
            ok = probe(&parts) => ok,
            _ = shutdown.fired() => return,
        };
        let outcome = if ok { "ok" } else { "failed" };
        parts
            .metrics
            .app_health_probes_total
            .get_or_create(&ProbeLabels { outcome })
            .inc();
        match state.observe(ok) {
            None => {}
            Some(Change::BecameUnhealthy) => {
                let withdrawn = parts.types.withdraw(Provider::HttpApp);
                parts.activations.stop_where(StopReason::Withdrawn, |key| {
                    withdrawn.contains(&key.actor_type)
                });
                parts.metrics.app_healthy.set(0);
                parts.metrics.app_health_changes_total.inc();
                tracing::warn!(
                    app = %parts.client.address(),
                    path = %parts.config.path,
                    failures = parts.config.threshold,
                    types = ?withdrawn,
                    "the app is unhealthy: its actor types are withdrawn until it passes a health check"
                );
            }
            Some(Change::BecameHealthy) => {
                match parts
                    .types
                    .register(Provider::HttpApp, parts.registrations.clone())
                {
                    Ok(()) => {
                        parts.metrics.app_healthy.set(1);
                        parts.metrics.app_health_changes_total.inc();
                        let names: Vec<&str> = parts
                            .registrations
                            .iter()
                            .map(|(n, _, _)| n.as_str())
                            .collect();
                        tracing::info!(app = %parts.client.address(), types = ?names, "the app is healthy again: its actor types are registered");
                    }
                    Err(e) => {
                        state.back_to_unhealthy();
                        tracing::error!(app = %parts.client.address(), error = %e, "the app is healthy again but its actor types cannot be registered");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhealthy_after_threshold_failures_in_a_row_healthy_on_first_success() {
        let mut state = HealthState::new(3);
        assert!(state.healthy());
        assert_eq!(state.observe(false), None);
        assert_eq!(state.observe(false), None);
        assert_eq!(state.observe(true), None, "a success resets the count");
        assert_eq!(state.observe(false), None);
        assert_eq!(state.observe(false), None);
        assert_eq!(state.observe(false), Some(Change::BecameUnhealthy));
        assert!(!state.healthy());
        assert_eq!(state.observe(false), None, "already unhealthy");
        assert_eq!(state.observe(true), Some(Change::BecameHealthy));
        assert_eq!(state.observe(true), None);
        assert!(state.healthy());
    }

    #[test]
    fn a_failed_reregistration_is_retried_on_the_next_success() {
        let mut state = HealthState::new(1);
        assert_eq!(state.observe(false), Some(Change::BecameUnhealthy));
        assert_eq!(state.observe(true), Some(Change::BecameHealthy));
        state.back_to_unhealthy();
        assert_eq!(state.observe(true), Some(Change::BecameHealthy));
    }
}

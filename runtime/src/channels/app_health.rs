//! App health checks, as daprd's (`--enable-app-health-check`), for both app protocols: a
//! probe every `--app-health-probe-interval`, each bounded by `--app-health-probe-timeout`;
//! after `--app-health-threshold` failed probes in a row the app is unhealthy, and the first
//! successful probe afterwards makes it healthy again. The protocols differ only in their
//! [`Probe`]: `GET --app-health-check-path` of an HTTP app (`app_http::health`), or
//! `grpc.health.v1.Health/Check` of a gRPC app's `--app-port` (`app_grpc::health`).
//!
//! # What unhealthy means
//! The app's types are *suspended* in the [`TypeRegistry`] (see `actors::types`), covering its
//! [`AppGroup`]: the HTTP app's types, or those of every `AppChannel` connection of the host.
//! Suspended types stay registered but are not published to placement and not served here:
//! their activations end (the app is not told: it may not answer), and placement moves their
//! actors, with their reminders, to hosts whose apps are healthy. A gRPC app that connects
//! while suspended registers as usual, but its types are held back the same way. On the first
//! successful probe the group is resumed: every type it still has is served and published
//! again, with nothing asked of the app (a gRPC app keeps its stream throughout; an actor that
//! comes back is activated anew).
//!
//! Metrics: `rookery_app_healthy` (1/0), `rookery_app_health_probes_total{outcome}`,
//! `rookery_app_health_changes_total`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rookery_core::shutdown::Shutdown;
use tokio::time::MissedTickBehavior;

use crate::actors::activation::StopReason;
use crate::actors::activations::Activations;
use crate::actors::types::{AppGroup, TypeRegistry};
use crate::config::AppHealthConfig;
use crate::metrics::{HostMetrics, ProbeLabels};

/// One protocol's health probe.
pub trait Probe: Send + Sync {
    /// What is probed, for logs (the app's address, and path or service).
    fn target(&self) -> String;

    /// One probe: `Ok` when the app says it is healthy, else why not. [`run`] bounds it by
    /// the probe timeout.
    fn check(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// What a probe's outcome changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    BecameUnhealthy,
    BecameHealthy,
}

/// Healthy or not, from the outcomes of the probes so far. Starts healthy: the app has just
/// served its configuration (HTTP) or connected (gRPC).
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
}

/// What the health checks act on.
pub struct HealthCheck {
    pub config: AppHealthConfig,
    /// The providers whose types the app's health covers.
    pub group: AppGroup,
    pub types: Arc<TypeRegistry>,
    pub activations: Arc<Activations>,
    pub metrics: Arc<HostMetrics>,
}

impl HealthCheck {
    /// The app failed its threshold of probes: its types are not served until it recovers;
    /// returns their names.
    fn become_unhealthy(&self) -> Vec<String> {
        let suspended = self.types.suspend(self.group);
        self.activations.stop_where(StopReason::Withdrawn, |key| {
            suspended.contains(&key.actor_type)
        });
        self.metrics.app_healthy.set(0);
        self.metrics.app_health_changes_total.inc();
        suspended
    }

    /// The app passed a probe again: its types are served again; returns their names.
    fn become_healthy(&self) -> Vec<String> {
        let resumed = self.types.resume(self.group);
        self.metrics.app_healthy.set(1);
        self.metrics.app_health_changes_total.inc();
        resumed
    }

    /// One probe, bounded by the timeout, counted in the metrics.
    async fn probe(&self, probe: &impl Probe) -> bool {
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let ok = match tokio::time::timeout(timeout, probe.check()).await {
            Ok(Ok(())) => true,
            Ok(Err(why)) => {
                tracing::debug!(app = %probe.target(), why, "app health probe failed");
                false
            }
            Err(_) => {
                tracing::debug!(app = %probe.target(), timeout_ms = self.config.timeout_ms, "app health probe timed out");
                false
            }
        };
        let outcome = if ok { "ok" } else { "failed" };
        self.metrics
            .app_health_probes_total
            .get_or_create(&ProbeLabels { outcome })
            .inc();
        ok
    }
}

/// Probes the app until the host shuts down, suspending and resuming its types as its health
/// changes. The app counts as healthy when this starts; the first probe comes one interval
/// later.
pub async fn run(probe: impl Probe, check: HealthCheck, shutdown: Shutdown) {
    let mut state = HealthState::new(check.config.threshold);
    check.metrics.app_healthy.set(1);
    let mut ticks = tokio::time::interval(Duration::from_millis(check.config.interval_ms.max(1)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick is immediate.
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.fired() => return,
        }
        let ok = tokio::select! {
            ok = check.probe(&probe) => ok,
            _ = shutdown.fired() => return,
        };
        match state.observe(ok) {
            None => {}
            Some(Change::BecameUnhealthy) => {
                let types = check.become_unhealthy();
                tracing::warn!(
                    app = %probe.target(),
                    failures = check.config.threshold,
                    ?types,
                    "the app is unhealthy: its actor types are not served until it passes a health check"
                );
            }
            Some(Change::BecameHealthy) => {
                let types = check.become_healthy();
                tracing::info!(app = %probe.target(), ?types, "the app is healthy again: its actor types are served");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

    use tokio::sync::watch;

    use super::*;
    use crate::actors::channel::{ActorChannel, Nobody};
    use crate::actors::types::Provider;
    use crate::cluster::lease::ServingGate;
    use crate::cluster::table::TableState;
    use crate::config::ActorDefaults;

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
    fn a_threshold_of_zero_counts_as_one() {
        let mut state = HealthState::new(0);
        assert_eq!(state.observe(false), Some(Change::BecameUnhealthy));
    }

    const OK: u8 = 0;
    const FAILING: u8 = 1;
    const HANGING: u8 = 2;

    /// A probe scripted by the test; counts its checks.
    #[derive(Clone, Default)]
    struct Scripted {
        mode: Arc<AtomicU8>,
        checks: Arc<AtomicUsize>,
    }

    impl Probe for Scripted {
        fn target(&self) -> String {
            "scripted".into()
        }

        async fn check(&self) -> Result<(), String> {
            self.checks.fetch_add(1, Ordering::SeqCst);
            match self.mode.load(Ordering::SeqCst) {
                OK => Ok(()),
                FAILING => Err("failing".into()),
                _ => std::future::pending().await,
            }
        }
    }

    fn check(types: &Arc<TypeRegistry>, metrics: &Arc<HostMetrics>) -> HealthCheck {
        let (_, table) = watch::channel(TableState::default());
        let (activations, _) = Activations::new(
            types.clone(),
            metrics.clone(),
            ServingGate::new(table, true),
            None,
            None,
        );
        HealthCheck {
            config: AppHealthConfig {
                interval_ms: 1_000,
                timeout_ms: 300,
                threshold: 2,
            },
            group: AppGroup::Grpc,
            types: types.clone(),
            activations,
            metrics: metrics.clone(),
        }
    }

    fn probes(metrics: &HostMetrics, outcome: &'static str) -> u64 {
        metrics
            .app_health_probes_total
            .get_or_create(&ProbeLabels { outcome })
            .get()
    }

    /// Lets the loop run until `probes` probes in all have an outcome (time is paused: each
    /// interval, and a hanging probe's timeout, passes at once once every task waits).
    async fn until_probes(metrics: &HostMetrics, probes: u64) {
        while self::probes(metrics, "ok") + self::probes(metrics, "failed") < probes {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The outcome is acted on before the loop waits for the next tick.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn failing_and_hanging_probes_suspend_the_group_and_a_success_resumes_it() {
        let types = Arc::new(TypeRegistry::default());
        let metrics = Arc::new(HostMetrics::default());
        let options = ActorDefaults::default().type_options();
        let channel = || Arc::new(Nobody) as Arc<dyn ActorChannel>;
        types
            .register(
                Provider::App(1),
                vec![("Counter".into(), channel(), options.clone())],
            )
            .expect("register");
        types
            .register(
                Provider::Embedded,
                vec![("Rust".into(), channel(), options.clone())],
            )
            .expect("register");
        let names = types.subscribe();
        let probe = Scripted::default();
        let (trigger, shutdown) = rookery_core::shutdown::shutdown_signal();
        let task = tokio::spawn(run(probe.clone(), check(&types, &metrics), shutdown));

        until_probes(&metrics, 2).await;
        assert_eq!(metrics.app_healthy.get(), 1);
        assert!(!types.is_suspended(AppGroup::Grpc));

        let mut before = 2;
        for failure in [FAILING, HANGING] {
            probe.mode.store(failure, Ordering::SeqCst);
            until_probes(&metrics, before + 1).await;
            assert!(
                !types.is_suspended(AppGroup::Grpc),
                "one failure is not enough"
            );
            until_probes(&metrics, before + 2).await;
            assert!(types.is_suspended(AppGroup::Grpc), "{failure}");
            assert_eq!(metrics.app_healthy.get(), 0);
            assert!(types.get("Counter").is_none());
            assert_eq!(*names.borrow(), vec!["Rust".to_owned()]);

            probe.mode.store(OK, Ordering::SeqCst);
            until_probes(&metrics, before + 3).await;
            before += 3;
            assert!(!types.is_suspended(AppGroup::Grpc));
            assert_eq!(metrics.app_healthy.get(), 1);
            assert!(types.get("Counter").is_some());
            assert_eq!(
                *names.borrow(),
                vec!["Counter".to_owned(), "Rust".to_owned()]
            );
        }
        assert_eq!(metrics.app_health_changes_total.get(), 4);
        assert_eq!(probes(&metrics, "failed"), 4);
        assert_eq!(probes(&metrics, "ok"), 4);
        assert_eq!(probe.checks.load(Ordering::SeqCst), 8);

        trigger.fire();
        task.await.expect("the loop ends on shutdown");
    }
}

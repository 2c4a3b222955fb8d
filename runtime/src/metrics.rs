//! Prometheus metrics of a host, served as text on `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of the per-call metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub actor_type: String,
    /// ok, application_error, not_found, invalid_argument, too_large, deadline_exceeded,
    /// unavailable, reentrancy, overloaded, internal.
    pub outcome: &'static str,
}

/// Labels of the app health probes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    /// ok, failed.
    pub outcome: &'static str,
}

/// Labels of the resiliency metrics: the policy's target (`actor:Counter`, `actor:*` for
/// types no target names, `app:<app id>`, `component:<name>`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    pub target: String,
}

/// Labels of input binding events: the binding, and `delivered`, `failed` or `skipped`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BindingLabels {
    pub binding: String,
    pub outcome: String,
}

/// Labels of circuit breaker state changes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BreakerLabels {
    pub target: String,
    /// open, half-open, closed: the state entered.
    pub state: &'static str,
}

/// Labels of the state metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// ok, fenced, unavailable, invalid.
    pub outcome: &'static str,
}

impl StateLabels {
    pub fn of<T>(result: &Result<T, crate::state::StateError>) -> StateLabels {
        use crate::state::StateError;
        StateLabels {
            outcome: match result {
                Ok(_) => "ok",
                Err(StateError::Fenced(_)) => "fenced",
                Err(StateError::InvalidArgument(_)) => "invalid",
                Err(StateError::Unavailable(_) | StateError::Config(_)) => "unavailable",
            },
        }
    }
}

pub struct HostMetrics {
    registry: Registry,
    pub active_activations: Gauge,
    pub activations_total: Counter,
    pub deactivations_total: Counter,
    pub calls_total: Family<CallLabels, Counter>,
    pub call_latency_seconds: Histogram,
    pub mailbox_depth: Histogram,
    pub forwarded_total: Counter,
    pub retries_total: Counter,
    pub reminders_fired_total: Counter,
    pub reminder_failures_total: Counter,
    pub reminders_queued: Gauge,
    pub reminder_delay_seconds: Histogram,
    pub state_transactions_total: Family<StateLabels, Counter>,
    pub state_transaction_seconds: Histogram,
    pub state_claims_total: Family<StateLabels, Counter>,
    /// `rookery_app_healthy`: 1 while the app (HTTP, or gRPC with `--app-port`) passes its
    /// health checks and its types are served, 0 otherwise.
    pub app_healthy: Gauge,
    /// `rookery_app_health_probes_total{outcome}`.
    pub app_health_probes_total: Family<ProbeLabels, Counter>,
    /// `rookery_app_health_changes_total`: healthy to unhealthy or back.
    pub app_health_changes_total: Counter,
    /// `rookery_resiliency_resources_loaded`: Resiliency resources applied to this host.
    pub resiliency_resources_loaded: Gauge,
    /// `rookery_resiliency_retries_total{target}`: attempts sent again by a retry policy.
    pub resiliency_retries_total: Family<PolicyLabels, Counter>,
    /// `rookery_resiliency_timeouts_total{target}`: attempts cut off by a timeout policy.
    pub resiliency_timeouts_total: Family<PolicyLabels, Counter>,
    /// `rookery_resiliency_breaker_rejections_total{target}`: calls refused by an open
    /// breaker.
    pub resiliency_breaker_rejections_total: Family<PolicyLabels, Counter>,
    /// `rookery_resiliency_breaker_transitions_total{target,state}`.
    pub resiliency_breaker_transitions_total: Family<BreakerLabels, Counter>,
    /// `rookery_resiliency_breakers_open{target}`: breakers open now.
    pub resiliency_breakers_open: Family<PolicyLabels, Gauge>,
    /// `rookery_binding_events_total{binding,outcome}`: input binding events delivered to
    /// the app, failed (refused, not answered in time), or skipped (no app to take them).
    pub binding_events_total: Family<BindingLabels, Counter>,
}

impl Default for HostMetrics {
    fn default() -> Self {
        let mut root = Registry::with_prefix("rookery");
        let registry = root.sub_registry_with_prefix("host");
        let metrics = HostMetrics {
            active_activations: Gauge::default(),
            activations_total: Counter::default(),
            deactivations_total: Counter::default(),
            calls_total: Family::default(),
            // 50 µs .. ~26 s.
            call_latency_seconds: Histogram::new(exponential_buckets(0.00005, 2.0, 20)),
            // 0 .. 1024 queued calls.
            mailbox_depth: Histogram::new(
                [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0, 1024.0].into_iter(),
            ),
            forwarded_total: Counter::default(),
            retries_total: Counter::default(),
            reminders_fired_total: Counter::default(),
            reminder_failures_total: Counter::default(),
            reminders_queued: Gauge::default(),
            // 1 ms .. ~65 s late.
            reminder_delay_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            state_transactions_total: Family::default(),
            // 20 µs .. ~10 s.
            state_transaction_seconds: Histogram::new(exponential_buckets(0.00002, 2.0, 20)),
            state_claims_total: Family::default(),
            app_healthy: Gauge::default(),
            app_health_probes_total: Family::default(),
            app_health_changes_total: Counter::default(),
            resiliency_resources_loaded: Gauge::default(),
            resiliency_retries_total: Family::default(),
            binding_events_total: Family::default(),
            resiliency_timeouts_total: Family::default(),
            resiliency_breaker_rejections_total: Family::default(),
            resiliency_breaker_transitions_total: Family::default(),
            resiliency_breakers_open: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "active_activations",
            "Actors active on this host",
            metrics.active_activations.clone(),
        );
        registry.register(
            "activations",
            "Activations started",
            metrics.activations_total.clone(),
        );
        registry.register(
            "deactivations",
            "Activations ended",
            metrics.deactivations_total.clone(),
        );
        registry.register(
            "calls",
            "Actor calls entering this host, by type and outcome",
            metrics.calls_total.clone(),
        );
        registry.register(
            "call_latency_seconds",
            "Latency of actor calls entering this host through the client API",
            metrics.call_latency_seconds.clone(),
        );
        registry.register(
            "mailbox_depth",
            "Calls already queued when a call has to wait in a mailbox (a call that finds its actor idle runs at once and is not observed)",
            metrics.mailbox_depth.clone(),
        );
        registry.register(
            "forwarded",
            "Calls forwarded to their owner host",
            metrics.forwarded_total.clone(),
        );
        registry.register(
            "retries",
            "Call attempts sent again: after a moved actor, or as a retry policy says",
            metrics.retries_total.clone(),
        );
        registry.register(
            "reminders_fired",
            "Reminder ticks fired on this host",
            metrics.reminders_fired_total.clone(),
        );
        registry.register(
            "reminder_failures",
            "Reminder ticks whose turn failed (fetched and fired again later)",
            metrics.reminder_failures_total.clone(),
        );
        registry.register(
            "reminders_queued",
            "Reminder ticks due within the horizon, queued on this host",
            metrics.reminders_queued.clone(),
        );
        registry.register(
            "reminder_delay_seconds",
            "How late after its due time each reminder tick fired",
            metrics.reminder_delay_seconds.clone(),
        );
        registry.register(
            "state_transactions",
            "Actor state transactions, by outcome",
            metrics.state_transactions_total.clone(),
        );
        registry.register(
            "state_transaction_seconds",
            "Time from a state transaction's request to its durable acknowledgement",
            metrics.state_transaction_seconds.clone(),
        );
        registry.register(
            "state_claims",
            "Claims of actors in the state store by new activations, by outcome",
            metrics.state_claims_total.clone(),
        );
        let app = root.sub_registry_with_prefix("app");
        app.register(
            "healthy",
            "Whether the app is healthy: its health checks passing, its types served",
            metrics.app_healthy.clone(),
        );
        app.register(
            "health_probes",
            "Health probes of the app (HTTP or gRPC), by outcome",
            metrics.app_health_probes_total.clone(),
        );
        app.register(
            "health_changes",
            "Changes of the app between healthy and unhealthy",
            metrics.app_health_changes_total.clone(),
        );
        root.sub_registry_with_prefix("binding").register(
            "events",
            "Input binding events, by binding and outcome (delivered, failed, skipped)",
            metrics.binding_events_total.clone(),
        );
        let resiliency = root.sub_registry_with_prefix("resiliency");
        resiliency.register(
            "resources_loaded",
            "Resiliency resources applied to this host",
            metrics.resiliency_resources_loaded.clone(),
        );
        resiliency.register(
            "retries",
            "Attempts sent again by a retry policy, by target",
            metrics.resiliency_retries_total.clone(),
        );
        resiliency.register(
            "timeouts",
            "Attempts cut off by a timeout policy, by target",
            metrics.resiliency_timeouts_total.clone(),
        );
        resiliency.register(
            "breaker_rejections",
            "Calls refused by an open circuit breaker, by target",
            metrics.resiliency_breaker_rejections_total.clone(),
        );
        resiliency.register(
            "breaker_transitions",
            "Circuit breaker state changes, by target and the state entered",
            metrics.resiliency_breaker_transitions_total.clone(),
        );
        resiliency.register(
            "breakers_open",
            "Circuit breakers open now, by target",
            metrics.resiliency_breakers_open.clone(),
        );
        HostMetrics {
            registry: root,
            ..metrics
        }
    }
}

impl HostMetrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_app_metrics_keep_their_prefixes() {
        let metrics = HostMetrics::default();
        metrics.app_healthy.set(1);
        metrics
            .app_health_probes_total
            .get_or_create(&ProbeLabels { outcome: "failed" })
            .inc();
        let text = metrics.render();
        for sample in [
            "rookery_host_active_activations 0",
            "rookery_app_healthy 1",
            "rookery_app_health_probes_total{outcome=\"failed\"} 1",
            "rookery_app_health_changes_total 0",
        ] {
            assert!(text.lines().any(|l| l == sample), "{sample} in {text}");
        }
    }
}

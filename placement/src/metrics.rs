//! Prometheus metrics of a placement node, served as text on `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The placement node's metrics. Cheap to update from any task.
pub struct PlacementMetrics {
    registry: Registry,
    pub is_leader: Gauge,
    pub raft_term: Gauge,
    pub hosts_connected: Gauge,
    pub table_version: Gauge,
    pub rounds_total: Counter,
    pub hosts_removed_total: Counter,
    pub round_duration_seconds: Histogram,
    pub commit_latency_seconds: Histogram,
    pub reminders_stored: Gauge,
    /// Reminders whose due time passed more than [`OVERDUE_AFTER_MS`] ago: no host fired them,
    /// e.g. because no host serves their actor type.
    pub reminders_overdue: Gauge,
}

/// How late a reminder must be to count as overdue.
pub const OVERDUE_AFTER_MS: u64 = 5_000;

impl Default for PlacementMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rookery_placement");
        let is_leader = Gauge::default();
        let raft_term = Gauge::default();
        let hosts_connected = Gauge::default();
        let table_version = Gauge::default();
        let rounds_total = Counter::default();
        let hosts_removed_total = Counter::default();
        // 0.5 ms .. ~16 s: from an idle local round to one that waits out a round timeout.
        let round_duration_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let commit_latency_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let reminders_stored = Gauge::default();
        let reminders_overdue = Gauge::default();
        registry.register(
            "reminders_stored",
            "Reminders in the placement state",
            reminders_stored.clone(),
        );
        registry.register(
            "reminders_overdue",
            "Reminders due more than 5 s ago and not yet fired (e.g. no host serves their type)",
            reminders_overdue.clone(),
        );
        registry.register(
            "is_leader",
            "1 while this node is the Raft leader",
            is_leader.clone(),
        );
        registry.register("raft_term", "Current Raft term", raft_term.clone());
        registry.register(
            "hosts_connected",
            "Host sessions open on this node (leader only)",
            hosts_connected.clone(),
        );
        registry.register(
            "table_version",
            "Newest table version disseminated by this node",
            table_version.clone(),
        );
        registry.register(
            "rounds",
            "Dissemination rounds completed",
            rounds_total.clone(),
        );
        registry.register(
            "hosts_removed",
            "Hosts removed for a broken stream, silence or a missed ack",
            hosts_removed_total.clone(),
        );
        registry.register(
            "round_duration_seconds",
            "Time of one LOCK/UPDATE/UNLOCK round",
            round_duration_seconds.clone(),
        );
        registry.register(
            "membership_commit_seconds",
            "Time to commit one membership change through Raft",
            commit_latency_seconds.clone(),
        );
        PlacementMetrics {
            registry,
            is_leader,
            raft_term,
            hosts_connected,
            table_version,
            rounds_total,
            hosts_removed_total,
            round_duration_seconds,
            commit_latency_seconds,
            reminders_stored,
            reminders_overdue,
        }
    }
}

impl PlacementMetrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

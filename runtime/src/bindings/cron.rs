//! One cron binding's task: at every instant of its schedule, an event to this host's app
//! (through the [`TriggerSlot`]), as daprd's cron binding sends it: no data, and the
//! metadata `timeZone` (`UTC`: schedules are evaluated in UTC) and `readTimeUTC` (when the
//! event was made, in Go's `time.Time.String()` form, `2026-01-02 15:04:05.123456789 +0000
//! UTC`). An HTTP app receives it as `POST /{binding name}` with those as headers.
//!
//! An event is never early: it is sent once the wall clock has reached its instant. An
//! instant missed (the host was paused, or its clock jumped) gives one late event, and the
//! schedule goes on from the next instant to come: never a burst. Every host with the
//! component fires its own events, as every daprd does. While no app receives triggers
//! (none connected, or unhealthy), an instant's event is skipped and logged.

use crate::metrics::{BindingLabels, HostMetrics};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rookery_core::clock::now_ms;
use rookery_core::jobs::JobSchedule;
use rookery_core::schedule::format_rfc3339_ms;
use rookery_core::shutdown::Shutdown;
use tokio::task::JoinSet;

use crate::actors::types::TypeRegistry;
use crate::channels::triggers::{BindingEvent, TriggerSlot};
use crate::config::CronBindingConfig;

/// The `timeZone` every event carries: where schedules are evaluated.
pub const TIME_ZONE: &str = "UTC";
/// Events of one binding the app may be taking at once; at the next instant past that, the
/// event is skipped (an app that does not answer does not pile up deliveries).
pub const MAX_IN_FLIGHT: usize = 4;
/// Longest single wait before the wall clock is read again, so that a clock step is noticed.
const MAX_WAIT_MS: u64 = 1_000;

/// What one binding's task needs.
pub struct CronTask {
    pub binding: CronBindingConfig,
    /// The app whose triggers receive the events.
    pub app_id: String,
    pub slot: TriggerSlot,
    pub types: Arc<TypeRegistry>,
    /// Bound of one delivery to the app.
    pub delivery_timeout: Duration,
    pub metrics: Arc<HostMetrics>,
}

/// How a binding's events went, logged with each outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Sent to the app.
    pub sent: u64,
    /// Taken by the app (answered with success).
    pub delivered: u64,
    /// Refused by the app, not delivered, or not answered in time.
    pub failed: u64,
    /// Not sent: no app received triggers, or too many events were in flight.
    pub skipped: u64,
}

impl CronTask {
    /// Fires the binding until `shutdown`; events still in flight are then dropped.
    pub async fn run(self, shutdown: Shutdown) {
        let name = self.binding.name.clone();
        let schedule = self.binding.schedule.clone();
        let Some(mut due) = schedule.next_after(now_ms()) else {
            tracing::warn!(binding = %name, %schedule, "the cron binding's schedule has no instant to come: it never fires");
            return;
        };
        tracing::info!(binding = %name, %schedule, next = %format_rfc3339_ms(due), "cron binding started");
        let mut in_flight: JoinSet<bool> = JoinSet::new();
        let mut counts = Counts::default();
        loop {
            tokio::select! {
                () = wait_until_wall(due) => {}
                _ = shutdown.fired() => break,
            }
            while let Some(done) = in_flight.try_join_next() {
                self.count_outcome(&mut counts, done.unwrap_or(false));
            }
            self.fire(due, &mut in_flight, &mut counts);
            let fired_at = now_ms();
            let Some(next) = next_instant(&schedule, due, fired_at) else {
                tracing::info!(binding = %name, "the cron binding's schedule has no instant to come: it stops");
                break;
            };
            due = next;
            // Reap outcomes while waiting, so each is counted when it lands.
            while !in_flight.is_empty() && now_ms() < due {
                let wait = Duration::from_millis((due - now_ms()).min(MAX_WAIT_MS));
                tokio::select! {
                    done = in_flight.join_next() => {
                        let ok = matches!(done, Some(Ok(true)));
                        self.count_outcome(&mut counts, ok);
                    }
                    () = tokio::time::sleep(wait) => {}
                    _ = shutdown.fired() => break,
                }
            }
            if shutdown.is_fired() {
                break;
            }
        }
        // The schedule ended (not the host): let the last events land.
        if !shutdown.is_fired() {
            tokio::select! {
                () = async {
                    while let Some(done) = in_flight.join_next().await {
                        self.count_outcome(&mut counts, matches!(done, Ok(true)));
                    }
                } => {}
                _ = shutdown.fired() => {}
            }
        }
        tracing::info!(binding = %name, sent = counts.sent, delivered = counts.delivered, failed = counts.failed, skipped = counts.skipped, "cron binding stopped");
    }

    /// Sends the event of the instant `due`, or skips it.
    fn fire(&self, due: u64, in_flight: &mut JoinSet<bool>, counts: &mut Counts) {
        let name = &self.binding.name;
        let Some(triggers) = self.slot.get(&self.types, &self.app_id) else {
            counts.skipped += 1;
            self.count_metric("skipped");
            tracing::debug!(binding = %name, instant = %format_rfc3339_ms(due), skipped = counts.skipped, "no app receives triggers (none connected, or unhealthy): cron binding event skipped");
            return;
        };
        if in_flight.len() >= MAX_IN_FLIGHT {
            counts.skipped += 1;
            self.count_metric("skipped");
            tracing::warn!(binding = %name, instant = %format_rfc3339_ms(due), in_flight = in_flight.len(), skipped = counts.skipped, "the app has not answered the binding's earlier events: event skipped");
            return;
        }
        counts.sent += 1;
        let event = event_now();
        tracing::debug!(binding = %name, instant = %format_rfc3339_ms(due), read_time = %event.metadata["readTimeUTC"], sent = counts.sent, "cron binding fired");
        let delivery = triggers.binding(name, event);
        let timeout = self.delivery_timeout;
        let name = name.clone();
        in_flight.spawn(async move {
            match tokio::time::timeout(timeout, delivery).await {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    tracing::warn!(binding = %name, error = %e, "the app did not take the cron binding's event");
                    false
                }
                Err(_) => {
                    tracing::warn!(binding = %name, timeout_ms = timeout.as_millis() as u64, "the app did not answer the cron binding's event in time");
                    false
                }
            }
        });
    }
}

impl CronTask {
    fn count_outcome(&self, counts: &mut Counts, ok: bool) {
        if ok {
            counts.delivered += 1;
        } else {
            counts.failed += 1;
        }
        self.count_metric(if ok { "delivered" } else { "failed" });
    }

    fn count_metric(&self, outcome: &str) {
        self.metrics
            .binding_events_total
            .get_or_create(&BindingLabels {
                binding: self.binding.name.clone(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}

/// The instant after the one due at `due_ms`, whose event was sent at `now_ms`: the
/// schedule's next instant after `due_ms`, unless that one has passed too (the event was
/// late); then the next instant after `now_ms`, so missed instants give no burst.
pub fn next_instant(schedule: &JobSchedule, due_ms: u64, now_ms: u64) -> Option<u64> {
    let next = schedule.next_after(due_ms)?;
    if next > now_ms {
        return Some(next);
    }
    schedule.next_after(now_ms)
}

/// Returns once the wall clock reads `due_ms` or later (never before: tokio's timers run on
/// the monotonic clock, so the wall clock is read again after each wait).
async fn wait_until_wall(due_ms: u64) {
    loop {
        let now = now_ms();
        if now >= due_ms {
            return;
        }
        tokio::time::sleep(Duration::from_millis((due_ms - now).min(MAX_WAIT_MS))).await;
    }
}

/// The event of a firing made now: no data, daprd's metadata.
pub fn event_now() -> BindingEvent {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    event_at(since_epoch)
}

fn event_at(since_epoch: Duration) -> BindingEvent {
    BindingEvent {
        data: bytes::Bytes::new(),
        metadata: [
            ("timeZone".to_owned(), TIME_ZONE.to_owned()),
            ("readTimeUTC".to_owned(), go_utc_string(since_epoch)),
        ]
        .into_iter()
        .collect(),
    }
}

/// An instant as Go's `time.Time.String()` prints a UTC time: `2006-01-02 15:04:05.999999999
/// +0000 UTC`, the fraction without its trailing zeros (and without its dot when zero).
pub fn go_utc_string(since_epoch: Duration) -> String {
    // `YYYY-MM-DDTHH:MM:SSZ` for a whole second.
    let whole = format_rfc3339_ms(since_epoch.as_secs().saturating_mul(1_000));
    let mut out = whole.trim_end_matches('Z').replacen('T', " ", 1);
    let nanos = since_epoch.subsec_nanos();
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(text: &str) -> JobSchedule {
        JobSchedule::parse(text).unwrap()
    }

    #[test]
    fn the_next_instant_follows_the_schedule() {
        let even = schedule("*/2 * * * * *");
        // Fired on time, or a little late: the next even second.
        assert_eq!(next_instant(&even, 10_000, 10_000), Some(12_000));
        assert_eq!(next_instant(&even, 10_000, 10_850), Some(12_000));
        // The first instant is strictly after the start.
        assert_eq!(even.next_after(10_000), Some(12_000));
        assert_eq!(even.next_after(10_001), Some(12_000));
        assert_eq!(even.next_after(11_999), Some(12_000));
        let every = schedule("@every 1s");
        // @every keeps its grid when on time: no drift from the delivery's latency.
        assert_eq!(next_instant(&every, 5_250, 5_260), Some(6_250));
        assert_eq!(next_instant(&every, 6_250, 6_250), Some(7_250));
    }

    #[test]
    fn missed_instants_fire_once() {
        let even = schedule("*/2 * * * * *");
        // Due at 10 s, sent at 17.3 s (paused): 12, 14 and 16 are not sent; next is 18.
        assert_eq!(next_instant(&even, 10_000, 17_300), Some(18_000));
        // Exactly one period late: that instant is the late event's, the next is 14.
        assert_eq!(next_instant(&even, 10_000, 12_000), Some(14_000));
        let every = schedule("@every 1s");
        assert_eq!(next_instant(&every, 5_000, 9_400), Some(10_400));
    }

    #[test]
    fn read_time_is_gos_utc_string() {
        let at = |secs: u64, nanos: u32| go_utc_string(Duration::new(secs, nanos));
        // 2024-02-29T13:04:05Z
        let leap = 1_709_211_845;
        assert_eq!(at(leap, 0), "2024-02-29 13:04:05 +0000 UTC");
        assert_eq!(at(leap, 500_000_000), "2024-02-29 13:04:05.5 +0000 UTC");
        assert_eq!(
            at(leap, 123_456_789),
            "2024-02-29 13:04:05.123456789 +0000 UTC"
        );
        assert_eq!(at(leap, 1_000), "2024-02-29 13:04:05.000001 +0000 UTC");
        assert_eq!(at(0, 0), "1970-01-01 00:00:00 +0000 UTC");
    }

    #[test]
    fn an_event_has_no_data_and_daprds_metadata() {
        let event = event_at(Duration::from_millis(1_709_211_845_250));
        assert!(event.data.is_empty());
        assert_eq!(
            event.metadata.keys().collect::<Vec<_>>(),
            ["readTimeUTC", "timeZone"]
        );
        assert_eq!(event.metadata["timeZone"], "UTC");
        assert_eq!(
            event.metadata["readTimeUTC"],
            "2024-02-29 13:04:05.25 +0000 UTC"
        );
    }

    #[tokio::test]
    async fn waiting_never_ends_early() {
        let due = now_ms() + 120;
        wait_until_wall(due).await;
        assert!(now_ms() >= due);
    }
}

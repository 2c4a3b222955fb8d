//! The wall clock, as Unix-epoch milliseconds: what schedules, reminders, state ttls and the
//! lease fence sent to apps are measured in. Durations and leases use tokio's monotonic clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now on the wall clock, in milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

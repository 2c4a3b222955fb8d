//! Waiting for conditions instead of sleeping.
//!
//! A test states what it waits for as a probe that either yields a value or says why it cannot
//! yet; the probe is polled until it succeeds or the deadline passes. Deadlines are generous
//! (a loaded 2-core box may be many times slower than a developer's laptop) because they only
//! bound how long a broken build takes to fail; a working build returns as soon as the
//! condition holds.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// The default deadline for anything that should happen "soon": elections, rounds, reconnects.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// How often probes are polled. Short enough not to slow tests down, long enough not to
/// compete with the processes under test for the two cores.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// Polls `probe` until it returns `Ok`, and returns that value. Panics after `within` with
/// `what` and the reason the last probe gave, so a timeout explains itself.
pub async fn wait_until<T, F, Fut>(what: impl Display, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        let why_not = match probe().await {
            Ok(value) => return value,
            Err(why_not) => why_not,
        };
        if started.elapsed() >= within {
            panic!("timed out after {within:?} waiting for {what}; last probe: {why_not}");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

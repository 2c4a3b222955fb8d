//! The load generator: `Actors.Invoke` calls over tonic, latencies in HdrHistograms.
//!
//! - [`closed`]: a fixed number of calls in flight, each slot sending its next call when the
//!   previous one answered. Latency is from send to answer.
//! - [`open`]: a fixed offered rate. Call `k` is due at `start + k / rate` whatever happened
//!   to the calls before it, and its latency counts from that intended send time, so a
//!   stalled server shows up as latency instead of as fewer calls sent (coordinated omission).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rookery_proto::v1::actors_client::ActorsClient;
use rookery_proto::v1::InvokeRequest;
use serde_json::{json, Value};
use tonic::transport::Channel;
use tonic::Request;

/// Bound on one call, so a lost call ends instead of hanging the run.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Open loop: calls allowed in flight before further due calls are counted as failed instead
/// of sent (only reached when the offered rate is far beyond what the target serves).
const MAX_OUTSTANDING: usize = 20_000;

/// Which actor a call goes to.
#[derive(Clone, Copy, Debug)]
pub enum Pick {
    /// Slot `s` (or, open loop, call `k`) always calls `ids[s % ids.len()]`.
    PerSlot,
    /// Every call picks an id at random.
    Random,
}

/// What the calls are: `method` of `actor_type`, ids from `ids`; a call to `ids[i]` enters
/// through `clients[i % clients.len()]`.
#[derive(Clone)]
pub struct Target {
    pub clients: Vec<ActorsClient<Channel>>,
    pub actor_type: String,
    pub method: String,
    pub ids: Arc<Vec<String>>,
    pub pick: Pick,
    pub payload: Arc<Vec<u8>>,
}

impl Target {
    fn index(&self, slot: usize) -> usize {
        match self.pick {
            Pick::PerSlot => slot % self.ids.len(),
            Pick::Random => fastrand::usize(..self.ids.len()),
        }
    }

    async fn call(&self, index: usize) -> Result<(), String> {
        let mut client = self.clients[index % self.clients.len()].clone();
        let mut request = Request::new(InvokeRequest {
            actor_type: self.actor_type.clone(),
            actor_id: self.ids[index].clone(),
            method: self.method.clone(),
            data: self.payload.to_vec(),
            metadata: HashMap::new(),
        });
        request.set_timeout(CALL_TIMEOUT);
        client
            .invoke(request)
            .await
            .map(|_| ())
            .map_err(|s| format!("{}: {}", s.code(), s.message()))
    }
}

pub fn histogram() -> Histogram<u64> {
    // 1 µs to 100 s at 3 significant figures.
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("histogram bounds")
}

/// One load run's outcome.
pub struct LoadResult {
    pub scenario: String,
    pub mode: &'static str,
    pub concurrency: Option<usize>,
    pub offered_per_s: Option<f64>,
    pub calls: u64,
    pub errors: u64,
    pub measured: Duration,
    /// Latencies in microseconds.
    pub hist: Histogram<u64>,
    /// Open loop: how late the generator sent each measured call after its due time, µs.
    pub send_lateness: Option<Histogram<u64>>,
    pub first_error: Option<String>,
}

impl LoadResult {
    pub fn calls_per_s(&self) -> f64 {
        self.calls as f64 / self.measured.as_secs_f64()
    }

    pub fn p(&self, quantile: f64) -> u64 {
        if self.hist.is_empty() {
            0
        } else {
            self.hist.value_at_quantile(quantile)
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "mode": self.mode,
            "concurrency": self.concurrency,
            "offered_per_s": self.offered_per_s.map(f64::round),
            "calls": self.calls,
            "errors": self.errors,
            "first_error": self.first_error,
            "measured_s": self.measured.as_secs_f64(),
            "calls_per_s": self.calls_per_s().round(),
            "p50_us": self.p(0.5),
            "p90_us": self.p(0.9),
            "p99_us": self.p(0.99),
            "p999_us": self.p(0.999),
            "max_us": self.hist.max(),
            "mean_us": self.hist.mean().round(),
            "send_lateness_p50_us": self.send_lateness.as_ref().map(|h| h.value_at_quantile(0.5)),
            "send_lateness_p99_us": self.send_lateness.as_ref().map(|h| h.value_at_quantile(0.99)),
        })
    }
}

fn micros(d: Duration) -> u64 {
    (d.as_nanos() / 1000).clamp(1, 100_000_000) as u64
}

/// `concurrency` slots calling back to back for `warmup`, then `measure`; counts the calls
/// that both started and ended inside the measured window.
pub async fn closed(
    scenario: &str,
    target: &Target,
    concurrency: usize,
    warmup: Duration,
    measure: Duration,
) -> LoadResult {
    let started = Instant::now();
    let from = started + warmup;
    let until = from + measure;
    let slots: Vec<_> = (0..concurrency)
        .map(|slot| {
            let target = target.clone();
            tokio::spawn(async move {
                let mut hist = histogram();
                let mut errors = 0u64;
                let mut first_error = None;
                loop {
                    let sent = Instant::now();
                    if sent >= until {
                        break;
                    }
                    let index = target.index(slot);
                    let answer = target.call(index).await;
                    let done = Instant::now();
                    match answer {
                        Ok(()) if sent >= from && done <= until => {
                            hist.record(micros(done - sent)).expect("in bounds");
                        }
                        Ok(()) => {}
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                        }
                    }
                }
                (hist, errors, first_error)
            })
        })
        .collect();
    let mut hist = histogram();
    let mut errors = 0;
    let mut first_error = None;
    for slot in slots {
        let (h, e, f) = slot.await.expect("slot task");
        hist.add(&h).expect("same bounds");
        errors += e;
        if first_error.is_none() {
            first_error = f;
        }
    }
    LoadResult {
        scenario: scenario.into(),
        mode: "closed",
        concurrency: Some(concurrency),
        offered_per_s: None,
        calls: hist.len(),
        errors,
        measured: measure,
        hist,
        send_lateness: None,
        first_error,
    }
}

/// Offers `rate` calls per second for `warmup` then `measure`, each call sent at its due time
/// in a task of its own, latency counted from the due time.
///
/// The pacing runs on a thread of its own with the OS's sleep (tens of µs of precision), not
/// on tokio's 1 ms timer wheel, which would send the calls due within each millisecond in one
/// burst, late by up to a millisecond, and count that against the server. How late the
/// generator still sent each call is reported beside the latencies.
pub async fn open(
    scenario: &str,
    target: &Target,
    rate: f64,
    warmup: Duration,
    measure: Duration,
) -> LoadResult {
    let started = Instant::now();
    let from = started + warmup;
    let until = from + measure;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let hist = Arc::new(Mutex::new(histogram()));
    let errors = Arc::new(AtomicUsize::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let outstanding = Arc::new(AtomicUsize::new(0));
    let runtime = tokio::runtime::Handle::current();
    let pacer = {
        let (target, hist, errors, first_error, outstanding) = (
            target.clone(),
            hist.clone(),
            errors.clone(),
            first_error.clone(),
            outstanding.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let mut lateness = histogram();
            let mut tasks = Vec::new();
            let mut k: u32 = 0;
            loop {
                let due = started + interval * k;
                if due >= until {
                    break;
                }
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let sent = Instant::now();
                if due >= from {
                    lateness
                        .record(micros(sent.saturating_duration_since(due)))
                        .expect("in bounds");
                }
                let index = target.index(k as usize);
                k += 1;
                if outstanding.load(Ordering::Relaxed) >= MAX_OUTSTANDING {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                outstanding.fetch_add(1, Ordering::Relaxed);
                let target = target.clone();
                let (hist, errors, first_error, outstanding) = (
                    hist.clone(),
                    errors.clone(),
                    first_error.clone(),
                    outstanding.clone(),
                );
                tasks.push(runtime.spawn(async move {
                    let answer = target.call(index).await;
                    let done = Instant::now();
                    outstanding.fetch_sub(1, Ordering::Relaxed);
                    match answer {
                        Ok(()) if due >= from => {
                            hist.lock()
                                .expect("hist")
                                .record(micros(done - due))
                                .expect("in bounds");
                        }
                        Ok(()) => {}
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error.lock().expect("first error").get_or_insert(e);
                        }
                    }
                }));
                // Keep the list short: drop handles of calls that have finished.
                if tasks.len() >= 4096 {
                    tasks.retain(|t| !t.is_finished());
                }
            }
            (tasks, lateness)
        })
    };
    let (tasks, lateness) = pacer.await.expect("pacer");
    for task in tasks {
        let _ = task.await;
    }
    let hist = std::mem::replace(&mut *hist.lock().expect("hist"), histogram());
    let first_error = first_error.lock().expect("first error").take();
    LoadResult {
        scenario: scenario.into(),
        mode: "open",
        concurrency: None,
        offered_per_s: Some(rate),
        calls: hist.len(),
        errors: errors.load(Ordering::Relaxed) as u64,
        measured: measure,
        hist,
        send_lateness: Some(lateness),
        first_error,
    }
}

/// Calls every id of `target` once, `concurrency` at a time (each call a new activation when
/// the ids are new); the rate over the whole run.
pub async fn each_once(scenario: &str, target: &Target, concurrency: usize) -> LoadResult {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let slots: Vec<_> = (0..concurrency)
        .map(|_| {
            let target = target.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut hist = histogram();
                let mut errors = 0u64;
                let mut first_error = None;
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= target.ids.len() {
                        break;
                    }
                    let sent = Instant::now();
                    match target.call(index).await {
                        Ok(()) => hist.record(micros(sent.elapsed())).expect("in bounds"),
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                        }
                    }
                }
                (hist, errors, first_error)
            })
        })
        .collect();
    let mut hist = histogram();
    let mut errors = 0;
    let mut first_error = None;
    for slot in slots {
        let (h, e, f) = slot.await.expect("slot task");
        hist.add(&h).expect("same bounds");
        errors += e;
        if first_error.is_none() {
            first_error = f;
        }
    }
    LoadResult {
        scenario: scenario.into(),
        mode: "each once",
        concurrency: Some(concurrency),
        offered_per_s: None,
        calls: hist.len(),
        errors,
        measured: started.elapsed(),
        hist,
        send_lateness: None,
        first_error,
    }
}

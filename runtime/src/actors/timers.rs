//! Timers of one activation: each a task that queues its ticks as turns of the actor, and
//! the record of their progress that a graceful hand-off carries to the actor's next
//! activation (through the state store, see `state`).
//!
//! Timers end with the activation when it goes idle or the host shuts down (as in Dapr and
//! Orleans); when the actor *moves* (a table change, or its host leaves), the activation
//! stops them, writes what is left of each schedule to the store, and the new owner's
//! activation starts them again where they were: a tick not yet fired fires there.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use rookery_core::schedule::{Period, Schedule};
use serde::{Deserialize, Serialize};

use crate::call::{ActorKey, Call, CallKind, TimerSpec, TimerTick};
use crate::error::CallError;

/// Where a timer's ticks go: the activation that holds the timer.
pub trait TickTarget: Send + Sync + 'static {
    /// The actor the ticks are for.
    fn actor(&self) -> &ActorKey;
    /// Runs one tick as a turn of the actor.
    fn tick(&self, call: Call) -> BoxFuture<'_, Result<Bytes, CallError>>;
}

/// Most timers one activation may hold.
pub const MAX_TIMERS_PER_ACTIVATION: usize = 1024;

/// Where one timer's schedule stands.
#[derive(Default)]
struct Progress {
    /// The due instant of the next tick to fire, Unix-epoch ms.
    next_due_ms: AtomicU64,
    /// Ticks fired so far (counts against the schedule's repetitions).
    fired: AtomicU32,
    /// Set once the schedule has ended.
    done: std::sync::atomic::AtomicBool,
}

struct Entry {
    task: tokio::task::JoinHandle<()>,
    spec: TimerSpec,
    progress: Arc<Progress>,
}

/// A timer as handed off to the actor's next activation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandedOffTimer {
    pub name: String,
    pub callback: String,
    pub data: Vec<u8>,
    pub next_due_ms: u64,
    pub period: Option<Period>,
    pub expires_at_ms: Option<u64>,
    pub fired: u32,
}

impl HandedOffTimer {
    /// The timer spec that resumes this schedule, and the ticks it has already fired.
    pub fn resume(self) -> (TimerSpec, u32) {
        (
            TimerSpec {
                name: self.name,
                schedule: Schedule {
                    due_at_ms: self.next_due_ms,
                    period: self.period,
                    expires_at_ms: self.expires_at_ms,
                },
                callback: self.callback,
                data: Bytes::from(self.data),
            },
            self.fired,
        )
    }
}

/// Encodes handed-off timers for the store.
pub fn encode(timers: &[HandedOffTimer]) -> Bytes {
    Bytes::from(serde_json::to_vec(timers).expect("timers encode as JSON"))
}

/// Reads handed-off timers back; an unreadable record is dropped with a warning (timers are
/// soft state: losing one must not stop the actor from activating).
pub fn decode(bytes: &[u8]) -> Vec<HandedOffTimer> {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "dropping unreadable handed-off timers");
        Vec::new()
    })
}

/// An activation's timers. A short list searched by name: most activations hold none or a
/// few, and an empty one costs an idle activation four words.
#[derive(Default)]
pub struct Timers {
    entries: Mutex<Vec<Entry>>,
}

impl Timers {
    /// Registers (or replaces) a timer of `activation`, `fired` ticks into its schedule.
    /// Fails when the activation already holds [`MAX_TIMERS_PER_ACTIVATION`] others.
    pub fn register(
        &self,
        activation: Weak<dyn TickTarget>,
        spec: TimerSpec,
        fired: u32,
    ) -> Result<(), String> {
        let mut entries = self.entries.lock().expect("timers lock");
        let existing = entries.iter().position(|e| e.spec.name == spec.name);
        if entries.len() >= MAX_TIMERS_PER_ACTIVATION && existing.is_none() {
            return Err(format!(
                "an activation may hold at most {MAX_TIMERS_PER_ACTIVATION} timers"
            ));
        }
        let progress = Arc::new(Progress::default());
        progress
            .next_due_ms
            .store(spec.schedule.due_at_ms, Ordering::Release);
        progress.fired.store(fired, Ordering::Release);
        let task = tokio::spawn(run_timer(activation, spec.clone(), progress.clone()));
        let entry = Entry {
            task,
            spec,
            progress,
        };
        match existing {
            Some(i) => std::mem::replace(&mut entries[i], entry).task.abort(),
            None => entries.push(entry),
        }
        Ok(())
    }

    /// Stops a timer; false if there was none of that name.
    pub fn unregister(&self, name: &str) -> bool {
        let mut entries = self.entries.lock().expect("timers lock");
        match entries.iter().position(|e| e.spec.name == name) {
            Some(i) => {
                entries.swap_remove(i).task.abort();
                true
            }
            None => false,
        }
    }

    /// Stops every timer and returns the schedules still running, to hand off.
    pub fn stop_all(&self) -> Vec<HandedOffTimer> {
        let entries = std::mem::take(&mut *self.entries.lock().expect("timers lock"));
        let mut left: Vec<HandedOffTimer> = entries
            .into_iter()
            .filter_map(|entry| {
                entry.task.abort();
                if entry.progress.done.load(Ordering::Acquire) {
                    return None;
                }
                Some(HandedOffTimer {
                    name: entry.spec.name,
                    callback: entry.spec.callback,
                    data: entry.spec.data.to_vec(),
                    next_due_ms: entry.progress.next_due_ms.load(Ordering::Acquire),
                    period: entry.spec.schedule.period,
                    expires_at_ms: entry.spec.schedule.expires_at_ms,
                    fired: entry.progress.fired.load(Ordering::Acquire),
                })
            })
            .collect();
        left.sort_by(|a, b| a.name.cmp(&b.name));
        left
    }
}

/// Fires one timer's ticks as turns until its schedule ends or the activation goes away.
async fn run_timer(activation: Weak<dyn TickTarget>, spec: TimerSpec, progress: Arc<Progress>) {
    let mut due_ms = progress.next_due_ms.load(Ordering::Acquire);
    let mut fired = progress.fired.load(Ordering::Acquire);
    // A resumed schedule may already be past its end.
    if spec.schedule.expires_at_ms.is_some_and(|end| due_ms > end) {
        progress.done.store(true, Ordering::Release);
        return;
    }
    loop {
        let wait_ms = due_ms.saturating_sub(rookery_core::clock::now_ms());
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        let Some(active) = activation.upgrade() else {
            return;
        };
        let call = Call {
            key: active.actor().clone(),
            method: format!("timer/{}", spec.name),
            data: spec.data.clone(),
            metadata: Default::default(),
            call_chain_id: crate::call::new_call_chain_id(),
            kind: CallKind::Timer(TimerTick {
                name: spec.name.clone(),
                callback: spec.callback.clone(),
            }),
        };
        let result = active.tick(call).await;
        drop(active);
        if let Err(e) = result {
            if matches!(e, CallError::Unavailable(_) | CallError::Moved(_)) {
                return; // the activation is ending; this tick is still due (hand-off)
            }
            tracing::debug!(timer = %spec.name, error = %e, "timer callback failed");
        }
        fired += 1;
        match spec.schedule.next_after(due_ms, fired) {
            Some(next) => {
                due_ms = next;
                progress.next_due_ms.store(next, Ordering::Release);
                progress.fired.store(fired, Ordering::Release);
            }
            None => {
                progress.done.store(true, Ordering::Release);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handed_off_timers_round_trip() {
        let timers = vec![HandedOffTimer {
            name: "t".into(),
            callback: "cb".into(),
            data: b"x".to_vec(),
            next_due_ms: 5,
            period: Some(Period {
                every_ms: 100,
                repetitions: Some(3),
            }),
            expires_at_ms: None,
            fired: 1,
        }];
        assert_eq!(decode(&encode(&timers)), timers);
        assert!(decode(b"not json").is_empty());
        let (spec, fired) = timers[0].clone().resume();
        assert_eq!((spec.schedule.due_at_ms, fired), (5, 1));
    }
}

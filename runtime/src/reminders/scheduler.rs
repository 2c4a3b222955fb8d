//! Fires the durable reminders of the actors this host owns.
//!
//! Hosts keep no copy of the reminder store: every `FETCH_INTERVAL_MS` the scheduler asks the
//! placement leader for the reminders of actors this host owns that fall due within
//! `HORIZON_MS` (in pages of `FETCH_LIMIT`, the next after the last, up to
//! `MAX_QUEUED_FIRINGS` queued), queues them by due time, and fires each once its due instant
//! has passed on the wall clock (never before), as a turn of the actor — activating it if
//! needed. Progress goes back to placement in batches (`RecordFirings`, through Raft).
//!
//! Delivery is at least once: a tick fired but not yet recorded when the host crashes fires
//! again on the next owner. A firing that fails (the actor moved, its app errored) is not
//! recorded, so the tick is fetched and fired again.
//!
//! Jobs of the Jobs API are reminders of their app's jobs type
//! (`rookery_core::job_reminders`) and fire the same way, with two differences: the job's
//! schedule computes each next firing, and a delivery the app failed follows the job's
//! failure policy — retried here after its interval while retries remain, then given up
//! (recorded as fired, so the job moves on to its next firing). A firing that did not reach
//! the app (the job moved, no lease) is fetched again, as a reminder's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rookery_core::clock::now_ms;
use rookery_core::job_reminders::plan_from_wire;
use rookery_core::jobs::JobSpec;
use rookery_core::reminders::{key_to_wire, ReminderKey};
use rookery_core::schedule::{Period, Schedule};
use rookery_core::shutdown::Shutdown;
use rookery_proto::internal::v1::{
    DueCursor, FetchDueRequest, Firing as WireFiring, RecordFiringsRequest, StoredReminder,
};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::call::{new_call_chain_id, ActorKey, Call, CallKind, JobTrigger, ReminderTick};
use crate::cluster::leader_rpc::LeaderRpc;
use crate::cluster::table::TableState;
use crate::error::CallError;
use crate::metrics::HostMetrics;
use crate::routing::Router;

/// How often the scheduler asks placement for due reminders.
pub const FETCH_INTERVAL_MS: u64 = 500;
/// How far ahead it fetches: more than one interval, so no reminder falls between two fetches.
pub const HORIZON_MS: u64 = 2_000;
/// Most reminders in one page of a fetch (placement's own bound).
pub const FETCH_LIMIT: u32 = 10_000;
/// Most ticks queued on this host: a fetch asks for further pages while its pages come back
/// full and fewer than this many are queued (the rest waits for a later fetch).
pub const MAX_QUEUED_FIRINGS: usize = 100_000;
/// How often fired ticks are reported to placement, and the most in one report.
pub const FLUSH_INTERVAL_MS: u64 = 100;
pub const MAX_FIRINGS_PER_REPORT: usize = 5_000;
/// Firings in flight at once on this host.
pub const MAX_CONCURRENT_FIRINGS: usize = 512;
/// Reported firings kept for a retry while placement is unreachable; beyond that the oldest
/// are dropped (their ticks fire again: at least once).
pub const MAX_UNREPORTED_FIRINGS: usize = 100_000;

fn key_of(wire: &StoredReminder) -> Option<ReminderKey> {
    let key = wire.key.as_ref()?;
    Some(ReminderKey {
        actor_type: key.actor_type.clone(),
        actor_id: key.actor_id.clone(),
        name: key.name.clone(),
    })
}

/// The firing after the one due at `due_ms`, which was firing number `fired_count`.
fn due_after(wire: &StoredReminder, due_ms: u64, fired_count: u32) -> Option<u64> {
    match job_of(wire) {
        Some(job) => job.next_fire_after(due_ms, fired_count),
        None => schedule_of(wire).next_after(due_ms, fired_count),
    }
}

/// The job a stored reminder keeps, if any.
fn job_of(wire: &StoredReminder) -> Option<JobSpec> {
    let key = wire.key.as_ref()?;
    let plan = wire.job.clone()?;
    plan_from_wire(&key.actor_id, plan, wire.data.len()).ok()
}

/// Whether a failed job firing reached the app (and so counts against its failure policy),
/// rather than being stopped on this side (moved, no lease, store down): those are fetched
/// and fired again without counting.
fn delivery_failed(error: &CallError) -> bool {
    matches!(
        error,
        CallError::Application(_)
            | CallError::AppDisconnected(_)
            | CallError::DeadlineExceeded(_)
            | CallError::CircuitOpen(_)
            | CallError::TooLarge(_)
    )
}

fn schedule_of(wire: &StoredReminder) -> Schedule {
    Schedule {
        due_at_ms: wire.due_at_ms,
        period: (wire.period_ms > 0).then_some(Period {
            every_ms: wire.period_ms,
            repetitions: (wire.repetitions > 0).then_some(wire.repetitions),
        }),
        expires_at_ms: (wire.expires_at_ms > 0).then_some(wire.expires_at_ms),
    }
}

/// Most changes waiting for the scheduler; beyond that a change is dropped, and the next fetch
/// catches up with it (within `FETCH_INTERVAL_MS`).
const MAX_PENDING_CHANGES: usize = 4_096;

/// Tells this host's scheduler that a reminder was deleted or replaced through this host, so
/// a firing it queued from an earlier fetch is dropped before anything else is fired (the
/// next fetch queues the reminder again if it still falls due). A change made through
/// another host reaches this one at its next fetch, which drops every queued firing placement
/// no longer returns.
#[derive(Clone)]
pub struct ScheduleChanges {
    tx: mpsc::Sender<ReminderKey>,
}

/// The scheduler's end of [`ScheduleChanges`].
pub struct ScheduleChangesRx(mpsc::Receiver<ReminderKey>);

impl ScheduleChanges {
    pub fn channel() -> (ScheduleChanges, ScheduleChangesRx) {
        let (tx, rx) = mpsc::channel(MAX_PENDING_CHANGES);
        (ScheduleChanges { tx }, ScheduleChangesRx(rx))
    }

    /// Sent before the caller answers its client: the scheduler drops the queued firing
    /// before it fires anything due later.
    pub fn changed(&self, key: ReminderKey) {
        let _ = self.tx.try_send(key);
    }
}

struct Fired {
    reminder: StoredReminder,
    result: Result<Bytes, CallError>,
}

pub struct ReminderScheduler {
    host_id: String,
    rpc: Arc<LeaderRpc>,
    router: Arc<Router>,
    metrics: Arc<HostMetrics>,
}

impl ReminderScheduler {
    pub fn new(
        host_id: String,
        rpc: Arc<LeaderRpc>,
        router: Arc<Router>,
        metrics: Arc<HostMetrics>,
    ) -> ReminderScheduler {
        ReminderScheduler {
            host_id,
            rpc,
            router,
            metrics,
        }
    }

    /// Runs until `shutdown`.
    pub async fn run(
        self,
        mut table: watch::Receiver<TableState>,
        changes: ScheduleChangesRx,
        shutdown: Shutdown,
    ) {
        let mut changes = changes.0;
        // Queued ticks by due instant; `queued` maps each key to its queued due instant.
        let mut pending: BTreeMap<(u64, ReminderKey), StoredReminder> = BTreeMap::new();
        let mut queued: HashMap<ReminderKey, u64> = HashMap::new();
        // Ticks fired (or being fired) whose progress placement has not yet recorded: a fetch
        // may still return them, and they must not fire twice.
        let mut in_hand: HashMap<ReminderKey, u64> = HashMap::new();
        let mut unreported: Vec<WireFiring> = Vec::new();
        // Failed attempts at the current firing of each job being retried: (due, failures).
        let mut job_failures: HashMap<ReminderKey, (u64, u32)> = HashMap::new();
        let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_FIRINGS));
        let (fired_tx, mut fired_rx) = mpsc::channel::<Fired>(MAX_CONCURRENT_FIRINGS);
        let mut fetch = tokio::time::interval(Duration::from_millis(FETCH_INTERVAL_MS));
        fetch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut flush = tokio::time::interval(Duration::from_millis(FLUSH_INTERVAL_MS));
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // With no firing slot free, due ticks wait for a result to come back instead.
            let next_due = pending
                .keys()
                .next()
                .map(|(due, _)| *due)
                .filter(|_| permits.available_permits() > 0);
            let wake = async {
                match next_due {
                    Some(due) => {
                        tokio::time::sleep(Duration::from_millis(due.saturating_sub(now_ms())))
                            .await
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            // Biased: a change sent before its client's answer is applied before anything due
            // after that answer fires.
            tokio::select! {
                biased;
                Some(key) = changes.recv() => {
                    forget(&key, &mut pending, &mut queued, &mut in_hand, &mut job_failures);
                }
                _ = fetch.tick() => {
                    let ready = table.borrow_and_update().table.is_some();
                    if ready {
                        self.fetch(&mut pending, &mut queued, &mut in_hand, &mut job_failures).await;
                    }
                }
                _ = wake => {
                    let now = now_ms();
                    // Fire everything due by now (never before: the wall clock decides), as far
                    // as firing slots allow; the rest waits for slots freed by finished firings
                    // (whose results wake this loop). The loop never waits for a slot itself:
                    // finished firings hand their results to it.
                    while let Some(entry) = pending.first_entry() {
                        if entry.key().0 > now {
                            break;
                        }
                        let Ok(permit) = permits.clone().try_acquire_owned() else { break };
                        // `due` is when it was queued for: its due instant, or a retry's.
                        let ((due, key), reminder) = entry.remove_entry();
                        queued.remove(&key);
                        in_hand.insert(key.clone(), reminder.next_due_ms);
                        let router = self.router.clone();
                        let fired_tx = fired_tx.clone();
                        let metrics = self.metrics.clone();
                        tokio::spawn(async move {
                            metrics.reminder_delay_seconds.observe(now_ms().saturating_sub(due) as f64 / 1000.0);
                            let result = fire(&router, &key, &reminder).await;
                            // The slot is free before the result queues up.
                            drop(permit);
                            let _ = fired_tx.send(Fired { reminder, result }).await;
                        });
                    }
                }
                Some(fired) = fired_rx.recv() => {
                    let Some(key) = key_of(&fired.reminder) else { continue };
                    let due = fired.reminder.next_due_ms;
                    let result = match fired.result {
                        Err(e) if fired.reminder.job.is_some() && delivery_failed(&e) => {
                            let failures = match job_failures.get(&key) {
                                Some((at, failures)) if *at == due => failures + 1,
                                _ => 1,
                            };
                            let retry_in = job_of(&fired.reminder).and_then(|job| job.failure_policy.retry_delay_ms(failures));
                            match retry_in {
                                Some(delay_ms) => {
                                    tracing::debug!(job = %key, error = %e, failures, delay_ms, "job delivery failed; retrying");
                                    self.metrics.reminder_failures_total.inc();
                                    job_failures.insert(key.clone(), (due, failures));
                                    // Still in hand: a fetch must not queue the firing again.
                                    let retry_at = now_ms().saturating_add(delay_ms);
                                    if let Some(old) = queued.insert(key.clone(), retry_at) {
                                        pending.remove(&(old, key.clone()));
                                    }
                                    pending.insert((retry_at, key), fired.reminder);
                                    continue;
                                }
                                None => {
                                    // Given up: it counts as a firing, and the job moves on.
                                    tracing::warn!(job = %key, error = %e, failures, "job delivery failed; the failure policy gives this firing up");
                                    self.metrics.reminder_failures_total.inc();
                                    job_failures.remove(&key);
                                    Ok(Bytes::new())
                                }
                            }
                        }
                        other => {
                            job_failures.remove(&key);
                            other
                        }
                    };
                    match result {
                        Ok(_) => {
                            self.metrics.reminders_fired_total.inc();
                            let next = due_after(&fired.reminder, due, fired.reminder.fired_count.saturating_add(1));
                            unreported.push(WireFiring {
                                key: fired.reminder.key.clone(),
                                fired_due_ms: due,
                                next_due_ms: next.unwrap_or(0),
                                done: next.is_none(),
                            });
                            if unreported.len() > MAX_UNREPORTED_FIRINGS {
                                let excess = unreported.len() - MAX_UNREPORTED_FIRINGS;
                                unreported.drain(..excess);
                            }
                        }
                        Err(e) => {
                            // Fetched and fired again later: the tick is not recorded.
                            tracing::debug!(reminder = %key, error = %e, "reminder firing failed");
                            self.metrics.reminder_failures_total.inc();
                            in_hand.remove(&key);
                        }
                    }
                }
                _ = flush.tick(), if !unreported.is_empty() => {
                    let batch: Vec<WireFiring> = unreported.drain(..unreported.len().min(MAX_FIRINGS_PER_REPORT)).collect();
                    let request = RecordFiringsRequest { firings: batch.clone() };
                    let recorded = self
                        .rpc
                        .call(request, |mut client, request| async move { client.record_firings(request).await })
                        .await;
                    match recorded {
                        Ok(_) => {
                            for firing in &batch {
                                if let Some(key) = firing.key.as_ref() {
                                    let key = ReminderKey { actor_type: key.actor_type.clone(), actor_id: key.actor_id.clone(), name: key.name.clone() };
                                    if in_hand.get(&key) == Some(&firing.fired_due_ms) {
                                        in_hand.remove(&key);
                                    }
                                }
                            }
                        }
                        Err(status) => {
                            tracing::warn!(error = %status, "cannot record reminder firings; will retry");
                            let mut retry = batch;
                            retry.append(&mut unreported);
                            unreported = retry;
                        }
                    }
                }
                _ = shutdown.fired() => return,
            }
        }
    }

    /// Queues what placement holds due within the horizon, page after page while pages come
    /// back full, until `MAX_QUEUED_FIRINGS` are queued; drops queued firings that placement
    /// no longer returns.
    async fn fetch(
        &self,
        pending: &mut BTreeMap<(u64, ReminderKey), StoredReminder>,
        queued: &mut HashMap<ReminderKey, u64>,
        in_hand: &mut HashMap<ReminderKey, u64>,
        job_failures: &mut HashMap<ReminderKey, (u64, u32)>,
    ) {
        let until_ms = now_ms() + HORIZON_MS;
        // What the pages so far answered for (they follow one another in placement's
        // `(due, key)` order), and every key they held.
        let mut covered: Option<Covered> = None;
        let mut answered: HashSet<ReminderKey> = HashSet::new();
        loop {
            let after = match &covered {
                Some(Covered::Through((due_ms, key))) => Some(DueCursor {
                    due_ms: *due_ms,
                    key: Some(key_to_wire(key)),
                }),
                _ => None,
            };
            let request = FetchDueRequest {
                host_id: self.host_id.clone(),
                until_ms,
                limit: FETCH_LIMIT,
                after,
            };
            let fetched = self
                .rpc
                .call(request, |mut client, request| async move {
                    client.fetch_due_reminders(request).await
                })
                .await;
            let reminders = match fetched {
                Ok(response) => response.reminders,
                Err(status) => {
                    tracing::debug!(error = %status, "cannot fetch due reminders");
                    break;
                }
            };
            // Placement answers with everything of this host due by `until_ms` after the
            // cursor, or the first `FETCH_LIMIT` of it.
            let full = reminders.len() >= FETCH_LIMIT as usize;
            let last = reminders
                .last()
                .and_then(|last| Some((last.next_due_ms, key_of(last)?)));
            covered = Some(match last {
                Some(last) if full => Covered::Through(last),
                _ => Covered::Due(until_ms),
            });
            for reminder in reminders {
                let Some(key) = key_of(&reminder) else {
                    continue;
                };
                answered.insert(key.clone());
                let due = reminder.next_due_ms;
                if in_hand.get(&key) == Some(&due) || queued.get(&key) == Some(&due) {
                    continue;
                }
                if let Some(old_due) = queued.insert(key.clone(), due) {
                    pending.remove(&(old_due, key.clone()));
                }
                pending.insert((due, key), reminder);
            }
            let more = matches!(covered, Some(Covered::Through(_)));
            if !more || pending.len() >= MAX_QUEUED_FIRINGS {
                break;
            }
        }
        // A queued firing within what the pages answered for and missing from them was
        // deleted, replaced by a later one, or moved to another host.
        if let Some(covered) = covered {
            let stale: Vec<ReminderKey> = pending
                .iter()
                .filter(|((_, key), stored)| {
                    covered.covers(stored.next_due_ms, key) && !answered.contains(key)
                })
                .map(|((_, key), _)| key.clone())
                .collect();
            for key in &stale {
                forget(key, pending, queued, in_hand, job_failures);
            }
        }
        self.metrics.reminders_queued.set(pending.len() as i64);
    }
}

/// How far in placement's `(due, key)` order a fetch's pages answered, from the first due
/// reminder on.
enum Covered {
    /// Through this reminder, inclusive: the last page came back full.
    Through((u64, ReminderKey)),
    /// Everything due by this instant.
    Due(u64),
}

impl Covered {
    fn covers(&self, due_ms: u64, key: &ReminderKey) -> bool {
        match self {
            Covered::Through((end_due, end_key)) => (due_ms, key) <= (*end_due, end_key),
            Covered::Due(until_ms) => due_ms <= *until_ms,
        }
    }
}

/// Drops the queued firing of `key`, if any. A firing being retried (a job's) is given up with
/// it; one being fired now finishes, and its report is harmless.
fn forget(
    key: &ReminderKey,
    pending: &mut BTreeMap<(u64, ReminderKey), StoredReminder>,
    queued: &mut HashMap<ReminderKey, u64>,
    in_hand: &mut HashMap<ReminderKey, u64>,
    job_failures: &mut HashMap<ReminderKey, (u64, u32)>,
) {
    if let Some(due) = queued.remove(key) {
        pending.remove(&(due, key.clone()));
        if job_failures.remove(key).is_some() {
            in_hand.remove(key);
        }
    }
}

/// One tick as a turn of the actor, on this host (it must own the actor now).
async fn fire(
    router: &Router,
    key: &ReminderKey,
    reminder: &StoredReminder,
) -> Result<Bytes, CallError> {
    let expired = reminder.expires_at_ms > 0 && reminder.next_due_ms > reminder.expires_at_ms;
    if expired {
        return Ok(Bytes::new());
    }
    if let Some(plan) = &reminder.job {
        let call = Call {
            key: ActorKey::new(key.actor_type.clone(), key.actor_id.clone()),
            method: format!("job/{}", key.actor_id),
            data: Bytes::from(reminder.data.clone()),
            metadata: Default::default(),
            call_chain_id: new_call_chain_id(),
            kind: CallKind::Job(JobTrigger {
                data_type_url: plan.data_type_url.clone(),
                due_at_ms: reminder.next_due_ms,
            }),
        };
        return router.fire_local(call).await;
    }
    let call = Call {
        key: ActorKey::new(key.actor_type.clone(), key.actor_id.clone()),
        method: format!("remind/{}", key.name),
        data: Bytes::from(reminder.data.clone()),
        metadata: Default::default(),
        call_chain_id: new_call_chain_id(),
        kind: CallKind::Reminder(ReminderTick {
            name: key.name.clone(),
            due_at_ms: reminder.next_due_ms,
            period_ms: reminder.period_ms,
        }),
    };
    router.fire_local(call).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> ReminderKey {
        ReminderKey {
            actor_type: "T".into(),
            actor_id: id.into(),
            name: "r".into(),
        }
    }

    /// Pages answer for the reminder order `(due, key)` through the last one of a full page,
    /// or through the horizon.
    #[test]
    fn pages_cover_the_order_through_their_end() {
        let full = Covered::Through((20, key("c")));
        assert!(full.covers(10, &key("z")));
        assert!(full.covers(20, &key("c")));
        assert!(!full.covers(20, &key("d")));
        assert!(!full.covers(21, &key("a")));
        let last = Covered::Due(30);
        assert!(last.covers(30, &key("z")));
        assert!(!last.covers(31, &key("a")));
    }
}

//! Group commit for the sled store: one writer thread makes many transactions durable with
//! one `fdatasync` of the store's own log, then applies them to sled.
//!
//! The writer (`sled-writer`) takes every request queued so far, as one *group*, and for each
//! in queue order checks its epoch against the fence ([`super::sled_fence`]); the admitted
//! ones are encoded as records and appended to the log ([`super::sled_log`]) in one write,
//! followed by one `fdatasync`. Only then are they applied to sled (one atomic batch per
//! tree, no sled flush) and answered. So:
//! - **No acknowledgement before durability**, and **no reader sees a write before it is
//!   durable**: reads go to sled, which receives a write only after its record is synced.
//! - **Order.** A transaction is queued when its future is first polled, and the writer
//!   checks, logs and applies requests in queue order. A caller that drops its future after
//!   that does not withdraw the request: it is still checked and applied in its place. An
//!   activation issues its next transaction only after the previous one returned or was
//!   dropped, so after it in the queue: one actor's transactions are applied in the order
//!   issued, in sled as in the log (replay follows the log's order). A claim of the actor
//!   waits until every admitted write of the previous claim has been applied
//!   ([`super::sled_fence`]), so a new activation reads what the previous one wrote.
//! - **Atomicity.** A transaction is one record with its own checksum: after a crash it is
//!   replayed whole or (torn) not at all; in sled, a group's writes become visible at once.
//! - **Checkpoints.** Once the log passes [`CHECKPOINT_LOG_BYTES`] (by default), the writer
//!   flushes sled (everything applied so far is then durable in sled) and starts the log
//!   over; on open, the store replays the log's complete records into sled, flushes it and
//!   starts over too. Records are absolute values, so replaying one already in sled changes
//!   nothing.
//! - **Failures.** If an append or `fdatasync` fails, the log's tail is unknown: that group's
//!   transactions fail (`Unavailable`, as for a timeout their outcome after a restart is
//!   unknown: each is then all or nothing), nothing of them reaches sled, and every later
//!   transaction fails until the store is opened again.
//!
//! While a group is being written, new requests queue for the next one, so at `n` writers in
//! flight one `fdatasync` serves up to `n` transactions.

use std::sync::{mpsc, Arc};

use tokio::sync::oneshot;

use super::sled_fence::{ActorHash, HandOffIndex, SledFences};
use super::sled_log::{encode_payload, LogOp, LogTree, SledLog};
use super::{Epoch, StateError};

/// Log size past which the writer flushes sled and starts the log over, in bytes.
pub const CHECKPOINT_LOG_BYTES: u64 = 64 * 1024 * 1024;

/// How a request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Durable,
    /// Its epoch is not its actor's latest claim: nothing was written.
    Fenced,
    Unavailable(String),
}

struct Request {
    actor: ActorHash,
    /// The claim it is written under; `None` for a claim's own bookkeeping (taking a
    /// hand-off), which is not fenced.
    epoch: Option<Epoch>,
    ops: Vec<LogOp>,
    /// `None` when no one waits for the outcome.
    done: Option<oneshot::Sender<Outcome>>,
}

/// What the writer shares with the store.
pub struct Shared {
    pub fences: SledFences,
    pub hand_offs: HandOffIndex,
}

/// The sled trees the writer applies records to.
#[derive(Clone)]
pub struct Trees {
    pub db: sled::Db,
    pub state: sled::Tree,
    pub hand_off: sled::Tree,
}

impl Trees {
    /// Applies records (in order) to sled, each tree's share as one atomic batch.
    pub fn apply<'a>(&self, records: impl IntoIterator<Item = &'a [LogOp]>) -> sled::Result<()> {
        let mut state = sled::Batch::default();
        let mut hand_off = sled::Batch::default();
        let (mut any_state, mut any_hand_off) = (false, false);
        for op in records.into_iter().flatten() {
            let (batch, any) = match op.tree {
                LogTree::State => (&mut state, &mut any_state),
                LogTree::HandOff => (&mut hand_off, &mut any_hand_off),
            };
            *any = true;
            match &op.value {
                Some(value) => batch.insert(op.key.as_slice(), value.as_slice()),
                None => batch.remove(op.key.as_slice()),
            }
        }
        if any_state {
            self.state.apply_batch(state)?;
        }
        if any_hand_off {
            self.hand_off.apply_batch(hand_off)?;
        }
        Ok(())
    }
}

/// Test hook: runs after a group's records are written, before its `fdatasync`.
#[cfg(test)]
pub type BeforeSync = Box<dyn Fn() + Send>;

/// How the writer runs.
pub struct WriterOptions {
    /// Log size past which sled is flushed and the log starts over, in bytes.
    pub checkpoint_log_bytes: u64,
    #[cfg(test)]
    pub before_sync: Option<BeforeSync>,
}

impl Default for WriterOptions {
    fn default() -> WriterOptions {
        WriterOptions {
            checkpoint_log_bytes: CHECKPOINT_LOG_BYTES,
            #[cfg(test)]
            before_sync: None,
        }
    }
}

/// Makes transactions durable on behalf of the sled store.
pub struct GroupCommit {
    /// `None` once dropping: the thread sees the queue closed and ends.
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the writer over `trees` and `log` (already replayed and started over).
    /// Dropping the `GroupCommit` finishes the requests queued before, checkpoints, and waits
    /// for the thread to end, so that its handle on the database is gone once the store is.
    pub fn start(
        trees: Trees,
        log: SledLog,
        shared: Arc<Shared>,
        options: WriterOptions,
    ) -> Result<GroupCommit, StateError> {
        let (requests, queue) = mpsc::channel::<Request>();
        let mut writer = Writer {
            trees,
            log,
            shared,
            failed: None,
            group: 0,
            options,
        };
        let thread = std::thread::Builder::new()
            .name("sled-writer".into())
            .spawn(move || writer.run(&queue))
            .map_err(|e| StateError::Unavailable(format!("cannot start sled writer: {e}")))?;
        Ok(GroupCommit {
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    fn send(&self, request: Request) -> bool {
        self.requests
            .as_ref()
            .is_some_and(|requests| requests.send(request).is_ok())
    }

    /// Writes `ops` of `actor` if `epoch` is still its latest claim; returns once durable.
    /// The request is queued when this future is first polled, and is carried out even if the
    /// future is dropped after that.
    pub async fn commit(&self, actor: ActorHash, epoch: Epoch, ops: Vec<LogOp>) -> Outcome {
        let (done, answer) = oneshot::channel();
        let request = Request {
            actor,
            epoch: Some(epoch),
            ops,
            done: Some(done),
        };
        if !self.send(request) {
            return Outcome::Unavailable("sled writer has stopped".into());
        }
        answer
            .await
            .unwrap_or_else(|_| Outcome::Unavailable("sled writer has stopped".into()))
    }

    /// Queues `ops` of `actor`, unfenced, without waiting: a claim's removal of the hand-off
    /// it took (a claim is not made durable; see [`super::sled_store`]).
    pub fn record(&self, actor: ActorHash, ops: Vec<LogOp>) {
        self.send(Request {
            actor,
            epoch: None,
            ops,
            done: None,
        });
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            // A panic there has been reported on its thread already.
            let _ = thread.join();
        }
    }
}

struct Writer {
    trees: Trees,
    log: SledLog,
    shared: Arc<Shared>,
    /// Why the writer stopped writing, after a failed append, sync, apply or checkpoint.
    failed: Option<String>,
    /// The number of the last group taken.
    group: u64,
    options: WriterOptions,
}

impl Writer {
    fn run(&mut self, queue: &mpsc::Receiver<Request>) {
        let mut group = Vec::new();
        let mut outcomes = Vec::new();
        let mut bytes = Vec::new();
        while let Ok(first) = queue.recv() {
            group.push(first);
            group.extend(queue.try_iter());
            self.group += 1;
            self.write_group(&group, &mut outcomes, &mut bytes);
            for (request, outcome) in group.drain(..).zip(outcomes.drain(..)) {
                if let Some(done) = request.done {
                    // A caller that gave up waiting has no one to tell.
                    let _ = done.send(outcome);
                }
            }
            if self.failed.is_none() && self.log.len_bytes() >= self.options.checkpoint_log_bytes {
                self.checkpoint();
            }
        }
        if self.failed.is_none() {
            self.checkpoint();
        }
    }

    /// Checks, logs, syncs and applies one group; `outcomes` gets one per request.
    fn write_group(&mut self, group: &[Request], outcomes: &mut Vec<Outcome>, bytes: &mut Vec<u8>) {
        let shared = self.shared.clone();
        let fences = &shared.fences;
        bytes.clear();
        let mut admitted = Vec::with_capacity(group.len());
        for request in group {
            let outcome = if let Some(failed) = &self.failed {
                Outcome::Unavailable(failed.clone())
            } else if match request.epoch {
                Some(epoch) => fences.admit(request.actor, epoch, self.group),
                None => true,
            } {
                self.log.frame(bytes, &encode_payload(&request.ops));
                admitted.push(request);
                Outcome::Durable
            } else {
                Outcome::Fenced
            };
            outcomes.push(outcome);
        }
        if !admitted.is_empty() {
            if let Err(reason) = self.append_and_apply(bytes, &admitted) {
                tracing::error!(error = %reason, "sled state writer stopped");
                for outcome in outcomes.iter_mut() {
                    if *outcome == Outcome::Durable {
                        *outcome = Outcome::Unavailable(reason.clone());
                    }
                }
                self.failed = Some(reason);
            }
        }
        fences.settle(self.group, admitted.iter().map(|r| r.actor));
    }

    fn append_and_apply(&mut self, bytes: &[u8], admitted: &[&Request]) -> Result<(), String> {
        #[cfg(test)]
        if let Some(before_sync) = &self.options.before_sync {
            before_sync();
        }
        self.log.append(bytes).map_err(|e| e.to_string())?;
        self.trees
            .apply(admitted.iter().map(|r| r.ops.as_slice()))
            .map_err(|e| format!("sled: {e}"))?;
        for request in admitted {
            let hands_off = request
                .ops
                .iter()
                .any(|op| op.tree == LogTree::HandOff && op.value.is_some());
            if hands_off {
                self.shared.hand_offs.insert(request.actor);
            }
        }
        Ok(())
    }

    /// Makes sled durable, then starts the log over.
    fn checkpoint(&mut self) {
        let checkpointed = self
            .trees
            .db
            .flush()
            .map_err(|e| format!("sled: {e}"))
            .and_then(|_| self.log.restart().map_err(|e| e.to_string()));
        if let Err(reason) = checkpointed {
            tracing::error!(error = %reason, "sled state checkpoint failed");
            self.failed = Some(reason);
        }
    }
}

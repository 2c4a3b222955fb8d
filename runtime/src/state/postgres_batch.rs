//! Batched transactions of the PostgreSQL store: the transactions of many actors that wait at
//! the same time share one PostgreSQL transaction, so one commit (one WAL flush) and two round
//! trips serve them all.
//!
//! `transact` queues a request — its operations reduced to their final effect per key — and
//! waits for its answer. Up to [`MAX_BATCH_EXECUTORS`] executor tasks each take everything
//! queued (up to [`MAX_BATCH_TRANSACTIONS`] and [`MAX_BATCH_BYTES`], in queue order) and run
//! it as one transaction on a pooled connection, in two pipelined flights whose statements do
//! not grow in number with the batch (arrays and `unnest`):
//! 1. `BEGIN`, and the fence rows of the batch's actors locked `FOR UPDATE` in
//!    `(actor_type, actor_id)` order, so that concurrent batches cannot deadlock;
//! 2. once the epochs are known, the final effect of every transaction whose epoch is still
//!    its actor's latest (later transactions of one actor override earlier ones key by key, as
//!    applying them in turn would): one upsert, one delete, and `COMMIT`.
//!
//! A fenced transaction is answered [`StateError::Fenced`] after the first flight and writes
//! nothing; the others are answered once `COMMIT` returned, i.e. once durable (the server's
//! `synchronous_commit`). If the batch fails, every transaction still waiting gets the error
//! and nothing is written (the connection is closed, so the server rolls back).
//!
//! The writes are sent only after the locks are held, so their statements' snapshots (one
//! per statement under READ COMMITTED) see everything the previous holder of each lock
//! committed. And they are sent only if the locks were obtained before the earliest deadline
//! of the batch's callers: a caller that has given up (and may write again) can therefore
//! never see its abandoned transaction applied after a later one.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_postgres::types::ToSql;

use super::postgres_error::{db_error, unavailable};
use super::{expires_at_ms, Epoch, StateError, StateOp};
use crate::call::ActorKey;

/// Batches one store runs at once (each on its own pooled connection). Two keep a connection
/// busy while the other waits for its commit; more make smaller batches, so more statements
/// for the same transactions (64 actors on two cores, benches/README.md: 1 or 2 executors
/// ~27,500 tx/s, 4 ~22,000, 8 ~19,300, 16 ~12,400).
pub const MAX_BATCH_EXECUTORS: usize = 2;
/// Most transactions in one batch.
pub const MAX_BATCH_TRANSACTIONS: usize = 256;
/// Most bytes (keys, values and a per-write overhead) in one batch; a larger transaction
/// runs alone.
pub const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// What one write counts for besides its key and value (the arrays' per-element overhead).
const WRITE_OVERHEAD_BYTES: usize = 64;

/// Where executors get their connections.
pub(super) trait Connections: Send + Sync + 'static {
    /// A pooled connection, with the schema in place.
    fn connection(&self) -> BoxFuture<'_, Result<deadpool_postgres::Object, StateError>>;
}

/// The final effect of one transaction on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Write {
    key: String,
    /// `None` deletes the key.
    value: Option<Bytes>,
    expires_at_ms: Option<i64>,
}

impl Write {
    fn of(op: &StateOp) -> Write {
        match op {
            StateOp::Upsert {
                key,
                value,
                ttl_seconds,
            } => Write {
                key: key.clone(),
                value: Some(value.clone()),
                expires_at_ms: expires_at_ms(*ttl_seconds).map(|ms| ms as i64),
            },
            StateOp::Delete { key } => Write {
                key: key.clone(),
                value: None,
                expires_at_ms: None,
            },
        }
    }

    fn size_bytes(&self) -> usize {
        self.key.len() + self.value.as_ref().map_or(0, Bytes::len) + WRITE_OVERHEAD_BYTES
    }
}

/// `operations` reduced to their last effect on each key, in the order keys first appear.
fn final_writes(operations: &[StateOp]) -> Vec<Write> {
    let mut writes: Vec<Write> = Vec::with_capacity(operations.len());
    if let [op] = operations {
        writes.push(Write::of(op));
        return writes;
    }
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(operations.len());
    for op in operations {
        match index.entry(op.key()) {
            Entry::Occupied(slot) => writes[*slot.get()] = Write::of(op),
            Entry::Vacant(slot) => {
                slot.insert(writes.len());
                writes.push(Write::of(op));
            }
        }
    }
    writes
}

type Answer = oneshot::Sender<Result<(), StateError>>;

/// One queued transaction.
struct Request {
    actor: ActorKey,
    epoch: Epoch,
    writes: Vec<Write>,
    size_bytes: usize,
    /// When its caller gives up.
    deadline: Instant,
    /// Taken once answered.
    answer: Option<Answer>,
}

impl Request {
    fn respond(&mut self, result: Result<(), StateError>) {
        if let Some(answer) = self.answer.take() {
            // A caller that gave up has no one to tell.
            let _ = answer.send(result);
        }
    }

    /// Whether its caller still waits for it.
    fn is_awaited(&self, now: Instant) -> bool {
        now < self.deadline && self.answer.as_ref().is_some_and(|a| !a.is_closed())
    }
}

#[derive(Default)]
struct Queue {
    pending: VecDeque<Request>,
    /// Executor tasks running.
    executors: usize,
}

impl Queue {
    /// The next batch: the requests at the head whose callers still wait, in order, within the
    /// caps (at least one). Requests whose callers gave up are dropped.
    fn take_batch(&mut self, now: Instant) -> Vec<Request> {
        let mut batch = Vec::new();
        let mut batch_bytes = 0usize;
        while let Some(next) = self.pending.front() {
            let full = batch.len() >= MAX_BATCH_TRANSACTIONS
                || batch_bytes.saturating_add(next.size_bytes) > MAX_BATCH_BYTES;
            if full && !batch.is_empty() {
                break;
            }
            let Some(request) = self.pending.pop_front() else {
                break;
            };
            if request.is_awaited(now) {
                batch_bytes = batch_bytes.saturating_add(request.size_bytes);
                batch.push(request);
            }
        }
        batch
    }
}

/// The SQL of one table name, built once.
struct BatchStatements {
    lock_fences: String,
    upsert: String,
    delete: String,
}

impl BatchStatements {
    fn new(table: &str) -> BatchStatements {
        let fences = format!("{table}_fences");
        BatchStatements {
            // `n` is the 1-based position of the actor in the arrays. Rows are locked as the
            // sort returns them, so every batch locks in the same order.
            lock_fences: format!(
                "SELECT b.n, f.epoch FROM {fences} f
                 JOIN unnest($1::text[], $2::text[]) WITH ORDINALITY AS b(actor_type, actor_id, n)
                   ON f.actor_type = b.actor_type AND f.actor_id = b.actor_id
                 ORDER BY f.actor_type, f.actor_id
                 FOR UPDATE OF f"
            ),
            upsert: format!(
                "INSERT INTO {table} (actor_type, actor_id, key, value, expires_at_ms)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bigint[])
                 ON CONFLICT (actor_type, actor_id, key)
                 DO UPDATE SET value = EXCLUDED.value, expires_at_ms = EXCLUDED.expires_at_ms"
            ),
            delete: format!(
                "DELETE FROM {table} t
                 USING unnest($1::text[], $2::text[], $3::text[]) AS d(actor_type, actor_id, key)
                 WHERE t.actor_type = d.actor_type AND t.actor_id = d.actor_id AND t.key = d.key"
            ),
        }
    }
}

struct Shared {
    connections: Arc<dyn Connections>,
    statements: BatchStatements,
    /// Bound on a batch's writes and commit.
    operation_bound: Duration,
    queue: Mutex<Queue>,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // The queue is consistent between any two statements: a panic elsewhere leaves it so.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The next batch, or `None` (and this executor counted out) once nothing is queued.
    fn next_batch(&self) -> Option<Vec<Request>> {
        let mut queue = self.queue();
        let batch = queue.take_batch(Instant::now());
        if batch.is_empty() {
            queue.executors -= 1;
            None
        } else {
            Some(batch)
        }
    }
}

/// Queues transactions and runs them in batches.
pub(super) struct Batcher {
    shared: Arc<Shared>,
}

impl Batcher {
    /// Batches over `connections` for `table`; a batch's writes and commit are bounded by
    /// `operation_bound` (its locks by its callers' deadlines).
    pub(super) fn new(
        connections: Arc<dyn Connections>,
        table: &str,
        operation_bound: Duration,
    ) -> Batcher {
        Batcher {
            shared: Arc::new(Shared {
                connections,
                statements: BatchStatements::new(table),
                operation_bound,
                queue: Mutex::new(Queue::default()),
            }),
        }
    }

    /// Applies `operations` if `epoch` is still the actor's latest claim, in some batch;
    /// returns once committed, or after `timeout`.
    pub(super) async fn transact(
        &self,
        actor: &ActorKey,
        epoch: Epoch,
        operations: &[StateOp],
        timeout: Duration,
    ) -> Result<(), StateError> {
        let deadline = Instant::now() + timeout;
        let (answer, answered) = oneshot::channel();
        let writes = final_writes(operations);
        self.enqueue(Request {
            actor: actor.clone(),
            epoch,
            size_bytes: writes.iter().map(Write::size_bytes).sum(),
            writes,
            deadline,
            answer: Some(answer),
        });
        match tokio::time::timeout_at(deadline, answered).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(unavailable("the batch of this transaction was abandoned")),
            Err(_) => Err(unavailable(format!(
                "no answer within {} ms",
                timeout.as_millis()
            ))),
        }
    }

    fn enqueue(&self, request: Request) {
        let start_executor = {
            let mut queue = self.shared.queue();
            queue.pending.push_back(request);
            let start = queue.executors < MAX_BATCH_EXECUTORS;
            if start {
                queue.executors += 1;
            }
            start
        };
        if start_executor {
            tokio::spawn(run_executor(self.shared.clone()));
        }
    }
}

/// One executor: runs batches while any is queued.
async fn run_executor(shared: Arc<Shared>) {
    while let Some(mut batch) = shared.next_batch() {
        let result = run_batch(&shared, &mut batch).await;
        for request in &mut batch {
            request.respond(result.clone());
        }
    }
}

/// The batch's actors, each once, as the lock statement's arrays.
struct BatchActors<'b> {
    types: Vec<&'b str>,
    ids: Vec<&'b str>,
    /// Per request, its actor's position in the arrays.
    of_request: Vec<usize>,
}

impl<'b> BatchActors<'b> {
    fn of(batch: &'b [Request]) -> BatchActors<'b> {
        let mut index: HashMap<(&str, &str), usize> = HashMap::with_capacity(batch.len());
        let mut actors = BatchActors {
            types: Vec::with_capacity(batch.len()),
            ids: Vec::with_capacity(batch.len()),
            of_request: Vec::with_capacity(batch.len()),
        };
        for request in batch {
            let key = (
                request.actor.actor_type.as_str(),
                request.actor.actor_id.as_str(),
            );
            let next = index.len();
            let position = *index.entry(key).or_insert(next);
            if position == next {
                actors.types.push(key.0);
                actors.ids.push(key.1);
            }
            actors.of_request.push(position);
        }
        actors
    }
}

/// The arrays of the upsert and delete statements.
#[derive(Default)]
struct WriteArrays<'b> {
    upsert_types: Vec<&'b str>,
    upsert_ids: Vec<&'b str>,
    upsert_keys: Vec<&'b str>,
    upsert_values: Vec<&'b [u8]>,
    upsert_expiries_ms: Vec<Option<i64>>,
    delete_types: Vec<&'b str>,
    delete_ids: Vec<&'b str>,
    delete_keys: Vec<&'b str>,
}

impl<'b> WriteArrays<'b> {
    /// The final effect of the applied requests (in batch order) on each key: one entry per
    /// (actor, key), since a statement's `ON CONFLICT DO UPDATE` may touch a row only once.
    fn of(batch: &'b [Request], applied: &[bool]) -> WriteArrays<'b> {
        let mut last: HashMap<(&str, &str, &str), usize> = HashMap::new();
        let mut writes: Vec<(&ActorKey, &Write)> = Vec::new();
        for (request, _) in batch.iter().zip(applied).filter(|(_, applied)| **applied) {
            for write in &request.writes {
                let key = (
                    request.actor.actor_type.as_str(),
                    request.actor.actor_id.as_str(),
                    write.key.as_str(),
                );
                match last.entry(key) {
                    Entry::Occupied(slot) => writes[*slot.get()] = (&request.actor, write),
                    Entry::Vacant(slot) => {
                        slot.insert(writes.len());
                        writes.push((&request.actor, write));
                    }
                }
            }
        }
        let mut arrays = WriteArrays::default();
        for (actor, write) in writes {
            match &write.value {
                Some(value) => {
                    arrays.upsert_types.push(&actor.actor_type);
                    arrays.upsert_ids.push(&actor.actor_id);
                    arrays.upsert_keys.push(&write.key);
                    arrays.upsert_values.push(value.as_ref());
                    arrays.upsert_expiries_ms.push(write.expires_at_ms);
                }
                None => {
                    arrays.delete_types.push(&actor.actor_type);
                    arrays.delete_ids.push(&actor.actor_id);
                    arrays.delete_keys.push(&write.key);
                }
            }
        }
        arrays
    }
}

/// A pooled connection inside a batch's transaction. Unless the transaction ended, dropping it
/// closes the connection (the server then rolls back) instead of returning it to the pool.
struct InTransaction {
    client: Option<deadpool_postgres::Object>,
}

impl InTransaction {
    fn client(&self) -> Result<&deadpool_postgres::Object, StateError> {
        self.client
            .as_ref()
            .ok_or_else(|| unavailable("connection already released"))
    }

    /// The transaction ended (committed or rolled back): the connection may be reused.
    fn release(mut self) {
        drop(self.client.take());
    }
}

impl Drop for InTransaction {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// Runs `batch` as one transaction. Fenced requests are answered on the way; the result is
/// every other request's answer.
async fn run_batch(shared: &Shared, batch: &mut [Request]) -> Result<(), StateError> {
    let deadline = batch
        .iter()
        .map(|r| r.deadline)
        .min()
        .unwrap_or_else(Instant::now);
    let (connection, applied) = {
        let actors = BatchActors::of(batch);
        let locked = tokio::time::timeout_at(deadline, lock_fences(shared, &actors)).await;
        let (connection, epochs) = locked.unwrap_or_else(|_| Err(late()))?;
        // Checked again: a caller past its deadline may be writing anew already.
        if Instant::now() >= deadline {
            return Err(late());
        }
        let applied: Vec<bool> = batch
            .iter()
            .zip(&actors.of_request)
            .map(|(request, &a)| epochs[a] == Some(request.epoch.0 as i64))
            .collect();
        (connection, applied)
    };
    for (request, _) in batch.iter_mut().zip(&applied).filter(|(_, a)| !**a) {
        let fenced = StateError::Fenced(request.actor.clone());
        request.respond(Err(fenced));
    }
    let arrays = WriteArrays::of(batch, &applied);
    let writing = write_and_commit(shared, &connection, &arrays);
    match tokio::time::timeout(shared.operation_bound, writing).await {
        Ok(Ok(())) => {
            connection.release();
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(unavailable("no commit within the operation bound")),
    }
}

fn late() -> StateError {
    unavailable("the fence locks were not obtained before the callers' deadline")
}

/// Flight 1: a connection, `BEGIN`, and the batch's fence rows locked; per actor of `actors`,
/// its current epoch (`None`: never claimed).
async fn lock_fences(
    shared: &Shared,
    actors: &BatchActors<'_>,
) -> Result<(InTransaction, Vec<Option<i64>>), StateError> {
    let client = shared.connections.connection().await?;
    let statement = client
        .prepare_cached(&shared.statements.lock_fences)
        .await
        .map_err(db_error)?;
    let connection = InTransaction {
        client: Some(client),
    };
    let client = connection.client()?;
    let params: [&(dyn ToSql + Sync); 2] = [&actors.types, &actors.ids];
    // Polled in this order, so sent in this order (one round trip).
    let (begun, rows) = futures::join!(
        client.batch_execute("BEGIN"),
        client.query(&statement, &params)
    );
    begun.map_err(db_error)?;
    let mut epochs = vec![None; actors.types.len()];
    for row in rows.map_err(db_error)? {
        let n: i64 = row.try_get(0).map_err(db_error)?;
        let epoch: i64 = row.try_get(1).map_err(db_error)?;
        let slot = usize::try_from(n - 1)
            .ok()
            .and_then(|i| epochs.get_mut(i))
            .ok_or_else(|| unavailable(format!("fence lock returned position {n}")))?;
        *slot = Some(epoch);
    }
    Ok((connection, epochs))
}

/// Flight 2: the writes and `COMMIT`, pipelined. Each statement's result is checked: after a
/// failed one the server would turn `COMMIT` into a rollback without an error.
async fn write_and_commit(
    shared: &Shared,
    connection: &InTransaction,
    arrays: &WriteArrays<'_>,
) -> Result<(), StateError> {
    let client = connection.client()?;
    let statements = &shared.statements;
    let (upsert, delete) = futures::try_join!(
        client.prepare_cached(&statements.upsert),
        client.prepare_cached(&statements.delete)
    )
    .map_err(db_error)?;
    let upserted = async {
        if arrays.upsert_keys.is_empty() {
            return Ok(0);
        }
        client
            .execute(
                &upsert,
                &[
                    &arrays.upsert_types,
                    &arrays.upsert_ids,
                    &arrays.upsert_keys,
                    &arrays.upsert_values,
                    &arrays.upsert_expiries_ms,
                ],
            )
            .await
    };
    let deleted = async {
        if arrays.delete_keys.is_empty() {
            return Ok(0);
        }
        client
            .execute(
                &delete,
                &[
                    &arrays.delete_types,
                    &arrays.delete_ids,
                    &arrays.delete_keys,
                ],
            )
            .await
    };
    // Polled in this order, so sent in this order on the one connection.
    let (upserted, deleted, committed) =
        futures::join!(upserted, deleted, client.batch_execute("COMMIT"));
    upserted.map_err(db_error)?;
    deleted.map_err(db_error)?;
    committed.map_err(db_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::state::test_upsert as upsert;

    fn delete(key: &str) -> StateOp {
        StateOp::Delete { key: key.into() }
    }

    fn request(
        actor: &str,
        epoch: u64,
        ops: &[StateOp],
    ) -> (Request, oneshot::Receiver<Result<(), StateError>>) {
        let (answer, answered) = oneshot::channel();
        let writes = final_writes(ops);
        let request = Request {
            actor: ActorKey::new("T", actor),
            epoch: Epoch(epoch),
            size_bytes: writes.iter().map(Write::size_bytes).sum(),
            writes,
            deadline: Instant::now() + Duration::from_secs(60),
            answer: Some(answer),
        };
        (request, answered)
    }

    #[test]
    fn a_transaction_keeps_the_last_effect_on_each_key() {
        let writes = final_writes(&[
            upsert("a", "1"),
            upsert("b", "1"),
            delete("a"),
            upsert("b", "2"),
            delete("c"),
            upsert("c", "3"),
        ]);
        let effects: Vec<(&str, Option<&[u8]>)> = writes
            .iter()
            .map(|w| (w.key.as_str(), w.value.as_deref()))
            .collect();
        assert_eq!(
            effects,
            [
                ("a", None),
                ("b", Some(b"2".as_slice())),
                ("c", Some(b"3".as_slice()))
            ]
        );
    }

    #[tokio::test]
    async fn later_transactions_of_an_actor_override_earlier_ones_unless_fenced() {
        let (first, _a) = request("x", 1, &[upsert("k", "1"), upsert("j", "1")]);
        let (second, _b) = request("x", 1, &[delete("k"), upsert("i", "2")]);
        let (stale, _c) = request("x", 0, &[upsert("j", "stale")]);
        let (other, _d) = request("y", 1, &[upsert("k", "y")]);
        let batch = [first, second, stale, other];
        let arrays = WriteArrays::of(&batch, &[true, true, false, true]);
        let mut upserts: Vec<(&str, &str, &[u8])> = (0..arrays.upsert_keys.len())
            .map(|i| {
                (
                    arrays.upsert_ids[i],
                    arrays.upsert_keys[i],
                    arrays.upsert_values[i],
                )
            })
            .collect();
        upserts.sort();
        assert_eq!(
            upserts,
            [
                ("x", "i", b"2".as_slice()),
                ("x", "j", b"1".as_slice()),
                ("y", "k", b"y".as_slice())
            ]
        );
        assert_eq!(arrays.delete_ids, ["x"]);
        assert_eq!(arrays.delete_keys, ["k"]);
        let actors = BatchActors::of(&batch);
        assert_eq!(actors.ids, ["x", "y"]);
        assert_eq!(actors.of_request, [0, 0, 0, 1]);
    }

    #[tokio::test]
    async fn a_batch_takes_awaited_requests_in_order_within_its_caps() {
        let mut queue = Queue::default();
        let mut receivers = Vec::new();
        for i in 0..MAX_BATCH_TRANSACTIONS + 10 {
            let (request, answered) = request(&format!("a{i}"), 1, &[upsert("k", "v")]);
            queue.pending.push_back(request);
            receivers.push(answered);
        }
        // A caller that gave up: its request is dropped, not run.
        drop(receivers.remove(1));
        let batch = queue.take_batch(Instant::now());
        assert_eq!(batch.len(), MAX_BATCH_TRANSACTIONS);
        assert_eq!(batch[0].actor.actor_id, "a0");
        assert_eq!(batch[1].actor.actor_id, "a2");
        assert_eq!(queue.take_batch(Instant::now()).len(), 9);
        assert!(queue.take_batch(Instant::now()).is_empty());

        let big = "v".repeat(MAX_BATCH_BYTES / 2 + 1);
        for i in 0..3 {
            let (request, answered) = request(&format!("b{i}"), 1, &[upsert("k", &big)]);
            queue.pending.push_back(request);
            receivers.push(answered);
        }
        assert_eq!(
            queue.take_batch(Instant::now()).len(),
            1,
            "over the byte cap"
        );
        let later = Instant::now() + Duration::from_secs(61);
        assert!(
            queue.take_batch(later).is_empty(),
            "requests past their deadline are dropped"
        );
    }
}

//! Group commit for the sled store: one flush makes every write waiting on it durable.
//!
//! A transaction applies its writes in memory first, then asks the [`GroupCommit`] for a
//! flush and waits. One thread (`sled-flush`) takes every request queued so far, flushes once
//! and answers them all: a request is queued only after its writes were applied, and the
//! flush starts only after the request was taken, so that flush covers them. While a flush
//! runs, new requests queue for the next one, so at `n` writers in flight a flush serves up to
//! `n` transactions instead of each paying its own fsync.

use std::sync::mpsc;

use tokio::sync::oneshot;

use super::StateError;

type Waiter = oneshot::Sender<Result<(), StateError>>;

/// Flushes one sled database on behalf of many transactions.
pub struct GroupCommit {
    /// `None` once dropping: the thread sees the queue closed and ends.
    requests: Option<mpsc::Sender<Waiter>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the flushing thread of `db`. Dropping the `GroupCommit` answers the requests
    /// queued before and waits for the thread to end, so that the thread's handle on the
    /// database is gone once the store is (and the files can be opened again).
    pub fn start(db: sled::Db) -> Result<GroupCommit, StateError> {
        let (requests, queue) = mpsc::channel::<Waiter>();
        let thread = std::thread::Builder::new()
            .name("sled-flush".into())
            .spawn(move || flush_loop(&db, &queue))
            .map_err(|e| StateError::Unavailable(format!("cannot start sled flusher: {e}")))?;
        Ok(GroupCommit {
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    /// Returns once every write applied before this call is durable.
    pub async fn durable(&self) -> Result<(), StateError> {
        let (done, answer) = oneshot::channel();
        self.requests
            .as_ref()
            .and_then(|requests| requests.send(done).ok())
            .ok_or_else(|| StateError::Unavailable("sled flusher has stopped".into()))?;
        answer
            .await
            .map_err(|_| StateError::Unavailable("sled flusher has stopped".into()))?
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

fn flush_loop(db: &sled::Db, queue: &mpsc::Receiver<Waiter>) {
    let mut batch = Vec::new();
    while let Ok(first) = queue.recv() {
        batch.push(first);
        batch.extend(queue.try_iter());
        let flushed = db
            .flush()
            .map(|_| ())
            .map_err(|e| StateError::Unavailable(format!("sled: {e}")));
        for waiter in batch.drain(..) {
            // A waiter whose transaction was given up has no one to tell.
            let _ = waiter.send(flushed.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_waiter_is_answered_after_its_write_is_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let db = sled::open(&path).unwrap();
            let commit = std::sync::Arc::new(GroupCommit::start(db.clone()).unwrap());
            let writers = (0..32u32).map(|i| {
                let (db, commit) = (db.clone(), commit.clone());
                tokio::spawn(async move {
                    db.insert(i.to_be_bytes(), b"v".as_slice()).unwrap();
                    commit.durable().await.unwrap();
                })
            });
            for writer in writers {
                writer.await.unwrap();
            }
        }
        let db = sled::open(&path).unwrap();
        assert_eq!(db.len(), 32);
    }
}

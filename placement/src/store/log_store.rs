//! The Raft log of a placement node, in sled: entries keyed by big-endian index (so sled's byte
//! order is log order), plus the vote, the last purged log id and the committed log id.
//!
//! Appends, votes and truncations are flushed to disk before they are acknowledged: Raft counts
//! on a node never forgetting a vote it cast or an entry it accepted. Purges and the committed
//! pointer are not flushed: losing them in a crash only means re-purging or re-applying.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{FlushMode, StoreError};
use crate::raft_types::{NodeId, TypeConfig};

type Entry = openraft::Entry<TypeConfig>;

const ENTRIES_TREE: &str = "raft_log";
const META_TREE: &str = "raft_log_meta";
const KEY_VOTE: &str = "vote";
const KEY_LAST_PURGED: &str = "last_purged";
const KEY_COMMITTED: &str = "committed";

/// Most entries one replication read returns. openraft asks for at most
/// `Config::max_payload_entries`; this only guards against a larger configuration.
const MAX_ENTRIES_PER_READ: usize = 1024;
/// Most encoded bytes one replication read returns (at least one entry is always returned).
/// Keeps an `AppendEntries` RPC well under tonic's default 4 MiB message limit even when
/// entries carry large membership changes.
const MAX_BYTES_PER_READ: usize = 1024 * 1024;

/// The Raft log storage. Cheap to clone: clones share the same sled trees, which is how it also
/// serves as its own [`RaftLogStorage::LogReader`].
#[derive(Clone, Debug)]
pub struct LogStore {
    db: sled::Db,
    entries: sled::Tree,
    meta: sled::Tree,
    flush: FlushMode,
}

impl LogStore {
    pub(super) fn open(db: &sled::Db, flush: FlushMode) -> Result<LogStore, StoreError> {
        Ok(LogStore {
            db: db.clone(),
            entries: db.open_tree(ENTRIES_TREE)?,
            meta: db.open_tree(META_TREE)?,
            flush,
        })
    }

    fn read_meta<T: DeserializeOwned>(
        &self,
        key: &str,
        err: fn(AnyError) -> StorageIOError<NodeId>,
    ) -> Result<Option<T>, StorageError<NodeId>> {
        let Some(bytes) = self.meta.get(key).map_err(|e| err(AnyError::new(&e)))? else {
            return Ok(None);
        };
        let value = serde_json::from_slice(&bytes).map_err(|e| err(AnyError::new(&e)))?;
        Ok(Some(value))
    }

    fn write_meta<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        err: fn(AnyError) -> StorageIOError<NodeId>,
    ) -> Result<(), StorageError<NodeId>> {
        let bytes = serde_json::to_vec(value).map_err(|e| err(AnyError::new(&e)))?;
        self.meta
            .insert(key, bytes)
            .map_err(|e| err(AnyError::new(&e)))?;
        Ok(())
    }

    /// Entries in `range`, stopping early once `max_entries` or (after the first entry)
    /// `max_bytes` is reached.
    fn read_entries(
        &self,
        range: &impl RangeBounds<u64>,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        let Some((start, end)) = index_range(range) else {
            return Ok(Vec::new());
        };
        let iter = match end {
            Some(end) => self.entries.range(index_key(start)..index_key(end)),
            None => self.entries.range(index_key(start)..),
        };
        let mut entries = Vec::new();
        let mut bytes = 0;
        for item in iter {
            if entries.len() >= max_entries || (!entries.is_empty() && bytes >= max_bytes) {
                break;
            }
            let (key, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            let entry: Entry = serde_json::from_slice(&value)
                .map_err(|e| StorageIOError::read_log_at_index(key_index(&key), &e))?;
            bytes += value.len();
            entries.push(entry);
        }
        Ok(entries)
    }

    fn last_entry_id(&self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        let Some((key, value)) = self
            .entries
            .last()
            .map_err(|e| StorageIOError::read_logs(&e))?
        else {
            return Ok(None);
        };
        let entry: Entry = serde_json::from_slice(&value)
            .map_err(|e| StorageIOError::read_log_at_index(key_index(&key), &e))?;
        Ok(Some(entry.log_id))
    }

    /// Flushes every write so far, as each acknowledged log write must be durable.
    async fn flush(&self) -> Result<(), sled::Error> {
        super::flush(&self.db, self.flush).await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        self.read_entries(&range, usize::MAX, usize::MAX)
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        self.read_entries(&(start..end), MAX_ENTRIES_PER_READ, MAX_BYTES_PER_READ)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged_log_id: Option<LogId<NodeId>> =
            self.read_meta(KEY_LAST_PURGED, StorageIOError::read_logs)?;
        // A crash in the middle of a purge can leave entries at or below the purge point; they
        // never exceed it, so the greater of the two is the true last log id.
        let last_log_id = self.last_entry_id()?.max(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write_meta(KEY_VOTE, vote, StorageIOError::write_vote)?;
        self.flush()
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.read_meta(KEY_VOTE, StorageIOError::read_vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        match committed {
            Some(log_id) => self.write_meta(KEY_COMMITTED, &log_id, StorageIOError::write_logs),
            None => {
                self.meta
                    .remove(KEY_COMMITTED)
                    .map_err(|e| StorageIOError::write_logs(&e))?;
                Ok(())
            }
        }
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        self.read_meta(KEY_COMMITTED, StorageIOError::read_logs)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // One batch, so a crash keeps all of an append or none of it: never a hole.
        let mut batch = sled::Batch::default();
        for entry in entries {
            let value = serde_json::to_vec(&entry)
                .map_err(|e| StorageIOError::write_log_entry(entry.log_id, &e))?;
            batch.insert(&index_key(entry.log_id.index), value);
        }
        self.entries
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        match self.flush().await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let err = StorageIOError::write_logs(&e);
                callback.log_io_completed(Err(io::Error::from(e)));
                Err(err.into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        // Removing the whole tail in one batch cannot leave a hole, whatever order sled uses.
        let mut batch = sled::Batch::default();
        for key in self.entries.range(index_key(log_id.index)..).keys() {
            batch.remove(key.map_err(|e| StorageIOError::write_logs(&e))?);
        }
        self.entries
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.flush()
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        // The pointer goes first: if the removal below is cut short, the leftovers are at or
        // below it and get_log_state stays right.
        self.write_meta(KEY_LAST_PURGED, &log_id, StorageIOError::write_logs)?;
        let mut batch = sled::Batch::default();
        for key in self.entries.range(..=index_key(log_id.index)).keys() {
            batch.remove(key.map_err(|e| StorageIOError::write_logs(&e))?);
        }
        self.entries
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}

/// The sled key of the entry at `index`: big-endian, so keys sort in log order.
fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The index of a log key; only used to name the entry in errors, so a malformed key reads as 0.
fn key_index(key: &[u8]) -> u64 {
    key.try_into().map(u64::from_be_bytes).unwrap_or_default()
}

/// `range` as an inclusive start and an exclusive end (`None`: unbounded), or `None` if it is
/// empty. Converting here keeps sled from ever seeing a range whose start is after its end.
fn index_range(range: &impl RangeBounds<u64>) -> Option<(u64, Option<u64>)> {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => None,
    };
    match end {
        Some(end) if end <= start => None,
        _ => Some((start, end)),
    }
}

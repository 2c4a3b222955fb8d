//! The placement service's durable storage: the Raft log and the replicated state machine, both
//! kept in the one sled database of a node's data dir.
//!
//! - [`LogStore`] (`log_store`): log entries, vote and log pointers. Every log write is flushed
//!   before openraft hears it is done, because a vote or an entry acknowledged and then lost
//!   breaks Raft's safety.
//! - [`StateMachineStore`] (`state_machine`): the [`PlacementState`](crate::state::PlacementState)
//!   written through on every apply, the current snapshot, and the change feed the leader
//!   disseminates from.
//! - [`check_identity`] (`identity`): which node of which cluster a data dir belongs to.
//!
//! Opening a node's storage is: [`open`] the data dir, [`check_identity`], then [`open_stores`].

mod identity;
mod log_store;
mod state_machine;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use identity::check_identity;
pub use log_store::LogStore;
pub use state_machine::{AppliedState, RemindersView, StateMachineStore};

/// sled reports a data dir held by another process as a plain I/O error; this is the start of
/// its message (sled 0.34, `Config::try_lock`), the only way to tell that case apart.
const SLED_LOCKED_MESSAGE: &str = "could not acquire lock";

/// Why a data dir could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data dir {} is locked by another process (is another placement node using it?)", path.display())]
    Locked { path: PathBuf },
    #[error("cannot read or write data dir {}", path.display())]
    Inaccessible {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open data dir {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error(
        "data dir belongs to node {found_node} of cluster {found_cluster:?}, \
         not node {node} of cluster {cluster:?}"
    )]
    IdentityMismatch {
        found_node: u64,
        found_cluster: String,
        node: u64,
        cluster: String,
    },
    #[error("stored {what} is corrupt")]
    Corrupt {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode {what}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("sled storage failed")]
    Sled(#[from] sled::Error),
}

/// Opens (creating if needed) the sled database in `path`.
///
/// sled holds an exclusive lock on the data dir while open, so a second node pointed at the same
/// dir fails here with [`StoreError::Locked`] rather than corrupting it.
pub fn open(path: &Path) -> Result<sled::Db, StoreError> {
    sled::Config::new()
        .path(path)
        .open()
        .map_err(|source| match source {
            sled::Error::Io(e) if e.to_string().starts_with(SLED_LOCKED_MESSAGE) => {
                StoreError::Locked {
                    path: path.to_owned(),
                }
            }
            sled::Error::Io(e) => StoreError::Inaccessible {
                path: path.to_owned(),
                source: e,
            },
            source => StoreError::Open {
                path: path.to_owned(),
                source,
            },
        })
}

/// How the stores wait for a write to reach the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlushMode {
    /// sled's `flush_async`: the flush runs on sled's own threads while the task waits,
    /// leaving the runtime thread free.
    #[default]
    Background,
    /// `flush()` on the calling thread, which blocks for as long as the flush takes. For the
    /// simulator: every node runs on one thread under a simulated clock, and a flush that
    /// completes on another thread wakes its task after a real-time delay the simulated clock
    /// knows nothing of, so the step at which a write becomes durable would vary from run to
    /// run. Inline, it is durable before the task goes on, at the same simulated instant in
    /// every run. Equally durable; in production it would hold up a runtime thread.
    Inline,
}

/// Flushes every write to `tree`'s database so far, as `mode` says.
pub(crate) async fn flush(tree: &sled::Tree, mode: FlushMode) -> Result<(), sled::Error> {
    match mode {
        FlushMode::Background => tree.flush_async().await.map(|_| ()),
        FlushMode::Inline => tree.flush().map(|_| ()),
    }
}

/// Opens the log and the state machine kept in `db`, the state machine loaded with the state it
/// had when the node stopped; both flush as `flush` says.
pub fn open_stores(
    db: &sled::Db,
    flush: FlushMode,
) -> Result<(LogStore, StateMachineStore), StoreError> {
    Ok((
        LogStore::open(db, flush)?,
        StateMachineStore::open(db, flush)?,
    ))
}

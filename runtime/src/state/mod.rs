//! Durable actor state: a key/value map per actor, written in atomic transactions.
//!
//! The [`StateStore`] trait has two backends: [`sled_store`] (embedded, one host and
//! `rookery up`) and [`postgres_store`] (PostgreSQL, shared by every host of a cluster, so an
//! actor finds its state wherever it activates). [`component`] reads which one a host uses
//! from a Dapr component file in `--resources-path`.
//!
//! **Fencing.** Every activation *claims* its actor in the store before it runs: the claim
//! bumps the actor's epoch, and every transaction names the epoch of the activation that
//! writes it, checked by the store before it writes (PostgreSQL: inside the same database
//! transaction; sled: by its one writer, against epochs held in memory). A write from an
//! activation that has since been superseded (a paused host waking up after its actor moved)
//! is therefore rejected by the store itself ([`StateError::Fenced`]), whatever the hosts
//! believe about leases. An activation that ends releases its claim
//! ([`StateStore::release`]).
//!
//! **Durability.** A transaction is acknowledged only once durable: on sled, in the store's
//! own log (one `fdatasync` shared by the transactions waiting at once), on PostgreSQL,
//! committed.
//!
//! **Hand-off.** When an actor moves gracefully, its activation's timers are written to the
//! store under its epoch; the next claim (the new owner's activation) takes them back.

pub mod component;
mod group_commit;
mod postgres_batch;
mod postgres_error;
pub mod postgres_store;
pub mod postgres_tls;
mod sled_fence;
mod sled_log;
pub mod sled_store;

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use rookery_core::clock::now_ms;

use crate::call::ActorKey;
use crate::error::CallError;

/// Longest state key, in bytes.
pub const MAX_STATE_KEY_BYTES: usize = 1024;
/// Most operations in one transaction.
pub const MAX_TRANSACTION_OPERATIONS: usize = 10_000;
/// Longest a ttl may be (100 years), so expiry instants never overflow.
pub const MAX_TTL_SECONDS: u64 = 100 * 365 * 24 * 3600;

/// The epoch of one activation's claim on its actor; each claim is greater than the last, and
/// the first is 1 (0 never names a claim).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Epoch(pub u64);

/// What a new activation receives when it claims its actor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub epoch: Epoch,
    /// Timers the previous activation handed off when it moved (encoded by the activation).
    pub handed_off_timers: Option<Bytes>,
}

/// One write of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateOp {
    Upsert {
        key: String,
        value: Bytes,
        /// The value disappears this long after the write.
        ttl_seconds: Option<u64>,
    },
    Delete {
        key: String,
    },
}

impl StateOp {
    pub fn key(&self) -> &str {
        match self {
            StateOp::Upsert { key, .. } | StateOp::Delete { key } => key,
        }
    }

    fn size_bytes(&self) -> usize {
        match self {
            StateOp::Upsert { key, value, .. } => key.len() + value.len(),
            StateOp::Delete { key } => key.len(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("{0}")]
    InvalidArgument(String),
    /// The writing activation is not the actor's latest claim: nothing was written.
    #[error("state write of actor {0} rejected: its activation was superseded by a newer one")]
    Fenced(ActorKey),
    /// The store cannot be reached or failed: nothing was written.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// The store is configured wrongly (bad component file, bad connection string).
    #[error("state store configuration: {0}")]
    Config(String),
}

impl From<StateError> for CallError {
    fn from(error: StateError) -> CallError {
        match error {
            StateError::InvalidArgument(m) => CallError::InvalidArgument(m),
            e @ StateError::Fenced(_) => CallError::Fenced(e.to_string()),
            e @ (StateError::Unavailable(_) | StateError::Config(_)) => {
                CallError::StoreUnavailable(e.to_string())
            }
        }
    }
}

/// Where actors keep their state.
pub trait StateStore: Send + Sync + 'static {
    /// The backend's name, for logs and status (`sled`, `postgresql`).
    fn kind(&self) -> &'static str;

    /// Claims the actor for a new activation: its epoch grows, and timers handed off by the
    /// previous activation are taken (and removed).
    fn claim(&self, actor: &ActorKey) -> BoxFuture<'_, Result<Claim, StateError>>;

    /// The activation of claim `epoch` has ended (it writes nothing more): a store that keeps
    /// claims in memory forgets this one, unless a newer claim has replaced it. A wrapping
    /// store must pass it on.
    fn release(&self, _actor: &ActorKey, _epoch: Epoch) {}

    /// Reads one key; `None` if it has no value (never written, deleted, or expired).
    fn get<'a>(
        &'a self,
        actor: &'a ActorKey,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Bytes>, StateError>>;

    /// Applies every operation or none, only if `epoch` is still the actor's latest claim;
    /// returns once durable.
    fn transact<'a>(
        &'a self,
        actor: &'a ActorKey,
        epoch: Epoch,
        operations: &'a [StateOp],
    ) -> BoxFuture<'a, Result<(), StateError>>;

    /// Whether the store can be reached now (readiness). Embedded stores always can.
    fn ping(&self) -> BoxFuture<'_, Result<(), StateError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Stores `timers` for the next activation, only if `epoch` is still the latest claim.
    fn hand_off_timers<'a>(
        &'a self,
        actor: &'a ActorKey,
        epoch: Epoch,
        timers: Bytes,
    ) -> BoxFuture<'a, Result<(), StateError>>;
}

pub type SharedStateStore = Arc<dyn StateStore>;

/// A host's store as its activations use it.
#[derive(Clone)]
pub struct ActorStateAccess {
    pub store: SharedStateStore,
    /// Largest transaction (keys and values), in bytes: the host's `--max-request-size`.
    pub max_transaction_bytes: usize,
}

/// Checks a key as every backend requires.
pub fn validate_key(key: &str) -> Result<(), StateError> {
    if key.is_empty() {
        return Err(StateError::InvalidArgument(
            "state key must not be empty".into(),
        ));
    }
    if key.len() > MAX_STATE_KEY_BYTES {
        return Err(StateError::InvalidArgument(format!(
            "state key is longer than {MAX_STATE_KEY_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Checks a transaction before any of it reaches a store: keys, ttls, count and total size.
pub fn validate_transaction(
    operations: &[StateOp],
    max_transaction_bytes: usize,
) -> Result<(), StateError> {
    if operations.is_empty() {
        return Err(StateError::InvalidArgument(
            "a state transaction needs at least one operation".into(),
        ));
    }
    if operations.len() > MAX_TRANSACTION_OPERATIONS {
        return Err(StateError::InvalidArgument(format!(
            "a state transaction has {} operations, more than the limit of {MAX_TRANSACTION_OPERATIONS}",
            operations.len()
        )));
    }
    let mut total_bytes = 0usize;
    for op in operations {
        validate_key(op.key())?;
        if let StateOp::Upsert {
            ttl_seconds: Some(ttl),
            key,
            ..
        } = op
        {
            if *ttl == 0 || *ttl > MAX_TTL_SECONDS {
                return Err(StateError::InvalidArgument(format!(
                    "ttl_in_seconds of key {key:?} must be between 1 and {MAX_TTL_SECONDS}"
                )));
            }
        }
        total_bytes = total_bytes.saturating_add(op.size_bytes());
    }
    if total_bytes > max_transaction_bytes {
        return Err(StateError::InvalidArgument(format!(
            "state transaction of {total_bytes} bytes is over the limit of {max_transaction_bytes} bytes (--max-request-size)"
        )));
    }
    Ok(())
}

/// The expiry instant of a value written now with `ttl_seconds`.
pub(crate) fn expires_at_ms(ttl_seconds: Option<u64>) -> Option<u64> {
    ttl_seconds.map(|ttl| now_ms().saturating_add(ttl.saturating_mul(1000)))
}

/// Which store a host uses, as flags or a component file describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreConfig {
    /// No actor state: state requests fail with FAILED_PRECONDITION, activations claim nothing.
    None,
    /// sled in this directory.
    Sled {
        path: std::path::PathBuf,
    },
    PostgreSql(postgres_store::PostgresConfig),
}

/// Opens the configured store. A PostgreSQL store opens even while the server is down: its
/// calls fail with [`StateError::Unavailable`] until it is back.
pub fn open(config: &StoreConfig) -> Result<Option<SharedStateStore>, StateError> {
    Ok(match config {
        StoreConfig::None => None,
        StoreConfig::Sled { path } => Some(Arc::new(sled_store::SledStore::open(path)?)),
        StoreConfig::PostgreSql(config) => Some(Arc::new(postgres_store::PostgresStore::new(
            config.clone(),
        )?)),
    })
}

/// An upsert of `value` under `key` with no ttl, for the stores' tests.
#[cfg(test)]
pub(crate) fn test_upsert(key: &str, value: &str) -> StateOp {
    StateOp::Upsert {
        key: key.into(),
        value: Bytes::from(value.to_owned()),
        ttl_seconds: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(key: &str, bytes: usize) -> StateOp {
        StateOp::Upsert {
            key: key.into(),
            value: Bytes::from(vec![0u8; bytes]),
            ttl_seconds: None,
        }
    }

    #[test]
    fn transactions_are_checked_before_any_write() {
        assert!(validate_transaction(&[upsert("a", 10)], 100).is_ok());
        for (ops, needle) in [
            (vec![], "at least one"),
            (vec![upsert("", 1)], "must not be empty"),
            (
                vec![upsert(&"k".repeat(MAX_STATE_KEY_BYTES + 1), 1)],
                "longer than",
            ),
            (vec![upsert("a", 60), upsert("b", 60)], "over the limit"),
            (
                vec![StateOp::Upsert {
                    key: "a".into(),
                    value: Bytes::new(),
                    ttl_seconds: Some(0),
                }],
                "ttl_in_seconds",
            ),
        ] {
            let error = validate_transaction(&ops, 100).unwrap_err().to_string();
            assert!(error.contains(needle), "{error:?} lacks {needle:?}");
        }
    }
}

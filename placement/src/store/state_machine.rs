//! The replicated state machine of a placement node: a [`PlacementState`] written through to
//! sled on every apply, the current snapshot, and a change feed of what has been applied.
//!
//! Writing the state through (rather than only snapshotting it) means a restarted node has its
//! table before Raft replays anything, so it can answer status queries and, once leader,
//! disseminate at once. Those writes are not flushed: the log they come from is, and Raft
//! re-applies whatever a crash loses. Snapshots are flushed, since the log is purged behind them.
//!
//! A snapshot is the JSON of [`SnapshotPayload`] (`{meta, state}`); the current one is kept in
//! sled next to the state, and replaced atomically with it on install.

use std::io::Cursor;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Mutex};

use super::{FlushMode, StoreError};
use crate::raft_types::{NodeId, TypeConfig};
use crate::reminder_index::{ReminderIndex, StorageOp, STORAGE_PREFIX};
use crate::state::{Command, CommandResponse, PlacementState};
use rookery_core::reminders::Reminder;

type Entry = openraft::Entry<TypeConfig>;
type Membership = StoredMembership<NodeId, BasicNode>;
type Meta = SnapshotMeta<NodeId, BasicNode>;

/// All keys live in one tree, so that one sled batch updates them together.
const TREE: &str = "state_machine";
const KEY_STATE: &str = "state";
const KEY_LAST_APPLIED: &str = "last_applied";
const KEY_LAST_MEMBERSHIP: &str = "last_membership";
const KEY_SNAPSHOT: &str = "snapshot";

/// What the state machine has applied: published on [`StateMachineStore::subscribe`] after
/// every apply batch and snapshot install.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppliedState {
    pub last_applied: Option<LogId<NodeId>>,
    pub state: PlacementState,
}

/// The bytes of a snapshot: its meta travels with it, so a stored snapshot is self-describing.
#[derive(Serialize, Deserialize)]
struct SnapshotPayload {
    meta: Meta,
    state: PlacementState,
    #[serde(default)]
    reminders: Vec<Reminder>,
}

/// The state machine storage. Clones share everything (state, sled tree, change feed): openraft
/// uses a clone as the snapshot builder.
#[derive(Clone)]
pub struct StateMachineStore {
    shared: Arc<Shared>,
}

struct Shared {
    tree: sled::Tree,
    /// Async so that the snapshot builder, which runs beside apply, can wait its turn without
    /// blocking a runtime thread.
    machine: Mutex<Machine>,
    changes: watch::Sender<Arc<AppliedState>>,
    /// Reminders are kept apart from [`Machine`]: there may be millions, so they are changed in
    /// place (one sled key each) rather than copied and rewritten whole on every apply. Only
    /// changed while `machine` is locked, so a snapshot sees them consistent with it.
    reminders: Arc<std::sync::RwLock<ReminderIndex>>,
    flush: FlushMode,
}

/// Read access to the stored reminders, for the reminder service.
#[derive(Clone)]
pub struct RemindersView {
    index: Arc<std::sync::RwLock<ReminderIndex>>,
}

impl RemindersView {
    /// Runs `f` over the reminders as last applied.
    pub fn read<T>(&self, f: impl FnOnce(&ReminderIndex) -> T) -> T {
        f(&self.index.read().unwrap_or_else(|e| e.into_inner()))
    }
}

#[derive(Clone)]
struct Machine {
    last_applied: Option<LogId<NodeId>>,
    last_membership: Membership,
    state: PlacementState,
}

impl Machine {
    fn applied(&self) -> Arc<AppliedState> {
        Arc::new(AppliedState {
            last_applied: self.last_applied,
            state: self.state.clone(),
        })
    }

    /// The batch that persists this machine.
    fn batch(&self) -> Result<sled::Batch, serde_json::Error> {
        let mut batch = sled::Batch::default();
        batch.insert(KEY_STATE, serde_json::to_vec(&self.state)?);
        batch.insert(KEY_LAST_APPLIED, serde_json::to_vec(&self.last_applied)?);
        batch.insert(
            KEY_LAST_MEMBERSHIP,
            serde_json::to_vec(&self.last_membership)?,
        );
        Ok(batch)
    }
}

impl StateMachineStore {
    pub(super) fn open(db: &sled::Db, flush: FlushMode) -> Result<StateMachineStore, StoreError> {
        let tree = db.open_tree(TREE)?;
        let machine = Machine {
            last_applied: load(&tree, KEY_LAST_APPLIED, "last applied log id")?.flatten(),
            last_membership: load(&tree, KEY_LAST_MEMBERSHIP, "last membership")?
                .unwrap_or_default(),
            state: load(&tree, KEY_STATE, "placement state")?.unwrap_or_default(),
        };
        let mut reminders = Vec::new();
        for item in tree.scan_prefix(STORAGE_PREFIX) {
            let (_, bytes) = item?;
            let reminder: Reminder =
                serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                    what: "reminder",
                    source,
                })?;
            reminders.push(reminder);
        }
        let (changes, _) = watch::channel(machine.applied());
        Ok(StateMachineStore {
            shared: Arc::new(Shared {
                tree,
                machine: Mutex::new(machine),
                changes,
                reminders: Arc::new(std::sync::RwLock::new(ReminderIndex::from_reminders(
                    reminders,
                ))),
                flush,
            }),
        })
    }

    /// Read access to the reminders.
    pub fn reminders(&self) -> RemindersView {
        RemindersView {
            index: self.shared.reminders.clone(),
        }
    }

    /// A feed of the applied state. It starts at the state loaded from disk, and moves after
    /// every apply batch and snapshot install (intermediate states of a batch are not seen).
    pub fn subscribe(&self) -> watch::Receiver<Arc<AppliedState>> {
        self.shared.changes.subscribe()
    }

    /// The applied state right now.
    pub fn current(&self) -> Arc<AppliedState> {
        self.shared.changes.borrow().clone()
    }

    fn stored_snapshot(&self) -> Result<Option<(Meta, Vec<u8>)>, StorageError<NodeId>> {
        let Some(bytes) = self
            .shared
            .tree
            .get(KEY_SNAPSHOT)
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?
        else {
            return Ok(None);
        };
        let payload: SnapshotPayload =
            serde_json::from_slice(&bytes).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(Some((payload.meta, bytes.to_vec())))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, Membership), StorageError<NodeId>> {
        let machine = self.shared.machine.lock().await;
        Ok((machine.last_applied, machine.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut machine = self.shared.machine.lock().await;
        // Work on a copy so memory never runs ahead of disk if the write below fails. The
        // reminders are changed in place instead (they are too many to copy); a failed write is
        // fatal to Raft, which then stops this node, so they never serve from a diverged state.
        let mut next = machine.clone();
        let mut reminders = self
            .shared
            .reminders
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let mut ops = Vec::new();
        let mut responses = Vec::new();
        for entry in entries {
            next.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Normal(command) => {
                    apply_command(&mut next.state, &mut reminders, &mut ops, command)
                }
                EntryPayload::Blank => unchanged(&next.state),
                EntryPayload::Membership(membership) => {
                    next.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    unchanged(&next.state)
                }
            };
            responses.push(response);
        }
        if responses.is_empty() {
            return Ok(responses);
        }
        let mut batch = next
            .batch()
            .map_err(|e| StorageIOError::write_state_machine(&e))?;
        for op in ops {
            match op {
                StorageOp::Put(reminder) => batch.insert(
                    crate::reminder_index::storage_key(&reminder.key),
                    serde_json::to_vec(&reminder)
                        .map_err(|e| StorageIOError::write_state_machine(&e))?,
                ),
                StorageOp::Delete(key) => batch.remove(crate::reminder_index::storage_key(&key)),
            }
        }
        drop(reminders);
        self.shared
            .tree
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_state_machine(&e))?;
        *machine = next;
        self.shared.changes.send_replace(machine.applied());
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let signature = Some(meta.signature());
        let received: SnapshotPayload = serde_json::from_slice(snapshot.get_ref())
            .map_err(|e| StorageIOError::read_snapshot(signature.clone(), &e))?;
        if received.meta.last_log_id != meta.last_log_id {
            let mismatch = openraft::AnyError::error(format!(
                "snapshot data is at {:?}, its meta says {:?}",
                received.meta.last_log_id, meta.last_log_id
            ));
            return Err(StorageIOError::read_snapshot(signature, mismatch).into());
        }
        // Stored under the meta openraft installed, so get_current_snapshot returns exactly it.
        let payload = SnapshotPayload {
            meta: meta.clone(),
            state: received.state,
            reminders: received.reminders,
        };
        let bytes = serde_json::to_vec(&payload)
            .map_err(|e| StorageIOError::write_snapshot(signature.clone(), &e))?;
        let next = Machine {
            last_applied: meta.last_log_id,
            last_membership: meta.last_membership.clone(),
            state: payload.state.clone(),
        };

        let mut machine = self.shared.machine.lock().await;
        let mut batch = next
            .batch()
            .map_err(|e| StorageIOError::write_snapshot(signature.clone(), &e))?;
        batch.insert(KEY_SNAPSHOT, bytes);
        // The snapshot replaces every reminder.
        for item in self.shared.tree.scan_prefix(STORAGE_PREFIX) {
            let (key, _) =
                item.map_err(|e| StorageIOError::write_snapshot(signature.clone(), &e))?;
            batch.remove(key);
        }
        for reminder in &payload.reminders {
            let value = serde_json::to_vec(reminder)
                .map_err(|e| StorageIOError::write_snapshot(signature.clone(), &e))?;
            batch.insert(crate::reminder_index::storage_key(&reminder.key), value);
        }
        *self
            .shared
            .reminders
            .write()
            .unwrap_or_else(|e| e.into_inner()) = ReminderIndex::from_reminders(payload.reminders);
        self.shared
            .tree
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_snapshot(signature.clone(), &e))?;
        *machine = next;
        self.shared.changes.send_replace(machine.applied());
        drop(machine);
        // Flushed for the same reason as a built snapshot: openraft purges the log up to it next.
        super::flush(&self.shared.tree, self.shared.flush)
            .await
            .map_err(|e| StorageIOError::write_snapshot(signature, &e))?;
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.stored_snapshot()?.map(|(meta, bytes)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        // Held until the snapshot is stored, so an install cannot slip in between and be
        // overwritten by this older snapshot.
        let machine = self.shared.machine.lock().await;
        let meta = Meta {
            last_log_id: machine.last_applied,
            last_membership: machine.last_membership.clone(),
            snapshot_id: snapshot_id(machine.last_applied),
        };
        let payload = SnapshotPayload {
            meta,
            state: machine.state.clone(),
            reminders: self
                .shared
                .reminders
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .all()
                .cloned()
                .collect(),
        };
        let bytes = serde_json::to_vec(&payload)
            .map_err(|e| StorageIOError::write_snapshot(Some(payload.meta.signature()), &e))?;
        self.shared
            .tree
            .insert(KEY_SNAPSHOT, bytes.as_slice())
            .map_err(|e| StorageIOError::write_snapshot(Some(payload.meta.signature()), &e))?;
        drop(machine);
        // openraft purges the log only up to a snapshot, so the state the snapshot covers must
        // be on disk first: a restart re-applies from the stored last_applied, which needs the
        // log entries after it.
        super::flush(&self.shared.tree, self.shared.flush)
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(payload.meta.signature()), &e))?;
        Ok(Snapshot {
            meta: payload.meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

/// Applies one command: membership changes to the state, reminder commands to the index
/// (recording the sled changes in `ops`), a batch one by one.
fn apply_command(
    state: &mut PlacementState,
    reminders: &mut ReminderIndex,
    ops: &mut Vec<StorageOp>,
    command: Command,
) -> CommandResponse {
    match command {
        Command::CreateReminder {
            reminder,
            overwrite,
        } => CommandResponse {
            outcome: reminders.create(reminder, overwrite, ops),
            ..unchanged(state)
        },
        Command::DeleteReminder { key } => CommandResponse {
            outcome: reminders.delete(&key, ops),
            ..unchanged(state)
        },
        Command::RecordFirings { firings } => {
            reminders.record(&firings, ops);
            unchanged(state)
        }
        Command::Batch(commands) => {
            let mut outcomes = Vec::with_capacity(commands.len());
            let mut changed = false;
            for command in commands {
                let response = apply_command(state, reminders, ops, command);
                changed |= response.changed;
                outcomes.push(response.outcome);
            }
            CommandResponse {
                changed,
                outcomes,
                ..unchanged(state)
            }
        }
        membership @ Command::ChangeMembership { .. } => state.apply(&membership),
    }
}

/// The response to an entry that carries no command.
fn unchanged(state: &PlacementState) -> CommandResponse {
    CommandResponse {
        table_version: state.table_version,
        changed: false,
        outcome: Default::default(),
        outcomes: Vec::new(),
    }
}

/// A snapshot id unique enough to tell apart two snapshots at the same log id: openraft only uses
/// it to match the chunks of one transfer.
fn snapshot_id(last_applied: Option<LogId<NodeId>>) -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    match last_applied {
        Some(log_id) => format!(
            "{}-{}-{}-{millis}",
            log_id.leader_id.term, log_id.leader_id.node_id, log_id.index
        ),
        None => format!("none-{millis}"),
    }
}

/// Loads and decodes `key`, if present.
fn load<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    key: &str,
    what: &'static str,
) -> Result<Option<T>, StoreError> {
    let Some(bytes) = tree.get(key)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StoreError::Corrupt { what, source })
}

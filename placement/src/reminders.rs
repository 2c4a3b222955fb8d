//! Durable reminders as placement stores them: the types hosts and placement share, and the
//! index the state machine keeps.
//!
//! Reminders live in the Raft state machine (every placement node has them all, in memory and
//! in sled, one sled key each), so the loss of any single node loses none. Hosts do not hold
//! copies: each asks the leader for the reminders of the actors it owns that fall due within a
//! short horizon, fires them, and reports progress back in batches.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::schedule::Schedule;

/// Longest reminder name, in bytes.
pub const MAX_REMINDER_NAME_BYTES: usize = 256;
/// Largest reminder payload, in bytes: reminders are replicated to every placement node.
pub const MAX_REMINDER_DATA_BYTES: usize = 64 * 1024;
/// Most reminders one list or fetch returns.
pub const MAX_REMINDERS_PER_PAGE: usize = 10_000;

/// Identifies a reminder: its actor and its name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReminderKey {
    pub actor_type: String,
    pub actor_id: String,
    pub name: String,
}

impl ReminderKey {
    /// The sled key of this reminder (the fields cannot contain NUL: see [`validate_key`]).
    pub fn storage_key(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(
            STORAGE_PREFIX.len()
                + self.actor_type.len()
                + self.actor_id.len()
                + self.name.len()
                + 2,
        );
        key.extend_from_slice(STORAGE_PREFIX);
        key.extend_from_slice(self.actor_type.as_bytes());
        key.push(0);
        key.extend_from_slice(self.actor_id.as_bytes());
        key.push(0);
        key.extend_from_slice(self.name.as_bytes());
        key
    }
}

impl std::fmt::Display for ReminderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.actor_type, self.actor_id, self.name)
    }
}

/// The prefix of every reminder's key in the state machine's sled tree.
pub const STORAGE_PREFIX: &[u8] = b"reminder/";

/// A stored reminder and its progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminder {
    pub key: ReminderKey,
    pub data: Vec<u8>,
    pub schedule: Schedule,
    /// When it fires next, Unix-epoch ms.
    pub next_due_ms: u64,
    /// Firings so far.
    pub fired_count: u32,
}

/// Checks the names of a reminder key.
pub fn validate_key(key: &ReminderKey) -> Result<(), String> {
    for (field, value) in [
        ("actor_type", &key.actor_type),
        ("actor_id", &key.actor_id),
        ("name", &key.name),
    ] {
        if value.is_empty() {
            return Err(format!("{field} must not be empty"));
        }
        if value.len() > MAX_REMINDER_NAME_BYTES.max(1024)
            || (field == "name" && value.len() > MAX_REMINDER_NAME_BYTES)
        {
            return Err(format!("{field} is too long"));
        }
        if value.contains('\0') {
            return Err(format!("{field} must not contain NUL"));
        }
    }
    Ok(())
}

/// One firing a host reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firing {
    pub key: ReminderKey,
    /// The due instant of the tick that fired.
    pub fired_due_ms: u64,
    /// The next due instant; `None` when the reminder is done (one-shot, exhausted, expired).
    pub next_due_ms: Option<u64>,
}

/// What a reminder command did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    #[default]
    Done,
    AlreadyExists,
    NotFound,
}

/// A change the state machine must persist.
pub enum StorageOp {
    Put(Reminder),
    Delete(ReminderKey),
}

/// Every reminder, by key and by next due time.
#[derive(Clone, Debug, Default)]
pub struct ReminderIndex {
    by_key: BTreeMap<ReminderKey, Reminder>,
    by_due: BTreeSet<(u64, ReminderKey)>,
}

impl ReminderIndex {
    pub fn from_reminders(reminders: impl IntoIterator<Item = Reminder>) -> ReminderIndex {
        let mut index = ReminderIndex::default();
        for reminder in reminders {
            index.put(reminder);
        }
        index
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    pub fn get(&self, key: &ReminderKey) -> Option<&Reminder> {
        self.by_key.get(key)
    }

    pub fn all(&self) -> impl Iterator<Item = &Reminder> {
        self.by_key.values()
    }

    /// Reminders of one type, or of one actor, in key order.
    pub fn list<'a>(
        &'a self,
        actor_type: &'a str,
        actor_id: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Reminder> + 'a {
        self.by_key
            .range(
                ReminderKey {
                    actor_type: actor_type.to_owned(),
                    actor_id: actor_id.unwrap_or_default().to_owned(),
                    name: String::new(),
                }..,
            )
            .take_while(move |(k, _)| {
                k.actor_type == actor_type && actor_id.is_none_or(|id| k.actor_id == id)
            })
            .map(|(_, r)| r)
    }

    /// Reminders due at or before `until_ms`, earliest first.
    pub fn due_until(&self, until_ms: u64) -> impl Iterator<Item = &Reminder> {
        self.by_due
            .iter()
            .take_while(move |(due, _)| *due <= until_ms)
            .filter_map(|(_, key)| self.by_key.get(key))
    }

    fn put(&mut self, reminder: Reminder) {
        if let Some(old) = self.by_key.get(&reminder.key) {
            self.by_due.remove(&(old.next_due_ms, old.key.clone()));
        }
        self.by_due
            .insert((reminder.next_due_ms, reminder.key.clone()));
        self.by_key.insert(reminder.key.clone(), reminder);
    }

    fn remove(&mut self, key: &ReminderKey) -> Option<Reminder> {
        let old = self.by_key.remove(key)?;
        self.by_due.remove(&(old.next_due_ms, old.key.clone()));
        Some(old)
    }

    pub fn create(
        &mut self,
        reminder: Reminder,
        overwrite: bool,
        ops: &mut Vec<StorageOp>,
    ) -> Outcome {
        if !overwrite && self.by_key.contains_key(&reminder.key) {
            return Outcome::AlreadyExists;
        }
        self.put(reminder.clone());
        ops.push(StorageOp::Put(reminder));
        Outcome::Done
    }

    pub fn delete(&mut self, key: &ReminderKey, ops: &mut Vec<StorageOp>) -> Outcome {
        match self.remove(key) {
            Some(_) => {
                ops.push(StorageOp::Delete(key.clone()));
                Outcome::Done
            }
            None => Outcome::NotFound,
        }
    }

    /// Applies reported firings. A report about a tick that is not the reminder's current one
    /// (a duplicate, or a reminder re-created since) is ignored, so reports are idempotent.
    pub fn record(&mut self, firings: &[Firing], ops: &mut Vec<StorageOp>) {
        for firing in firings {
            let Some(current) = self.by_key.get(&firing.key) else {
                continue;
            };
            if current.next_due_ms != firing.fired_due_ms {
                continue;
            }
            match firing.next_due_ms {
                None => {
                    self.remove(&firing.key);
                    ops.push(StorageOp::Delete(firing.key.clone()));
                }
                Some(next_due_ms) => {
                    let mut next = current.clone();
                    next.next_due_ms = next_due_ms;
                    next.fired_count = next.fired_count.saturating_add(1);
                    self.put(next.clone());
                    ops.push(StorageOp::Put(next));
                }
            }
        }
    }
}

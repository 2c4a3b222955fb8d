//! The reminders placement keeps: the index the state machine holds in memory (by key and by
//! next due time), the progress hosts report, and how each reminder is keyed in sled.
//!
//! Every placement node has every reminder, in memory and in sled (one sled key each), so the
//! loss of any single node loses none.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use rookery_core::reminders::{Reminder, ReminderKey};
use serde::{Deserialize, Serialize};

/// Most reminders one list or fetch returns.
pub const MAX_REMINDERS_PER_PAGE: usize = 10_000;

/// The prefix of every reminder's key in the state machine's sled tree.
pub const STORAGE_PREFIX: &[u8] = b"reminder/";

/// The sled key of a reminder (the fields cannot contain NUL: see
/// [`rookery_core::reminders::validate_key`]).
pub fn storage_key(key: &ReminderKey) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(
        STORAGE_PREFIX.len() + key.actor_type.len() + key.actor_id.len() + key.name.len() + 2,
    );
    bytes.extend_from_slice(STORAGE_PREFIX);
    bytes.extend_from_slice(key.actor_type.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(key.actor_id.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(key.name.as_bytes());
    bytes
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

    /// Reminders due at or before `until_ms`, earliest first (by due instant, then key),
    /// starting after `after` when given.
    pub fn due_until<'a>(
        &'a self,
        after: Option<&(u64, ReminderKey)>,
        until_ms: u64,
    ) -> impl Iterator<Item = &'a Reminder> + 'a {
        let start = match after {
            Some(cursor) => Bound::Excluded(cursor.clone()),
            None => Bound::Unbounded,
        };
        self.by_due
            .range((start, Bound::Unbounded))
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

/// A reminder that fires once, at `due_ms`, for tests.
#[cfg(test)]
pub(crate) fn one_shot(key: ReminderKey, data: Vec<u8>, due_ms: u64) -> Reminder {
    Reminder {
        key,
        data,
        schedule: rookery_core::schedule::Schedule {
            due_at_ms: due_ms,
            period: None,
            expires_at_ms: None,
        },
        next_due_ms: due_ms,
        fired_count: 0,
        job: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reminder(id: &str, due_ms: u64) -> Reminder {
        let key = ReminderKey {
            actor_type: "T".into(),
            actor_id: id.into(),
            name: "r".into(),
        };
        one_shot(key, Vec::new(), due_ms)
    }

    fn ids<'a>(reminders: impl Iterator<Item = &'a Reminder>) -> Vec<&'a str> {
        reminders.map(|r| r.key.actor_id.as_str()).collect()
    }

    /// Pages follow one another without a gap or an overlap, ties at one due instant included.
    #[test]
    fn due_reminders_page_after_a_cursor_in_due_then_key_order() {
        let index = ReminderIndex::from_reminders([
            reminder("c", 10),
            reminder("a", 10),
            reminder("b", 10),
            reminder("d", 5),
            reminder("e", 20),
            reminder("f", 30),
        ]);
        assert_eq!(ids(index.due_until(None, 20)), ["d", "a", "b", "c", "e"]);
        let first: Vec<&Reminder> = index.due_until(None, 20).take(2).collect();
        let last = first.last().unwrap();
        let cursor = (last.next_due_ms, last.key.clone());
        assert_eq!(ids(first.into_iter()), ["d", "a"]);
        assert_eq!(ids(index.due_until(Some(&cursor), 20)), ["b", "c", "e"]);
        assert_eq!(ids(index.due_until(Some(&cursor), 9)), Vec::<&str>::new());
    }
}

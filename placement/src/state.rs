//! The replicated placement state and the commands that change it.
//!
//! [`PlacementState::apply`] is the whole of the state machine's logic: pure and deterministic,
//! so every placement node that applies the same log reaches the same state. Storage
//! (`store`) persists it; the leader (`leader`) decides which commands to propose.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::reminder_index::{Firing, Outcome};
use rookery_core::reminders::{Reminder, ReminderKey};
use rookery_core::table::{HostInfo, PlacementTable, TableVersion};

/// State every placement node holds once it has applied the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementState {
    /// Hosts that serve at least one actor type, by host id. Hosts without actor types are not
    /// replicated: they own nothing, so losing track of them in a fail-over is harmless.
    pub hosts: BTreeMap<String, HostInfo>,
    /// Bumped once by every command that changes `hosts`.
    pub table_version: TableVersion,
}

/// A change to the placement state, proposed by the leader and applied by every node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Insert or replace hosts and remove others, as one change of the table. Debounced bursts
    /// of registrations and failures become one command, so one table version.
    ChangeMembership {
        upserts: Vec<HostInfo>,
        removals: Vec<String>,
    },
    /// Stores a reminder; fails with `AlreadyExists` unless `overwrite`.
    CreateReminder {
        reminder: Reminder,
        overwrite: bool,
    },
    DeleteReminder {
        key: ReminderKey,
    },
    /// Progress of fired reminders, batched by a host.
    RecordFirings {
        firings: Vec<Firing>,
    },
    /// Several commands in one log entry, applied in order: concurrent reminder writes share
    /// one Raft round and one disk flush.
    Batch(Vec<Command>),
}

/// What applying a command did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResponse {
    pub table_version: TableVersion,
    /// False when the command left the hosts as they were (the version did not move).
    pub changed: bool,
    /// What a reminder command did.
    pub outcome: Outcome,
    /// For a batch: the outcome of each command, in order.
    pub outcomes: Vec<Outcome>,
}

impl PlacementState {
    /// Applies one command. The table version grows by exactly one if and only if the hosts
    /// changed.
    pub fn apply(&mut self, command: &Command) -> CommandResponse {
        let before = self.table_version;
        let changed = match command {
            // Reminders are kept beside this state (`reminders::ReminderIndex`), by the store.
            Command::CreateReminder { .. }
            | Command::DeleteReminder { .. }
            | Command::RecordFirings { .. }
            | Command::Batch(_) => false,
            Command::ChangeMembership { upserts, removals } => {
                let mut changed = false;
                for host_id in removals {
                    changed |= self.hosts.remove(host_id).is_some();
                }
                for host in upserts {
                    let host = host.clone().normalized();
                    if host.actor_types.is_empty() {
                        changed |= self.hosts.remove(&host.id).is_some();
                    } else if self.hosts.get(&host.id) != Some(&host) {
                        self.hosts.insert(host.id.clone(), host);
                        changed = true;
                    }
                }
                changed
            }
        };
        if changed {
            self.table_version = self.table_version.next();
        }
        debug_assert!(self.table_version >= before);
        CommandResponse {
            table_version: self.table_version,
            changed,
            outcome: Outcome::Done,
            outcomes: Vec::new(),
        }
    }

    /// The table hosts route by, at the current version.
    pub fn table(&self, vnodes_per_host: u32) -> PlacementTable {
        PlacementTable {
            version: self.table_version,
            vnodes_per_host,
            hosts: self.hosts.values().cloned().collect(),
        }
    }
}

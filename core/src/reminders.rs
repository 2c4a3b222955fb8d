//! Durable reminders as hosts and placement both see them: the key, the stored reminder, their
//! checks, and their conversions to and from the internal protocol (`PlacementReminders`).
//!
//! Reminders live in the placement Raft state machine (every placement node has them all), so
//! the loss of any single node loses none. Hosts do not hold copies: each asks the leader for
//! the reminders of the actors it owns that fall due within a short horizon, fires them, and
//! reports progress back in batches.

use rookery_proto::internal::v1::{ReminderKey as WireKey, StoredReminder};
use serde::{Deserialize, Serialize};
use tonic::Status;

use crate::job_reminders::{plan_from_wire, plan_to_wire};
use crate::jobs::JobSpec;
use crate::schedule::{Period, Schedule};

/// Longest reminder name, in bytes.
pub const MAX_REMINDER_NAME_BYTES: usize = 256;
/// Metadata key of a placement follower's FAILED_PRECONDITION answer: the leader's address.
pub const LEADER_KEY: &str = "rookery-leader";
/// Largest reminder payload, in bytes: reminders are replicated to every placement node.
pub const MAX_REMINDER_DATA_BYTES: usize = 64 * 1024;

/// Identifies a reminder: its actor and its name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReminderKey {
    pub actor_type: String,
    pub actor_id: String,
    pub name: String,
}

impl std::fmt::Display for ReminderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.actor_type, self.actor_id, self.name)
    }
}

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
    /// Set when this reminder keeps a job of the Jobs API ([`crate::job_reminders`]): the
    /// job's schedule, not `schedule.period`, decides each next firing. Its `data` is empty
    /// (the payload is the reminder's).
    #[serde(default)]
    pub job: Option<Box<JobSpec>>,
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
        if value.len() > crate::limits::MAX_ACTOR_ID_BYTES
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

/// A key from the wire, checked.
pub fn key_from_wire(key: Option<WireKey>) -> Result<ReminderKey, Status> {
    let key = key.ok_or_else(|| Status::invalid_argument("reminder key is missing"))?;
    let key = ReminderKey {
        actor_type: key.actor_type,
        actor_id: key.actor_id,
        name: key.name,
    };
    validate_key(&key).map_err(Status::invalid_argument)?;
    Ok(key)
}

pub fn key_to_wire(key: &ReminderKey) -> WireKey {
    WireKey {
        actor_type: key.actor_type.clone(),
        actor_id: key.actor_id.clone(),
        name: key.name.clone(),
    }
}

pub fn reminder_to_wire(reminder: &Reminder) -> StoredReminder {
    StoredReminder {
        key: Some(key_to_wire(&reminder.key)),
        data: reminder.data.clone(),
        due_at_ms: reminder.schedule.due_at_ms,
        period_ms: reminder.schedule.period.map(|p| p.every_ms).unwrap_or(0),
        repetitions: reminder
            .schedule
            .period
            .and_then(|p| p.repetitions)
            .unwrap_or(0),
        expires_at_ms: reminder.schedule.expires_at_ms.unwrap_or(0),
        next_due_ms: reminder.next_due_ms,
        fired_count: reminder.fired_count,
        job: reminder.job.as_deref().map(plan_to_wire),
    }
}

/// A reminder as a host or client describes it; progress starts afresh.
pub fn reminder_from_wire(wire: StoredReminder) -> Result<Reminder, Status> {
    let key = key_from_wire(wire.key)?;
    if let Some(plan) = wire.job {
        // A job: its spec decides its firings.
        let job = plan_from_wire(&key.actor_id, plan, wire.data.len())?;
        if !crate::job_reminders::is_jobs_type(&key.actor_type) {
            return Err(Status::invalid_argument(format!(
                "a job must be kept under a jobs type, not {:?}",
                key.actor_type
            )));
        }
        let first = job.first_fire_ms().unwrap_or(wire.due_at_ms);
        return Ok(Reminder {
            key,
            data: wire.data,
            schedule: Schedule {
                due_at_ms: first,
                period: None,
                expires_at_ms: job.expires_at_ms,
            },
            next_due_ms: first,
            fired_count: 0,
            job: Some(Box::new(job)),
        });
    }
    if wire.data.len() > MAX_REMINDER_DATA_BYTES {
        return Err(Status::resource_exhausted(format!(
            "reminder data of {} bytes is over the limit of {MAX_REMINDER_DATA_BYTES}",
            wire.data.len()
        )));
    }
    let period = (wire.period_ms > 0).then_some(Period {
        every_ms: wire.period_ms,
        repetitions: (wire.repetitions > 0).then_some(wire.repetitions),
    });
    if wire.period_ms == 0 && wire.repetitions > 0 {
        return Err(Status::invalid_argument("repetitions need a period"));
    }
    let expires_at_ms = (wire.expires_at_ms > 0).then_some(wire.expires_at_ms);
    if expires_at_ms.is_some_and(|expires| expires < wire.due_at_ms) {
        return Err(Status::invalid_argument(
            "the reminder expires before it is due",
        ));
    }
    Ok(Reminder {
        key,
        data: wire.data,
        schedule: Schedule {
            due_at_ms: wire.due_at_ms,
            period,
            expires_at_ms,
        },
        next_due_ms: wire.due_at_ms,
        fired_count: 0,
        job: None,
    })
}

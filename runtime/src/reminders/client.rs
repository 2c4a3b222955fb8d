//! Durable reminders for actor code and clients: [`ReminderClient`] parses Dapr's schedule
//! strings, then stores, reads and deletes reminders in the placement service (acknowledged
//! once committed in its Raft log). The `Reminders` gRPC service, the app channel's reminder
//! requests and embedded actors all go through it.

use std::sync::Arc;

use rookery_core::clock::now_ms;
use rookery_core::job_reminders::is_jobs_type;
use rookery_core::reminders::{reminder_from_wire, ReminderKey};
use rookery_core::schedule::parse_schedule;
use rookery_proto::internal::v1::{
    CreateReminderRequest, ListRemindersRequest, ReminderKey as WireKey, StoredReminder,
};
use rookery_proto::v1::{
    CreateActorReminderRequest, DeleteActorReminderResponse, ListActorRemindersRequest,
    ReminderInfo, ReminderList, ReminderRef,
};
use tonic::Status;

use crate::cluster::leader_rpc::LeaderRpc;
use crate::reminders::scheduler::ScheduleChanges;

/// Reminders with the messages of the `Reminders` service: create, get, list, delete.
#[derive(Clone)]
pub struct ReminderClient {
    rpc: Arc<LeaderRpc>,
    changes: ScheduleChanges,
}

fn key(reference: Option<ReminderRef>) -> Result<WireKey, Status> {
    let reference = reference.ok_or_else(|| Status::invalid_argument("reminder is missing"))?;
    if is_jobs_type(&reference.actor_type) {
        return Err(Status::invalid_argument(format!(
            "actor type {:?} is reserved for the jobs of an app: use the Jobs API",
            reference.actor_type
        )));
    }
    Ok(WireKey {
        actor_type: reference.actor_type,
        actor_id: reference.actor_id,
        name: reference.name,
    })
}

fn reminder_key(key: &WireKey) -> ReminderKey {
    ReminderKey {
        actor_type: key.actor_type.clone(),
        actor_id: key.actor_id.clone(),
        name: key.name.clone(),
    }
}

fn info(stored: StoredReminder) -> ReminderInfo {
    ReminderInfo {
        reminder: stored.key.map(|k| ReminderRef {
            actor_type: k.actor_type,
            actor_id: k.actor_id,
            name: k.name,
        }),
        data: stored.data,
        due_at_ms: stored.due_at_ms,
        period_ms: stored.period_ms,
        repetitions: stored.repetitions,
        expires_at_ms: stored.expires_at_ms,
        next_due_ms: stored.next_due_ms,
        fired_count: stored.fired_count,
    }
}

impl ReminderClient {
    /// `changes` reaches this host's scheduler: what is deleted or replaced here stops firing
    /// here before the client hears back.
    pub fn new(rpc: Arc<LeaderRpc>, changes: ScheduleChanges) -> ReminderClient {
        ReminderClient { rpc, changes }
    }

    /// Creates (or, unless `fail_if_exists`, replaces) a reminder; returns it as stored.
    /// Acknowledged once committed in the placement Raft log.
    pub async fn create(
        &self,
        request: CreateActorReminderRequest,
    ) -> Result<ReminderInfo, Status> {
        let key = key(request.reminder)?;
        let schedule = parse_schedule(&request.due_time, &request.period, &request.ttl, now_ms())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let stored = StoredReminder {
            key: Some(key),
            data: request.data,
            due_at_ms: schedule.due_at_ms,
            period_ms: schedule.period.map(|p| p.every_ms).unwrap_or(0),
            repetitions: schedule.period.and_then(|p| p.repetitions).unwrap_or(0),
            expires_at_ms: schedule.expires_at_ms.unwrap_or(0),
            next_due_ms: schedule.due_at_ms,
            fired_count: 0,
            job: None,
        };
        // Validated here too, so a bad name is refused without a round trip.
        reminder_from_wire(stored.clone())?;
        let overwrite = !request.fail_if_exists;
        let created = self
            .rpc
            .call(
                CreateReminderRequest {
                    reminder: Some(stored.clone()),
                    overwrite,
                },
                |mut client, request| async move { client.create_reminder(request).await },
            )
            .await?;
        if let Some(key) = &stored.key {
            self.changes.changed(reminder_key(key));
        }
        Ok(info(created))
    }

    pub async fn get(&self, reference: ReminderRef) -> Result<ReminderInfo, Status> {
        let key = key(Some(reference))?;
        let found = self
            .rpc
            .call(key, |mut client, request| async move {
                client.get_reminder(request).await
            })
            .await?;
        Ok(info(found))
    }

    /// The reminders of a type, or of one actor when `actor_id` is set.
    pub async fn list(&self, request: ListActorRemindersRequest) -> Result<ReminderList, Status> {
        if is_jobs_type(&request.actor_type) {
            return Err(Status::invalid_argument(format!(
                "actor type {:?} is reserved for the jobs of an app: use the Jobs API",
                request.actor_type
            )));
        }
        let listed = self
            .rpc
            .call(
                ListRemindersRequest {
                    actor_type: request.actor_type.clone(),
                    actor_id: request.actor_id.clone(),
                },
                |mut client, request| async move { client.list_reminders(request).await },
            )
            .await?;
        Ok(ReminderList {
            reminders: listed.reminders.into_iter().map(info).collect(),
        })
    }

    /// Deletes a reminder; `deleted` is false if there was none.
    pub async fn delete(
        &self,
        reference: ReminderRef,
    ) -> Result<DeleteActorReminderResponse, Status> {
        let key = key(Some(reference))?;
        let changed = reminder_key(&key);
        let deleted = self
            .rpc
            .call(key, |mut client, request| async move {
                client.delete_reminder(request).await
            })
            .await?;
        self.changes.changed(changed);
        Ok(DeleteActorReminderResponse {
            deleted: deleted.deleted,
        })
    }
}

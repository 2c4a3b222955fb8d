//! Durable reminders for clients: the host's `Reminders` gRPC service, and [`ReminderClient`]
//! for Rust code embedding a host. Both parse Dapr's schedule strings, then store, read and
//! delete reminders in the placement service.

use std::sync::Arc;

use rookery_placement::reminder_service::reminder_from_wire;
use rookery_placement::schedule::parse_schedule;
use rookery_proto::v1::reminders_server::Reminders;
use rookery_proto::v1::{
    CreateActorReminderRequest, CreateReminderRequest, DeleteActorReminderResponse,
    ListActorRemindersRequest, ListRemindersRequest, ReminderInfo, ReminderKey as WireKey,
    ReminderList, ReminderRef, StoredReminder,
};
use tonic::{Request, Response, Status};

use crate::placement_rpc::PlacementRpc;
use crate::reminder_scheduler::now_ms;

/// Reminders with the messages of the `Reminders` service: create, get, list, delete.
#[derive(Clone)]
pub struct ReminderClient {
    rpc: Arc<PlacementRpc>,
}

fn key(reference: Option<ReminderRef>) -> Result<WireKey, Status> {
    let reference = reference.ok_or_else(|| Status::invalid_argument("reminder is missing"))?;
    Ok(WireKey {
        actor_type: reference.actor_type,
        actor_id: reference.actor_id,
        name: reference.name,
    })
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
    pub fn new(rpc: Arc<PlacementRpc>) -> ReminderClient {
        ReminderClient { rpc }
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
        };
        // Validated here too, so a bad name is refused without a round trip.
        reminder_from_wire(stored.clone())?;
        let overwrite = !request.fail_if_exists;
        let created = self
            .rpc
            .call(|mut client, timeout| {
                let mut request = tonic::Request::new(CreateReminderRequest {
                    reminder: Some(stored.clone()),
                    overwrite,
                });
                request.set_timeout(timeout);
                async move { client.create_reminder(request).await }
            })
            .await?;
        Ok(info(created.into_inner()))
    }

    pub async fn get(&self, reference: ReminderRef) -> Result<ReminderInfo, Status> {
        let key = key(Some(reference))?;
        let found = self
            .rpc
            .call(|mut client, timeout| {
                let mut request = tonic::Request::new(key.clone());
                request.set_timeout(timeout);
                async move { client.get_reminder(request).await }
            })
            .await?;
        Ok(info(found.into_inner()))
    }

    /// The reminders of a type, or of one actor when `actor_id` is set.
    pub async fn list(&self, request: ListActorRemindersRequest) -> Result<ReminderList, Status> {
        let listed = self
            .rpc
            .call(|mut client, timeout| {
                let mut list = tonic::Request::new(ListRemindersRequest {
                    actor_type: request.actor_type.clone(),
                    actor_id: request.actor_id.clone(),
                });
                list.set_timeout(timeout);
                async move { client.list_reminders(list).await }
            })
            .await?;
        Ok(ReminderList {
            reminders: listed
                .into_inner()
                .reminders
                .into_iter()
                .map(info)
                .collect(),
        })
    }

    /// Deletes a reminder; `deleted` is false if there was none.
    pub async fn delete(
        &self,
        reference: ReminderRef,
    ) -> Result<DeleteActorReminderResponse, Status> {
        let key = key(Some(reference))?;
        let deleted = self
            .rpc
            .call(|mut client, timeout| {
                let mut request = tonic::Request::new(key.clone());
                request.set_timeout(timeout);
                async move { client.delete_reminder(request).await }
            })
            .await?;
        Ok(DeleteActorReminderResponse {
            deleted: deleted.into_inner().deleted,
        })
    }
}

/// The `Reminders` gRPC service.
pub struct ReminderApi {
    client: ReminderClient,
}

impl ReminderApi {
    pub fn new(client: ReminderClient) -> ReminderApi {
        ReminderApi { client }
    }
}

#[tonic::async_trait]
impl Reminders for ReminderApi {
    async fn create_reminder(
        &self,
        request: Request<CreateActorReminderRequest>,
    ) -> Result<Response<ReminderInfo>, Status> {
        self.client
            .create(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_reminder(
        &self,
        request: Request<ReminderRef>,
    ) -> Result<Response<ReminderInfo>, Status> {
        self.client
            .get(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_reminders(
        &self,
        request: Request<ListActorRemindersRequest>,
    ) -> Result<Response<ReminderList>, Status> {
        self.client
            .list(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn delete_reminder(
        &self,
        request: Request<ReminderRef>,
    ) -> Result<Response<DeleteActorReminderResponse>, Status> {
        self.client
            .delete(request.into_inner())
            .await
            .map(Response::new)
    }
}

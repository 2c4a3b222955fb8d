//! The `Reminders` gRPC service: the client API of durable reminders, served by
//! [`ReminderClient`].

use rookery_proto::v1::reminders_server::Reminders;
use rookery_proto::v1::{
    CreateActorReminderRequest, DeleteActorReminderResponse, ListActorRemindersRequest,
    ReminderInfo, ReminderList, ReminderRef,
};
use tonic::{Request, Response, Status};

use crate::reminders::ReminderClient;

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

//! The jobs of one app id, kept by the placement service: schedule, get, list, delete.
//! Acknowledged once committed in the placement Raft log, like reminders.

use std::sync::Arc;

use rookery_core::job_reminders::{job_key, job_of, job_reminder, jobs_actor_type};
use rookery_core::jobs::{JobError, JobInput, JobSpec};
use rookery_core::limits::validate_actor_type;
use rookery_core::reminders::{key_to_wire, reminder_from_wire, reminder_to_wire};
use rookery_proto::internal::v1::{CreateReminderRequest, ListRemindersRequest};
use tonic::{Code, Status};

use crate::cluster::leader_rpc::LeaderRpc;
use crate::reminders::scheduler::ScheduleChanges;

/// Why a jobs request failed.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// The job as asked cannot be accepted; nothing was stored.
    #[error(transparent)]
    Invalid(#[from] JobError),
    /// A job of that name exists and the request did not ask to overwrite it.
    #[error("job {0:?} already exists")]
    AlreadyExists(String),
    #[error("job {0:?} not found")]
    NotFound(String),
    /// This host has no app id, so it has no jobs.
    #[error("{0}")]
    NoApp(String),
    /// The placement service could not be reached or refused the request.
    #[error("the job store failed: {}", .0.message())]
    Store(Status),
}

/// The jobs of one app id.
#[derive(Clone)]
pub struct JobsClient {
    app_id: String,
    rpc: Arc<LeaderRpc>,
    changes: ScheduleChanges,
}

impl JobsClient {
    /// `changes` reaches this host's scheduler: a job deleted or replaced here stops firing
    /// here before the client hears back.
    pub fn new(app_id: String, rpc: Arc<LeaderRpc>, changes: ScheduleChanges) -> JobsClient {
        JobsClient {
            app_id,
            rpc,
            changes,
        }
    }

    /// The app whose jobs these are.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    fn require_app(&self) -> Result<(), JobsError> {
        if self.app_id.is_empty() {
            return Err(JobsError::NoApp(
                "jobs belong to an app: this host runs without --app-id".into(),
            ));
        }
        validate_actor_type(&jobs_actor_type(&self.app_id)).map_err(|_| {
            JobsError::NoApp(format!(
                "app id {:?} is too long to keep jobs for",
                self.app_id
            ))
        })?;
        Ok(())
    }

    /// Checks a job request made at `now_ms` and stores it: replacing a job of the same name
    /// only when the request says `overwrite`. Nothing is stored when it is refused.
    pub async fn schedule(&self, input: JobInput, now_ms: u64) -> Result<JobSpec, JobsError> {
        self.require_app()?;
        let spec = JobSpec::parse(input, now_ms)?;
        let overwrite = spec.overwrite;
        let name = spec.name.clone();
        let reminder = job_reminder(&self.app_id, spec.clone())
            .ok_or_else(|| JobsError::Store(Status::internal("an accepted job never fires")))?;
        let stored = reminder_to_wire(&reminder);
        reminder_from_wire(stored.clone()).map_err(JobsError::Store)?;
        self.rpc
            .call(
                CreateReminderRequest {
                    reminder: Some(stored),
                    overwrite,
                },
                |mut client, request| async move { client.create_reminder(request).await },
            )
            .await
            .map_err(|status| match status.code() {
                Code::AlreadyExists => JobsError::AlreadyExists(name),
                _ => JobsError::Store(status),
            })?;
        self.changes.changed(reminder.key.clone());
        Ok(spec)
    }

    /// The job of that name, as registered (with its payload).
    pub async fn get(&self, name: &str) -> Result<JobSpec, JobsError> {
        self.require_app()?;
        let key = key_to_wire(&job_key(&self.app_id, name));
        let found = self
            .rpc
            .call(key, |mut client, request| async move {
                client.get_reminder(request).await
            })
            .await
            .map_err(|status| match status.code() {
                Code::NotFound | Code::InvalidArgument => JobsError::NotFound(name.to_owned()),
                _ => JobsError::Store(status),
            })?;
        let reminder = reminder_from_wire(found).map_err(JobsError::Store)?;
        job_of(&reminder).ok_or_else(|| JobsError::NotFound(name.to_owned()))
    }

    /// Every job of the app, by name.
    pub async fn list(&self) -> Result<Vec<JobSpec>, JobsError> {
        self.require_app()?;
        let listed = self
            .rpc
            .call(
                ListRemindersRequest {
                    actor_type: jobs_actor_type(&self.app_id),
                    actor_id: String::new(),
                },
                |mut client, request| async move { client.list_reminders(request).await },
            )
            .await
            .map_err(JobsError::Store)?;
        listed
            .reminders
            .into_iter()
            .map(|stored| {
                let reminder = reminder_from_wire(stored).map_err(JobsError::Store)?;
                job_of(&reminder)
                    .ok_or_else(|| JobsError::Store(Status::internal("a job without its plan")))
            })
            .collect()
    }

    /// Deletes the job of that name; `false` when there was none.
    pub async fn delete(&self, name: &str) -> Result<bool, JobsError> {
        self.require_app()?;
        let changed = job_key(&self.app_id, name);
        let key = key_to_wire(&changed);
        match self
            .rpc
            .call(key, |mut client, request| async move {
                client.delete_reminder(request).await
            })
            .await
        {
            Ok(response) => {
                self.changes.changed(changed);
                Ok(response.deleted)
            }
            // A name no job can have (a bad key) names no job.
            Err(status) if status.code() == Code::InvalidArgument => Ok(false),
            Err(status) => Err(JobsError::Store(status)),
        }
    }
}

//! How a job of the Jobs API is kept and fired: as a reminder of its app's *jobs type*.
//!
//! Placement stores jobs beside reminders, in the same Raft state machine, and hosts fire
//! them with the same scheduler. A job of app `A` named `n` is the reminder
//! ([`jobs_actor_type`]`(A)`, `n`, [`JOB_REMINDER_NAME`]) carrying its [`JobSpec`]: the jobs
//! type is served by every healthy host of app `A`, so the ring picks the host that delivers
//! each job, and a job moves to another host of the app when that one leaves or dies. The
//! spec, not the reminder's fixed period, decides each next firing
//! ([`JobSpec::next_fire_after`]).

use rookery_proto::internal::v1::JobPlan;
use tonic::Status;

use crate::jobs::{FailurePolicy, JobSchedule, JobSpec, MAX_JOB_DATA_BYTES};
use crate::reminders::{Reminder, ReminderKey};
use crate::schedule::Schedule;

/// The prefix of every jobs type: no app may register an actor type starting with it.
pub const JOBS_TYPE_PREFIX: &str = "rookery.jobs/";
/// The reminder name of every job.
pub const JOB_REMINDER_NAME: &str = "job";

/// The actor type whose actors are the jobs of `app_id`.
pub fn jobs_actor_type(app_id: &str) -> String {
    format!("{JOBS_TYPE_PREFIX}{app_id}")
}

/// Whether an actor type name is reserved for jobs.
pub fn is_jobs_type(actor_type: &str) -> bool {
    actor_type.starts_with(JOBS_TYPE_PREFIX)
}

/// The reminder key of job `name` of `app_id`.
pub fn job_key(app_id: &str, name: &str) -> ReminderKey {
    ReminderKey {
        actor_type: jobs_actor_type(app_id),
        actor_id: name.to_owned(),
        name: JOB_REMINDER_NAME.to_owned(),
    }
}

/// The reminder that keeps `spec` for `app_id`, first due at its first firing; `None` when
/// the spec never fires (a spec [`JobSpec::parse`] accepted always does).
pub fn job_reminder(app_id: &str, mut spec: JobSpec) -> Option<Reminder> {
    let first = spec.first_fire_ms()?;
    let data = std::mem::take(&mut spec.data);
    Some(Reminder {
        key: job_key(app_id, &spec.name),
        data,
        schedule: Schedule {
            due_at_ms: first,
            period: None,
            expires_at_ms: spec.expires_at_ms,
        },
        next_due_ms: first,
        fired_count: 0,
        job: Some(Box::new(spec)),
    })
}

/// The job a reminder keeps, with its payload back in place.
pub fn job_of(reminder: &Reminder) -> Option<JobSpec> {
    let mut spec = *reminder.job.clone()?;
    spec.data = reminder.data.clone();
    Some(spec)
}

/// A spec on the wire (its payload travels as the reminder's data).
pub fn plan_to_wire(spec: &JobSpec) -> JobPlan {
    let (drop_on_failure, retry_interval_ms, max_retries) = match spec.failure_policy {
        FailurePolicy::Drop => (true, 0, 0),
        FailurePolicy::Constant {
            interval_ms,
            max_retries,
        } => (false, interval_ms, max_retries.map_or(-1, i64::from)),
    };
    JobPlan {
        schedule: spec
            .schedule
            .as_ref()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        due_time: spec.due_time.clone().unwrap_or_default(),
        ttl: spec.ttl.clone().unwrap_or_default(),
        repeats: spec.repeats.unwrap_or(0),
        drop_on_failure,
        retry_interval_ms,
        max_retries,
        created_at_ms: spec.created_at_ms,
        has_due_time: spec.due_at_ms.is_some(),
        due_at_ms: spec.due_at_ms.unwrap_or(0),
        expires_at_ms: spec.expires_at_ms.unwrap_or(0),
        data_type_url: spec.data_type_url.clone(),
    }
}

/// A spec from the wire, checked as far as a stored spec can be: its name, its schedule,
/// and that it fires; `data` is the reminder's.
pub fn plan_from_wire(name: &str, plan: JobPlan, data_len: usize) -> Result<JobSpec, Status> {
    let invalid = |e: crate::jobs::JobError| Status::invalid_argument(e.to_string());
    crate::jobs::validate_job_name(name).map_err(invalid)?;
    if data_len > MAX_JOB_DATA_BYTES {
        return Err(Status::resource_exhausted(format!(
            "job data of {data_len} bytes is over the limit of {MAX_JOB_DATA_BYTES}"
        )));
    }
    let schedule = (!plan.schedule.is_empty())
        .then(|| JobSchedule::parse(&plan.schedule))
        .transpose()
        .map_err(invalid)?;
    let present = |value: String| (!value.is_empty()).then_some(value);
    let failure_policy = if plan.drop_on_failure {
        FailurePolicy::Drop
    } else {
        FailurePolicy::Constant {
            interval_ms: plan.retry_interval_ms,
            max_retries: u32::try_from(plan.max_retries).ok(),
        }
    };
    let spec = JobSpec {
        name: name.to_owned(),
        schedule,
        due_time: present(plan.due_time),
        ttl: present(plan.ttl),
        repeats: (plan.repeats > 0).then_some(plan.repeats),
        data: Vec::new(),
        data_type_url: plan.data_type_url,
        overwrite: false,
        failure_policy,
        created_at_ms: plan.created_at_ms,
        due_at_ms: plan.has_due_time.then_some(plan.due_at_ms),
        expires_at_ms: (plan.expires_at_ms > 0).then_some(plan.expires_at_ms),
    };
    if spec.first_fire_ms().is_none() {
        return Err(Status::invalid_argument(format!(
            "job {name:?} never fires"
        )));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{JobInput, JSON_VALUE_TYPE_URL};
    use crate::reminders::{reminder_from_wire, reminder_to_wire};

    const NOW_MS: u64 = 1_800_000_000_000;

    fn spec(schedule: &str, repeats: Option<i64>) -> JobSpec {
        JobSpec::parse(
            JobInput {
                name: "backup".into(),
                schedule: Some(schedule.into()),
                repeats,
                ttl: Some("1h".into()),
                data: b"payload".to_vec(),
                data_type_url: JSON_VALUE_TYPE_URL.into(),
                ..JobInput::default()
            },
            NOW_MS,
        )
        .expect("valid job")
    }

    #[test]
    fn a_job_round_trips_through_its_reminder_on_the_wire() {
        let job = spec("*/2 * * * * *", Some(3));
        let reminder = job_reminder("billing", job.clone()).expect("fires");
        assert_eq!(reminder.key, job_key("billing", "backup"));
        assert_eq!(reminder.data, b"payload");
        assert_eq!(reminder.next_due_ms, job.first_fire_ms().unwrap());
        let back = reminder_from_wire(reminder_to_wire(&reminder)).expect("valid on the wire");
        assert_eq!(back, reminder);
        assert_eq!(
            job_of(&back).expect("a job"),
            JobSpec {
                overwrite: false,
                ..job
            }
        );
    }

    #[test]
    fn failure_policies_round_trip() {
        for policy in [
            FailurePolicy::Drop,
            FailurePolicy::Constant {
                interval_ms: 250,
                max_retries: None,
            },
            FailurePolicy::Constant {
                interval_ms: 0,
                max_retries: Some(7),
            },
        ] {
            let job = JobSpec {
                failure_policy: policy,
                ..spec("@every 1s", None)
            };
            let plan = plan_to_wire(&job);
            let back = plan_from_wire("backup", plan, 0).expect("valid");
            assert_eq!(back.failure_policy, policy);
        }
    }

    #[test]
    fn a_corrupt_plan_is_refused() {
        let mut plan = plan_to_wire(&spec("@every 1s", None));
        plan.schedule = "every second".into();
        assert!(plan_from_wire("backup", plan, 0).is_err());
        let plan = plan_to_wire(&spec("@every 1s", None));
        assert!(plan_from_wire("a/b", plan.clone(), 0).is_err());
        assert_eq!(
            plan_from_wire("backup", plan, MAX_JOB_DATA_BYTES + 1)
                .unwrap_err()
                .code(),
            tonic::Code::ResourceExhausted
        );
    }
}

//! `rookery jobs create|get|list|delete`: the jobs of a host's app (Dapr's Jobs API).
//!
//! Like every client command, it addresses a host by `--host` (its gRPC port) and calls Dapr's
//! gRPC Jobs RPCs there (`ScheduleJobAlpha1`, `GetJobAlpha1`, `ListJobsAlpha1`,
//! `DeleteJobAlpha1`), which have the one list operation Dapr's HTTP API lacks. `--data` is
//! sent as the HTTP API sends it (a `google.protobuf.Value`), so an HTTP app receives it as
//! that JSON. With `--api-token` (or `DAPR_API_TOKEN`) it sends the host's API token.
//!
//! Output is JSON, a job as `GET /v1.0-alpha1/jobs/{name}` answers it: `create` prints the
//! job it sent, `get` the stored job, `list` one job a line by name, `delete`
//! `{"deleted": name}` (also when there was none, as daprd). A refused request exits 1 with
//! the gRPC code and the host's message; bad usage exits 2.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use rookery_core::jobs::JSON_VALUE_TYPE_URL;
use rookery_core::net::{self, TcpTransport};
use rookery_core::schedule::parse_go_duration_ms;
use rookery_proto::dapr::proto::common::v1::{
    job_failure_policy::Policy, JobFailurePolicy, JobFailurePolicyConstant, JobFailurePolicyDrop,
};
use rookery_proto::dapr::proto::runtime::v1::dapr_client::DaprClient;
use rookery_proto::dapr::proto::runtime::v1::{
    DeleteJobRequest, GetJobRequest, Job, ListJobsRequestAlpha1, ScheduleJobRequest,
};
use rookery_proto::google::protobuf::{self as wkt, Any};
use rookery_runtime::api::dapr::jobs::job_to_json;
use rookery_runtime::dapr_wire::{json_to_protobuf_value, API_TOKEN_HEADER};
use serde_json::json;
use tonic::metadata::{Ascii, MetadataValue};

/// Deadline of one jobs request.
const REQUEST_TIMEOUT_MS: u64 = 30_000;

#[derive(Args, Debug)]
pub struct JobsArgs {
    #[command(subcommand)]
    command: JobsCommand,
    /// Host to send the request to (its gRPC port); the jobs are those of its --app-id.
    #[arg(long, global = true, env = "ROOKERY_HOST", default_value = "127.0.0.1:50001", value_parser = super::parse_host_port)]
    host: String,
    /// The host's API token, when it has one.
    #[arg(long, global = true, env = "DAPR_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
}

/// A job's failure policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FailurePolicyKind {
    /// Give a failed firing up at once.
    Drop,
    /// Retry a failed firing every --retry-interval, at most --max-retries times.
    Constant,
}

#[derive(Subcommand, Debug)]
enum JobsCommand {
    /// Schedule a job (fails if one of that name exists, unless --overwrite).
    Create {
        name: String,
        /// When it fires: 6-field cron with seconds (`0 30 9 * * MON-FRI`), `@every 1h30m`,
        /// or `@hourly` ... `@yearly`.
        #[arg(long)]
        schedule: Option<String>,
        /// When it first fires: a Go duration from now (`10s`), an ISO-8601 duration or an
        /// RFC3339 time. Without --schedule, it fires once then.
        #[arg(long)]
        due_time: Option<String>,
        /// How many times it fires in all.
        #[arg(long)]
        repeats: Option<u32>,
        /// When it ends: a duration after the due time, or an RFC3339 time.
        #[arg(long)]
        ttl: Option<String>,
        /// Data delivered with every firing: JSON (text that is not JSON is sent as a JSON
        /// string).
        #[arg(long)]
        data: Option<String>,
        /// Replace a job of the same name.
        #[arg(long)]
        overwrite: bool,
        /// What a failed firing does; default (none given): constant, 1s, 3 retries.
        #[arg(long, value_enum)]
        failure_policy: Option<FailurePolicyKind>,
        /// With constant: the wait between retries, a Go duration (`500ms`, `2s`); default 0.
        #[arg(long)]
        retry_interval: Option<String>,
        /// With constant: how many retries at most; default no limit.
        #[arg(long)]
        max_retries: Option<u32>,
    },
    /// Show one job as JSON.
    Get { name: String },
    /// List the app's jobs, one JSON line each, by name.
    List,
    /// Delete a job (succeeds also when there is none).
    Delete { name: String },
}

fn fail(status: tonic::Status) -> anyhow::Result<ExitCode> {
    eprintln!("error: {:?}: {}", status.code(), status.message());
    Ok(ExitCode::FAILURE)
}

fn usage(message: &str) -> anyhow::Result<ExitCode> {
    eprintln!("error: {message}");
    Ok(ExitCode::from(2))
}

/// `--data` as JSON: itself when it parses, else the text as a JSON string.
fn data_value(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

/// The policy the flags ask for; `Err` with the usage error.
fn failure_policy(
    kind: Option<FailurePolicyKind>,
    retry_interval: Option<&str>,
    max_retries: Option<u32>,
) -> Result<Option<JobFailurePolicy>, String> {
    let retry_flags = retry_interval.is_some() || max_retries.is_some();
    let policy = match kind {
        None if !retry_flags => return Ok(None),
        Some(FailurePolicyKind::Drop) if retry_flags => {
            return Err(
                "--retry-interval and --max-retries need --failure-policy constant".to_owned(),
            )
        }
        Some(FailurePolicyKind::Drop) => Policy::Drop(JobFailurePolicyDrop {}),
        None | Some(FailurePolicyKind::Constant) => {
            let interval = retry_interval
                .map(|text| {
                    parse_go_duration_ms(text)
                        .map_err(|reason| format!("invalid value for '--retry-interval': {reason}"))
                })
                .transpose()?
                .map(|ms| wkt::Duration {
                    seconds: i64::try_from(ms / 1_000).unwrap_or(i64::MAX),
                    nanos: (ms % 1_000 * 1_000_000) as i32,
                });
            Policy::Constant(JobFailurePolicyConstant {
                interval,
                max_retries,
            })
        }
    };
    Ok(Some(JobFailurePolicy {
        policy: Some(policy),
    }))
}

/// A request bounded by [`REQUEST_TIMEOUT_MS`], with the API token when there is one.
fn request<T>(message: T, token: Option<&MetadataValue<Ascii>>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(Duration::from_millis(REQUEST_TIMEOUT_MS));
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert(API_TOKEN_HEADER, token.clone());
    }
    request
}

pub async fn run(args: JobsArgs) -> anyhow::Result<ExitCode> {
    let channel = net::channel(&TcpTransport::shared(), &args.host)?;
    let mut client = DaprClient::new(channel).max_decoding_message_size(usize::MAX);
    let token = match args.api_token.as_deref().filter(|t| !t.is_empty()) {
        None => None,
        Some(token) => match MetadataValue::try_from(token) {
            Ok(value) => Some(value),
            Err(_) => return usage("the API token is not a valid metadata value"),
        },
    };
    match args.command {
        JobsCommand::Create {
            name,
            schedule,
            due_time,
            repeats,
            ttl,
            data,
            overwrite,
            failure_policy: kind,
            retry_interval,
            max_retries,
        } => {
            let failure_policy = match failure_policy(kind, retry_interval.as_deref(), max_retries)
            {
                Ok(policy) => policy,
                Err(message) => return usage(&message),
            };
            let job = Job {
                name,
                schedule,
                repeats,
                due_time,
                ttl,
                data: data.map(|text| Any {
                    type_url: JSON_VALUE_TYPE_URL.to_owned(),
                    value: json_to_protobuf_value(&data_value(&text)),
                }),
                failure_policy,
            };
            let printed = job_to_json(&job);
            let schedule = ScheduleJobRequest {
                job: Some(job),
                overwrite,
            };
            match client
                .schedule_job_alpha1(request(schedule, token.as_ref()))
                .await
            {
                Ok(_) => println!("{printed}"),
                Err(status) => return fail(status),
            }
        }
        JobsCommand::Get { name } => {
            match client
                .get_job_alpha1(request(GetJobRequest { name }, token.as_ref()))
                .await
            {
                Ok(found) => match found.into_inner().job {
                    Some(job) => println!("{}", job_to_json(&job)),
                    None => {
                        eprintln!("error: the host answered without a job");
                        return Ok(ExitCode::FAILURE);
                    }
                },
                Err(status) => return fail(status),
            }
        }
        JobsCommand::List => match client
            .list_jobs_alpha1(request(ListJobsRequestAlpha1 {}, token.as_ref()))
            .await
        {
            Ok(listed) => {
                for job in listed.into_inner().jobs {
                    println!("{}", job_to_json(&job));
                }
            }
            Err(status) => return fail(status),
        },
        JobsCommand::Delete { name } => {
            match client
                .delete_job_alpha1(request(
                    DeleteJobRequest { name: name.clone() },
                    token.as_ref(),
                ))
                .await
            {
                Ok(_) => println!("{}", json!({ "deleted": name })),
                Err(status) => return fail(status),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_json_or_a_json_string() {
        assert_eq!(data_value(r#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(data_value("42"), json!(42));
        assert_eq!(data_value("hello world"), json!("hello world"));
    }

    #[test]
    fn policy_flags_make_one_policy() {
        assert_eq!(failure_policy(None, None, None), Ok(None));
        assert_eq!(
            failure_policy(Some(FailurePolicyKind::Drop), None, None),
            Ok(Some(JobFailurePolicy {
                policy: Some(Policy::Drop(JobFailurePolicyDrop {}))
            }))
        );
        let constant = JobFailurePolicy {
            policy: Some(Policy::Constant(JobFailurePolicyConstant {
                interval: Some(wkt::Duration {
                    seconds: 1,
                    nanos: 500_000_000,
                }),
                max_retries: Some(2),
            })),
        };
        assert_eq!(
            failure_policy(Some(FailurePolicyKind::Constant), Some("1.5s"), Some(2)),
            Ok(Some(constant))
        );
        assert_eq!(
            failure_policy(None, Some("1500ms"), Some(2)),
            Ok(Some(constant)),
            "retry flags alone mean constant"
        );
        assert!(failure_policy(Some(FailurePolicyKind::Drop), None, Some(1)).is_err());
        assert!(failure_policy(None, Some("soon"), None).is_err());
    }
}

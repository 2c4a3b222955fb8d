//! Dapr's Jobs API on the wire, for both front ends: a job as the HTTP API's JSON
//! (`POST/GET /v1.0-alpha1/jobs/{name}`) and as `dapr.proto.runtime.v1.Job`
//! (`ScheduleJobAlpha1`, `GetJobAlpha1`, `ListJobsAlpha1`), turned into the core's
//! [`JobInput`] and back from a stored [`JobSpec`]. The operations themselves are
//! [`crate::jobs::JobsClient`]'s; their errors map to daprd's in [`DaprError::job`].
//!
//! # HTTP body
//!
//! `POST /v1.0-alpha1/jobs/{name}` takes daprd's JSON, read as protobuf JSON is: each field
//! by its JSON name or its proto name (`dueTime` or `due_time`, `failurePolicy` or
//! `failure_policy`, `maxRetries` or `max_retries`), `null` as absent, `repeats` a number or
//! a string of digits. `data` is any JSON value, kept as a `google.protobuf.Value` (type URL
//! [`JSON_VALUE_TYPE_URL`]) as daprd keeps it. `failurePolicy` is `{"drop": {}}` or
//! `{"constant": {"interval": "1s", "maxRetries": 3}}` (`interval` a Go or protobuf JSON
//! duration); `{}` is the default policy. A `name` in the body is refused (the name is the
//! URL's), as daprd refuses it. Unknown fields are ignored.
//!
//! The name in the URL is percent-decoded (by the router) and trimmed of the spaces around
//! it, as daprd trims it. Names with `|` are refused before the core's checks, as daprd
//! refuses them, so `a||b` (which the Scheduler's own rule would take) is not a name here.
//!
//! # HTTP answer
//!
//! `GET` answers `{"name", "schedule", "dueTime", "repeats", "ttl", "data",
//! "failurePolicy"}`, each absent when unset, as protobuf JSON renders a `Job`: `data` is the
//! JSON again when its type is [`JSON_VALUE_TYPE_URL`], else `{"@type": url, "value":
//! base64}`; `failurePolicy` is always there (a job without one has the default, constant
//! every 1 s with 3 retries), its `interval` a protobuf JSON duration (`"1.500s"`).
//!
//! # gRPC
//!
//! A `Job`'s `data` `Any` is kept as is: its `type_url` and `value`. A failure policy's
//! `interval` `Duration` becomes a Go duration (`"1500ms"`, or nanoseconds when it is not a
//! whole number of milliseconds; the core rounds those up); a negative one is refused.

use rookery_core::jobs::JSON_VALUE_TYPE_URL;
use rookery_core::jobs::{FailurePolicy, FailurePolicyInput, JobError, JobInput, JobSpec};
use rookery_core::schedule::format_duration_ms;
use rookery_proto::dapr::proto::common::v1::{
    job_failure_policy::Policy, JobFailurePolicy, JobFailurePolicyConstant, JobFailurePolicyDrop,
};
use rookery_proto::dapr::proto::runtime::v1 as pb;
use rookery_proto::google::protobuf::{Any, Duration};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::errors::{DaprError, JobOp};
use crate::dapr_wire::{base64, json_to_protobuf_value, protobuf_value_to_json};
use crate::jobs::JobsError;

/// A job name taken from a URL: the spaces around it trimmed, as daprd trims them.
pub fn url_name(raw: &str) -> &str {
    raw.trim()
}

/// The checks daprd makes of a name before the Scheduler's: not empty (any operation), and
/// for a job to schedule no `|`.
pub fn check_name(op: JobOp, name: &str) -> Result<(), DaprError> {
    if name.is_empty() {
        return Err(DaprError::job_name_empty(op));
    }
    if op == JobOp::Schedule && name.contains('|') {
        return Err(DaprError::job_name_with_bar(name));
    }
    Ok(())
}

/// The body of `POST /v1.0-alpha1/jobs/{name}`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct JobBody<'a> {
    name: Option<String>,
    schedule: Option<String>,
    #[serde(alias = "due_time")]
    due_time: Option<String>,
    repeats: Option<Value>,
    ttl: Option<String>,
    /// Raw, so that a JSON `null` is kept as the data it is (`Option`'s own reading would
    /// take it for absent).
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    overwrite: Option<bool>,
    #[serde(alias = "failure_policy")]
    failure_policy: Option<Value>,
}

/// A field that is there, `null` included.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// A job to schedule from `POST /v1.0-alpha1/jobs/{name}`: `name` as routed (percent-decoded,
/// not yet trimmed) and the body. Errors are daprd's: ERR_MALFORMED_REQUEST for a body that
/// is not the JSON of a job, the name checks of [`check_name`], and DAPR_SCHEDULER_SCHEDULE_JOB
/// for a `repeats` or `failurePolicy` of the wrong form.
pub fn input_from_http(name: &str, body: &[u8]) -> Result<JobInput, DaprError> {
    let name = url_name(name);
    check_name(JobOp::Schedule, name)?;
    let body: JobBody = if body.iter().all(u8::is_ascii_whitespace) {
        JobBody::default()
    } else {
        serde_json::from_slice(body).map_err(DaprError::malformed)?
    };
    if body.name.as_deref().is_some_and(|n| !n.is_empty()) {
        return Err(DaprError::job_name_in_body());
    }
    let invalid = |error: JobError| DaprError::job(JobOp::Schedule, JobsError::Invalid(error));
    let repeats = body.repeats.as_ref().map(repeats_of).transpose()?;
    let failure_policy = body
        .failure_policy
        .as_ref()
        .map(failure_policy_of_json)
        .transpose()
        .map_err(invalid)?
        .flatten();
    let (data, data_type_url) = match body.data {
        None => (Vec::new(), String::new()),
        Some(raw) => {
            let value: Value = serde_json::from_str(raw.get()).map_err(DaprError::malformed)?;
            (
                json_to_protobuf_value(&value),
                JSON_VALUE_TYPE_URL.to_owned(),
            )
        }
    };
    Ok(JobInput {
        name: name.to_owned(),
        schedule: body.schedule,
        due_time: body.due_time,
        repeats,
        ttl: body.ttl,
        data,
        data_type_url,
        overwrite: body.overwrite.unwrap_or(false),
        failure_policy,
    })
}

/// `repeats` as protobuf JSON gives a number: a JSON integer or a string of one. A value
/// too large for `i64` is kept as `i64::MAX`, which the core refuses as too large.
fn repeats_of(value: &Value) -> Result<i64, DaprError> {
    let malformed = || DaprError::malformed(format!("repeats {value} is not an integer"));
    let number = match value {
        Value::Number(n) => n.clone(),
        Value::String(s) => s.trim().parse().map_err(|_| malformed())?,
        _ => return Err(malformed()),
    };
    if let Some(n) = number.as_i64() {
        return Ok(n);
    }
    if number.as_u64().is_some() {
        return Ok(i64::MAX);
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(f as i64),
        _ => Err(malformed()),
    }
}

fn policy_error(reason: impl Into<String>) -> JobError {
    JobError::FailurePolicy {
        reason: reason.into(),
    }
}

/// A `failurePolicy` in protobuf JSON; `None` for `null` or `{}` (the default policy).
fn failure_policy_of_json(value: &Value) -> Result<Option<FailurePolicyInput>, JobError> {
    let object = match value {
        Value::Null => return Ok(None),
        Value::Object(object) => object,
        other => {
            return Err(policy_error(format!(
                "{other} is not an object: expected {{\"drop\": {{}}}} or {{\"constant\": {{...}}}}"
            )))
        }
    };
    let mut policy = None;
    for (key, inner) in object {
        let this = match key.as_str() {
            "drop" => match inner {
                Value::Null => continue,
                Value::Object(fields) if fields.is_empty() => FailurePolicyInput::Drop,
                other => return Err(policy_error(format!("drop takes no fields, not {other}"))),
            },
            "constant" => match inner {
                Value::Null => continue,
                Value::Object(fields) => constant_of_json(fields)?,
                other => return Err(policy_error(format!("constant {other} is not an object"))),
            },
            other => {
                return Err(policy_error(format!(
                    "unknown policy {other:?}: expected drop or constant"
                )))
            }
        };
        if policy.replace(this).is_some() {
            return Err(policy_error("both drop and constant: a job has one policy"));
        }
    }
    Ok(policy)
}

fn constant_of_json(fields: &Map<String, Value>) -> Result<FailurePolicyInput, JobError> {
    let mut interval = None;
    let mut max_retries = None;
    for (key, value) in fields {
        match (key.as_str(), value) {
            (_, Value::Null) => {}
            ("interval", Value::String(text)) => interval = Some(text.clone()),
            ("interval", other) => {
                return Err(policy_error(format!(
                    "interval {other} is not a duration string such as \"1s\""
                )))
            }
            ("maxRetries" | "max_retries", value) => {
                let count = match value {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse::<u64>().ok(),
                    _ => None,
                };
                let count = count.and_then(|c| u32::try_from(c).ok()).ok_or_else(|| {
                    policy_error(format!(
                        "maxRetries {value} is not a whole number from 0 to {}",
                        u32::MAX
                    ))
                })?;
                max_retries = Some(count);
            }
            (other, _) => {
                return Err(policy_error(format!(
                    "unknown field {other:?} of constant: expected interval and maxRetries"
                )))
            }
        }
    }
    Ok(FailurePolicyInput::Constant {
        interval,
        max_retries,
    })
}

/// A job to schedule from `ScheduleJobAlpha1`. Errors are daprd's checks (no job, the name
/// checks of [`check_name`]) and a negative retry interval.
pub fn input_from_grpc(request: pb::ScheduleJobRequest) -> Result<JobInput, DaprError> {
    let job = request.job.ok_or_else(DaprError::job_empty)?;
    check_name(JobOp::Schedule, &job.name)?;
    let failure_policy = job
        .failure_policy
        .map(failure_policy_of_wire)
        .transpose()
        .map_err(|error| DaprError::job(JobOp::Schedule, JobsError::Invalid(error)))?
        .flatten();
    let (data, data_type_url) = job
        .data
        .map(|any| (any.value, any.type_url))
        .unwrap_or_default();
    Ok(JobInput {
        name: job.name,
        schedule: job.schedule,
        due_time: job.due_time,
        repeats: job.repeats.map(i64::from),
        ttl: job.ttl,
        data,
        data_type_url,
        overwrite: request.overwrite,
        failure_policy,
    })
}

/// A wire failure policy; `None` when it sets neither kind (the default policy).
fn failure_policy_of_wire(
    policy: JobFailurePolicy,
) -> Result<Option<FailurePolicyInput>, JobError> {
    Ok(match policy.policy {
        None => None,
        Some(Policy::Drop(_)) => Some(FailurePolicyInput::Drop),
        Some(Policy::Constant(constant)) => Some(FailurePolicyInput::Constant {
            interval: constant.interval.map(go_duration_of).transpose()?,
            max_retries: constant.max_retries,
        }),
    })
}

/// A protobuf `Duration` as a Go duration the core parses.
fn go_duration_of(duration: Duration) -> Result<String, JobError> {
    let nanos = i128::from(duration.seconds) * 1_000_000_000 + i128::from(duration.nanos);
    if nanos < 0 || (duration.seconds > 0 && duration.nanos < 0) {
        return Err(policy_error(format!(
            "interval {}s{}ns is negative",
            duration.seconds, duration.nanos
        )));
    }
    if nanos % 1_000_000 == 0 {
        let ms =
            u64::try_from(nanos / 1_000_000).map_err(|_| policy_error("interval is too long"))?;
        Ok(format_duration_ms(ms))
    } else {
        Ok(format!("{nanos}ns"))
    }
}

/// A stored job as the wire's `Job`, as `GetJobAlpha1` and `ListJobsAlpha1` answer it.
pub fn job_to_wire(spec: &JobSpec) -> pb::Job {
    let data = (!spec.data.is_empty() || !spec.data_type_url.is_empty()).then(|| Any {
        type_url: spec.data_type_url.clone(),
        value: spec.data.clone(),
    });
    let policy = match spec.failure_policy {
        FailurePolicy::Drop => Policy::Drop(JobFailurePolicyDrop {}),
        FailurePolicy::Constant {
            interval_ms,
            max_retries,
        } => Policy::Constant(JobFailurePolicyConstant {
            interval: Some(Duration {
                seconds: i64::try_from(interval_ms / 1_000).unwrap_or(i64::MAX),
                // Below 10^9: fits.
                nanos: (interval_ms % 1_000 * 1_000_000) as i32,
            }),
            max_retries,
        }),
    };
    pb::Job {
        name: spec.name.clone(),
        schedule: spec.schedule.as_ref().map(|s| s.as_str().to_owned()),
        repeats: spec.repeats,
        due_time: spec.due_time.clone(),
        ttl: spec.ttl.clone(),
        data,
        failure_policy: Some(JobFailurePolicy {
            policy: Some(policy),
        }),
    }
}

/// A wire `Job` as protobuf JSON renders it: the HTTP API's answer, and what
/// `rookery jobs` prints.
pub fn job_to_json(job: &pb::Job) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), job.name.clone().into());
    let strings = [
        ("schedule", &job.schedule),
        ("dueTime", &job.due_time),
        ("ttl", &job.ttl),
    ];
    for (field, value) in strings {
        if let Some(value) = value {
            out.insert(field.into(), value.clone().into());
        }
    }
    if let Some(repeats) = job.repeats {
        out.insert("repeats".into(), repeats.into());
    }
    if let Some(data) = &job.data {
        out.insert("data".into(), data_to_json(data));
    }
    if let Some(policy) = job.failure_policy.as_ref().and_then(|p| p.policy.as_ref()) {
        let policy = match policy {
            Policy::Drop(_) => serde_json::json!({"drop": {}}),
            Policy::Constant(constant) => {
                let mut fields = Map::new();
                if let Some(interval) = &constant.interval {
                    fields.insert("interval".into(), protojson_duration(interval).into());
                }
                if let Some(max) = constant.max_retries {
                    fields.insert("maxRetries".into(), max.into());
                }
                serde_json::json!({ "constant": fields })
            }
        };
        out.insert("failurePolicy".into(), policy);
    }
    Value::Object(out)
}

/// A job's data as JSON: itself when it is a `google.protobuf.Value`, else as protobuf JSON
/// renders an `Any` it does not know.
fn data_to_json(data: &Any) -> Value {
    if data.type_url == JSON_VALUE_TYPE_URL {
        if let Ok(value) = protobuf_value_to_json(&data.value) {
            return value;
        }
    }
    serde_json::json!({"@type": data.type_url, "value": base64(&data.value)})
}

/// A `Duration` in protobuf JSON: seconds with 0, 3, 6 or 9 decimals, then `s`.
fn protojson_duration(duration: &Duration) -> String {
    let negative = duration.seconds < 0 || duration.nanos < 0;
    let (seconds, nanos) = (
        duration.seconds.unsigned_abs(),
        duration.nanos.unsigned_abs(),
    );
    let sign = if negative { "-" } else { "" };
    if nanos == 0 {
        format!("{sign}{seconds}s")
    } else if nanos % 1_000_000 == 0 {
        format!("{sign}{seconds}.{:03}s", nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        format!("{sign}{seconds}.{:06}s", nanos / 1_000)
    } else {
        format!("{sign}{seconds}.{nanos:09}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_core::jobs::JobSpec;
    use serde_json::json;

    const NOW: u64 = 1_769_860_800_000;

    fn http(name: &str, body: Value) -> Result<JobInput, DaprError> {
        input_from_http(name, body.to_string().as_bytes())
    }

    #[test]
    fn an_http_body_becomes_a_job_input() {
        let input = http(
            " nightly ",
            json!({"schedule": "@every 1m", "dueTime": "10s", "repeats": 5, "ttl": "1h",
                   "data": {"a": [1, "x"]}, "overwrite": true,
                   "failurePolicy": {"constant": {"interval": "1.5s", "maxRetries": 2}}}),
        )
        .expect("valid");
        assert_eq!(input.name, "nightly", "trimmed");
        assert_eq!(input.schedule.as_deref(), Some("@every 1m"));
        assert_eq!(input.due_time.as_deref(), Some("10s"));
        assert_eq!(input.repeats, Some(5));
        assert_eq!(input.ttl.as_deref(), Some("1h"));
        assert!(input.overwrite);
        assert_eq!(input.data_type_url, JSON_VALUE_TYPE_URL);
        assert_eq!(
            protobuf_value_to_json(&input.data).unwrap(),
            json!({"a": [1, "x"]})
        );
        assert_eq!(
            input.failure_policy,
            Some(FailurePolicyInput::Constant {
                interval: Some("1.5s".into()),
                max_retries: Some(2)
            })
        );
    }

    #[test]
    fn proto_names_strings_and_nulls_read_as_protobuf_json_does() {
        let input = http(
            "j",
            json!({"due_time": "1s", "repeats": "3", "schedule": null,
                   "failure_policy": {"constant": {"max_retries": "4", "interval": null}}}),
        )
        .unwrap();
        assert_eq!(input.due_time.as_deref(), Some("1s"));
        assert_eq!(input.schedule, None);
        assert_eq!(input.repeats, Some(3));
        assert_eq!(
            input.failure_policy,
            Some(FailurePolicyInput::Constant {
                interval: None,
                max_retries: Some(4)
            })
        );
        let input = http(
            "j",
            json!({"dueTime": "1s", "data": null, "failurePolicy": {"drop": {}}}),
        )
        .unwrap();
        assert_eq!(input.data_type_url, JSON_VALUE_TYPE_URL, "null is data");
        assert_eq!(protobuf_value_to_json(&input.data).unwrap(), Value::Null);
        assert_eq!(input.failure_policy, Some(FailurePolicyInput::Drop));
        let input = input_from_http("j", b"").unwrap();
        assert_eq!((input.data.len(), input.failure_policy), (0, None));
        assert_eq!(
            http("j", json!({"failurePolicy": {}}))
                .unwrap()
                .failure_policy,
            None
        );
    }

    #[test]
    fn bad_http_bodies_get_daprds_codes() {
        let code = |name: &str, body: &[u8]| input_from_http(name, body).unwrap_err().code;
        assert_eq!(code("j", b"{not json"), "ERR_MALFORMED_REQUEST");
        assert_eq!(
            code("j", br#"{"repeats": "many"}"#),
            "ERR_MALFORMED_REQUEST"
        );
        assert_eq!(code("j", br#"{"repeats": 1.5}"#), "ERR_MALFORMED_REQUEST");
        assert_eq!(code("j", br#"{"dueTime": 5}"#), "ERR_MALFORMED_REQUEST");
        assert_eq!(code("  ", b"{}"), "DAPR_SCHEDULER_JOB_NAME_EMPTY");
        assert_eq!(code("a||b", b"{}"), "DAPR_SCHEDULER_JOB_NAME_EMPTY");
        assert_eq!(code("j", br#"{"name": "k"}"#), "DAPR_SCHEDULER_JOB_NAME");
        for policy in [
            json!("drop"),
            json!({"linear": {}}),
            json!({"drop": {}, "constant": {}}),
            json!({"drop": {"x": 1}}),
            json!({"constant": {"interval": 5}}),
            json!({"constant": {"maxRetries": -1}}),
            json!({"constant": {"tries": 1}}),
        ] {
            let error = http("j", json!({"dueTime": "1s", "failurePolicy": policy})).unwrap_err();
            assert_eq!(
                (error.code, error.http.as_u16()),
                ("DAPR_SCHEDULER_SCHEDULE_JOB", 400),
                "{policy}"
            );
            assert!(error.message.contains("failurePolicy"), "{error:?}");
        }
    }

    #[test]
    fn negative_repeats_reach_the_core_which_refuses_them() {
        let input = http("j", json!({"schedule": "@every 1s", "repeats": -1})).unwrap();
        assert_eq!(input.repeats, Some(-1));
        let error = JobSpec::parse(input, NOW).unwrap_err();
        assert_eq!(error.field(), "repeats");
        let huge = http("j", json!({"schedule": "@every 1s", "repeats": u64::MAX})).unwrap();
        assert_eq!(huge.repeats, Some(i64::MAX));
    }

    fn grpc_job(policy: Option<Policy>) -> pb::ScheduleJobRequest {
        pb::ScheduleJobRequest {
            job: Some(pb::Job {
                name: "g".into(),
                schedule: Some("0 0 * * * *".into()),
                repeats: Some(2),
                due_time: None,
                ttl: None,
                data: Some(Any {
                    type_url: "type.googleapis.com/google.protobuf.StringValue".into(),
                    value: b"\x0a\x02hi".to_vec(),
                }),
                failure_policy: policy.map(|policy| JobFailurePolicy {
                    policy: Some(policy),
                }),
            }),
            overwrite: true,
        }
    }

    #[test]
    fn a_wire_job_keeps_its_any_and_its_interval() {
        let constant = |seconds, nanos| {
            Policy::Constant(JobFailurePolicyConstant {
                interval: Some(Duration { seconds, nanos }),
                max_retries: None,
            })
        };
        let input = input_from_grpc(grpc_job(Some(constant(1, 500_000_000)))).unwrap();
        assert_eq!(input.data, b"\x0a\x02hi");
        assert_eq!(
            input.data_type_url,
            "type.googleapis.com/google.protobuf.StringValue"
        );
        assert_eq!((input.repeats, input.overwrite), (Some(2), true));
        assert_eq!(
            input.failure_policy,
            Some(FailurePolicyInput::Constant {
                interval: Some("1.5s".into()),
                max_retries: None
            })
        );
        let input = input_from_grpc(grpc_job(Some(constant(0, 1_500)))).unwrap();
        assert_eq!(
            input.failure_policy,
            Some(FailurePolicyInput::Constant {
                interval: Some("1500ns".into()),
                max_retries: None
            })
        );
        let error = input_from_grpc(grpc_job(Some(constant(-1, 0)))).unwrap_err();
        assert_eq!(error.grpc, tonic::Code::InvalidArgument);
        let mut empty = grpc_job(None);
        empty.job = None;
        assert_eq!(
            input_from_grpc(empty).unwrap_err().code,
            "DAPR_SCHEDULER_EMPTY"
        );
        let mut unnamed = grpc_job(None);
        unnamed.job.as_mut().unwrap().name.clear();
        assert_eq!(
            input_from_grpc(unnamed).unwrap_err().code,
            "DAPR_SCHEDULER_JOB_NAME_EMPTY"
        );
    }

    #[test]
    fn stored_jobs_render_as_protobuf_json() {
        let input = http(
            "j",
            json!({"schedule": "@every 1m", "dueTime": "10s", "repeats": 5, "ttl": "1h",
                   "data": {"k": "v"},
                   "failurePolicy": {"constant": {"interval": "1500ms", "maxRetries": 2}}}),
        )
        .unwrap();
        let spec = JobSpec::parse(input, NOW).unwrap();
        let wire = job_to_wire(&spec);
        assert_eq!(
            job_to_json(&wire),
            json!({"name": "j", "schedule": "@every 1m", "dueTime": "10s", "repeats": 5,
                   "ttl": "1h", "data": {"k": "v"},
                   "failurePolicy": {"constant": {"interval": "1.500s", "maxRetries": 2}}})
        );
        let input = input_from_grpc(grpc_job(Some(Policy::Drop(JobFailurePolicyDrop {})))).unwrap();
        let json = job_to_json(&job_to_wire(&JobSpec::parse(input, NOW).unwrap()));
        assert_eq!(
            json,
            json!({"name": "g", "schedule": "0 0 * * * *", "repeats": 2,
                   "data": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                            "value": "CgJoaQ=="},
                   "failurePolicy": {"drop": {}}})
        );
        let bare = http("b", json!({"dueTime": "1s"})).unwrap();
        let json = job_to_json(&job_to_wire(&JobSpec::parse(bare, NOW).unwrap()));
        assert_eq!(
            json,
            json!({"name": "b", "dueTime": "1s",
                   "failurePolicy": {"constant": {"interval": "1s", "maxRetries": 3}}}),
            "no data, the default policy"
        );
    }

    #[test]
    fn durations_render_with_protobuf_jsons_decimals() {
        let d = |seconds, nanos| protojson_duration(&Duration { seconds, nanos });
        assert_eq!(d(0, 0), "0s");
        assert_eq!(d(90, 0), "90s");
        assert_eq!(d(1, 500_000_000), "1.500s");
        assert_eq!(d(0, 1_000), "0.000001s");
        assert_eq!(d(0, 5), "0.000000005s");
        assert_eq!(d(-1, 0), "-1s");
    }
}

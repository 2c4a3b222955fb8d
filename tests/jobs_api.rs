//! Dapr's Jobs API on `rookery host`, as a client sees it: scheduling, reading, listing and
//! deleting the jobs of the host's app over HTTP (`/v1.0-alpha1/jobs/{name}`), over gRPC
//! (`ScheduleJobAlpha1` and friends, with the generated tonic client and with the official
//! Dapr Python SDK's `DaprClient`) and through `rookery jobs`, with daprd's error codes for every refused request, and nothing stored by a
//! refused one. The jobs here are due an hour or more away: firing them is
//! `tests/jobs.rs`'s subject, not this file's.
//!
//! Real processes: one `rookery placement` and `rookery host` on loopback with OS-chosen
//! ports (each test its own), killed when the test ends.

mod support;

use std::time::Duration;

use rookery_proto::dapr::proto::common::v1::{
    job_failure_policy::Policy, JobFailurePolicy, JobFailurePolicyConstant, JobFailurePolicyDrop,
};
use rookery_proto::dapr::proto::runtime::v1 as pb;
use rookery_proto::dapr::proto::runtime::v1::dapr_client::DaprClient;
use rookery_proto::google::protobuf::{Any, Duration as ProtoDuration};
use serde_json::{json, Value};
use support::cluster::Cluster;
use support::host_process::{start_placement, HostProcess, HostProcessBuilder};
use support::http::{request, HttpResponse};
use support::run_rookery;
use tonic::transport::Channel;
use tonic::Code;

/// The type URL of JSON data (`google.protobuf.Value`).
const JSON_TYPE: &str = "type.googleapis.com/google.protobuf.Value";
/// A type URL a gRPC client may send, stored as is.
const STRING_TYPE: &str = "type.googleapis.com/google.protobuf.StringValue";
/// The API token of the host in the CLI test.
const TOKEN: &str = "jobs-s3cret";
/// Bound on one `rookery jobs` command.
const CLI_DEADLINE: Duration = Duration::from_secs(60);

async fn start(
    configure: impl FnOnce(HostProcessBuilder) -> HostProcessBuilder,
) -> (Cluster, HostProcess) {
    let cluster = start_placement(1).await;
    let host = configure(HostProcess::builder(cluster.addr_list())).start();
    host.wait_ready().await;
    (cluster, host)
}

async fn call(host: &HostProcess, method: &str, path: &str, body: &[u8]) -> HttpResponse {
    call_with(host, method, path, &[], body).await
}

async fn call_with(
    host: &HostProcess,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    request(host.http_port, method, path, &all, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

async fn post_job(host: &HostProcess, name: &str, body: &Value) -> HttpResponse {
    let path = format!("/v1.0-alpha1/jobs/{name}");
    call(host, "POST", &path, body.to_string().as_bytes()).await
}

async fn get_job(host: &HostProcess, name: &str) -> HttpResponse {
    call(host, "GET", &format!("/v1.0-alpha1/jobs/{name}"), b"").await
}

/// The names `GET /v1.0-alpha1/jobs` lists.
async fn listed(host: &HostProcess) -> Vec<String> {
    let response = call(host, "GET", "/v1.0-alpha1/jobs", b"").await;
    assert_eq!(response.status, 200, "list: {}", response.text());
    response.json()["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("no jobs array: {}", response.text()))
        .iter()
        .map(|job| job["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Asserts a Dapr error answer, its message containing `contains`.
fn assert_dapr_error(response: &HttpResponse, status: u16, code: &str, contains: &str, what: &str) {
    assert_eq!(response.status, status, "{what}: {}", response.text());
    assert_eq!(response.error_code(), code, "{what}: {}", response.text());
    let message = response.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains(contains),
        "{what}: message {message:?} lacks {contains:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_jobs_round_trip_and_bad_jobs_are_refused_unstored() {
    let (_cluster, host) = start(|h| h.app_id("jobs-http")).await;
    assert_eq!(listed(&host).await, Vec::<String>::new(), "no jobs yet");

    // Scheduled: 204, read back as given.
    let nightly = json!({
        "schedule": "@every 1h", "dueTime": "1h", "repeats": 3, "ttl": "24h",
        "data": {"task": "backup", "sizes": [1, 2]},
        "failurePolicy": {"constant": {"interval": "1.5s", "maxRetries": 2}},
    });
    let response = post_job(&host, "nightly", &nightly).await;
    assert_eq!(response.status, 204, "schedule: {}", response.text());
    assert!(response.body.is_empty());
    let response = get_job(&host, "nightly").await;
    assert_eq!(response.status, 200, "get: {}", response.text());
    assert_eq!(
        response.json(),
        json!({
            "name": "nightly", "schedule": "@every 1h", "dueTime": "1h", "repeats": 3,
            "ttl": "24h", "data": {"task": "backup", "sizes": [1, 2]},
            "failurePolicy": {"constant": {"interval": "1.500s", "maxRetries": 2}},
        })
    );

    // The name is taken: 409 without overwrite (the job unchanged), replaced with it.
    let replacement = json!({"dueTime": "2h", "data": "v2", "failurePolicy": {"drop": {}}});
    let response = post_job(&host, "nightly", &replacement).await;
    assert_dapr_error(
        &response,
        409,
        "DAPR_SCHEDULER_SCHEDULE_JOB",
        "already exists",
        "a second job of the name",
    );
    assert_eq!(get_job(&host, "nightly").await.json()["dueTime"], "1h");
    let mut overwrite = replacement.clone();
    overwrite["overwrite"] = true.into();
    let response = post_job(&host, "nightly", &overwrite).await;
    assert_eq!(response.status, 204, "overwrite: {}", response.text());
    assert_eq!(
        get_job(&host, "nightly").await.json(),
        json!({"name": "nightly", "dueTime": "2h", "data": "v2", "failurePolicy": {"drop": {}}})
    );

    // A percent-encoded name with spaces around it is the trimmed name; proto field names
    // and a string `repeats` read as protobuf JSON does; default failure policy.
    let response = post_job(
        &host,
        "%20weekly%20",
        &json!({"schedule": "0 0 0 * * MON", "due_time": "3h", "repeats": "4"}),
    )
    .await;
    assert_eq!(response.status, 204, "weekly: {}", response.text());
    assert_eq!(
        get_job(&host, "weekly").await.json(),
        json!({"name": "weekly", "schedule": "0 0 0 * * MON", "dueTime": "3h", "repeats": 4,
               "failurePolicy": {"constant": {"interval": "1s", "maxRetries": 3}}})
    );
    // Data up to the bound a job may carry is kept whole.
    let big = "x".repeat(1_000_000);
    let response = post_job(&host, "big", &json!({"dueTime": "1h", "data": big})).await;
    assert_eq!(response.status, 204, "1 MB of data: {}", response.text());
    assert_eq!(get_job(&host, "big").await.json()["data"], json!(big));
    assert_eq!(listed(&host).await, ["big", "nightly", "weekly"]);

    // Every bad job: 400, daprd's code, the field in the message, nothing stored.
    let too_big = "x".repeat(1024 * 1024 + 1);
    let bad: Vec<(&str, Value, &str, &str)> = vec![
        (
            "cron",
            json!({"schedule": "* * *"}),
            "DAPR_SCHEDULER_SCHEDULE_JOB",
            "schedule",
        ),
        (
            "negative",
            json!({"schedule": "@every 1s", "repeats": -1}),
            "DAPR_SCHEDULER_SCHEDULE_JOB",
            "repeats",
        ),
        (
            "expired",
            json!({"schedule": "@every 1h", "dueTime": "2099-01-02T00:00:00Z",
                   "ttl": "2099-01-01T00:00:00Z"}),
            "DAPR_SCHEDULER_SCHEDULE_JOB",
            "ttl",
        ),
        (
            "heavy",
            json!({"dueTime": "1h", "data": too_big}),
            "DAPR_SCHEDULER_SCHEDULE_JOB",
            "data",
        ),
        (
            "linear",
            json!({"dueTime": "1h", "failurePolicy": {"linear": {}}}),
            "DAPR_SCHEDULER_SCHEDULE_JOB",
            "failurePolicy",
        ),
        (
            "both",
            json!({"dueTime": "1h", "failurePolicy": {"drop": {}, "constant": {}}}),
            "DAPR_SCHEDULER_SCHEDULE_JOB",
            "failurePolicy",
        ),
        (
            "slow",
            json!({"dueTime": "1h", "failurePolicy": {"constant": {"interval": "soon"}}}),
            "DAPR_SCHEDULER_SCHEDULE_JOB",
            "failurePolicy",
        ),
        (
            "bad..name",
            json!({"dueTime": "1h"}),
            "DAPR_SCHEDULER_SCHEDULE_JOB",
            "name",
        ),
        (
            "a%2Fb",
            json!({"dueTime": "1h"}),
            "DAPR_SCHEDULER_SCHEDULE_JOB",
            "name",
        ),
        (
            "a%7C%7Cb",
            json!({"dueTime": "1h"}),
            "DAPR_SCHEDULER_JOB_NAME_EMPTY",
            "'|'",
        ),
        (
            "%20",
            json!({"dueTime": "1h"}),
            "DAPR_SCHEDULER_JOB_NAME_EMPTY",
            "name",
        ),
        (
            "named",
            json!({"name": "other", "dueTime": "1h"}),
            "DAPR_SCHEDULER_JOB_NAME",
            "url",
        ),
        (
            "unscheduled",
            json!({"data": 1}),
            "DAPR_SCHEDULER_SCHEDULE_EMPTY",
            "schedule",
        ),
    ];
    for (name, body, code, field) in &bad {
        let response = post_job(&host, name, body).await;
        assert_dapr_error(&response, 400, code, field, name);
    }
    let response = call(&host, "POST", "/v1.0-alpha1/jobs/malformed", b"{not json").await;
    assert_dapr_error(
        &response,
        400,
        "ERR_MALFORMED_REQUEST",
        "",
        "malformed JSON",
    );
    let response = post_job(&host, "typed", &json!({"dueTime": 5})).await;
    assert_dapr_error(
        &response,
        400,
        "ERR_MALFORMED_REQUEST",
        "",
        "a number as dueTime",
    );
    for name in [
        "cron",
        "negative",
        "expired",
        "heavy",
        "linear",
        "malformed",
        "named",
    ] {
        let response = get_job(&host, name).await;
        assert_dapr_error(
            &response,
            404,
            "DAPR_SCHEDULER_GET_JOB",
            "not found",
            &format!("refused {name}"),
        );
    }
    assert_eq!(
        listed(&host).await,
        ["big", "nightly", "weekly"],
        "nothing refused was stored"
    );

    // Delete: 204, also when there is none; then gone.
    for _ in 0..2 {
        let response = call(&host, "DELETE", "/v1.0-alpha1/jobs/weekly", b"").await;
        assert_eq!(response.status, 204, "delete: {}", response.text());
    }
    let response = call(&host, "DELETE", "/v1.0-alpha1/jobs/never-was", b"").await;
    assert_eq!(response.status, 204, "delete of none: {}", response.text());
    assert_dapr_error(
        &get_job(&host, "weekly").await,
        404,
        "DAPR_SCHEDULER_GET_JOB",
        "weekly",
        "deleted",
    );
    assert_eq!(listed(&host).await, ["big", "nightly"]);
    host.assert_alive();
}

fn dapr(host: &HostProcess) -> DaprClient<Channel> {
    DaprClient::new(host.channel()).max_decoding_message_size(usize::MAX)
}

fn grpc_job(name: &str, schedule: &str, data: &[u8]) -> pb::Job {
    pb::Job {
        name: name.to_owned(),
        schedule: Some(schedule.to_owned()),
        repeats: Some(2),
        due_time: Some("1h".to_owned()),
        ttl: None,
        data: Some(Any {
            type_url: STRING_TYPE.to_owned(),
            value: data.to_vec(),
        }),
        failure_policy: Some(JobFailurePolicy {
            policy: Some(Policy::Constant(JobFailurePolicyConstant {
                interval: Some(ProtoDuration {
                    seconds: 1,
                    nanos: 500_000_000,
                }),
                max_retries: Some(4),
            })),
        }),
    }
}

async fn schedule(
    client: &mut DaprClient<Channel>,
    job: pb::Job,
    overwrite: bool,
) -> Result<(), tonic::Status> {
    client
        .schedule_job_alpha1(pb::ScheduleJobRequest {
            job: Some(job),
            overwrite,
        })
        .await
        .map(|_| ())
}

async fn grpc_get(client: &mut DaprClient<Channel>, name: &str) -> Result<pb::Job, tonic::Status> {
    let response = client
        .get_job_alpha1(pb::GetJobRequest {
            name: name.to_owned(),
        })
        .await?;
    Ok(response.into_inner().job.expect("a job"))
}

async fn grpc_names(client: &mut DaprClient<Channel>) -> Vec<String> {
    let listed = client
        .list_jobs_alpha1(pb::ListJobsRequestAlpha1 {})
        .await
        .expect("list")
        .into_inner();
    listed.jobs.into_iter().map(|job| job.name).collect()
}

fn assert_status(result: Result<impl std::fmt::Debug, tonic::Status>, code: Code, what: &str) {
    match result {
        Err(status) => assert_eq!(status.code(), code, "{what}: {status:?}"),
        Ok(value) => panic!("{what}: expected {code:?}, got {value:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_jobs_round_trip_with_their_any_kept() {
    let (_cluster, host) = start(|h| h.app_id("jobs-grpc")).await;
    let mut client = dapr(&host);

    // Scheduled and read back as sent: the Any byte for byte, the interval as given.
    let job = grpc_job("report", "0 0 6 * * *", b"\x0a\x05hello");
    schedule(&mut client, job.clone(), false)
        .await
        .expect("schedule");
    assert_eq!(grpc_get(&mut client, "report").await.expect("get"), job);
    // The HTTP API shows the same job, its data as protobuf JSON shows an Any.
    let response = get_job(&host, "report").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.json()["data"],
        json!({"@type": STRING_TYPE, "value": "CgVoZWxsbw=="})
    );

    // The name is taken: ALREADY_EXISTS, unless overwrite.
    let other = grpc_job("report", "0 0 7 * * *", b"\x0a\x01x");
    assert_status(
        schedule(&mut client, other.clone(), false).await,
        Code::AlreadyExists,
        "a second job of the name",
    );
    assert_eq!(grpc_get(&mut client, "report").await.unwrap(), job);
    schedule(&mut client, other.clone(), true)
        .await
        .expect("overwrite");
    assert_eq!(grpc_get(&mut client, "report").await.unwrap(), other);

    // JSON data scheduled over HTTP reaches gRPC clients as a google.protobuf.Value.
    let response = post_job(
        &host,
        "from-http",
        &json!({"dueTime": "1h", "data": "hi", "failurePolicy": {"drop": {}}}),
    )
    .await;
    assert_eq!(response.status, 204, "{}", response.text());
    let from_http = grpc_get(&mut client, "from-http").await.unwrap();
    let data = from_http.data.expect("data");
    assert_eq!(data.type_url, JSON_TYPE);
    assert_eq!(data.value, b"\x1a\x02hi", "a Value's string_value");
    assert_eq!(
        from_http.failure_policy,
        Some(JobFailurePolicy {
            policy: Some(Policy::Drop(JobFailurePolicyDrop {}))
        })
    );
    assert_eq!(from_http.repeats, None);
    assert_eq!(grpc_names(&mut client).await, ["from-http", "report"]);

    // Bad jobs: INVALID_ARGUMENT naming the field, nothing stored.
    let mut bad_cron = grpc_job("bad-cron", "* * *", b"");
    bad_cron.due_time = None;
    let mut negative = grpc_job("negative", "@every 1s", b"");
    negative.failure_policy = Some(JobFailurePolicy {
        policy: Some(Policy::Constant(JobFailurePolicyConstant {
            interval: Some(ProtoDuration {
                seconds: -1,
                nanos: 0,
            }),
            max_retries: None,
        })),
    });
    let mut unscheduled = grpc_job("unscheduled", "", b"");
    unscheduled.schedule = None;
    unscheduled.due_time = None;
    let mut heavy = grpc_job("heavy", "@every 1h", b"");
    heavy.data = Some(Any {
        type_url: STRING_TYPE.to_owned(),
        value: vec![b'x'; 1024 * 1024 + 1],
    });
    let unnamed = grpc_job("", "@every 1h", b"");
    let slashed = grpc_job("a/b", "@every 1h", b"");
    for (job, field) in [
        (bad_cron, "schedule"),
        (negative, "failurePolicy"),
        (unscheduled, "schedule"),
        (heavy, "data"),
        (unnamed, "name"),
        (slashed, "name"),
    ] {
        let name = job.name.clone();
        match schedule(&mut client, job, false).await {
            Err(status) => {
                assert_eq!(status.code(), Code::InvalidArgument, "{name}: {status:?}");
                assert!(
                    status.message().contains(field),
                    "{name}: {:?} lacks {field:?}",
                    status.message()
                );
            }
            Ok(()) => panic!("{name}: accepted"),
        }
    }
    let response = client
        .schedule_job_alpha1(pb::ScheduleJobRequest {
            job: None,
            overwrite: false,
        })
        .await;
    assert_status(response, Code::InvalidArgument, "no job");
    for name in ["bad-cron", "negative", "unscheduled", "heavy"] {
        assert_status(
            grpc_get(&mut client, name).await,
            Code::NotFound,
            &format!("refused {name}"),
        );
    }
    assert_eq!(grpc_names(&mut client).await, ["from-http", "report"]);

    // Delete: OK, also when there is none; then NOT_FOUND.
    for name in ["report", "report", "never-was"] {
        client
            .delete_job_alpha1(pb::DeleteJobRequest {
                name: name.to_owned(),
            })
            .await
            .unwrap_or_else(|e| panic!("delete {name}: {e:?}"));
    }
    assert_status(
        grpc_get(&mut client, "report").await,
        Code::NotFound,
        "deleted",
    );
    assert_eq!(grpc_names(&mut client).await, ["from-http"]);
    assert_eq!(
        listed(&host).await,
        ["from-http"],
        "the same jobs over HTTP"
    );
    host.assert_alive();
}

async fn jobs_cli(host: &HostProcess, args: &[&str]) -> support::RunOutput {
    let mut all = vec!["jobs", "--host", &host.grpc_addr, "--api-token", TOKEN];
    all.extend_from_slice(args);
    run_rookery(&all, CLI_DEADLINE).await
}

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_jobs_and_hosts_refuse_without_token_or_app() {
    let (cluster, host) = start(|h| h.app_id("jobs-cli").arg("--api-token").arg(TOKEN)).await;

    // create, with every flag.
    let out = jobs_cli(
        &host,
        &[
            "create",
            "cleanup",
            "--schedule",
            "@every 2h",
            "--due-time",
            "1h",
            "--repeats",
            "5",
            "--ttl",
            "48h",
            "--data",
            r#"{"dir":"/tmp"}"#,
            "--failure-policy",
            "constant",
            "--retry-interval",
            "2s",
            "--max-retries",
            "1",
        ],
    )
    .await;
    assert_eq!(out.code, Some(0), "create: {out:?}");
    let stored = json!({
        "name": "cleanup", "schedule": "@every 2h", "dueTime": "1h", "repeats": 5,
        "ttl": "48h", "data": {"dir": "/tmp"},
        "failurePolicy": {"constant": {"interval": "2s", "maxRetries": 1}},
    });
    assert_eq!(
        json_lines(&out.stdout),
        vec![stored.clone()],
        "create prints the job"
    );
    let out = jobs_cli(
        &host,
        &[
            "create",
            "ping",
            "--due-time",
            "3h",
            "--data",
            "plain text",
            "--failure-policy",
            "drop",
        ],
    )
    .await;
    assert_eq!(out.code, Some(0), "create ping: {out:?}");

    // get and list print the stored jobs; HTTP reads the same.
    let out = jobs_cli(&host, &["get", "cleanup"]).await;
    assert_eq!(out.code, Some(0), "get: {out:?}");
    assert_eq!(json_lines(&out.stdout), vec![stored]);
    let response = call_with(
        &host,
        "GET",
        "/v1.0-alpha1/jobs/ping",
        &[("dapr-api-token", TOKEN)],
        b"",
    )
    .await;
    assert_eq!(
        response.json(),
        json!({"name": "ping", "dueTime": "3h", "data": "plain text",
               "failurePolicy": {"drop": {}}})
    );
    let out = jobs_cli(&host, &["list"]).await;
    assert_eq!(out.code, Some(0), "list: {out:?}");
    let names: Vec<Value> = json_lines(&out.stdout)
        .into_iter()
        .map(|job| job["name"].clone())
        .collect();
    assert_eq!(names, [json!("cleanup"), json!("ping")]);

    // Refusals exit 1 with the host's code and message.
    let out = jobs_cli(&host, &["create", "cleanup", "--due-time", "1h"]).await;
    assert_eq!(out.code, Some(1), "exists: {out:?}");
    assert!(out.stderr.contains("AlreadyExists"), "{out:?}");
    let out = jobs_cli(
        &host,
        &["create", "cleanup", "--due-time", "4h", "--overwrite"],
    )
    .await;
    assert_eq!(out.code, Some(0), "overwrite: {out:?}");
    let out = jobs_cli(&host, &["create", "broken", "--schedule", "* * *"]).await;
    assert_eq!(out.code, Some(1), "bad cron: {out:?}");
    assert!(
        out.stderr.contains("InvalidArgument") && out.stderr.contains("schedule"),
        "{out:?}"
    );
    let out = jobs_cli(&host, &["get", "broken"]).await;
    assert_eq!(out.code, Some(1), "get of a refused job: {out:?}");
    assert!(out.stderr.contains("NotFound"), "{out:?}");
    let out = jobs_cli(
        &host,
        &[
            "create",
            "x",
            "--failure-policy",
            "drop",
            "--max-retries",
            "1",
        ],
    )
    .await;
    assert_eq!(out.code, Some(2), "bad usage: {out:?}");

    // delete, twice: both succeed; then the job is gone.
    for _ in 0..2 {
        let out = jobs_cli(&host, &["delete", "cleanup"]).await;
        assert_eq!(out.code, Some(0), "delete: {out:?}");
        assert_eq!(json_lines(&out.stdout), [json!({"deleted": "cleanup"})]);
    }
    let out = jobs_cli(&host, &["get", "cleanup"]).await;
    assert_eq!(out.code, Some(1), "deleted: {out:?}");
    let out = jobs_cli(&host, &["list"]).await;
    assert_eq!(json_lines(&out.stdout).len(), 1, "ping is left: {out:?}");

    // Without the token: 401 over HTTP, UNAUTHENTICATED over gRPC and from the CLI.
    let response = call(&host, "GET", "/v1.0-alpha1/jobs/ping", b"").await;
    assert_eq!(response.status, 401, "{}", response.text());
    let response = call(
        &host,
        "POST",
        "/v1.0-alpha1/jobs/sneaky",
        br#"{"dueTime":"1h"}"#,
    )
    .await;
    assert_eq!(response.status, 401, "{}", response.text());
    assert_status(
        grpc_get(&mut dapr(&host), "ping").await,
        Code::Unauthenticated,
        "gRPC without the token",
    );
    let out = run_rookery(
        &["jobs", "--host", &host.grpc_addr, "get", "ping"],
        CLI_DEADLINE,
    )
    .await;
    assert_eq!(out.code, Some(1), "CLI without the token: {out:?}");
    assert!(out.stderr.contains("Unauthenticated"), "{out:?}");

    // A host without an app id has no jobs: 412 / FAILED_PRECONDITION, saying why.
    let appless = HostProcess::builder(cluster.addr_list()).app_id("").start();
    appless.wait_ready().await;
    let response = post_job(&appless, "orphan", &json!({"dueTime": "1h"})).await;
    assert_dapr_error(
        &response,
        412,
        "DAPR_SCHEDULER_SCHEDULE_JOB",
        "--app-id",
        "no app id",
    );
    let response = call(&appless, "GET", "/v1.0-alpha1/jobs", b"").await;
    assert_dapr_error(
        &response,
        412,
        "DAPR_SCHEDULER_LIST_JOBS",
        "--app-id",
        "list",
    );
    assert_status(
        grpc_names_result(&mut dapr(&appless)).await,
        Code::FailedPrecondition,
        "gRPC list without an app id",
    );
    host.assert_alive();
    appless.assert_alive();
}

async fn grpc_names_result(client: &mut DaprClient<Channel>) -> Result<Vec<String>, tonic::Status> {
    let listed = client
        .list_jobs_alpha1(pb::ListJobsRequestAlpha1 {})
        .await?
        .into_inner();
    Ok(listed.jobs.into_iter().map(|job| job.name).collect())
}

/// The official Dapr Python SDK's Jobs client (`tests/python/dapr_sdk_jobs.py`) against a
/// host: one JSON line per step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dapr_python_sdk_schedules_gets_and_deletes_jobs() {
    if support::dapr_app::skip_without_python("the_dapr_python_sdk_schedules_gets_and_deletes_jobs")
    {
        return;
    }
    let (_cluster, host) = start(|b| b.app_id("sdk-app")).await;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/dapr_sdk_jobs.py");
    let run = tokio::process::Command::new("python3")
        .arg(script)
        .arg("--address")
        .arg(&host.grpc_addr)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // The SDK waits for the sidecar's /v1.0/healthz/outbound on its HTTP port first.
        .env("DAPR_RUNTIME_HOST", "127.0.0.1")
        .env("DAPR_HTTP_PORT", host.http_port.to_string())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(CLI_DEADLINE, run)
        .await
        .expect("the SDK script finishes")
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let steps: std::collections::BTreeMap<String, Value> = stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
        .map(|step| (step["step"].as_str().unwrap_or_default().to_owned(), step))
        .collect();
    assert_eq!(steps["schedule"]["ok"], true, "{stdout}");
    assert_eq!(
        steps["schedule_again"]["code"], "ALREADY_EXISTS",
        "{stdout}"
    );
    assert_eq!(steps["overwrite"]["ok"], true, "{stdout}");
    let got = &steps["get"];
    assert_eq!(got["ok"], true, "{stdout}");
    assert_eq!(got["name"], "sdk-job");
    assert_eq!(got["schedule"], "@every 1h");
    assert_eq!(got["repeats"], 5);
    assert_eq!(got["due_time"], "10m");
    assert_eq!(got["data"], "vacuum the lobby");
    assert_eq!(steps["delete"]["ok"], true, "{stdout}");
    assert_eq!(steps["get_deleted"]["code"], "NOT_FOUND", "{stdout}");
}

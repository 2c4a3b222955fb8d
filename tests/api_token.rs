//! `rookery host --api-token`: every client API on the host requires the token — Rookery's
//! `Actors`, `Reminders` and `AppChannel` gRPC services as well as Dapr's gRPC and HTTP APIs —
//! and answers UNAUTHENTICATED (gRPC) or 401 (HTTP) without it or with a wrong one; health
//! endpoints need none. The CLI sends it with `--api-token` or `DAPR_API_TOKEN`, the Rust
//! example app (`examples/counter.rs`) on its AppChannel stream, and the host never logs it.
//!
//! Real processes: one `rookery placement`, one `rookery host` on loopback with OS-chosen
//! ports, and the `rookery` CLI; the example app runs in this test, over real gRPC.

mod support;

use std::time::Duration;

use rookery_proto::dapr::proto::runtime::v1::dapr_client::DaprClient;
use rookery_proto::dapr::proto::runtime::v1::GetMetadataRequest;
use rookery_proto::v1::actors_client::ActorsClient;
use rookery_proto::v1::app_channel_client::AppChannelClient;
use rookery_proto::v1::reminders_client::RemindersClient;
use rookery_proto::v1::{
    app_to_host, ActorTypeOptions, AppToHost, CreateActorReminderRequest, InvokeRequest,
    RegisterTypes, ReminderRef,
};
use support::host_process::{http_get, start_placement, wait_for_routing, HostProcess};
use support::http::request;
use support::wait::{wait_until, DEADLINE};
use support::{rookery_bin, RunOutput};
use tonic::{Code, Status};

// `main` and its flags are unused here: the test calls `run_with_token` directly.
#[allow(dead_code)]
#[path = "../examples/counter.rs"]
mod counter_example;

/// The host's API token.
const TOKEN: &str = "tok-9f3c1e7a-never-logged";

/// Bound on one gRPC call of the test.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Bound on one CLI run.
const CLI_DEADLINE: Duration = Duration::from_secs(60);

/// The three ways a request can carry the token.
const WITHOUT: Option<&str> = None;
const WRONG: Option<&str> = Some("tok-guess");
const RIGHT: Option<&str> = Some(TOKEN);

/// `message` as a request bounded by [`CALL_TIMEOUT`], with `token` as `dapr-api-token`.
fn with_token<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("dapr-api-token", token.parse().expect("ASCII token"));
    }
    request
}

/// Asserts that `result` is UNAUTHENTICATED, naming the metadata key but not any token.
fn assert_refused<T: std::fmt::Debug>(what: &str, result: Result<T, Status>) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    let message = status.message();
    assert!(message.contains("dapr-api-token"), "{what}: {message:?}");
    for secret in [TOKEN, WRONG.unwrap()] {
        assert!(
            !message.contains(secret),
            "{what} echoes a token: {message:?}"
        );
    }
}

async fn invoke(host: &HostProcess, token: Option<&str>) -> Result<Vec<u8>, Status> {
    let call = InvokeRequest {
        actor_type: "Counter".into(),
        actor_id: "t1".into(),
        method: "increment".into(),
        data: br#"{"by":2}"#.to_vec(),
        metadata: Default::default(),
    };
    ActorsClient::new(host.channel())
        .invoke(with_token(call, token))
        .await
        .map(|r| r.into_inner().data)
}

fn reminder() -> ReminderRef {
    ReminderRef {
        actor_type: "Counter".into(),
        actor_id: "t1".into(),
        name: "later".into(),
    }
}

async fn create_reminder(host: &HostProcess, token: Option<&str>) -> Result<(), Status> {
    let create = CreateActorReminderRequest {
        reminder: Some(reminder()),
        due_time: "PT1H".into(),
        period: String::new(),
        ttl: String::new(),
        data: Vec::new(),
        fail_if_exists: false,
    };
    RemindersClient::new(host.channel())
        .create_reminder(with_token(create, token))
        .await
        .map(|_| ())
}

async fn get_reminder(host: &HostProcess, token: Option<&str>) -> Result<(), Status> {
    RemindersClient::new(host.channel())
        .get_reminder(with_token(reminder(), token))
        .await
        .map(|_| ())
}

/// Opens an AppChannel stream registering `Refused`; only the opening is looked at.
async fn open_app_channel(host: &HostProcess, token: Option<&str>) -> Result<(), Status> {
    let register = AppToHost {
        message: Some(app_to_host::Message::Register(RegisterTypes {
            app_id: "intruder".into(),
            receive_triggers: false,
            types: vec![ActorTypeOptions {
                actor_type: "Refused".into(),
                ..Default::default()
            }],
        })),
    };
    let outbox = tokio_stream::iter([register]);
    AppChannelClient::new(host.channel())
        .connect(with_token(outbox, token))
        .await
        .map(|_| ())
}

async fn dapr_metadata(host: &HostProcess, token: Option<&str>) -> Result<String, Status> {
    DaprClient::new(host.channel())
        .get_metadata(with_token(GetMetadataRequest {}, token))
        .await
        .map(|r| r.into_inner().id)
}

/// `rookery <args>` with `DAPR_API_TOKEN` set to `env_token` (unset when `None`, whatever
/// this test's own environment holds).
async fn cli(args: &[&str], env_token: Option<&str>) -> RunOutput {
    let mut command = tokio::process::Command::new(rookery_bin());
    command
        .args(args)
        .env_remove("DAPR_API_TOKEN")
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(token) = env_token {
        command.env("DAPR_API_TOKEN", token);
    }
    let output = tokio::time::timeout(CLI_DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("`rookery {}` still running", args.join(" ")))
        .expect("run rookery");
    RunOutput {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Asserts that a CLI run was refused for its token, without printing any token.
fn assert_cli_refused(what: &str, out: &RunOutput) {
    assert_eq!(out.code, Some(1), "{what}: {out:?}");
    assert!(out.stderr.contains("Unauthenticated"), "{what}: {out:?}");
    assert!(!out.stderr.contains(TOKEN), "{what}: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_api_requires_the_token_and_health_does_not() {
    let cluster = start_placement(1).await;
    let host = HostProcess::builder(cluster.addr_list())
        .app_id("tokened")
        .arg("--api-token")
        .arg(TOKEN)
        .start();
    host.wait_ready().await;

    // AppChannel: an app without the token, or with a wrong one, cannot even open its stream.
    assert_refused(
        "AppChannel.Connect without the token",
        open_app_channel(&host, WITHOUT).await,
    );
    assert_refused(
        "AppChannel.Connect with a wrong token",
        open_app_channel(&host, WRONG).await,
    );
    // The example app with the token registers and serves Counter.
    let grpc = host.grpc_addr.clone();
    let app =
        tokio::spawn(async move { counter_example::run_with_token(&grpc, "tokened", RIGHT).await });
    wait_for_routing(&cluster, &[&host], &["Counter"]).await;

    // Actors.
    assert_refused(
        "Actors.Invoke without the token",
        invoke(&host, WITHOUT).await,
    );
    assert_refused(
        "Actors.Invoke with a wrong token",
        invoke(&host, WRONG).await,
    );
    // The type is routable once placement says so; the app's registration may still be on
    // its way to this host, so the first successful call is waited for.
    let first = wait_until("Actors.Invoke with the token", DEADLINE, || async {
        invoke(&host, RIGHT).await.map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(first, b"2");
    assert_eq!(invoke(&host, RIGHT).await.expect("invoke"), b"4");

    // Reminders.
    assert_refused(
        "Reminders.CreateReminder without the token",
        create_reminder(&host, WITHOUT).await,
    );
    assert_refused(
        "Reminders.CreateReminder with a wrong token",
        create_reminder(&host, WRONG).await,
    );
    create_reminder(&host, RIGHT)
        .await
        .expect("create with the token");
    assert_refused(
        "Reminders.GetReminder without the token",
        get_reminder(&host, WITHOUT).await,
    );
    assert_refused(
        "Reminders.GetReminder with a wrong token",
        get_reminder(&host, WRONG).await,
    );
    get_reminder(&host, RIGHT)
        .await
        .expect("get with the token");

    // Dapr's gRPC API answers as daprd does (its own messages).
    for token in [WITHOUT, WRONG] {
        let status = dapr_metadata(&host, token).await.expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    assert_eq!(
        dapr_metadata(&host, RIGHT).await.expect("metadata"),
        "tokened"
    );

    // Dapr's HTTP API: 401 without the token or with a wrong one; health needs none.
    let (code, body) = http_get(host.http_port, "/v1.0/metadata")
        .await
        .expect("answer");
    assert_eq!(code, 401, "{body}");
    let wrong = request(
        host.http_port,
        "GET",
        "/v1.0/metadata",
        &[("dapr-api-token", WRONG.unwrap())],
        b"",
    )
    .await
    .expect("answer");
    assert_eq!(wrong.status, 401, "{}", wrong.text());
    let with = request(
        host.http_port,
        "GET",
        "/v1.0/metadata",
        &[("dapr-api-token", TOKEN)],
        b"",
    )
    .await
    .expect("answer");
    assert_eq!(with.status, 200, "{}", with.text());
    for path in ["/v1.0/healthz", "/v1.0/healthz/outbound"] {
        let (code, body) = http_get(host.http_port, path).await.expect("answer");
        assert_eq!(code, 204, "{path} is exempt: {body}");
    }
    let (code, body) = http_get(host.http_port, "/healthz").await.expect("answer");
    assert_eq!(code, 200, "/healthz is exempt: {body}");

    // The CLI: refused without the token or with a wrong one; served with --api-token or
    // DAPR_API_TOKEN.
    let grpc = host.grpc_addr.as_str();
    let invoke_get = ["invoke", "Counter/t1", "get", "--host", grpc];
    assert_cli_refused("invoke without a token", &cli(&invoke_get, None).await);
    assert_cli_refused(
        "invoke with a wrong token",
        &cli(
            &[&invoke_get[..], &["--api-token", "tok-guess"]].concat(),
            None,
        )
        .await,
    );
    let out = cli(&[&invoke_get[..], &["--api-token", TOKEN]].concat(), None).await;
    assert_eq!((out.code, out.stdout.trim()), (Some(0), "4"), "{out:?}");
    let out = cli(&invoke_get, Some(TOKEN)).await;
    assert_eq!(
        (out.code, out.stdout.trim()),
        (Some(0), "4"),
        "DAPR_API_TOKEN: {out:?}"
    );

    let reminder_get = ["reminders", "get", "Counter/t1", "later", "--host", grpc];
    assert_cli_refused(
        "reminders get without a token",
        &cli(&reminder_get, None).await,
    );
    let out = cli(&reminder_get, Some(TOKEN)).await;
    assert_eq!(
        out.code,
        Some(0),
        "reminders get with DAPR_API_TOKEN: {out:?}"
    );
    assert!(out.stdout.contains(r#""name":"later""#), "{out:?}");
    let create = [
        "reminders",
        "create",
        "Counter/t2",
        "soon",
        "--due",
        "PT1H",
        "--host",
        grpc,
    ];
    assert_cli_refused(
        "reminders create without a token",
        &cli(&create, None).await,
    );
    let out = cli(&[&create[..], &["--api-token", TOKEN]].concat(), None).await;
    assert_eq!(out.code, Some(0), "reminders create --api-token: {out:?}");

    let state_get = ["state", "get", "Counter/t1", "count", "--host", grpc];
    assert_cli_refused("state get without a token", &cli(&state_get, None).await);
    let out = cli(&[&state_get[..], &["--api-token", TOKEN]].concat(), None).await;
    assert_eq!((out.code, out.stdout.trim()), (Some(0), "4"), "{out:?}");

    // The token never reaches the host's log (but for the harness's line naming the command
    // it ran).
    wait_until("the host to log its start", DEADLINE, || async {
        if host.log().contains("host started") {
            Ok(())
        } else {
            Err("not yet".to_owned())
        }
    })
    .await;
    let logged = host.log();
    let leaked = logged
        .lines()
        .filter(|l| !l.starts_with("====="))
        .find(|l| l.contains(TOKEN));
    assert_eq!(leaked, None, "the token is logged");
    assert!(!app.is_finished(), "the example app serves forever");
    app.abort();
    host.assert_alive();
}

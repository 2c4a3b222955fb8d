//! The Dapr Python SDK example of `examples/dapr-python/`, run by the tests against real
//! hosts: [`DaprApp`], its FastAPI service under uvicorn (the host's HTTP app channel calls
//! it), and [`SdkClient`], its `client.py` run once per step (it calls the host's Dapr HTTP
//! API through the SDK's `ActorProxy`).
//!
//! Both need `python3` with the packages of `examples/dapr-python/requirements.txt`;
//! [`skip_without_python`] says whether a test must return early because they are missing
//! (it panics instead when `ROOKERY_TEST_REQUIRE_PYTHON` is set, as in CI). The app process is
//! a [`LoggedChild`] (killed on drop, also when a test panics) whose log is printed when the
//! test fails; [`DumpOnPanic`] does the same for any other child of a test (`rookery up`).

use std::ops::Deref;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::process::LoggedChild;

/// How long one `client.py` step may run before it counts as hung (it is then killed and
/// reported as failed): the SDK's own HTTP timeout plus Python's start-up, on a loaded box.
pub const CLIENT_STEP_DEADLINE: Duration = Duration::from_secs(120);

/// The SDK's wait for the sidecar (`DAPR_HEALTH_TIMEOUT`, seconds) and its HTTP timeout
/// (`DAPR_HTTP_TIMEOUT_SECONDS`), given to the app and the client.
const SDK_HEALTH_TIMEOUT_S: &str = "120";
const SDK_HTTP_TIMEOUT_S: &str = "60";

/// Python modules the example imports.
const MODULES: &str = "dapr, dapr.actor, dapr.ext.fastapi, fastapi, uvicorn";

/// `examples/dapr-python/` in the source tree.
pub fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/dapr-python")
}

/// True when `test` must return at once because the Python packages are missing (it prints
/// why); panics instead when `ROOKERY_TEST_REQUIRE_PYTHON` is set, so that a broken install
/// in CI fails rather than skips.
pub fn skip_without_python(test: &str) -> bool {
    super::python::skip_without(MODULES, "examples/dapr-python/requirements.txt", test)
}

/// The environment the SDK reads (Python SDK 1.19.0 reads it at each access): the sidecar at
/// `127.0.0.1:<dapr_http_port>`.
fn sdk_env(dapr_http_port: u16) -> Vec<(String, String)> {
    [
        ("DAPR_RUNTIME_HOST", "127.0.0.1".to_owned()),
        ("DAPR_HTTP_PORT", dapr_http_port.to_string()),
        ("DAPR_HEALTH_TIMEOUT", SDK_HEALTH_TIMEOUT_S.to_owned()),
        ("DAPR_HTTP_TIMEOUT_SECONDS", SDK_HTTP_TIMEOUT_S.to_owned()),
        ("PYTHONUNBUFFERED", "1".to_owned()),
        // No __pycache__ in the source tree.
        ("PYTHONDONTWRITEBYTECODE", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// SDK settings the test's own environment must not pass on: an endpoint would override
/// `DAPR_HTTP_PORT`, a token would be sent to a host that expects none.
const SDK_ENV_UNSET: [&str; 3] = ["DAPR_HTTP_ENDPOINT", "DAPR_GRPC_ENDPOINT", "DAPR_API_TOKEN"];

/// A child process that prints its log tail when dropped during a panic (killed first, so
/// the log is complete).
pub struct DumpOnPanic(pub LoggedChild);

impl Deref for DumpOnPanic {
    type Target = LoggedChild;
    fn deref(&self) -> &LoggedChild {
        &self.0
    }
}

impl Drop for DumpOnPanic {
    fn drop(&mut self) {
        self.0.kill9();
        if std::thread::panicking() {
            eprintln!("{}", self.0.dump_log());
        }
    }
}

/// `counter_service.py` under uvicorn on `127.0.0.1:<port>`, talking to the sidecar whose
/// Dapr HTTP API is on `dapr_http_port`.
pub struct DaprApp {
    pub port: u16,
    process: DumpOnPanic,
}

impl DaprApp {
    /// Spawns it; it waits by itself (the SDK's start-up wait on `/v1.0/healthz/outbound`)
    /// until the sidecar answers, and only then opens its port.
    pub fn spawn(name: &str, port: u16, dapr_http_port: u16, log_path: PathBuf) -> DaprApp {
        // Through `env -u`, so that the SDK settings of SDK_ENV_UNSET are not inherited.
        let mut args: Vec<String> = SDK_ENV_UNSET
            .iter()
            .flat_map(|key| ["-u".to_owned(), (*key).to_owned()])
            .collect();
        args.extend(
            [
                "python3",
                "-m",
                "uvicorn",
                "counter_service:app",
                "--app-dir",
                &example_dir().display().to_string(),
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ]
            .map(String::from),
        );
        let process = LoggedChild::spawn(name, "env", args, sdk_env(dapr_http_port), log_path);
        DaprApp {
            port,
            process: DumpOnPanic(process),
        }
    }

    pub fn process(&self) -> &LoggedChild {
        &self.process
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    pub fn dump_log(&self) -> String {
        self.process.dump_log()
    }

    pub fn assert_alive(&self) {
        self.process.assert_alive();
    }

    pub fn kill9(&self) {
        self.process.kill9();
    }

    /// Lines of its log (trimmed) that start with `prefix`.
    pub fn lines_starting(&self, prefix: &str) -> Vec<String> {
        self.log()
            .lines()
            .map(str::trim)
            .filter(|line| line.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }

    /// How often the service logged the activation of `Counter/<id>`.
    pub fn activations_of(&self, id: &str) -> usize {
        self.lines_starting(&format!("ACTIVATED Counter/{id} "))
            .len()
    }

    /// How often the service logged the deactivation of `Counter/<id>` (`_on_deactivate`).
    pub fn deactivations_of(&self, id: &str) -> usize {
        let want = format!("DEACTIVATED Counter/{id}");
        self.log()
            .lines()
            .filter(|line| line.trim() == want)
            .count()
    }

    /// How often uvicorn's access log shows a `DELETE /actors/Counter/<id>` answered 200: the
    /// sidecar deactivating the actor.
    pub fn deactivation_requests_of(&self, id: &str) -> usize {
        let want = format!("\"DELETE /actors/Counter/{id} HTTP/1.1\" 200");
        self.log()
            .lines()
            .filter(|line| line.contains(&want))
            .count()
    }
}

/// Output of one `client.py` step.
#[derive(Clone, Debug)]
pub struct ClientRun {
    /// `None` when it was killed (a signal, or it hung past [`CLIENT_STEP_DEADLINE`]).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ClientRun {
    /// Its one JSON line (the last line of stdout), if it printed one.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(self.stdout.lines().last()?.trim()).ok()
    }
}

/// A step that did not succeed: the sidecar's error (`errorCode`, `message`, `status`) as the
/// SDK reported it, or another failure (`exception`), with the whole output.
#[derive(Clone, Debug)]
pub struct ClientError {
    /// The step, for messages: `Counter/c1.Increment(5)`.
    pub step: String,
    /// The `error` object it printed (`Null` if it printed none).
    pub error: Value,
    pub run: ClientRun,
}

impl ClientError {
    pub fn error_code(&self) -> Option<&str> {
        self.error.get("errorCode")?.as_str()
    }

    pub fn message(&self) -> Option<&str> {
        self.error.get("message")?.as_str()
    }

    /// The HTTP status of the sidecar's answer.
    pub fn status(&self) -> Option<u64> {
        self.error.get("status")?.as_u64()
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failed (exit {:?}): {}; stderr: {}",
            self.step,
            self.run.code,
            self.error,
            self.run.stderr.trim()
        )
    }
}

/// `client.py`, pointed at the Dapr HTTP API on `127.0.0.1:<http_port>`.
#[derive(Clone, Copy, Debug)]
pub struct SdkClient {
    pub http_port: u16,
}

impl SdkClient {
    pub fn new(http_port: u16) -> SdkClient {
        SdkClient { http_port }
    }

    /// Runs `client.py <args>` to completion (killed after [`CLIENT_STEP_DEADLINE`]).
    pub async fn run(&self, args: &[String]) -> ClientRun {
        let mut command = tokio::process::Command::new("python3");
        command.envs(sdk_env(self.http_port));
        for key in SDK_ENV_UNSET {
            command.env_remove(key);
        }
        command
            .arg(example_dir().join("client.py"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command.spawn().expect("spawn python3 client.py");
        match tokio::time::timeout(CLIENT_STEP_DEADLINE, child.wait_with_output()).await {
            Ok(output) => {
                let output = output.expect("wait for client.py");
                ClientRun {
                    code: output.status.code(),
                    stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                }
            }
            Err(_) => ClientRun {
                code: None,
                stdout: String::new(),
                stderr: format!(
                    "client.py {args:?} still running after {CLIENT_STEP_DEADLINE:?}: killed"
                ),
            },
        }
    }

    /// `client.py invoke <actor_type> <id> <method> [<arg as JSON>]`: the method's result.
    pub async fn invoke(
        &self,
        actor_type: &str,
        id: &str,
        method: &str,
        arg: Option<Value>,
    ) -> Result<Value, ClientError> {
        let mut args = vec![
            "invoke".to_owned(),
            actor_type.to_owned(),
            id.to_owned(),
            method.to_owned(),
        ];
        let step = match &arg {
            Some(arg) => {
                args.push(arg.to_string());
                format!("{actor_type}/{id}.{method}({arg})")
            }
            None => format!("{actor_type}/{id}.{method}()"),
        };
        let run = self.run(&args).await;
        let json = run.json();
        match (run.code, json) {
            (Some(0), Some(json)) if json.get("result").is_some() => Ok(json["result"].clone()),
            (_, json) => Err(ClientError {
                step,
                error: json
                    .and_then(|j| j.get("error").cloned())
                    .unwrap_or(Value::Null),
                run,
            }),
        }
    }
}

//! Host nodes as real `rookery host` child processes, and the gRPC calls tests make on them.
//!
//! A [`HostProcess`] owns a [`TestDir`] (data dir, `--config` file, log), runs on OS-chosen
//! ports as a [`LoggedChild`], and is killed with SIGKILL when dropped, also when a test panics;
//! on a panic its log tail is printed and the dir is kept.
//!
//! Calls go through the public gRPC API exactly as a client would: `Actors.Invoke` for actor
//! calls, `HostInternal.ListActivations` to see where actors live, and `rookery invoke` for the
//! CLI. [`expected_rings`] turns `rookery status` into the hash rings every host routes by, so a
//! test can name the host that must own an actor without asking any host.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::OnceLock;
use std::time::Duration;

use rookery_core::net::TcpTransport;
use rookery_core::ring::HashRing;
use rookery_core::table::{HostInfo, PlacementTable, TableVersion};
use rookery_core::tls::{TlsFiles, TlsTransport};
use rookery_proto::internal::v1::host_internal_client::HostInternalClient;
use rookery_proto::internal::v1::{ListActivationsRequest, ListActivationsResponse};
use rookery_proto::v1::actors_client::ActorsClient;
use rookery_proto::v1::InvokeRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

use super::cluster::Cluster;
use super::process::LoggedChild;
use super::status::Status as ClusterStatus;
use super::temp::TestDir;
use super::wait::{wait_until, DEADLINE};
use super::{free_port, rookery_bin, run_rookery, RunOutput};

/// Virtual nodes per host the host tests give placement explicitly (`--vnodes-per-host`), so
/// the rings a test computes do not depend on placement's default.
pub const TEST_VNODES_PER_HOST: u32 = 256;

/// Client-side bound on one actor call made by a test: longer than any call timeout a test
/// configures, so a host that never answers fails the test instead of hanging it.
pub const CALL_DEADLINE: Duration = Duration::from_secs(45);

/// Settings of a `rookery host` to start.
#[derive(Clone, Debug)]
pub struct HostProcessBuilder {
    placement: String,
    app_id: String,
    host_id: Option<String>,
    config_yaml: Option<String>,
    max_request_size_mb: Option<u64>,
    grpc_port: Option<u16>,
    internal_port: Option<u16>,
    extra_args: Vec<String>,
    internal_tls: Option<TlsFiles>,
}

impl HostProcessBuilder {
    /// Runs the host with mutual TLS between nodes (`--tls-*` of `node`), and gives the
    /// test's own calls to its internal port the certificate `client`.
    pub fn tls(mut self, node: &TlsFiles, client: TlsFiles) -> Self {
        for (flag, path) in [
            ("--tls-cert", &node.cert),
            ("--tls-key", &node.key),
            ("--tls-ca", &node.ca),
        ] {
            self.extra_args
                .extend([flag.to_owned(), path.display().to_string()]);
        }
        self.internal_tls = Some(client);
        self
    }

    pub fn app_id(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = app_id.into();
        self
    }

    /// Sets `--host-id`; by default the host's id is its advertised address.
    pub fn host_id(mut self, host_id: impl Into<String>) -> Self {
        self.host_id = Some(host_id.into());
        self
    }

    /// Writes this YAML to a file and passes it as `--config`.
    pub fn config_yaml(mut self, yaml: impl Into<String>) -> Self {
        self.config_yaml = Some(yaml.into());
        self
    }

    pub fn max_request_size_mb(mut self, mb: u64) -> Self {
        self.max_request_size_mb = Some(mb);
        self
    }

    /// Listens for gRPC on this port instead of one the builder picks (to put a proxy in
    /// front of it before the host starts).
    pub fn grpc_port(mut self, port: u16) -> Self {
        self.grpc_port = Some(port);
        self
    }

    /// Listens for host-to-host calls on this port instead of one the builder picks (to put
    /// a proxy in front of it).
    pub fn internal_port(mut self, port: u16) -> Self {
        self.internal_port = Some(port);
        self
    }

    /// An extra argument, after the ones the builder generates.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// Picks ports and spawns the process. Does not wait: follow with
    /// [`HostProcess::wait_ready`].
    pub fn start(self) -> HostProcess {
        let dir = TestDir::new("rookery-host-test-");
        let grpc_port = self.grpc_port.unwrap_or_else(free_port);
        let http_port = free_port();
        let metrics_port = free_port();
        let grpc_addr = format!("127.0.0.1:{grpc_port}");
        let internal_addr = format!("127.0.0.1:{}", self.internal_port.unwrap_or_else(free_port));
        let id = self.host_id.clone().unwrap_or_else(|| grpc_addr.clone());
        let mut args = vec![
            "host".to_owned(),
            "--placement".to_owned(),
            self.placement.clone(),
            "--app-id".to_owned(),
            self.app_id.clone(),
            "--grpc-port".to_owned(),
            grpc_port.to_string(),
            "--http-port".to_owned(),
            http_port.to_string(),
            "--metrics-port".to_owned(),
            metrics_port.to_string(),
            "--internal-port".to_owned(),
            internal_addr.rsplit_once(':').expect("port").1.to_owned(),
            // Loopback only: the ports were checked free on 127.0.0.1, and tests expose nothing.
            "--bind-address".to_owned(),
            "127.0.0.1".to_owned(),
            "--data-dir".to_owned(),
            dir.path().join("data").display().to_string(),
        ];
        if let Some(host_id) = &self.host_id {
            args.extend(["--host-id".to_owned(), host_id.clone()]);
        }
        if let Some(yaml) = &self.config_yaml {
            let path = dir.path().join("host.yaml");
            std::fs::write(&path, yaml).expect("write host config");
            args.extend(["--config".to_owned(), path.display().to_string()]);
        }
        if let Some(mb) = self.max_request_size_mb {
            args.extend(["--max-request-size".to_owned(), mb.to_string()]);
        }
        args.extend(self.extra_args.iter().cloned());
        let rust_log = std::env::var("RUST_LOG")
            .unwrap_or_else(|_| "info,rookery=debug,rookery_runtime=debug".to_owned());
        let process = LoggedChild::spawn(
            format!("host {id}"),
            rookery_bin(),
            args,
            vec![("RUST_LOG".to_owned(), rust_log)],
            dir.path().join("host.log"),
        );
        HostProcess {
            id,
            grpc_addr,
            internal_addr,
            internal_tls: self.internal_tls,
            http_port,
            metrics_port,
            process,
            channel: OnceLock::new(),
            dir,
        }
    }
}

/// One `rookery host` child process.
pub struct HostProcess {
    /// The host id it registers with (its advertised address unless `--host-id` was given).
    pub id: String,
    /// `127.0.0.1:port` of its gRPC API: Actors, AppChannel, Dapr's actor RPCs.
    pub grpc_addr: String,
    /// `127.0.0.1:port` of its internal gRPC (`HostInternal`, host-to-host).
    pub internal_addr: String,
    /// The client certificate the test's calls to the internal port present, under mTLS.
    internal_tls: Option<TlsFiles>,
    pub http_port: u16,
    /// Where its Prometheus `/metrics` listens.
    pub metrics_port: u16,
    // Field order matters: the process is killed (dropped) before the dir is dropped, so a
    // kept dir holds the complete log.
    process: LoggedChild,
    channel: OnceLock<Channel>,
    dir: TestDir,
}

impl HostProcess {
    /// A host registering with the placement nodes at `placement` (comma-separated).
    pub fn builder(placement: impl Into<String>) -> HostProcessBuilder {
        HostProcessBuilder {
            placement: placement.into(),
            app_id: "test-app".to_owned(),
            host_id: None,
            config_yaml: None,
            max_request_size_mb: None,
            grpc_port: None,
            internal_port: None,
            extra_args: Vec::new(),
            internal_tls: None,
        }
    }

    /// A host of `cluster` with default settings, started and ready.
    pub async fn start_ready(cluster: &Cluster) -> HostProcess {
        let host = HostProcess::builder(cluster.addr_list()).start();
        host.wait_ready().await;
        host
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
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

    pub async fn stop(&self) -> ExitStatus {
        self.process.stop().await
    }

    /// Sends a signal by name (`STOP` pauses the process, `CONT` resumes it).
    pub fn signal(&self, signal: &str) {
        self.process.signal(signal);
    }

    /// Starts it again on the same ports, data dir and flags. It must not be running.
    pub fn restart(&self) {
        self.process.start();
    }

    /// `GET /healthz` on its HTTP port: the status code and body.
    /// The host's Prometheus text (`/metrics` on its metrics port).
    pub async fn metrics_text(&self) -> Result<String, String> {
        match http_get(self.metrics_port, "/metrics").await? {
            (200, text) => Ok(text),
            (code, text) => Err(format!("/metrics: {code} {text}")),
        }
    }

    /// The value of one sample of the host's metrics, named as rendered (name and labels:
    /// `rookery_app_healthy`, `…_total{target="actor:Worker"}`).
    pub async fn metric(&self, sample: &str) -> Result<f64, String> {
        let text = self.metrics_text().await?;
        sample_value(&text, sample).ok_or_else(|| format!("no {sample} in /metrics"))
    }

    pub async fn healthz(&self) -> Result<(u16, String), String> {
        http_get(self.http_port, "/healthz").await
    }

    /// Waits until `/healthz` answers 200 (the host holds a placement table).
    pub async fn wait_ready(&self) {
        wait_until(
            format!("{} to answer /healthz with 200", self.process.name()),
            DEADLINE,
            || async {
                self.assert_alive();
                match self.healthz().await? {
                    (200, _) => Ok(()),
                    (code, body) => Err(format!("/healthz: {code} {body:?}")),
                }
            },
        )
        .await;
    }

    /// A channel to its gRPC port, shared by every client the test makes (connected lazily,
    /// reconnected by tonic after a restart).
    pub fn channel(&self) -> Channel {
        self.channel
            .get_or_init(|| {
                Endpoint::from_shared(format!("http://{}", self.grpc_addr))
                    .expect("endpoint")
                    .connect_timeout(Duration::from_secs(5))
                    .connect_lazy()
            })
            .clone()
    }

    pub fn actors(&self) -> ActorsClient<Channel> {
        ActorsClient::new(self.channel())
    }

    /// `Actors.Invoke` of `actor_type/actor_id.method(data)`, bounded by [`CALL_DEADLINE`].
    pub async fn invoke(
        &self,
        actor_type: &str,
        actor_id: &str,
        method: &str,
        data: impl Into<Vec<u8>>,
    ) -> Result<Vec<u8>, Status> {
        invoke_at(self.channel(), actor_type, actor_id, method, data.into()).await
    }

    /// [`HostProcess::invoke`] with a JSON request and response.
    pub async fn invoke_json(
        &self,
        actor_type: &str,
        actor_id: &str,
        method: &str,
        data: serde_json::Value,
    ) -> Result<serde_json::Value, Status> {
        let body = self
            .invoke(actor_type, actor_id, method, data.to_string())
            .await?;
        Ok(parse_json_body(&body))
    }

    /// `HostInternal.ListActivations`; an empty `actor_type` lists every type.
    pub async fn list_activations(
        &self,
        actor_type: &str,
    ) -> Result<ListActivationsResponse, Status> {
        let mut request = tonic::Request::new(ListActivationsRequest {
            actor_type: actor_type.to_owned(),
        });
        request.set_timeout(Duration::from_secs(10));
        let transport = match &self.internal_tls {
            Some(files) => TlsTransport::shared(TcpTransport::shared(), files.clone())
                .map_err(|e| Status::internal(e.to_string()))?,
            None => TcpTransport::shared(),
        };
        let internal = rookery_core::net::channel(&transport, &self.internal_addr)
            .map_err(|e| Status::internal(e.to_string()))?;
        HostInternalClient::new(internal)
            .list_activations(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// Ids of the actors of `actor_type` active on this host, sorted.
    pub async fn active_ids(&self, actor_type: &str) -> Result<Vec<String>, Status> {
        let response = self.list_activations(actor_type).await?;
        let mut ids: Vec<String> = response
            .actors
            .into_iter()
            .filter(|a| a.actor_type == actor_type)
            .map(|a| a.actor_id)
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// `rookery invoke <actor> <method> [args…] --host <this host>`, run to completion.
    pub async fn cli_invoke(&self, actor: &str, method: &str, extra: &[&str]) -> RunOutput {
        let mut args = vec!["invoke", actor, method];
        args.extend_from_slice(extra);
        args.extend(["--host", &self.grpc_addr]);
        run_rookery(&args, Duration::from_secs(60)).await
    }
}

/// `Actors.Invoke` over `channel`, bounded by [`CALL_DEADLINE`].
pub async fn invoke_at(
    channel: Channel,
    actor_type: &str,
    actor_id: &str,
    method: &str,
    data: Vec<u8>,
) -> Result<Vec<u8>, Status> {
    let mut request = tonic::Request::new(InvokeRequest {
        actor_type: actor_type.to_owned(),
        actor_id: actor_id.to_owned(),
        method: method.to_owned(),
        data,
        metadata: Default::default(),
    });
    request.set_timeout(CALL_DEADLINE);
    ActorsClient::new(channel)
        .invoke(request)
        .await
        .map(|response| response.into_inner().data)
}

/// Parses a response body that must be JSON; panics with the body otherwise.
pub fn parse_json_body(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "response body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(body)
        )
    })
}

/// Whether `status` carries the response metadata `rookery-error: application`.
pub fn is_application_error(status: &Status) -> bool {
    status
        .metadata()
        .get("rookery-error")
        .and_then(|v| v.to_str().ok())
        == Some("application")
}

/// The value of `sample` (name and labels, as rendered) in Prometheus text.
pub fn sample_value(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// A minimal HTTP/1.1 GET on 127.0.0.1 (tests need no HTTP client crate for two endpoints):
/// the status code and body.
pub async fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect to port {port}: {e}"))?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let response = String::from_utf8_lossy(&response).into_owned();
        let code = response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| format!("no status line in {response:?}"))?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        Ok((code, body))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| format!("GET {path} on port {port} timed out"))?
}

/// The hash rings every host routes by, rebuilt from `rookery status`: one per actor type over
/// the hosts that registered it, with [`TEST_VNODES_PER_HOST`] virtual nodes (the value the
/// host tests give placement).
pub fn expected_rings(status: &ClusterStatus) -> BTreeMap<String, HashRing> {
    let mut hosts: Vec<HostInfo> = status
        .hosts
        .iter()
        .map(|h| {
            HostInfo {
                id: h.id.clone(),
                address: h.address.clone(),
                app_id: h.app_id.clone(),
                actor_types: h.actor_types.clone(),
            }
            .normalized()
        })
        .collect();
    hosts.sort_by(|a, b| a.id.cmp(&b.id));
    PlacementTable {
        version: TableVersion(status.table_version),
        vnodes_per_host: TEST_VNODES_PER_HOST,
        hosts,
    }
    .rings()
}

/// A placement cluster of `nodes` nodes whose rings use [`TEST_VNODES_PER_HOST`], with a
/// leader elected.
pub async fn start_placement(nodes: u64) -> Cluster {
    let cluster = Cluster::builder()
        .nodes(nodes)
        .arg("--vnodes-per-host")
        .arg(TEST_VNODES_PER_HOST.to_string())
        .start();
    cluster.wait_for_leader().await;
    cluster
}

/// Waits until placement's table lists exactly `hosts`, each serving every type in `types`,
/// and every one of them routes by that table version: from then on each host computes the
/// same owner for every actor as [`expected_rings`] does. Returns that status.
pub async fn wait_for_routing(
    cluster: &Cluster,
    hosts: &[&HostProcess],
    types: &[&str],
) -> ClusterStatus {
    let mut want_ids: Vec<String> = hosts.iter().map(|h| h.id.clone()).collect();
    want_ids.sort();
    let what = format!("hosts {want_ids:?} serving {types:?} and routing by the same table");
    wait_until(what, DEADLINE, || {
        let want_ids = want_ids.clone();
        async move {
            for host in hosts {
                host.assert_alive();
            }
            cluster.check_alive()?;
            let status = cluster.status().await.map_err(|e| e.to_string())?;
            if status.host_ids() != want_ids {
                return Err(format!("hosts in status: {:?}", status.host_ids()));
            }
            for host in &status.hosts {
                for actor_type in types {
                    if !host.actor_types.iter().any(|t| t == actor_type) {
                        return Err(format!(
                            "host {} serves {:?}, not yet {actor_type}",
                            host.id, host.actor_types
                        ));
                    }
                }
            }
            for host in hosts {
                let listed = host
                    .list_activations("")
                    .await
                    .map_err(|e| format!("ListActivations on {}: {e}", host.id))?;
                if listed.table_version != status.table_version {
                    return Err(format!(
                        "host {} routes by table v{}, placement is at v{}",
                        host.id, listed.table_version, status.table_version
                    ));
                }
            }
            Ok(status)
        }
    })
    .await
}

/// Output of every process of a test, for failure messages.
pub fn dump_logs<'a>(hosts: impl IntoIterator<Item = &'a HostProcess>) -> String {
    hosts.into_iter().map(HostProcess::dump_log).collect()
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        // Kill first so the log is complete, then print it if the test failed.
        self.process.kill9();
        if std::thread::panicking() {
            eprintln!("{}", self.process.dump_log());
        }
    }
}

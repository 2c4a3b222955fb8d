//! Mutual TLS between nodes (`--tls-cert`, `--tls-key`, `--tls-ca`), as an operator runs it:
//! certificates from `rookery certs`, three placement nodes and three hosts, every internal
//! connection (Raft peers, host ↔ placement, host ↔ host) over TLS, the public port plaintext
//! for apps and clients.
//!
//! On every internal port — each placement node's gRPC port and each host's internal port — a
//! plaintext client, a TLS client without a certificate, and a TLS client whose certificate
//! another CA signed are refused, while a client with a certificate of the cluster's CA is
//! served. The nodes log what they refused. Certificates are read again when their files
//! change.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rookery_core::net::{self, Connection, Incoming, SharedTransport, TcpTransport, Transport};
use rookery_core::tls::{TlsFiles, TlsTransport};
use rookery_proto::internal::v1::host_internal_client::HostInternalClient;
use rookery_proto::internal::v1::placement_client::PlacementClient;
use rookery_proto::internal::v1::{GetStatusRequest, ListActivationsRequest};
use support::app::{actor_type, TestApp};
use support::cluster::Cluster;
use support::host_process::{wait_for_routing, HostProcess, TEST_VNODES_PER_HOST};
use support::run_rookery;
use support::temp::TestDir;
use support::wait::{wait_until, DEADLINE};

const COUNTER: &str = "Counter";
/// Actors called through one host: enough that every host owns some.
const ACTORS: usize = 30;
/// How long one probe of a port may take before it counts as refused.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A CA and certificates made with `rookery certs`, in a directory of their own.
struct Certs {
    dir: TestDir,
}

impl Certs {
    async fn make(names: &[&str]) -> Certs {
        let dir = TestDir::new("rookery-certs-");
        let dir_arg = dir.path().display().to_string();
        let init = run_rookery(&["certs", "init", "--dir", &dir_arg], DEADLINE).await;
        assert_eq!(init.code, Some(0), "certs init: {}", init.stderr);
        for name in names {
            let issued = run_rookery(
                &[
                    "certs",
                    "issue",
                    name,
                    "--ip",
                    "127.0.0.1",
                    "--dir",
                    &dir_arg,
                ],
                DEADLINE,
            )
            .await;
            assert_eq!(
                issued.code,
                Some(0),
                "certs issue {name}: {}",
                issued.stderr
            );
        }
        Certs { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn files(&self, name: &str) -> TlsFiles {
        TlsFiles {
            cert: self.path(&format!("{name}.pem")),
            key: self.path(&format!("{name}-key.pem")),
            ca: self.path("ca.pem"),
        }
    }

    /// The `--tls-*` flags of node `name`.
    fn flags(&self, name: &str) -> Vec<String> {
        let files = self.files(name);
        vec![
            "--tls-cert".into(),
            files.cert.display().to_string(),
            "--tls-key".into(),
            files.key.display().to_string(),
            "--tls-ca".into(),
            files.ca.display().to_string(),
        ]
    }
}

/// A TLS client that trusts `ca` but has no certificate of its own.
struct NoClientCertificate {
    config: Arc<rustls::ClientConfig>,
}

impl NoClientCertificate {
    fn shared(ca: &Path) -> SharedTransport {
        let pem = std::fs::read(ca).expect("read CA");
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(cert.expect("CA PEM")).expect("CA certificate");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(NoClientCertificate {
            config: Arc::new(config),
        })
    }
}

impl Transport for NoClientCertificate {
    fn bind(&self, _addr: String) -> BoxFuture<'static, std::io::Result<(String, Incoming)>> {
        Box::pin(async { Err(std::io::Error::other("a client only")) })
    }

    fn connect(&self, addr: String) -> BoxFuture<'static, std::io::Result<Connection>> {
        let config = self.config.clone();
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(&addr).await?;
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await?;
            Ok(Connection::new(tls))
        })
    }
}

/// Whether a `GetStatus` through `transport` to a placement node is answered.
async fn placement_answers(transport: &SharedTransport, addr: &str) -> Result<(), String> {
    let channel = net::channel(transport, addr).map_err(|e| e.to_string())?;
    let mut request = tonic::Request::new(GetStatusRequest {});
    request.set_timeout(PROBE_TIMEOUT);
    tokio::time::timeout(
        PROBE_TIMEOUT,
        PlacementClient::new(channel).get_status(request),
    )
    .await
    .map_err(|_| "timed out".to_owned())?
    .map(|_| ())
    .map_err(|status| format!("{}: {}", status.code(), status.message()))
}

/// The ids of `Counter` actors active on the host whose internal port is `addr`, asked
/// through `transport`.
async fn host_answers(transport: &SharedTransport, addr: &str) -> Result<Vec<String>, String> {
    let channel = net::channel(transport, addr).map_err(|e| e.to_string())?;
    let mut request = tonic::Request::new(ListActivationsRequest {
        actor_type: COUNTER.into(),
    });
    request.set_timeout(PROBE_TIMEOUT);
    let listed = tokio::time::timeout(
        PROBE_TIMEOUT,
        HostInternalClient::new(channel).list_activations(request),
    )
    .await
    .map_err(|_| "timed out".to_owned())?
    .map_err(|status| format!("{}: {}", status.code(), status.message()))?;
    Ok(listed
        .into_inner()
        .actors
        .into_iter()
        .map(|a| a.actor_id)
        .collect())
}

fn tls(files: TlsFiles) -> SharedTransport {
    TlsTransport::shared(TcpTransport::shared(), files).expect("client TLS material")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_mutual_tls_serves_calls_and_refuses_strangers() {
    let certs = Certs::make(&["placement", "host", "operator"]).await;
    let intruders = Certs::make(&["intruder"]).await;

    let mut builder = Cluster::builder()
        .nodes(3)
        .arg("--vnodes-per-host")
        .arg(TEST_VNODES_PER_HOST.to_string());
    for flag in certs.flags("placement") {
        builder = builder.arg(flag);
    }
    // `rookery status` is a client of the internal port too: it needs a certificate.
    for flag in certs.flags("operator") {
        builder = builder.status_arg(flag);
    }
    let cluster = builder.start();
    cluster.wait_for_leader().await;

    let mut hosts = Vec::new();
    for i in 0..3 {
        let host = HostProcess::builder(cluster.addr_list())
            .app_id(format!("app-{i}"))
            .tls(&certs.files("host"), certs.files("operator"));
        hosts.push(host.start());
    }
    for host in &hosts {
        host.wait_ready().await;
    }
    let mut apps = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        let app = TestApp::builder(&host.grpc_addr)
            .app_id(format!("app-{i}"))
            .serve(actor_type(COUNTER))
            .start();
        app.wait_registered().await;
        apps.push(app);
    }
    let refs: Vec<&HostProcess> = hosts.iter().collect();
    wait_for_routing(&cluster, &refs, &[COUNTER]).await;

    // Calls through one host's public (plaintext) port reach actors on every host, over the
    // hosts' TLS connections to each other.
    for n in 0..ACTORS {
        let id = format!("c{n}");
        for want in 1..=2 {
            let value = hosts[0]
                .invoke_json(COUNTER, &id, "increment", serde_json::json!({"by": 1}))
                .await
                .unwrap_or_else(|e| panic!("increment {id}: {e}"));
            assert_eq!(value, serde_json::json!(want), "{id}");
        }
    }

    // The cluster's own certificate is served on every internal port…
    let operator = tls(certs.files("operator"));
    let mut owners = 0;
    for node in cluster.nodes() {
        placement_answers(&operator, &node.addr)
            .await
            .unwrap_or_else(|e| panic!("placement {} refused a cluster client: {e}", node.addr));
    }
    let mut active = 0;
    for host in &hosts {
        let ids = host_answers(&operator, &host.internal_addr)
            .await
            .unwrap_or_else(|e| panic!("host {} refused a cluster client: {e}", host.id));
        owners += usize::from(!ids.is_empty());
        active += ids.len();
    }
    assert_eq!(active, ACTORS, "every actor active once");
    assert_eq!(
        owners,
        hosts.len(),
        "actors on every host, so calls were forwarded"
    );

    // …and strangers are refused on every one of them.
    let strangers: [(&str, SharedTransport); 3] = [
        ("plaintext", TcpTransport::shared()),
        (
            "no client certificate",
            NoClientCertificate::shared(&certs.path("ca.pem")),
        ),
        ("another CA's certificate", tls(intruders.files("intruder"))),
    ];
    for (what, transport) in &strangers {
        for node in cluster.nodes() {
            let answered = placement_answers(transport, &node.addr).await;
            assert!(
                answered.is_err(),
                "placement {} served a client with {what}",
                node.addr
            );
        }
        for host in &hosts {
            let answered = host_answers(transport, &host.internal_addr).await;
            assert!(
                answered.is_err(),
                "host {} served a client with {what} on its internal port",
                host.id
            );
        }
    }
    // Refusals are logged by the node that refused.
    for node in cluster.nodes() {
        let log = node.log();
        assert!(
            log.contains("refused a connection: TLS handshake failed"),
            "placement {} logged no refusal",
            node.addr
        );
    }
    for host in &hosts {
        assert!(
            host.log()
                .contains("refused a connection: TLS handshake failed"),
            "host {} logged no refusal",
            host.id
        );
    }
    // The cluster still serves after the strangers.
    let value = hosts[1]
        .invoke_json(COUNTER, "c0", "get", serde_json::json!({}))
        .await
        .expect("get c0");
    assert_eq!(value, serde_json::json!(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_read_again_when_their_files_change() {
    let first = Certs::make(&["node", "client"]).await;
    let second = Certs::make(&["node", "client"]).await;
    // The node reads its material from files of its own, replaced below.
    let live = TestDir::new("rookery-live-certs-");
    let copy = |from: &Certs| {
        for file in ["node.pem", "node-key.pem", "ca.pem"] {
            let staged = live.path().join(format!("{file}.new"));
            std::fs::copy(from.path(file), &staged).expect("stage");
            // Renamed into place, as a secret volume or cert-manager updates files.
            std::fs::rename(&staged, live.path().join(file)).expect("replace");
        }
    };
    copy(&first);
    let live_flag = |file: &str| live.path().join(file).display().to_string();
    let cluster = Cluster::builder()
        .arg("--tls-cert")
        .arg(live_flag("node.pem"))
        .arg("--tls-key")
        .arg(live_flag("node-key.pem"))
        .arg("--tls-ca")
        .arg(live_flag("ca.pem"))
        .start();
    let addr = cluster.nodes()[0].addr.clone();
    let first_client = tls(first.files("client"));
    let second_client = tls(second.files("client"));
    wait_until("the node serves the first CA's client", DEADLINE, || {
        placement_answers(&first_client, &addr)
    })
    .await;
    assert!(placement_answers(&second_client, &addr).await.is_err());

    copy(&second);
    wait_until("the node serves the second CA's client", DEADLINE, || {
        placement_answers(&second_client, &addr)
    })
    .await;
    assert!(
        placement_answers(&first_client, &addr).await.is_err(),
        "the replaced CA is still trusted"
    );
    assert!(cluster.nodes()[0]
        .log()
        .contains("reloaded the TLS certificates"));
}

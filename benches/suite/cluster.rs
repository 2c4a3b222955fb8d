//! Real processes: one placement node and three hosts of the `rookery` binary, a `counter`
//! example app and a minimal echo app on every host, and the bare echo and proxy servers.
//! Every child is killed when its [`Proc`] is dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// An OS-chosen port never handed out before in this process (the tests' helper: a port
// picked and released can come back from the OS to the next caller).
use crate::support::free_port;

use rookery_core::net::{self, SharedTransport};
use rookery_proto::internal::v1::host_internal_client::HostInternalClient;
use rookery_proto::internal::v1::placement_client::PlacementClient;
use rookery_proto::internal::v1::{GetStatusRequest, ListActivationsRequest};
use rookery_proto::v1::actors_client::ActorsClient;
use tonic::transport::Channel;

/// Bound on the cluster coming up.
const SETUP_DEADLINE: Duration = Duration::from_secs(60);

pub const HOSTS: usize = 3;
/// Served by the `counter` example app (its `get` reads the actor's state through the host).
pub const COUNTER: &str = "Counter";
/// Served by the suite's own echo app ([`crate::servers`]).
pub const APP_ECHO: &str = "AppEcho";

/// A child process, killed on drop.
pub struct Proc {
    pub name: String,
    child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the process, in bytes (`VmRSS`).
    pub fn rss_bytes(&self) -> u64 {
        rss_of(&format!("/proc/{}/status", self.pid()))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn rss_of(status_path: &str) -> u64 {
    std::fs::read_to_string(status_path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// Children also end when the suite is killed without unwinding (SIGKILL, abort), where
/// [`Proc`]'s drop does not run: the kernel sends them SIGKILL when the thread that started
/// them exits (the runtime's worker threads live until the suite ends).
pub trait DiesWithParent {
    fn dies_with_parent(&mut self) -> &mut Self;
}

impl DiesWithParent for Command {
    fn dies_with_parent(&mut self) -> &mut Self {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
        unsafe {
            self.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        }
    }
}

/// Starts `program args`, its stdout and stderr to `<logs>/<name>.log`.
fn spawn(logs: &Path, name: &str, program: &Path, args: &[String]) -> Proc {
    let log = std::fs::File::create(logs.join(format!("{name}.log"))).expect("log file");
    let child = Command::new(program)
        .dies_with_parent()
        .args(args)
        .stdout(Stdio::from(log.try_clone().expect("log file")))
        .stderr(Stdio::from(log))
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
    Proc {
        name: name.into(),
        child,
    }
}

/// Starts this executable as `--serve <args>` and reads the `LISTEN <addr>` line it prints.
pub fn spawn_server(name: &str, args: &[&str]) -> (Proc, String) {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .dies_with_parent()
        .arg("--serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start a server");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read LISTEN");
    let addr = line
        .trim()
        .strip_prefix("LISTEN ")
        .unwrap_or_else(|| panic!("{name} printed {line:?}"))
        .to_owned();
    (
        Proc {
            name: name.into(),
            child,
        },
        addr,
    )
}

/// `target/release`, where the `rookery` binary and the `counter` example are built.
pub fn release_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ROOKERY_RELEASE_DIR") {
        return dir.into();
    }
    // This bench runs as target/release/deps/suite-<hash>.
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/release")
        .to_owned()
}

pub struct Host {
    pub id: String,
    /// Its public gRPC port.
    pub addr: String,
    /// Its internal (host-to-host) port.
    pub internal_addr: String,
    pub proc: Proc,
    pub apps: Vec<Proc>,
}

pub struct Cluster {
    pub placement: Proc,
    pub hosts: Vec<Host>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn start(transport: &SharedTransport, logs: &Path) -> Cluster {
        let release = release_dir();
        let rookery = release.join("rookery");
        let counter = release.join("examples").join("counter");
        for binary in [&rookery, &counter] {
            assert!(
                binary.exists(),
                "{} is missing: run `cargo build --release --bin rookery --example counter` \
                 (scripts/bench.sh does)",
                binary.display()
            );
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let placement_addr = format!("127.0.0.1:{}", free_port());
        let placement = spawn(
            logs,
            "placement",
            &rookery,
            &[
                "placement".into(),
                "--listen".into(),
                placement_addr.clone(),
                "--http-port".into(),
                "0".into(),
                "--debounce-ms".into(),
                "0".into(),
                "--data-dir".into(),
                dir.path().join("placement").display().to_string(),
            ],
        );
        let mut hosts = Vec::new();
        for n in 1..=HOSTS {
            let port = free_port();
            let id = format!("host-{n}");
            let addr = format!("127.0.0.1:{port}");
            let internal_port = free_port();
            let internal_addr = format!("127.0.0.1:{internal_port}");
            let proc = spawn(
                logs,
                &id,
                &rookery,
                &[
                    "host".into(),
                    "--placement".into(),
                    placement_addr.clone(),
                    "--app-id".into(),
                    "suite".into(),
                    "--host-id".into(),
                    id.clone(),
                    "--bind-address".into(),
                    "127.0.0.1".into(),
                    "--grpc-port".into(),
                    port.to_string(),
                    "--internal-port".into(),
                    internal_port.to_string(),
                    "--http-port".into(),
                    "0".into(),
                    "--metrics-port".into(),
                    "0".into(),
                    "--data-dir".into(),
                    dir.path().join(&id).display().to_string(),
                ],
            );
            hosts.push(Host {
                id,
                addr,
                internal_addr,
                proc,
                apps: Vec::new(),
            });
        }
        // Apps connect once their host listens.
        for host in &mut hosts {
            wait_listening(&host.addr).await;
            host.apps.push(spawn(
                logs,
                &format!("{}-counter", host.id),
                &counter,
                &[
                    "--host".into(),
                    host.addr.clone(),
                    "--app-id".into(),
                    format!("counter-{}", host.id),
                ],
            ));
            let exe = std::env::current_exe().expect("current exe");
            host.apps.push(spawn(
                logs,
                &format!("{}-echo-app", host.id),
                &exe,
                &[
                    "--serve".into(),
                    "app".into(),
                    host.addr.clone(),
                    APP_ECHO.into(),
                ],
            ));
        }
        let cluster = Cluster {
            placement,
            hosts,
            _dir: dir,
        };
        cluster.wait_ready(transport, &placement_addr).await;
        cluster
    }

    /// Until placement lists every host with both types and a call to each type answers
    /// through every host.
    async fn wait_ready(&self, transport: &SharedTransport, placement_addr: &str) {
        let started = Instant::now();
        let mut placement = PlacementClient::new(net::channel(transport, placement_addr).unwrap());
        loop {
            assert!(
                started.elapsed() < SETUP_DEADLINE,
                "placement did not list {HOSTS} hosts serving {COUNTER} and {APP_ECHO}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            let Ok(status) = placement.get_status(GetStatusRequest {}).await else {
                continue;
            };
            let serving = status
                .get_ref()
                .hosts
                .iter()
                .filter_map(|h| h.host.as_ref())
                .filter(|h| {
                    [COUNTER, APP_ECHO]
                        .iter()
                        .all(|t| h.actor_types.iter().any(|a| a == t))
                })
                .count();
            if serving == HOSTS {
                break;
            }
        }
        for host in &self.hosts {
            let client = self.client(transport, host);
            for actor_type in [COUNTER, APP_ECHO] {
                loop {
                    assert!(
                        started.elapsed() < SETUP_DEADLINE,
                        "{actor_type} did not answer through {}",
                        host.id
                    );
                    let target = crate::load::Target {
                        clients: vec![client.clone()],
                        actor_type: actor_type.into(),
                        method: "get".into(),
                        ids: vec![format!("ready-{}", host.id)].into(),
                        pick: crate::load::Pick::PerSlot,
                        payload: Vec::new().into(),
                    };
                    if crate::load::each_once("ready", &target, 1).await.errors == 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    pub fn client(&self, transport: &SharedTransport, host: &Host) -> ActorsClient<Channel> {
        ActorsClient::new(net::channel(transport, &host.addr).expect("address"))
    }

    /// Which host has each actor of `actor_type` active: (host index, id) pairs.
    pub async fn owners(
        &self,
        transport: &SharedTransport,
        actor_type: &str,
    ) -> Vec<(usize, String)> {
        let mut owners = Vec::new();
        for (i, host) in self.hosts.iter().enumerate() {
            // A host with many activations lists them in one large message.
            let mut client =
                HostInternalClient::new(net::channel(transport, &host.internal_addr).unwrap())
                    .max_decoding_message_size(usize::MAX);
            let listed = client
                .list_activations(ListActivationsRequest {
                    actor_type: actor_type.into(),
                })
                .await
                .expect("ListActivations");
            owners.extend(
                listed
                    .into_inner()
                    .actors
                    .into_iter()
                    .map(|a| (i, a.actor_id)),
            );
        }
        owners
    }

    /// Resident memory of the host processes, and of the app processes, in bytes.
    pub fn rss(&self) -> (u64, u64) {
        let hosts = self.hosts.iter().map(|h| h.proc.rss_bytes()).sum();
        let apps = self
            .hosts
            .iter()
            .flat_map(|h| &h.apps)
            .map(Proc::rss_bytes)
            .sum();
        (hosts, apps)
    }

    pub fn process_names(&self) -> Vec<String> {
        std::iter::once(self.placement.name.clone())
            .chain(self.hosts.iter().flat_map(|h| {
                std::iter::once(h.proc.name.clone()).chain(h.apps.iter().map(|a| a.name.clone()))
            }))
            .collect()
    }
}

async fn wait_listening(addr: &str) {
    let started = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(started.elapsed() < SETUP_DEADLINE, "{addr} never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

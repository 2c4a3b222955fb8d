//! A private PostgreSQL server for one test: `initdb` in a temp dir, `postgres` on an
//! OS-chosen loopback port, killed on drop. Stopping and starting it is how tests cut the
//! state store off and bring it back.
//!
//! The binaries come from `ROOKERY_TEST_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`
//! (Debian's `postgresql` package; `scripts/test.sh` installs it). PostgreSQL refuses to run
//! as root, so under root the server runs as the `postgres` user. Without the binaries a test
//! is skipped, unless `ROOKERY_TEST_REQUIRE_POSTGRES` is set (as in CI), when it fails.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::free_port;
use super::temp::TestDir;
use super::wait::{wait_until, DEADLINE};

/// The role and database tests connect as.
const ROLE: &str = "rookery";

pub struct Postgres {
    bin: PathBuf,
    port: u16,
    /// (uid, gid) the server runs as, when this process is root.
    run_as: Option<(u32, u32)>,
    /// Whether TCP clients must use TLS (then this test's own queries use the Unix socket).
    tls_only: bool,
    child: Option<Child>,
    // Last: the server is killed before its dir goes.
    dir: TestDir,
}

fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ROOKERY_TEST_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn postgres_user_ids() -> (u32, u32) {
    let id = |flag: &str| {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("run id");
        assert!(
            out.status.success(),
            "no postgres user to run the server as"
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u32>()
            .expect("numeric id")
    };
    (id("-u"), id("-g"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown test dir");
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read dir") {
            chown_tree(&entry.expect("entry").path(), uid, gid);
        }
    }
}

impl Postgres {
    /// A fresh server, started and accepting connections; `None` (the test should return)
    /// when PostgreSQL is not installed and not required.
    pub async fn start() -> Option<Postgres> {
        Postgres::start_configured(None).await
    }

    /// A fresh server that accepts TCP clients only over TLS, with the certificate and key
    /// of these PEM files; plaintext TCP clients are refused.
    pub async fn start_tls_only(cert: &Path, key: &Path) -> Option<Postgres> {
        Postgres::start_configured(Some((cert, key))).await
    }

    async fn start_configured(tls: Option<(&Path, &Path)>) -> Option<Postgres> {
        let Some(bin) = bin_dir() else {
            assert!(
                std::env::var_os("ROOKERY_TEST_REQUIRE_POSTGRES").is_none(),
                "PostgreSQL server binaries not found (install Debian's postgresql package or set ROOKERY_TEST_PG_BIN)"
            );
            eprintln!("skipped: PostgreSQL server binaries not found");
            return None;
        };
        let dir = TestDir::new("rookery-postgres-test-");
        let run_as = is_root().then(postgres_user_ids);
        if let Some((uid, gid)) = run_as {
            chown_tree(dir.path(), uid, gid);
            // The temp dir's parents must be searchable by the server's user.
        }
        let mut postgres = Postgres {
            bin,
            port: free_port(),
            run_as,
            tls_only: tls.is_some(),
            child: None,
            dir,
        };
        let data = postgres.data_dir();
        let status = postgres
            .command("initdb")
            .args(["-D", data.to_str().expect("utf-8 path")])
            .args(["-U", ROLE, "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("run initdb");
        assert!(
            status.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        if let Some((cert, key)) = tls {
            postgres.require_tls(cert, key);
        }
        postgres.start_server();
        postgres.wait_accepting().await;
        Some(postgres)
    }

    /// Serves TLS with `cert` and `key`, and refuses plaintext TCP clients (the Unix socket
    /// stays open to this test's own queries).
    fn require_tls(&self, cert: &Path, key: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let data = self.data_dir();
        std::fs::copy(cert, data.join("server.crt")).expect("copy the certificate");
        std::fs::copy(key, data.join("server.key")).expect("copy the key");
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod the key");
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("open postgresql.conf");
        std::io::Write::write_all(
            &mut conf,
            b"\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
        )
        .expect("write postgresql.conf");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("write pg_hba.conf");
        if let Some((uid, gid)) = self.run_as {
            for file in ["server.crt", "server.key", "pg_hba.conf"] {
                std::os::unix::fs::chown(data.join(file), Some(uid), Some(gid)).expect("chown");
            }
        }
    }

    /// Where this test's own queries connect: the Unix socket when TCP needs TLS.
    fn own_connection_string(&self) -> String {
        if self.tls_only {
            format!(
                "host={} port={} user={ROLE} dbname=postgres connect_timeout=2",
                self.dir.path().display(),
                self.port
            )
        } else {
            self.connection_string()
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        command
    }

    fn start_server(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("postgres.log"))
            .expect("open postgres log");
        if let Some((uid, gid)) = self.run_as {
            let _ = std::os::unix::fs::chown(
                self.dir.path().join("postgres.log"),
                Some(uid),
                Some(gid),
            );
        }
        let child = self
            .command("postgres")
            .args(["-D", self.data_dir().to_str().expect("utf-8 path")])
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-k", self.dir.path().to_str().expect("utf-8 path")])
            .args(["-c", "max_connections=200"])
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("spawn postgres");
        self.child = Some(child);
    }

    /// Waits until the server answers a query.
    pub async fn wait_accepting(&self) {
        let connection_string = self.own_connection_string();
        wait_until("PostgreSQL accepting connections", DEADLINE, || {
            let connection_string = connection_string.clone();
            async move {
                let (client, connection) =
                    tokio_postgres::connect(&connection_string, tokio_postgres::NoTls)
                        .await
                        .map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                client
                    .simple_query("SELECT 1")
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        })
        .await
    }

    /// The port the server listens on (loopback).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The libpq connection string hosts use (`--state-connection-string`).
    pub fn connection_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user={ROLE} dbname=postgres connect_timeout=2",
            self.port
        )
    }

    /// A Dapr component file naming this server, for `--resources-path`.
    pub fn write_component(&self, dir: &Path) {
        std::fs::create_dir_all(dir).expect("create resources dir");
        let yaml = format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: statestore\nspec:\n  type: state.postgresql\n  version: v1\n  metadata:\n  - name: connectionString\n    value: \"{}\"\n  - name: actorStateStore\n    value: \"true\"\n",
            self.connection_string()
        );
        std::fs::write(dir.join("statestore.yaml"), yaml).expect("write component");
    }

    /// Fast shutdown (SIGINT: sessions are ended, what was not committed is rolled back),
    /// waiting until the server has exited.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + DEADLINE;
            loop {
                if child.try_wait().expect("wait postgres").is_some() {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "PostgreSQL did not shut down"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Starts the server again on the same data and port, and waits until it accepts.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the server first");
        self.start_server();
        self.wait_accepting().await;
    }

    /// Runs one query and returns the first column of each row as text.
    pub async fn query(&self, sql: &str) -> Vec<String> {
        let (client, connection) =
            tokio_postgres::connect(&self.own_connection_string(), tokio_postgres::NoTls)
                .await
                .expect("connect to PostgreSQL");
        tokio::spawn(connection);
        client
            .simple_query(sql)
            .await
            .expect("query")
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => {
                    Some(row.get(0).unwrap_or("").to_owned())
                }
                _ => None,
            })
            .collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

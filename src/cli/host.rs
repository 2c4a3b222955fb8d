//! `rookery host`: runs one host node until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rookery_core::net::TcpTransport;
use rookery_runtime::bindings;
use rookery_runtime::config::{
    ActorDefaults, AppHealthConfig, ConfigFile, CronBindingConfig, GrpcAppHealthConfig, HostConfig,
    HttpAppConfig, HttpHealthConfig, DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_MAX_REQUEST_SIZE_MB,
    DEFAULT_STATE_COMPONENT,
};
use rookery_runtime::host::{Host, HostTransports};
use rookery_runtime::resiliency::{self, ResiliencyConfig};
use rookery_runtime::resources::read_documents;
use rookery_runtime::state::postgres_store::{PostgresConfig, DEFAULT_TABLE_NAME};
use rookery_runtime::state::{component, StoreConfig};

/// The internal port's default, as daprd's internal gRPC port.
pub const DEFAULT_INTERNAL_PORT: u16 = 50002;

/// Time a graceful leave allows placement for its removal round, beyond draining actors.
const LEAVE_ROUND_ALLOWANCE_MS: u64 = 15_000;

#[derive(Args, Debug, Clone)]
pub struct HostArgs {
    /// Placement addresses (host:port), comma-separated; any member will do.
    #[arg(long, env = "ROOKERY_PLACEMENT", default_value = "127.0.0.1:50005", value_delimiter = ',', value_parser = super::parse_host_port)]
    pub placement: Vec<String>,
    /// The application's id (Dapr's app id), shown in status and metadata.
    #[arg(long, env = "ROOKERY_APP_ID", default_value = "")]
    pub app_id: String,
    /// Port of the gRPC API: client calls (Actors, Dapr's actor RPCs), apps (AppChannel),
    /// reflection.
    #[arg(
        long,
        alias = "dapr-grpc-port",
        env = "ROOKERY_GRPC_PORT",
        default_value_t = 50001
    )]
    pub grpc_port: u16,
    /// Port of host-to-host calls (`HostInternal`), never the public port; 0 lets the system
    /// pick one (advertised as bound). With --tls-* it speaks mutual TLS only.
    #[arg(
        long,
        alias = "dapr-internal-grpc-port",
        env = "ROOKERY_INTERNAL_PORT",
        default_value_t = DEFAULT_INTERNAL_PORT
    )]
    pub internal_port: u16,
    /// IP the listeners bind to.
    #[arg(long, env = "ROOKERY_BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind_address: std::net::IpAddr,
    /// Address (host:port of the gRPC port) that placement and other hosts dial; needed behind
    /// NAT or in containers. Default: 127.0.0.1:<grpc-port>.
    #[arg(long, env = "ROOKERY_ADVERTISE_ADDRESS", value_parser = super::parse_host_port)]
    pub advertise_address: Option<String>,
    /// Address (host:port of the internal port) that other hosts dial for host-to-host calls.
    /// Default: the host of --advertise-address with --internal-port.
    #[arg(long, env = "ROOKERY_INTERNAL_ADVERTISE_ADDRESS", value_parser = super::parse_host_port)]
    pub internal_advertise_address: Option<String>,
    /// Unique id of this host. Default: its advertised address.
    #[arg(long, env = "ROOKERY_HOST_ID")]
    pub host_id: Option<String>,
    /// Port of the HTTP API (Dapr's /v1.0/... and /healthz); 0 disables it.
    #[arg(
        long,
        alias = "dapr-http-port",
        env = "ROOKERY_HTTP_PORT",
        default_value_t = 3500
    )]
    pub http_port: u16,
    /// Port of Prometheus /metrics; 0 disables it.
    #[arg(long, env = "ROOKERY_METRICS_PORT", default_value_t = 9090)]
    pub metrics_port: u16,
    #[command(flatten)]
    pub app: AppArgs,
    #[command(flatten)]
    pub tls: super::tls::TlsArgs,
    /// Directory of the host's local data.
    #[arg(long, env = "ROOKERY_DATA_DIR", default_value = ".rookery/host")]
    pub data_dir: PathBuf,
    /// YAML file of per-type defaults (`actors: {idle_timeout_ms, scan_interval_ms,
    /// drain_timeout_ms, call_timeout_ms, reentrancy, max_reentrancy_depth}`).
    #[arg(long, env = "ROOKERY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Largest request payload, in MB, on every API, the app channel and reminders.
    #[arg(long, alias = "dapr-http-max-request-size", env = "ROOKERY_MAX_REQUEST_SIZE", default_value_t = DEFAULT_MAX_REQUEST_SIZE_MB, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub max_request_size: usize,
    /// Serve actors with the last table even without a placement lease, as Dapr does: stays
    /// available through any placement outage, but a host cut off from placement may then run
    /// an actor that another host has taken over. Off by default.
    #[arg(long, env = "ROOKERY_SERVE_WITHOUT_LEASE")]
    pub serve_without_lease: bool,
    /// Directory of Dapr resource files: a `state.postgresql` or `state.sled` component there
    /// chooses the actor state store (see `rookery_runtime::state::component`), and
    /// `Resiliency` resources set timeouts, retries and circuit breakers (see
    /// `rookery_runtime::resiliency`), and `bindings.cron` components send the app events on
    /// a schedule (see `rookery_runtime::bindings`).
    #[arg(long, env = "ROOKERY_RESOURCES_PATH")]
    pub resources_path: Option<PathBuf>,
    /// Actor state store, overriding --resources-path: `sled` (in --data-dir; one host),
    /// `postgresql` (shared by a cluster's hosts; needs --state-connection-string) or `none`.
    /// Default: the component in --resources-path, else sled.
    #[arg(long, env = "ROOKERY_STATE_STORE", value_enum)]
    pub state_store: Option<StateStoreKind>,
    /// PostgreSQL connection string for --state-store postgresql (libpq key=value or a
    /// postgres:// URL).
    #[arg(
        long,
        env = "ROOKERY_STATE_CONNECTION_STRING",
        required_if_eq("state_store", "postgresql")
    )]
    pub state_connection_string: Option<String>,
    /// Interval of heartbeats to placement.
    #[arg(long, env = "ROOKERY_HEARTBEAT_INTERVAL_MS", default_value_t = DEFAULT_HEARTBEAT_INTERVAL_MS, value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat_interval_ms: u64,
}

/// How the host reaches the app and what it requires of clients: daprd's flags.
#[derive(Args, Debug, Clone, Default)]
pub struct AppArgs {
    /// Port of the app: with --app-protocol http, the app that serves actor types over HTTP
    /// (`GET /dapr/config`, `PUT /actors/...`), as daprd calls it; with grpc, where its
    /// `grpc.health.v1` service answers the health checks. Apps may always connect over the
    /// gRPC AppChannel.
    #[arg(long, env = "ROOKERY_APP_PORT")]
    pub app_port: Option<u16>,
    /// How the host reaches the app: `http` (it calls --app-port) or `grpc` (Rookery's own
    /// AppChannel: the app connects to the host; --app-port is only probed for health).
    #[arg(long, env = "ROOKERY_APP_PROTOCOL", value_enum, default_value_t = AppProtocol::Http)]
    pub app_protocol: AppProtocol,
    /// Host of the app for --app-port.
    #[arg(long, env = "ROOKERY_APP_CHANNEL_ADDRESS", default_value = "127.0.0.1")]
    pub app_channel_address: String,
    /// Required of clients on every API but health (`dapr-api-token` header or metadata).
    #[arg(long, env = "DAPR_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Sent to the app as `dapr-api-token` on every request the host makes of it.
    #[arg(long, env = "APP_API_TOKEN", hide_env_values = true)]
    pub app_api_token: Option<String>,
    /// Probe the app's health at --app-port (as daprd): `GET --app-health-check-path` of an
    /// HTTP app, `grpc.health.v1.Health/Check` of a gRPC app. While it fails, its actor types
    /// (with grpc: those of every AppChannel connection) are not served and its actors move to
    /// other hosts.
    #[arg(long, env = "ROOKERY_ENABLE_APP_HEALTH_CHECK")]
    pub enable_app_health_check: bool,
    /// Path of the HTTP app's health endpoint (`GET`; a 2xx answer is healthy).
    #[arg(
        long,
        env = "ROOKERY_APP_HEALTH_CHECK_PATH",
        default_value = "/healthz"
    )]
    pub app_health_check_path: String,
    /// Seconds between health probes.
    #[arg(long, env = "ROOKERY_APP_HEALTH_PROBE_INTERVAL", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub app_health_probe_interval: u64,
    /// Milliseconds a health probe may take.
    #[arg(long, env = "ROOKERY_APP_HEALTH_PROBE_TIMEOUT", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub app_health_probe_timeout: u64,
    /// Failed probes in a row that make the app unhealthy.
    #[arg(long, env = "ROOKERY_APP_HEALTH_THRESHOLD", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub app_health_threshold: u32,
}

/// The `--app-protocol` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AppProtocol {
    #[default]
    Http,
    Grpc,
}

impl AppArgs {
    /// The HTTP app these flags name, if any.
    pub fn http_app(&self) -> Option<HttpAppConfig> {
        match (self.app_protocol, self.app_port) {
            (AppProtocol::Http, Some(port)) => Some(HttpAppConfig {
                address: format!("{}:{port}", self.app_channel_address),
                app_api_token: self.app_api_token.clone().filter(|t| !t.is_empty()),
                health: self.enable_app_health_check.then(|| HttpHealthConfig {
                    path: if self.app_health_check_path.starts_with('/') {
                        self.app_health_check_path.clone()
                    } else {
                        format!("/{}", self.app_health_check_path)
                    },
                    probes: self.health_probes(),
                }),
            }),
            _ => None,
        }
    }

    /// The gRPC app's health checks these flags ask for, if any.
    pub fn grpc_app_health(&self) -> Option<GrpcAppHealthConfig> {
        match (
            self.app_protocol,
            self.app_port,
            self.enable_app_health_check,
        ) {
            (AppProtocol::Grpc, Some(port), true) => Some(GrpcAppHealthConfig {
                address: format!("{}:{port}", self.app_channel_address),
                probes: self.health_probes(),
            }),
            _ => None,
        }
    }

    /// Interval, timeout and threshold, whatever the protocol.
    fn health_probes(&self) -> AppHealthConfig {
        AppHealthConfig {
            interval_ms: self.app_health_probe_interval * 1000,
            timeout_ms: self.app_health_probe_timeout,
            threshold: self.app_health_threshold,
        }
    }
}

/// The `--state-store` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateStoreKind {
    Sled,
    Postgresql,
    None,
}

impl HostArgs {
    /// The state store and its component's name: the flag, else a component in
    /// --resources-path, else sled.
    fn state_config(&self) -> anyhow::Result<(String, StoreConfig)> {
        let named = |config| (DEFAULT_STATE_COMPONENT.to_owned(), config);
        let sled = || {
            named(StoreConfig::Sled {
                path: self.data_dir.join("state"),
            })
        };
        Ok(match self.state_store {
            Some(StateStoreKind::None) => named(StoreConfig::None),
            Some(StateStoreKind::Sled) => sled(),
            Some(StateStoreKind::Postgresql) => named(StoreConfig::PostgreSql(PostgresConfig {
                connection_string: self.state_connection_string.clone().unwrap_or_default(),
                table_name: DEFAULT_TABLE_NAME.to_owned(),
            })),
            None => match &self.resources_path {
                Some(dir) => component::load(dir, &self.data_dir)?.unwrap_or_else(sled),
                None => sled(),
            },
        })
    }

    /// The Resiliency resources of --resources-path that apply to this app.
    fn resiliency_config(&self) -> anyhow::Result<ResiliencyConfig> {
        let Some(dir) = &self.resources_path else {
            return Ok(ResiliencyConfig::default());
        };
        let documents = read_documents(dir).map_err(anyhow::Error::msg)?;
        let config = resiliency::spec::resolve(&documents, &self.app_id)?;
        if !config.resources.is_empty() {
            tracing::info!(resources = ?config.resources, "resiliency policies loaded");
        }
        Ok(config)
    }

    /// The cron bindings (`bindings.cron` components) of --resources-path for this app.
    fn bindings_config(&self) -> anyhow::Result<Vec<CronBindingConfig>> {
        let Some(dir) = &self.resources_path else {
            return Ok(Vec::new());
        };
        let documents = read_documents(dir).map_err(anyhow::Error::msg)?;
        let bindings = bindings::component::resolve(&documents, &self.app_id)?;
        if !bindings.is_empty() {
            let names: Vec<&str> = bindings.iter().map(|b| b.name.as_str()).collect();
            tracing::info!(bindings = ?names, "cron bindings loaded");
        }
        Ok(bindings)
    }

    /// The host configuration these flags describe.
    pub fn to_config(&self) -> anyhow::Result<HostConfig> {
        if self.app.enable_app_health_check && self.app.app_port.is_none() {
            anyhow::bail!(
                "--enable-app-health-check needs --app-port: the app's HTTP port, or with --app-protocol grpc the port of its grpc.health.v1 service"
            );
        }
        let (state_component, state) = self.state_config()?;
        let actors = match &self.config {
            Some(path) => ConfigFile::load(path)?.actors,
            None => ActorDefaults::default(),
        };
        let listen = |port: u16| (port != 0).then(|| format!("{}:{port}", self.bind_address));
        let advertise_address = self
            .advertise_address
            .clone()
            .unwrap_or_else(|| format!("127.0.0.1:{}", self.grpc_port));
        let internal_advertise_address =
            Some(self.internal_advertise_address.clone().unwrap_or_else(|| {
                let host = advertise_address
                    .rsplit_once(':')
                    .map(|(h, _)| h)
                    .unwrap_or("127.0.0.1");
                format!("{host}:{}", self.internal_port)
            }));
        Ok(HostConfig {
            host_id: self
                .host_id
                .clone()
                .unwrap_or_else(|| advertise_address.clone()),
            app_id: self.app_id.clone(),
            placement: self.placement.clone(),
            grpc_listen: format!("{}:{}", self.bind_address, self.grpc_port),
            internal_listen: Some(format!("{}:{}", self.bind_address, self.internal_port)),
            advertise_address,
            internal_advertise_address,
            http_listen: listen(self.http_port),
            metrics_listen: listen(self.metrics_port),
            http_app: self.app.http_app(),
            grpc_app_health: self.app.grpc_app_health(),
            api_token: self.app.api_token.clone().filter(|t| !t.is_empty()),
            data_dir: self.data_dir.clone(),
            max_request_bytes: self.max_request_size * 1024 * 1024,
            actors,
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            state,
            state_component,
            resiliency: self.resiliency_config()?,
            bindings: self.bindings_config()?,
            serve_without_lease: self.serve_without_lease,
        })
    }
}

pub async fn run(args: HostArgs) -> anyhow::Result<ExitCode> {
    let config = args.to_config()?;
    let transports = HostTransports {
        public: TcpTransport::shared(),
        internal: args.tls.transport()?,
    };
    let host = Host::start_with(config.clone(), transports)
        .await
        .context("cannot start the host")?;
    super::logging::banner(format_args!(
        "rookery host {}: gRPC on {}, internal on {}{}{}{}, placement {}",
        config.host_id,
        host.grpc_addr(),
        host.internal_addr().unwrap_or("-"),
        if args.tls.files().is_some() {
            " (mutual TLS)"
        } else {
            ""
        },
        host.http_addr()
            .map(|a| format!(", http on {a}"))
            .unwrap_or_default(),
        host.metrics_addr()
            .map(|a| format!(", metrics on {a}"))
            .unwrap_or_default(),
        config.placement.join(",")
    ));
    super::placement::shutdown_signal().await;
    tracing::info!("leaving the cluster");
    let leave_timeout =
        Duration::from_millis(config.actors.drain_timeout_ms + LEAVE_ROUND_ALLOWANCE_MS);
    host.leave(leave_timeout).await;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        app: AppArgs,
    }

    fn app_args(args: &[&str]) -> AppArgs {
        Flags::try_parse_from(std::iter::once("host").chain(args.iter().copied()))
            .expect("valid flags")
            .app
    }

    const PROBES: &[&str] = &[
        "--enable-app-health-check",
        "--app-health-probe-interval",
        "2",
        "--app-health-probe-timeout",
        "300",
        "--app-health-threshold",
        "4",
    ];

    #[test]
    fn a_grpc_app_port_with_health_checks_is_probed_over_grpc() {
        let mut args = vec!["--app-protocol", "grpc", "--app-port", "7001"];
        args.extend_from_slice(PROBES);
        let app = app_args(&args);
        assert_eq!(app.http_app(), None, "a gRPC app is never called over HTTP");
        assert_eq!(
            app.grpc_app_health(),
            Some(GrpcAppHealthConfig {
                address: "127.0.0.1:7001".into(),
                probes: AppHealthConfig {
                    interval_ms: 2_000,
                    timeout_ms: 300,
                    threshold: 4,
                },
            })
        );
        let without = app_args(&["--app-protocol", "grpc", "--app-port", "7001"]);
        assert_eq!(without.grpc_app_health(), None, "off unless enabled");
    }

    #[derive(Parser)]
    struct AllFlags {
        #[command(flatten)]
        host: HostArgs,
    }

    #[test]
    fn health_checks_without_an_app_port_are_refused() {
        for protocol in ["http", "grpc"] {
            let flags = AllFlags::try_parse_from([
                "host",
                "--app-protocol",
                protocol,
                "--enable-app-health-check",
            ])
            .expect("valid flags");
            let error = flags.host.to_config().expect_err("no --app-port");
            assert!(error.to_string().contains("--app-port"), "{error}");
        }
    }

    #[test]
    fn an_http_app_gets_its_path_and_the_same_probe_settings() {
        let mut args = vec!["--app-port", "3000", "--app-health-check-path", "ready"];
        args.extend_from_slice(PROBES);
        let app = app_args(&args);
        assert_eq!(app.grpc_app_health(), None);
        let health = app
            .http_app()
            .and_then(|a| a.health)
            .expect("health checks");
        assert_eq!(health.path, "/ready");
        assert_eq!(
            (health.probes.interval_ms, health.probes.threshold),
            (2_000, 4)
        );
    }
}

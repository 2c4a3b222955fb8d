//! Host configuration: flags resolved by the CLI, plus per-actor-type defaults from the
//! `--config` YAML file, which an app's registration may override type by type.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Dapr's default: an actor unused for an hour is deactivated.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60 * 60 * 1000;
/// How often idle activations are looked for (Dapr: 30 s).
pub const DEFAULT_SCAN_INTERVAL_MS: u64 = 30_000;
/// How long a busy actor may finish its turn when it moves or its host leaves. Below the
/// placement round timeout (3 s), because a host acknowledges a new table only once its
/// moved actors are drained (Dapr drains for up to 60 s, without that guarantee).
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 2_000;
/// How long an app may take to answer one request.
pub const DEFAULT_CALL_TIMEOUT_MS: u64 = 60_000;
/// Deepest re-entrant nesting into one actor (Dapr: 32).
pub const DEFAULT_MAX_REENTRANCY_DEPTH: u32 = 32;
/// Default interval between a host's heartbeats to placement; several fit in one lease.
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 500;
/// The state store's component name when flags, not a component file, choose the store.
pub const DEFAULT_STATE_COMPONENT: &str = "statestore";
/// Largest request payload, in MiB (Dapr: 4).
pub const DEFAULT_MAX_REQUEST_SIZE_MB: usize = 4;

/// Options of one actor type, resolved: host defaults overridden by the registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeOptions {
    pub idle_timeout_ms: u64,
    pub drain_timeout_ms: u64,
    pub call_timeout_ms: u64,
    pub reentrancy: bool,
    pub max_reentrancy_depth: u32,
    /// Whether timer ticks keep the actor active, as Dapr's do. Off for Rookery's own types
    /// (as in Orleans, a timer alone does not keep an idle actor active); on for the types of
    /// an HTTP (Dapr) app.
    pub timers_keep_alive: bool,
}

impl TypeOptions {
    /// The first option that must be positive and is not, if any.
    pub fn invalid_field(&self) -> Option<&'static str> {
        [
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("call_timeout_ms", self.call_timeout_ms),
            ("drain_timeout_ms", self.drain_timeout_ms),
            ("max_reentrancy_depth", u64::from(self.max_reentrancy_depth)),
        ]
        .into_iter()
        .find(|(_, value)| *value == 0)
        .map(|(field, _)| field)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}

/// The `actors:` section of the `--config` file: defaults for every type.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActorDefaults {
    pub idle_timeout_ms: u64,
    pub scan_interval_ms: u64,
    pub drain_timeout_ms: u64,
    pub call_timeout_ms: u64,
    pub reentrancy: bool,
    pub max_reentrancy_depth: u32,
}

impl Default for ActorDefaults {
    fn default() -> Self {
        ActorDefaults {
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            scan_interval_ms: DEFAULT_SCAN_INTERVAL_MS,
            drain_timeout_ms: DEFAULT_DRAIN_TIMEOUT_MS,
            call_timeout_ms: DEFAULT_CALL_TIMEOUT_MS,
            reentrancy: false,
            max_reentrancy_depth: DEFAULT_MAX_REENTRANCY_DEPTH,
        }
    }
}

impl ActorDefaults {
    /// The options of a type whose registration sets nothing.
    pub fn type_options(&self) -> TypeOptions {
        TypeOptions {
            idle_timeout_ms: self.idle_timeout_ms,
            drain_timeout_ms: self.drain_timeout_ms,
            call_timeout_ms: self.call_timeout_ms,
            reentrancy: self.reentrancy,
            max_reentrancy_depth: self.max_reentrancy_depth,
            timers_keep_alive: false,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = if self.scan_interval_ms == 0 {
            Some("scan_interval_ms")
        } else {
            self.type_options().invalid_field()
        };
        match invalid {
            Some(field) => Err(ConfigError::Invalid(format!(
                "actors.{field} must be greater than 0"
            ))),
            None => Ok(()),
        }
    }
}

/// The whole `--config` file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigFile {
    pub actors: ActorDefaults,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {} is not valid: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// The sections of a Dapr `Configuration` resource's `spec` (daprd's). Rookery accepts them so
/// that a daprd configuration file works unchanged; none of them sets actor options (Dapr
/// apps give those in `GET /dapr/config`), so they are read and not applied.
pub const DAPR_CONFIGURATION_SECTIONS: &[&str] = &[
    "accessControl",
    "api",
    "appHttpPipeline",
    "components",
    "features",
    "httpPipeline",
    "logging",
    "metric",
    "metrics",
    "mtls",
    "nameResolution",
    "secrets",
    "tracing",
    "wasm",
    "workflow",
];

/// A Dapr `Configuration` resource (`apiVersion: dapr.io/v1alpha1`, `kind: Configuration`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DaprConfiguration {
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    #[allow(dead_code)]
    metadata: serde_yaml::Value,
    #[serde(default)]
    spec: serde_yaml::Mapping,
}

impl ConfigFile {
    /// Reads a `--config` file: Rookery's own (`actors:`) or a Dapr `Configuration` resource.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let parse_error = |message: String| ConfigError::Parse {
            path: path.to_owned(),
            message,
        };
        let value: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| parse_error(e.to_string()))?;
        if value.get("kind").and_then(|k| k.as_str()) == Some("Configuration") {
            let dapr: DaprConfiguration =
                serde_yaml::from_value(value).map_err(|e| parse_error(e.to_string()))?;
            if !dapr.api_version.starts_with("dapr.io/") {
                return Err(parse_error(format!(
                    "apiVersion {:?} is not a Dapr one (dapr.io/v1alpha1)",
                    dapr.api_version
                )));
            }
            for key in dapr.spec.keys() {
                let name = key.as_str().unwrap_or_default();
                if !DAPR_CONFIGURATION_SECTIONS.contains(&name) {
                    return Err(parse_error(format!(
                        "spec.{name} is not a section of a Dapr Configuration (known: {})",
                        DAPR_CONFIGURATION_SECTIONS.join(", ")
                    )));
                }
                tracing::info!(
                    section = name,
                    "Dapr Configuration section read and not applied"
                );
            }
            return Ok(ConfigFile::default());
        }
        let config: ConfigFile =
            serde_yaml::from_str(&text).map_err(|e| parse_error(e.to_string()))?;
        config.actors.validate()?;
        Ok(config)
    }
}

/// Everything a host node is started with.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// Unique among live hosts; defaults to the advertised address.
    pub host_id: String,
    pub app_id: String,
    /// Placement addresses; any member will do.
    pub placement: Vec<String>,
    /// Where the public gRPC services (Actors, AppChannel, reflection) listen.
    pub grpc_listen: String,
    /// Where `HostInternal` listens; `None`: on the gRPC listener.
    pub internal_listen: Option<String>,
    /// What other hosts and placement dial to reach this host (`host:port` of the gRPC
    /// listener).
    pub advertise_address: String,
    /// What other hosts dial to reach `HostInternal` when it has its own listener.
    pub internal_advertise_address: Option<String>,
    /// Where the HTTP API listens (Dapr's `/v1.0/*` and `/healthz`); `None` disables it.
    pub http_listen: Option<String>,
    /// Where Prometheus `/metrics` listens (`--metrics-port`); `None` disables it.
    pub metrics_listen: Option<String>,
    /// The app this host calls over HTTP (`--app-port`), if any. Apps may also connect over
    /// the gRPC `AppChannel` whatever this says.
    pub http_app: Option<HttpAppConfig>,
    /// Health checks of the gRPC app (`--app-protocol grpc --app-port P
    /// --enable-app-health-check`): `grpc.health.v1` probes of the app's port, covering every
    /// `AppChannel` connection of this host; `None`: off.
    pub grpc_app_health: Option<GrpcAppHealthConfig>,
    /// Required of clients on every API but health when set (`DAPR_API_TOKEN`): the
    /// `dapr-api-token` header or metadata.
    pub api_token: Option<String>,
    pub data_dir: PathBuf,
    pub max_request_bytes: usize,
    pub actors: ActorDefaults,
    pub heartbeat_interval_ms: u64,
    /// Where actor state lives (`--state-store`, or a component in `--resources-path`).
    pub state: crate::state::StoreConfig,
    /// The name of the state store's component (`metadata.name`), which resiliency
    /// component targets name; `statestore` when the store comes from flags.
    pub state_component: String,
    /// The Resiliency resources of `--resources-path` that apply to this app.
    pub resiliency: crate::resiliency::ResiliencyConfig,
    /// The cron input bindings of `--resources-path` that apply to this app (`bindings.cron`
    /// components, checked by `crate::bindings::component`).
    pub bindings: Vec<CronBindingConfig>,
    /// Serve actors with the last table even without a placement lease (as Dapr does):
    /// available through any placement outage, at the risk of two activations of one actor
    /// when this host is cut off from placement while others take its actors.
    pub serve_without_lease: bool,
}

impl Default for HostConfig {
    /// A host of one process on loopback, with no HTTP listeners: fill in at least
    /// `placement` and the addresses.
    fn default() -> Self {
        HostConfig {
            host_id: String::new(),
            app_id: String::new(),
            placement: Vec::new(),
            grpc_listen: "127.0.0.1:0".into(),
            internal_listen: None,
            advertise_address: String::new(),
            internal_advertise_address: None,
            http_listen: None,
            metrics_listen: None,
            http_app: None,
            grpc_app_health: None,
            api_token: None,
            data_dir: PathBuf::from(".rookery/host"),
            max_request_bytes: DEFAULT_MAX_REQUEST_SIZE_MB * 1024 * 1024,
            actors: ActorDefaults::default(),
            heartbeat_interval_ms: DEFAULT_HEARTBEAT_INTERVAL_MS,
            state: crate::state::StoreConfig::None,
            state_component: DEFAULT_STATE_COMPONENT.into(),
            resiliency: crate::resiliency::ResiliencyConfig::default(),
            bindings: Vec::new(),
            serve_without_lease: false,
        }
    }
}

/// One cron input binding (a `bindings.cron` component): this host sends its app an event
/// named `name` at every instant of `schedule` (UTC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronBindingConfig {
    /// The component's `metadata.name`: an HTTP app receives `POST /{name}`.
    pub name: String,
    pub schedule: rookery_core::jobs::JobSchedule,
}

/// An app that serves actor types over HTTP, as Dapr apps do (`--app-protocol http`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpAppConfig {
    /// `host:port` of the app (`--app-channel-address`, `--app-port`).
    pub address: String,
    /// Sent to the app as `dapr-api-token` when set (`APP_API_TOKEN`).
    pub app_api_token: Option<String>,
    /// App health checks (`--enable-app-health-check`), as daprd's; `None`: off.
    pub health: Option<HttpHealthConfig>,
}

/// The HTTP app's health checks: `GET path`, a 2xx answer is healthy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpHealthConfig {
    /// `--app-health-check-path` (daprd: `/healthz`).
    pub path: String,
    pub probes: AppHealthConfig,
}

/// The gRPC app's health checks: `grpc.health.v1.Health/Check` of the overall service
/// (`""`); `SERVING` is healthy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcAppHealthConfig {
    /// `host:port` of the app's health service (`--app-channel-address`, `--app-port`).
    pub address: String,
    pub probes: AppHealthConfig,
}

/// daprd's app health checks, whatever the protocol: a probe every interval; after
/// `threshold` failures in a row the app is unhealthy and its types are not served until a
/// probe succeeds again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppHealthConfig {
    /// `--app-health-probe-interval` (daprd: 5 s).
    pub interval_ms: u64,
    /// `--app-health-probe-timeout` (daprd: 500 ms).
    pub timeout_ms: u64,
    /// `--app-health-threshold`: failed probes in a row that make the app unhealthy (daprd: 3).
    pub threshold: u32,
}

impl HostConfig {
    /// The address other hosts forward calls to.
    pub fn internal_advertise_address(&self) -> String {
        self.internal_advertise_address
            .clone()
            .unwrap_or_else(|| self.advertise_address.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<ConfigFile, ConfigError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, text).expect("write");
        ConfigFile::load(&path)
    }

    #[test]
    fn a_dapr_configuration_is_accepted() {
        let config = load(
            "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: appconfig\nspec:\n  tracing:\n    samplingRate: \"1\"\n  features:\n  - name: ActorStateTTL\n    enabled: true\n",
        )
        .expect("valid");
        assert_eq!(config, ConfigFile::default());
    }

    #[test]
    fn unknown_dapr_sections_and_fields_are_named() {
        let error =
            load("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nspec:\n  tracng: {}\n")
                .expect_err("typo");
        assert!(error.to_string().contains("spec.tracng"), "{error}");
        let error = load("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nspek: {}\n")
            .expect_err("typo");
        assert!(error.to_string().contains("spek"), "{error}");
    }

    #[test]
    fn rookerys_own_file_is_checked() {
        let config = load("actors:\n  idle_timeout_ms: 5000\n").expect("valid");
        assert_eq!(config.actors.idle_timeout_ms, 5000);
        let error = load("actors:\n  idle_timeout_ms: 0\n").expect_err("zero");
        assert!(error.to_string().contains("idle_timeout_ms"), "{error}");
        let error = load("actors:\n  idle_timeout: 5\n").expect_err("unknown field");
        assert!(error.to_string().contains("idle_timeout"), "{error}");
    }
}

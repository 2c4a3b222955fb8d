//! Logging flags shared by every subcommand, and the subscriber they configure.
//!
//! Logs go to stderr, as text (the default) or as one JSON object per line. `RUST_LOG`, when
//! set, overrides `--log-level`. Text has ANSI colours only when stderr is a terminal and
//! `NO_COLOR` is unset or empty.
//!
//! Tracing: with `--otlp-endpoint`, the spans of Rookery's crates (a call's hops, see
//! `rookery_runtime::call::trace`) are exported over OTLP/gRPC by a batch processor
//! (`OTEL_BSP_*` variables tune it) on the tokio runtime, and the W3C trace-context
//! propagator continues the traces callers send. Without it nothing is exported.

use std::fmt;
use std::io::IsTerminal;
use std::sync::OnceLock;

use clap::{Args, ValueEnum};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::TracerProvider;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Crates whose info-level logs are noise for an operator: shown from warn up only.
const QUIET_CRATES: [&str; 5] = ["openraft", "sled", "h2", "tower", "hyper"];

/// The crates whose spans (and the events in them) are exported over OTLP.
const TRACED_CRATES: [&str; 4] = [
    "rookery",
    "rookery_runtime",
    "rookery_placement",
    "rookery_core",
];

/// The format [`init`] installed, for [`banner`].
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Log format: `text` (human-readable) or `json` (one object per line: timestamp, level,
    /// target, message and the event's fields).
    #[arg(
        long,
        global = true,
        env = "ROOKERY_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,

    /// Same as `--log-format json` (daprd's flag).
    #[arg(long, global = true, env = "ROOKERY_LOG_AS_JSON")]
    pub log_as_json: bool,

    /// Least severe level logged; `RUST_LOG`, when set, wins (it also takes per-crate
    /// directives such as `info,rookery_runtime=debug`).
    #[arg(
        long,
        global = true,
        env = "ROOKERY_LOG_LEVEL",
        value_enum,
        default_value_t = LogLevel::Info
    )]
    pub log_level: LogLevel,

    /// OTLP/gRPC endpoint spans are exported to (e.g. `http://127.0.0.1:4317`); none: no
    /// export.
    #[arg(long, global = true, env = "ROOKERY_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// The `service.name` of exported spans; default: the host's app id, else
    /// `rookery-host`, `rookery-placement` (the command's).
    #[arg(long, global = true, env = "ROOKERY_OTLP_SERVICE_NAME")]
    pub otlp_service_name: Option<String>,
}

/// The span exporter [`init`] installed, flushed by [`Tracing::shutdown`].
pub struct Tracing {
    provider: Option<TracerProvider>,
}

impl Tracing {
    /// Exports the spans still buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown() {
                eprintln!("warning: flushing spans to the OTLP endpoint failed: {e}");
            }
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

impl LogArgs {
    fn format(&self) -> LogFormat {
        if self.log_as_json {
            LogFormat::Json
        } else {
            self.log_format
        }
    }
}

/// The filter for `--log-level`: that level for everything, the noisy crates from warn up
/// (or error, when that is the level asked for).
fn default_directives(level: LogLevel) -> String {
    let quiet = if level == LogLevel::Error {
        "error"
    } else {
        "warn"
    };
    let mut directives = level.as_str().to_owned();
    for krate in QUIET_CRATES {
        directives.push_str(&format!(",{krate}={quiet}"));
    }
    directives
}

/// Whether text logs on stderr get colours: a terminal, and no `NO_COLOR` (any non-empty
/// value disables colour, per no-color.org).
fn use_ansi() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

/// The OTLP span exporter of `endpoint`, batched on the tokio runtime (enter it first).
fn otlp_provider(endpoint: &str, service_name: String) -> anyhow::Result<TracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    Ok(TracerProvider::builder()
        .with_batch_exporter(exporter, opentelemetry_sdk::runtime::Tokio)
        .with_resource(opentelemetry_sdk::Resource::new([KeyValue::new(
            "service.name",
            service_name,
        )]))
        .build())
}

/// Installs the global subscriber, and the OTLP exporter if `--otlp-endpoint` is set (its
/// spans named `default_service` unless `--otlp-service-name` says otherwise). Call once,
/// inside the tokio runtime, before anything logs.
pub fn init(args: &LogArgs, default_service: &str) -> Tracing {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_directives(args.log_level)));
    let format = args.format();
    let _ = FORMAT.set(format);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.with_ansi(use_ansi()).boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_ansi(false)
            .boxed(),
    };
    let mut failure = None;
    let provider = args.otlp_endpoint.as_deref().and_then(|endpoint| {
        let service = args
            .otlp_service_name
            .clone()
            .unwrap_or_else(|| default_service.to_owned());
        otlp_provider(endpoint, service)
            .map_err(|e| failure = Some(format!("cannot export spans to {endpoint:?}: {e:#}")))
            .ok()
    });
    let otel = provider.as_ref().map(|provider| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let traced = TRACED_CRATES.iter().fold(Targets::new(), |t, krate| {
            t.with_target(*krate, LevelFilter::INFO)
        });
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("rookery"))
            .with_filter(traced)
    });
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .init();
    if let Some(failure) = failure {
        tracing::warn!("{failure}");
    }
    Tracing { provider }
}

/// A server's start-up line (what it listens on): as is on stderr with text logs, an info
/// event with JSON logs, so that every line of a JSON log parses.
pub fn banner(line: fmt::Arguments<'_>) {
    if FORMAT.get() == Some(&LogFormat::Json) {
        tracing::info!("{line}");
    } else {
        eprintln!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_keep_noisy_crates_at_warn() {
        assert_eq!(
            default_directives(LogLevel::Debug),
            "debug,openraft=warn,sled=warn,h2=warn,tower=warn,hyper=warn"
        );
        assert_eq!(
            default_directives(LogLevel::Error),
            "error,openraft=error,sled=error,h2=error,tower=error,hyper=error"
        );
    }
}

//! Logging flags shared by every subcommand, and the subscriber they configure.
//!
//! Logs go to stderr, as text (the default) or as one JSON object per line. `RUST_LOG`, when
//! set, overrides `--log-level`. Text has ANSI colours only when stderr is a terminal and
//! `NO_COLOR` is unset or empty.

use std::fmt;
use std::io::IsTerminal;
use std::sync::OnceLock;

use clap::{Args, ValueEnum};

/// Crates whose info-level logs are noise for an operator: shown from warn up only.
const QUIET_CRATES: [&str; 5] = ["openraft", "sled", "h2", "tower", "hyper"];

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

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(args: &LogArgs) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_directives(args.log_level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let format = args.format();
    let _ = FORMAT.set(format);
    match format {
        LogFormat::Text => builder.with_ansi(use_ansi()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_ansi(false)
            .init(),
    }
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

//! Command-line front: parses flags (clap, each also readable from a `ROOKERY_*` variable),
//! sets up logging (`logging`: `--log-format`, `--log-level`), and hands over to the library's
//! `run` functions.
//!
//! Exit status: 0 on success, 1 on a runtime failure, 2 on bad usage (clap's convention).

mod certs;
mod host;
mod invoke;
mod jobs;
mod logging;
mod placement;
mod probe;
mod reminders;
mod state;
mod status;
mod tls;
mod token;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "rookery", version, about = "Virtual-actor cluster runtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: logging::LogArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a one-process development cluster: one placement node and one host.
    Up(up::UpArgs),
    /// Run a host node: serves actor types for apps and routes calls.
    Host(host::HostArgs),
    /// Call an actor method through a host.
    Invoke(invoke::InvokeArgs),
    /// Manage durable reminders (create, get, list, delete).
    Reminders(reminders::RemindersArgs),
    /// Manage the jobs of a host's app, Dapr's Jobs API (create, get, list, delete).
    Jobs(jobs::JobsArgs),
    /// Read actor state (get).
    State(state::StateArgs),
    /// Run one node of the Raft-replicated placement service.
    Placement(placement::PlacementArgs),
    /// Show the placement cluster: leader, term, members, table version, hosts.
    Status(status::StatusArgs),
    /// Make a development CA and node certificates for mutual TLS (init, issue).
    Certs(certs::CertsArgs),
    /// GET an HTTP URL; exit 0 on a 2xx answer, 1 otherwise (health checks without a shell).
    Probe(probe::ProbeArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tracing = {
        let _runtime = runtime.enter();
        logging::init(&cli.log, &service_name(&cli.command))
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => up::run(args).await,
            Command::Host(args) => host::run(args).await,
            Command::Invoke(args) => invoke::run(args).await,
            Command::Reminders(args) => reminders::run(args).await,
            Command::Jobs(args) => jobs::run(args).await,
            Command::State(args) => state::run(args).await,
            Command::Placement(args) => placement::run(args).await,
            Command::Status(args) => status::run(args).await,
            Command::Certs(args) => certs::run(args).await,
            Command::Probe(args) => probe::run(args).await,
        }
    });
    tracing.shutdown();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The `service.name` of a command's exported spans, by default.
fn service_name(command: &Command) -> String {
    match command {
        Command::Host(args) if !args.app_id.is_empty() => args.app_id.clone(),
        Command::Host(_) => "rookery-host".to_owned(),
        Command::Placement(_) => "rookery-placement".to_owned(),
        Command::Up(_) => "rookery-up".to_owned(),
        _ => "rookery".to_owned(),
    }
}

/// Parses a `host:port` address (a host name or an IP; port required).
pub fn parse_host_port(value: &str) -> Result<String, String> {
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| format!("{value:?} is not host:port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("{value:?} has no host"));
    }
    port.parse::<u16>()
        .map_err(|_| format!("{value:?} has no valid port (0-65535)"))?;
    Ok(value.to_owned())
}

//! `rookery up`: a one-process development cluster on embedded defaults: a single placement
//! node and one host, with their data under one directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rookery_core::net::TcpTransport;
use rookery_placement::node::{PlacementConfig, PlacementNode};
use rookery_runtime::host::Host;

use super::host::{AppArgs, HostArgs};

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Where the placement log and host data live.
    #[arg(long, env = "ROOKERY_DATA_DIR", default_value = ".rookery")]
    data_dir: PathBuf,
    /// Port of the placement service.
    #[arg(long, default_value_t = 50005)]
    placement_port: u16,
    /// Port of the host's gRPC API (clients and apps).
    #[arg(long, alias = "dapr-grpc-port", default_value_t = 50001)]
    grpc_port: u16,
    /// Port of the host's HTTP API (Dapr's /v1.0/... and /healthz).
    #[arg(long, alias = "dapr-http-port", default_value_t = 3500)]
    http_port: u16,
    /// Port of the host's Prometheus /metrics; 0 disables it.
    #[arg(long, default_value_t = 9090)]
    metrics_port: u16,
    /// Port of the host's internal (host-to-host) gRPC. Default 0: the system picks one, as
    /// a one-host cluster has no other host to call it.
    #[arg(long, alias = "dapr-internal-grpc-port", default_value_t = 0)]
    internal_port: u16,
    #[command(flatten)]
    app: AppArgs,
    /// IP the listeners bind to.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: std::net::IpAddr,
    /// YAML file of per-type defaults, as for `rookery host`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Largest request payload, in MB.
    #[arg(long, alias = "dapr-http-max-request-size", default_value_t = rookery_runtime::config::DEFAULT_MAX_REQUEST_SIZE_MB)]
    max_request_size: usize,
    /// Dapr component files, as for `rookery host` (default state store: sled under
    /// --data-dir).
    #[arg(long)]
    resources_path: Option<PathBuf>,
}

pub async fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let placement_addr = format!("{}:{}", args.bind_address, args.placement_port);
    let advertise_ip = if args.bind_address.is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        args.bind_address.to_string()
    };
    let mut placement_config = PlacementConfig::single_node(
        placement_addr.clone(),
        format!("{advertise_ip}:{}", args.placement_port),
        args.data_dir.join("placement"),
    );
    placement_config.cluster_name = "rookery-up".into();
    let placement = PlacementNode::start(placement_config, TcpTransport::shared())
        .await
        .context("cannot start the placement node")?;
    let host_args = HostArgs {
        placement: vec![format!("{advertise_ip}:{}", args.placement_port)],
        app_id: "rookery-up".into(),
        grpc_port: args.grpc_port,
        internal_port: args.internal_port,
        bind_address: args.bind_address,
        advertise_address: Some(format!("{advertise_ip}:{}", args.grpc_port)),
        internal_advertise_address: None,
        host_id: None,
        http_port: args.http_port,
        metrics_port: args.metrics_port,
        app: args.app,
        data_dir: args.data_dir.join("host"),
        config: args.config,
        max_request_size: args.max_request_size,
        heartbeat_interval_ms: rookery_runtime::config::DEFAULT_HEARTBEAT_INTERVAL_MS,
        resources_path: args.resources_path,
        state_store: None,
        state_connection_string: None,
        serve_without_lease: false,
        tls: Default::default(),
    };
    let host_config = host_args.to_config()?;
    let host = Host::start(host_config.clone(), TcpTransport::shared())
        .await
        .context("cannot start the host")?;
    println!("rookery up: a one-process cluster is running");
    println!("  placement      {}", placement.listen_addr());
    println!(
        "  host gRPC      {}   (Actors client API, AppChannel for apps, reflection)",
        host.grpc_addr()
    );
    if let Some(http) = host.http_addr() {
        println!("  host HTTP      http://{http}/v1.0/...   (Dapr's HTTP API; /healthz)");
    }
    if let Some(metrics) = host.metrics_addr() {
        println!("  host metrics   http://{metrics}/metrics");
    }
    if let Some(app) = &host_config.http_app {
        println!(
            "  app (HTTP)     http://{}   (GET /dapr/config, PUT /actors/...)",
            app.address
        );
    }
    println!("  data           {}", args.data_dir.display());
    println!();
    println!(
        "Connect an app, e.g.: cargo run --release --example counter -- --host {}",
        host.grpc_addr()
    );
    println!(
        "Then call an actor:   rookery invoke Counter/c1 increment --data '{{\"by\":1}}' --host {}",
        host.grpc_addr()
    );
    println!("Stop with Ctrl-C.");
    super::placement::shutdown_signal().await;
    tracing::info!("shutting down");
    host.shutdown().await;
    placement.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

//! The host's listeners and what is served on them: the public gRPC port (`Actors`,
//! `Reminders`, `AppChannel`, Dapr's actor RPCs, reflection of the public protocol), the
//! internal one (`HostInternal`, host-to-host; on its own port — `rookery host` always gives
//! one — and on the public port only for hosts configured without, as embedded tests do), the
//! HTTP API (Dapr's `/v1.0/...`, `/healthz`) and Prometheus `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rookery_core::net::{listen, Incoming};
use rookery_core::shutdown::Shutdown;
use rookery_proto::internal::v1::host_internal_server::HostInternalServer;
use rookery_proto::v1::actors_server::ActorsServer;
use rookery_proto::v1::app_channel_server::AppChannelServer;
use rookery_proto::v1::reminders_server::RemindersServer;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{HostError, HostTransports};
use crate::actors::activations::Activations;
use crate::actors::types::TypeRegistry;
use crate::api::actors::ActorsService;
use crate::api::dapr::grpc::{DaprGrpcService, DaprServer};
use crate::api::dapr::DaprActors;
use crate::api::probes::Probes;
use crate::api::reminders::ReminderApi;
use crate::channels::actor_api::ActorApi;
use crate::channels::app_grpc::{
    AppChannelService, APP_KEEPALIVE_INTERVAL_MS, APP_KEEPALIVE_TIMEOUT_MS, MAX_APP_MESSAGE_BYTES,
};
use crate::channels::triggers::TriggerSlot;
use crate::cluster::table::TableState;
use crate::config::HostConfig;
use crate::grpc::map_too_large;
use crate::metrics::HostMetrics;
use crate::routing::internal_service::HostInternalService;
use crate::routing::Router;

/// Room for the other fields of a request beyond its payload.
const REQUEST_ENVELOPE_BYTES: usize = 64 * 1024;

/// The gRPC listeners, bound before anything else starts (a taken port fails the start).
pub struct Listeners {
    grpc: (String, Incoming),
    internal: Option<(String, Incoming)>,
}

impl Listeners {
    pub async fn bind(
        config: &HostConfig,
        transports: &HostTransports,
    ) -> Result<Listeners, HostError> {
        let grpc = listen(&transports.public, &config.grpc_listen).await?;
        let internal = match &config.internal_listen {
            Some(addr) => Some(listen(&transports.internal, addr).await?),
            None => None,
        };
        Ok(Listeners { grpc, internal })
    }

    /// An internal port left to the system (`:0` advertised) is advertised as bound.
    pub fn advertise_bound_internal_port(&self, config: &mut HostConfig) {
        let (Some((bound, _)), Some(advertised)) =
            (&self.internal, &config.internal_advertise_address)
        else {
            return;
        };
        let (Some((host, "0")), Some((_, port))) =
            (advertised.rsplit_once(':'), bound.rsplit_once(':'))
        else {
            return;
        };
        config.internal_advertise_address = Some(format!("{host}:{port}"));
    }
}

/// Where the host ended up listening.
#[derive(Clone, Debug)]
pub struct Bound {
    pub grpc_addr: String,
    pub internal_addr: Option<String>,
    pub http_addr: Option<SocketAddr>,
    pub metrics_addr: Option<SocketAddr>,
}

/// What the servers serve.
pub struct Services {
    pub router: Arc<Router>,
    pub activations: Arc<Activations>,
    pub types: Arc<TypeRegistry>,
    pub metrics: Arc<HostMetrics>,
    pub api: ActorApi,
    /// Dapr's actor API, for its HTTP and gRPC front ends.
    pub dapr: DaprActors,
    pub probes: Probes,
    pub table: watch::Receiver<TableState>,
    /// Who receives the app's jobs and binding events (a gRPC app may ask to).
    pub triggers: TriggerSlot,
}

/// Starts every server; they stop when `shutdown` fires.
pub async fn serve(
    config: &HostConfig,
    listeners: Listeners,
    services: Services,
    shutdown: &Shutdown,
) -> Result<(Bound, Vec<JoinHandle<()>>), HostError> {
    let mut tasks = Vec::new();
    let decode_limit = config.max_request_bytes + REQUEST_ENVELOPE_BYTES;
    // Rookery's client APIs require the API token as Dapr's do; HostInternal, reflection
    // and health do not.
    let token = services.dapr.api_token().clone();
    let actors = ActorsServer::new(ActorsService::new(
        services.router.clone(),
        services.api.clone(),
        services.metrics.clone(),
    ))
    .max_decoding_message_size(decode_limit);
    let actors = token.guard(actors);
    let reminders = token.guard(RemindersServer::new(ReminderApi::new(
        services.api.reminders().clone(),
    )));
    let app_channel = AppChannelServer::new(AppChannelService::new(
        config.host_id.clone(),
        config.app_id.clone(),
        services.triggers.clone(),
        services.types.clone(),
        services.activations.clone(),
        config.actors.clone(),
        services.api.clone(),
        shutdown.clone(),
    ))
    .max_decoding_message_size(MAX_APP_MESSAGE_BYTES);
    let app_channel = token.guard(app_channel);
    let dapr = DaprServer::new(DaprGrpcService::new(services.dapr.clone()))
        .max_decoding_message_size(decode_limit);
    let internal = HostInternalServer::new(HostInternalService::new(services.router.clone()))
        .max_decoding_message_size(decode_limit);
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(rookery_proto::PUBLIC_FILE_DESCRIPTOR_SET)
    };
    let unbuildable = |e: tonic_reflection::server::Error| HostError::Reflection(e.to_string());
    let reflection_v1 = reflection().build_v1().map_err(unbuildable)?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(unbuildable)?;
    let public = tonic::transport::Server::builder()
        // gRPC apps' health: an app that stops answering pings loses its stream and types.
        .http2_keepalive_interval(Some(Duration::from_millis(APP_KEEPALIVE_INTERVAL_MS)))
        .http2_keepalive_timeout(Some(Duration::from_millis(APP_KEEPALIVE_TIMEOUT_MS)))
        .layer(tower::util::MapResponseLayer::new(map_too_large))
        .add_service(actors)
        .add_service(reminders)
        .add_service(app_channel)
        .add_service(dapr)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    let (grpc_addr, grpc_incoming) = listeners.grpc;
    let mut internal_addr = None;
    let public = match listeners.internal {
        None => public.add_service(internal),
        Some((addr, incoming)) => {
            internal_addr = Some(addr);
            let server = tonic::transport::Server::builder()
                .layer(tower::util::MapResponseLayer::new(map_too_large))
                .add_service(internal)
                .serve_with_incoming_shutdown(incoming, shutdown.fired());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = server.await {
                    tracing::error!(error = %e, "internal gRPC server failed");
                }
            }));
            public
        }
    };
    let server = public.serve_with_incoming_shutdown(grpc_incoming, shutdown.fired());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "gRPC server failed");
        }
    }));
    let http_addr = match &config.http_listen {
        Some(addr) => {
            let routes = crate::api::ops_http::health_routes(
                services.table.clone(),
                services.probes.clone(),
            )
            .merge(crate::api::dapr::http::routes(services.dapr.clone()));
            Some(serve_http(addr, routes, shutdown, &mut tasks).await?)
        }
        None => None,
    };
    let metrics_addr = match &config.metrics_listen {
        Some(addr) => {
            let routes = crate::api::ops_http::metrics_routes(services.metrics.clone());
            Some(serve_http(addr, routes, shutdown, &mut tasks).await?)
        }
        None => None,
    };
    let bound = Bound {
        grpc_addr,
        internal_addr,
        http_addr,
        metrics_addr,
    };
    Ok((bound, tasks))
}

/// Serves `routes` on `addr` until shutdown; returns the bound address.
async fn serve_http(
    addr: &str,
    routes: axum::Router,
    shutdown: &Shutdown,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<SocketAddr, HostError> {
    let (bound, task) = rookery_core::ops_http::serve(addr, routes, shutdown.fired()).await?;
    tasks.push(task);
    Ok(bound)
}

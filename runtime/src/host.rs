//! One host node: wires the placement session, the router, activations, the app channel,
//! the gRPC and HTTP listeners, and the background tasks (idle collection, ownership changes,
//! re-registration when served types change).
//!
//! Shutdown is explicit: [`Host::shutdown`] signals every task over one watch channel, ends
//! every activation (apps told), stops the servers and waits for them (bounded).

use std::sync::Arc;
use std::time::Duration;

use rookery_placement::net::SharedTransport;
use rookery_placement::table::HostInfo;
use rookery_proto::v1::actors_server::ActorsServer;
use rookery_proto::v1::app_channel_server::AppChannelServer;
use rookery_proto::v1::host_internal_server::HostInternalServer;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::activation::StopReason;
use crate::activations::Activations;
use crate::actor::{Actor, ActorChannel, ActorKey, Call};
use crate::app_channel::AppChannelService;
use crate::config::{HostConfig, TypeOptions};
use crate::embedded::EmbeddedChannel;
use crate::error::CallError;
use crate::metrics::HostMetrics;
use crate::placement_client::{PlacementClient, PlacementClientConfig};
use crate::router::Router;
use crate::services::{ActorsService, HostInternalService};
use crate::types::{Provider, TypeError, TypeRegistry};

/// Room for the other fields of a request beyond its payload.
const REQUEST_ENVELOPE_BYTES: usize = 64 * 1024;
/// Largest message an app may send its host (replies carry actor results).
pub const MAX_APP_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// How long shutdown waits for each task before aborting it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot listen on {addr}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid host configuration: {0}")]
    Config(String),
    #[error("cannot build the reflection service: {0}")]
    Reflection(String),
}

/// A running host.
pub struct Host {
    router: Arc<Router>,
    types: Arc<TypeRegistry>,
    activations: Arc<Activations>,
    metrics: Arc<HostMetrics>,
    _placement: Arc<PlacementClient>,
    grpc_addr: String,
    internal_addr: Option<String>,
    http_addr: Option<std::net::SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Answers tonic's own "message too large" (OUT_OF_RANGE) as RESOURCE_EXHAUSTED, the code
/// gRPC and Dapr use for an oversized request.
fn map_too_large<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let too_large = headers.get("grpc-status").is_some_and(|v| v == "11")
        && headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| {
                m.contains("message%20length%20too%20large")
                    || m.contains("message length too large")
            });
    if too_large {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    response
}

impl Host {
    pub async fn start(config: HostConfig, transport: SharedTransport) -> Result<Host, HostError> {
        if config.placement.is_empty() {
            return Err(HostError::Config(
                "at least one placement address is required".into(),
            ));
        }
        let metrics = Arc::new(HostMetrics::default());
        let types = Arc::new(TypeRegistry::default());
        let activations = Activations::new(types.clone(), metrics.clone());

        let (grpc_addr, grpc_incoming) =
            transport
                .bind(config.grpc_listen.clone())
                .await
                .map_err(|source| HostError::Listen {
                    addr: config.grpc_listen.clone(),
                    source,
                })?;
        let internal =
            match &config.internal_listen {
                Some(addr) => Some(transport.bind(addr.clone()).await.map_err(|source| {
                    HostError::Listen {
                        addr: addr.clone(),
                        source,
                    }
                })?),
                None => None,
            };

        let placement = Arc::new(PlacementClient::spawn(
            PlacementClientConfig {
                placement: config.placement.clone(),
                host: host_info(&config, Vec::new()),
                heartbeat_interval_ms: config.heartbeat_interval_ms,
            },
            transport.clone(),
        ));
        let table = placement.subscribe();
        let router = Arc::new(Router::new(
            config.host_id.clone(),
            table.clone(),
            activations.clone(),
            transport.clone(),
            config.max_request_bytes,
            metrics.clone(),
        ));

        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let decode_limit = config.max_request_bytes + REQUEST_ENVELOPE_BYTES;
        let actors = ActorsServer::new(ActorsService::new(router.clone(), metrics.clone()))
            .max_decoding_message_size(decode_limit);
        let app_channel = AppChannelServer::new(AppChannelService::new(
            config.host_id.clone(),
            types.clone(),
            activations.clone(),
            config.actors.clone(),
        ))
        .max_decoding_message_size(MAX_APP_MESSAGE_BYTES);
        let internal_service = HostInternalServer::new(HostInternalService::new(router.clone()))
            .max_decoding_message_size(decode_limit);
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(rookery_proto::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| HostError::Reflection(e.to_string()))?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(rookery_proto::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(|e| HostError::Reflection(e.to_string()))?;

        let public = tonic::transport::Server::builder()
            .layer(tower::util::MapResponseLayer::new(map_too_large))
            .add_service(actors)
            .add_service(app_channel)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        let mut internal_addr = None;
        let router_public = match internal {
            None => public.add_service(internal_service),
            Some((addr, incoming)) => {
                internal_addr = Some(addr);
                let mut stop = shutdown_rx.clone();
                let server = tonic::transport::Server::builder()
                    .layer(tower::util::MapResponseLayer::new(map_too_large))
                    .add_service(internal_service)
                    .serve_with_incoming_shutdown(incoming, async move {
                        let _ = stop.wait_for(|s| *s).await;
                    });
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = server.await {
                        tracing::error!(error = %e, "internal gRPC server failed");
                    }
                }));
                public
            }
        };
        let mut stop = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let served = router_public
                .serve_with_incoming_shutdown(grpc_incoming, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "gRPC server failed");
            }
        }));

        tasks.push(tokio::spawn(reregister_on_type_change(
            types.subscribe(),
            placement.clone(),
            config.clone(),
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(release_moved_actors(
            table.clone(),
            activations.clone(),
            config.host_id.clone(),
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(collect_idle(
            activations.clone(),
            Duration::from_millis(config.actors.scan_interval_ms),
            shutdown_rx.clone(),
        )));

        let http_addr = match &config.http_listen {
            Some(addr) => {
                let (bound, task) =
                    crate::http::serve(addr.clone(), table, metrics.clone(), shutdown_rx.clone())
                        .await
                        .map_err(|source| HostError::Listen {
                            addr: addr.clone(),
                            source,
                        })?;
                tasks.push(task);
                Some(bound)
            }
            None => None,
        };
        tracing::info!(host_id = %config.host_id, grpc = %grpc_addr, "host started");
        Ok(Host {
            router,
            types,
            activations,
            metrics,
            _placement: placement,
            grpc_addr,
            internal_addr,
            http_addr,
            shutdown,
            tasks,
        })
    }

    /// Registers an embedded Rust actor type; `options` default to the host's.
    pub fn register_actor<A, F>(
        &self,
        actor_type: &str,
        options: TypeOptions,
        factory: F,
    ) -> Result<(), TypeError>
    where
        A: Actor,
        F: Fn(&ActorKey) -> A + Send + Sync + 'static,
    {
        let factory = Arc::new(move |key: &ActorKey| Box::new(factory(key)) as Box<dyn Actor>);
        let channel: Arc<dyn ActorChannel> =
            Arc::new(EmbeddedChannel::new(factory, Arc::downgrade(&self.router)));
        self.types.register(
            Provider::Embedded,
            vec![(actor_type.to_owned(), channel, options)],
        )
    }

    /// Calls an actor anywhere in the cluster, as a client would.
    pub async fn invoke(
        &self,
        call: Call,
        timeout: Option<Duration>,
    ) -> Result<bytes::Bytes, CallError> {
        self.router.invoke(call, timeout).await
    }

    pub fn grpc_addr(&self) -> &str {
        &self.grpc_addr
    }

    pub fn internal_addr(&self) -> Option<&str> {
        self.internal_addr.as_deref()
    }

    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http_addr
    }

    pub fn metrics(&self) -> &Arc<HostMetrics> {
        &self.metrics
    }

    pub fn activations(&self) -> &Arc<Activations> {
        &self.activations
    }

    /// The table state as it changes.
    pub fn table(&self) -> watch::Receiver<crate::routing::TableState> {
        self._placement.subscribe()
    }

    /// Ends every activation (apps told), stops the servers and the background tasks.
    pub async fn shutdown(self) {
        self.activations.stop_all(StopReason::Shutdown).await;
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

fn host_info(config: &HostConfig, actor_types: Vec<String>) -> HostInfo {
    HostInfo {
        id: config.host_id.clone(),
        address: config.internal_advertise_address(),
        app_id: config.app_id.clone(),
        actor_types,
    }
}

/// Tells placement whenever the served types change (an app connects or leaves).
async fn reregister_on_type_change(
    mut names: watch::Receiver<Vec<String>>,
    placement: Arc<PlacementClient>,
    config: HostConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let current = names.borrow_and_update().clone();
        placement.update_registration(host_info(&config, current));
        tokio::select! {
            changed = names.changed() => if changed.is_err() { return },
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// On every new table, ends the activations this host no longer owns; their next calls go to
/// the new owner.
async fn release_moved_actors(
    mut table: watch::Receiver<crate::routing::TableState>,
    activations: Arc<Activations>,
    host_id: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut seen = None;
    loop {
        let current = table.borrow_and_update().table.clone();
        if let Some(current) = current {
            if seen != Some(current.version()) {
                seen = Some(current.version());
                let moved = activations.stop_where(StopReason::Moved, |key| {
                    current
                        .owner(&key.actor_type, &key.actor_id)
                        .is_none_or(|owner| owner.id != host_id)
                });
                if moved > 0 {
                    tracing::info!(moved, version = %current.version(), "releasing actors owned elsewhere now");
                }
            }
        }
        tokio::select! {
            changed = table.changed() => if changed.is_err() { return },
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Ends idle activations every `interval`.
async fn collect_idle(
    activations: Arc<Activations>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let collected = activations.collect_idle();
                if collected > 0 {
                    tracing::debug!(collected, "collecting idle actors");
                }
            }
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

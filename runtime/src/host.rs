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
use crate::placement_client::{
    ActiveActorsProbe, PlacementClient, PlacementClientConfig, UpdateHook,
};
use crate::placement_rpc::PlacementRpc;
use crate::reminder_api::{ReminderApi, ReminderClient};
use crate::reminder_scheduler::ReminderScheduler;
use crate::router::Router;
use crate::routing::{RoutingTable, ServingGate, TableState};
use crate::services::{ActorsService, HostInternalService};
use crate::types::{Provider, TypeError, TypeRegistry};
use rookery_proto::v1::reminders_server::RemindersServer;

/// Room for the other fields of a request beyond its payload.
const REQUEST_ENVELOPE_BYTES: usize = 64 * 1024;
/// Largest message an app may send its host (replies carry actor results).
pub const MAX_APP_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// How long a wake after a hand-off may take (it waits for the new owner's UNLOCK).
const WAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a leaving host waits for its wakes to be answered before it stops.
const LEAVE_WAKE_GRACE: Duration = Duration::from_secs(5);
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
    #[error("cannot open the state store")]
    State(#[source] crate::state::StateError),
}

/// A running host.
pub struct Host {
    router: Arc<Router>,
    reminders: ReminderClient,
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
        // The table state is created by the placement client below; activations need the
        // serving gate first, so the state channel is bridged through a cell.

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

        let activations_cell: Arc<std::sync::OnceLock<Arc<Activations>>> =
            Arc::new(std::sync::OnceLock::new());
        let hook_cell = activations_cell.clone();
        let host_id = config.host_id.clone();
        let on_update: UpdateHook = Arc::new(move |table| {
            let activations = hook_cell.get().cloned();
            let host_id = host_id.clone();
            Box::pin(async move {
                if let Some(activations) = activations {
                    drain_moved_actors(&activations, &table, &host_id).await;
                }
            })
        });
        let probe_cell = activations_cell.clone();
        let active_actors: ActiveActorsProbe =
            Arc::new(move || probe_cell.get().map(|a| a.len() as u64).unwrap_or(0));
        let placement = Arc::new(PlacementClient::spawn(
            PlacementClientConfig {
                placement: config.placement.clone(),
                host: host_info(&config, Vec::new()),
                heartbeat_interval_ms: config.heartbeat_interval_ms,
                on_update: Some(on_update),
                active_actors: Some(active_actors),
            },
            transport.clone(),
        ));
        let table = placement.subscribe();
        let gate = ServingGate::new(table.clone(), config.serve_without_lease);
        let state = crate::state::open(&config.state)
            .map_err(HostError::State)?
            .map(|store| {
                tracing::info!(store = store.kind(), "actor state store");
                crate::state::ActorStateAccess {
                    store,
                    max_transaction_bytes: config.max_request_bytes,
                }
            });
        let activations = Activations::new(types.clone(), metrics.clone(), gate.clone(), state);
        let _ = activations_cell.set(activations.clone());
        let router = Arc::new(Router::new(
            config.host_id.clone(),
            table.clone(),
            activations.clone(),
            transport.clone(),
            config.max_request_bytes,
            metrics.clone(),
            gate,
        ));

        let wake_router = Arc::downgrade(&router);
        activations.set_wake_hook(Arc::new(move |key: ActorKey| {
            let router = wake_router.clone();
            Box::pin(async move {
                let Some(router) = router.upgrade() else {
                    return;
                };
                let wake = Call {
                    method: "wake".into(),
                    data: bytes::Bytes::new(),
                    metadata: Default::default(),
                    call_chain_id: String::new(),
                    kind: crate::actor::CallKind::Wake,
                    key: key.clone(),
                };
                match router.invoke(wake, Some(WAKE_TIMEOUT)).await {
                    Ok(_) => tracing::debug!(actor = %key, "woke the actor on its new owner"),
                    Err(e) => tracing::warn!(actor = %key, error = %e, "cannot wake a handed-off actor; its timers resume on its next activation"),
                }
            })
        }));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let decode_limit = config.max_request_bytes + REQUEST_ENVELOPE_BYTES;
        let actors = ActorsServer::new(ActorsService::new(router.clone(), metrics.clone()))
            .max_decoding_message_size(decode_limit);
        let placement_rpc = Arc::new(PlacementRpc::new(
            config.placement.clone(),
            transport.clone(),
        ));
        let reminder_client = ReminderClient::new(placement_rpc.clone());
        let app_channel = AppChannelServer::new(
            AppChannelService::new(
                config.host_id.clone(),
                types.clone(),
                activations.clone(),
                config.actors.clone(),
            )
            .ending_on(shutdown_rx.clone())
            .with_reminders(reminder_client.clone()),
        )
        .max_decoding_message_size(MAX_APP_MESSAGE_BYTES);
        let internal_service = HostInternalServer::new(HostInternalService::new(router.clone()))
            .max_decoding_message_size(decode_limit);
        let reminders = RemindersServer::new(ReminderApi::new(reminder_client.clone()));
        tasks.push(tokio::spawn(
            ReminderScheduler::new(
                config.host_id.clone(),
                placement_rpc,
                router.clone(),
                metrics.clone(),
            )
            .run(table.clone(), shutdown_rx.clone()),
        ));
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
            .add_service(reminders)
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
        if !config.serve_without_lease {
            tasks.push(tokio::spawn(end_stale_activations(
                table.clone(),
                activations.clone(),
                shutdown_rx.clone(),
            )));
        }
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
            reminders: reminder_client,
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

    /// Durable reminders, for Rust code embedding this host.
    pub fn reminders(&self) -> &ReminderClient {
        &self.reminders
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

    /// Leaves the cluster gracefully, then shuts down: refuses new activations, asks
    /// placement to remove this host, waits (up to `timeout`) until the table without it is in
    /// force everywhere — its actors drained and deactivated on the way — and stops. Calls that
    /// arrive meanwhile are forwarded to the actors' new owners.
    pub async fn leave(self, timeout: Duration) {
        self.activations.close();
        self._placement.leave();
        let host_id = self.router.host_id().to_owned();
        let mut table = self._placement.subscribe();
        let removed = tokio::time::timeout(
            timeout,
            table.wait_for(|s| {
                !s.locked
                    && s.table
                        .as_ref()
                        .is_some_and(|t| t.table.host(&host_id).is_none())
            }),
        )
        .await;
        // Only whether it happened is kept: the watch guard must not outlive this statement
        // (the placement client writes the state while shutdown runs).
        let left = matches!(removed, Ok(Ok(_)));
        drop(removed);
        if left {
            self.activations.wakes_done(LEAVE_WAKE_GRACE).await;
            tracing::info!("left the cluster: this host's actors are served elsewhere");
        } else {
            tracing::warn!("placement did not confirm the leave in time; shutting down anyway");
        }
        self.shutdown().await;
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

/// Before a new table is acknowledged: ends the activations this host no longer owns and
/// waits for them (their turn in progress finishes, the app hears "deactivate"), up to the
/// longest drain timeout among them. Their new owners activate them only after UNLOCK, which
/// placement sends once every host acknowledged the UPDATE: the two never overlap, provided
/// turns end within the drain timeout.
async fn drain_moved_actors(activations: &Activations, table: &RoutingTable, host_id: &str) {
    let moved = activations.stop_where(StopReason::Moved, |key| {
        table
            .owner(&key.actor_type, &key.actor_id)
            .is_none_or(|owner| owner.id != host_id)
    });
    if moved.is_empty() {
        return;
    }
    let drain = moved
        .iter()
        .map(|a| a.options().drain_timeout())
        .max()
        .unwrap_or_default();
    tracing::info!(moved = moved.len(), version = %table.version(), "draining actors owned elsewhere now");
    let all_finished = futures::future::join_all(moved.iter().map(|a| a.finished()));
    if tokio::time::timeout(drain, all_finished).await.is_err() {
        tracing::warn!(version = %table.version(), "some moved actors did not finish within their drain timeout");
    }
}

/// Ends the activations of an older serving epoch. The epoch moves on when this host may
/// serve again after a lapse of its lease during which the table changed: placement may have
/// handed its actors to others meanwhile, so those activations are stale. (Their turns are
/// already refused by the activation itself; this tells the apps and frees memory.)
async fn end_stale_activations(
    mut table: watch::Receiver<TableState>,
    activations: Arc<Activations>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut epoch = table.borrow_and_update().epoch;
    loop {
        tokio::select! {
            changed = table.changed() => if changed.is_err() { return },
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let now_epoch = table.borrow_and_update().epoch;
        if now_epoch != epoch {
            epoch = now_epoch;
            let ended = activations.stop_where(StopReason::Moved, |_| true);
            tracing::warn!(
                ended = ended.len(),
                epoch,
                "lease renewed after the table changed: ending activations from before the lapse"
            );
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

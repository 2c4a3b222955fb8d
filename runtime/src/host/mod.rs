//! One host node. [`Host::start`] builds the layers bottom-up — the table state and the lease
//! gate, the activations, the placement session, the router, the actor-side API — then starts
//! the background tasks ([`tasks`]) and the servers ([`servers`]).
//!
//! Shutdown is explicit: [`Host::shutdown`] ends every activation (apps told), fires the
//! host's one shutdown signal, withdraws every type (releasing the channels and what they hold
//! of the host) and waits for every task (bounded). [`Host::leave`] first hands the host's
//! actors to others.

pub mod servers;
pub mod tasks;

use std::sync::Arc;
use std::time::Duration;

use rookery_core::net::SharedTransport;
use rookery_core::shutdown::{shutdown_signal, ShutdownTrigger};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::actors::activation::StopReason;
use crate::actors::activations::Activations;
use crate::actors::lifecycle::OwnedActors;
use crate::actors::types::{Provider, TypeError, TypeRegistry};
use crate::api::dapr::DaprActors;
use crate::api::probes::Probes;
use crate::call::{ActorKey, Call};
use crate::channels::actor_api::ActorApi;
use crate::channels::embedded::{Actor, EmbeddedChannel};
use crate::channels::triggers::{serve_triggers, AppTriggers, TriggerSlot};
use crate::cluster::leader_rpc::LeaderRpc;
use crate::cluster::lease::ServingGate;
use crate::cluster::placement_session::{PlacementSession, PlacementSessionConfig};
use crate::cluster::table::TableState;
use crate::config::{HostConfig, TypeOptions};
use crate::error::CallError;
use crate::jobs::JobsClient;
use crate::metrics::HostMetrics;
use crate::reminders::scheduler::ScheduleChanges;
use crate::reminders::ReminderClient;
use crate::resiliency::store::ResilientStore;
use crate::resiliency::Resiliency;
use crate::routing::router::RouterParts;
use crate::routing::Router;
use crate::state::ActorStateAccess;

/// How long a leaving host waits for its wakes to be answered before it stops.
const LEAVE_WAKE_GRACE: Duration = Duration::from_secs(5);
/// How long shutdown waits for each task before aborting it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Listen(#[from] rookery_core::net::ListenError),
    #[error("invalid host configuration: {0}")]
    Config(String),
    #[error("cannot build the reflection service: {0}")]
    Reflection(String),
    #[error("cannot open the state store")]
    State(#[source] crate::state::StateError),
}

/// The transports a host's connections go through.
#[derive(Clone)]
pub struct HostTransports {
    /// The public gRPC port (clients, apps, SDKs).
    pub public: SharedTransport,
    /// The internal port, and every connection to placement and to other hosts.
    pub internal: SharedTransport,
}

/// A running host.
pub struct Host {
    router: Arc<Router>,
    api: ActorApi,
    types: Arc<TypeRegistry>,
    activations: Arc<Activations>,
    metrics: Arc<HostMetrics>,
    placement: Arc<PlacementSession>,
    bound: servers::Bound,
    shutdown: ShutdownTrigger,
    tasks: Vec<JoinHandle<()>>,
    triggers: TriggerSlot,
    jobs: JobsClient,
    app_id: String,
    type_defaults: TypeOptions,
}

impl Host {
    /// Starts a host whose every connection, public or internal, goes through `transport`.
    pub async fn start(config: HostConfig, transport: SharedTransport) -> Result<Host, HostError> {
        Host::start_with(
            config,
            HostTransports {
                public: transport.clone(),
                internal: transport,
            },
        )
        .await
    }

    /// Starts a host with its public port on one transport and everything between nodes
    /// (its internal port, placement, other hosts) on another: with mutual TLS, the public
    /// port stays plaintext for apps and SDKs while no node talks to another in the clear.
    pub async fn start_with(
        mut config: HostConfig,
        transports: HostTransports,
    ) -> Result<Host, HostError> {
        if config.placement.is_empty() {
            return Err(HostError::Config(
                "at least one placement address is required".into(),
            ));
        }
        let listeners = servers::Listeners::bind(&config, &transports).await?;
        listeners.advertise_bound_internal_port(&mut config);
        let transport = transports.internal;
        let (shutdown, shutdown_rx) = shutdown_signal();
        let metrics = Arc::new(HostMetrics::default());
        let resiliency = Arc::new(Resiliency::new(
            &config.resiliency,
            &config.app_id,
            metrics.clone(),
        ));
        let types = Arc::new(TypeRegistry::default());
        let (table_tx, table) = watch::channel(TableState::default());
        let gate = ServingGate::new(table.clone(), config.serve_without_lease);
        let (activations, hand_offs) = Activations::new(
            types.clone(),
            metrics.clone(),
            gate.clone(),
            open_state(&config, &resiliency)?,
            resiliency.app().cloned(),
        );
        let placement = Arc::new(PlacementSession::spawn(
            PlacementSessionConfig {
                placement: config.placement.clone(),
                host: tasks::host_info(&config, Vec::new()),
                heartbeat_interval_ms: config.heartbeat_interval_ms,
            },
            transport.clone(),
            table_tx,
            Arc::new(OwnedActors::new(
                activations.clone(),
                config.host_id.clone(),
            )),
        ));
        let gate_for_probes = gate.clone();
        let router = Arc::new(Router::new(RouterParts {
            host_id: config.host_id.clone(),
            table: table.clone(),
            activations: activations.clone(),
            transport: transport.clone(),
            max_request_bytes: config.max_request_bytes,
            metrics: metrics.clone(),
            gate,
            resiliency,
        }));
        let leader_rpc = Arc::new(LeaderRpc::new(config.placement.clone(), transport));
        let (schedule_changes, schedule_changes_rx) = ScheduleChanges::channel();
        let api = ActorApi::new(
            router.clone(),
            ReminderClient::new(leader_rpc.clone(), schedule_changes.clone()),
        );
        let jobs = JobsClient::new(config.app_id.clone(), leader_rpc.clone(), schedule_changes);
        let triggers = TriggerSlot::default();

        let mut all_tasks = tasks::spawn(
            &config,
            tasks::TaskParts {
                router: router.clone(),
                activations: activations.clone(),
                hand_offs,
                placement: placement.clone(),
                leader_rpc,
                schedule_changes: schedule_changes_rx,
                metrics: metrics.clone(),
                types: types.subscribe(),
                types_registry: types.clone(),
                table: table.clone(),
                triggers: triggers.clone(),
            },
            &shutdown_rx,
        );
        let probes = Probes::new(
            table.clone(),
            gate_for_probes,
            activations.state().cloned(),
            shutdown_rx.clone(),
        );
        let (bound, server_tasks) = servers::serve(
            &config,
            listeners,
            servers::Services {
                router: router.clone(),
                activations: activations.clone(),
                types: types.clone(),
                metrics: metrics.clone(),
                api: api.clone(),
                dapr: DaprActors::new(
                    config.app_id.clone(),
                    router.clone(),
                    api.clone(),
                    types.clone(),
                    table.clone(),
                    config.api_token.clone(),
                    probes.clone(),
                    jobs.clone(),
                ),
                probes,
                table,
                triggers: triggers.clone(),
            },
            &shutdown_rx,
        )
        .await?;
        all_tasks.extend(server_tasks);
        tracing::info!(host_id = %config.host_id, grpc = %bound.grpc_addr, "host started");
        Ok(Host {
            router,
            api,
            types,
            activations,
            metrics,
            placement,
            bound,
            shutdown,
            tasks: all_tasks,
            triggers,
            jobs,
            app_id: config.app_id.clone(),
            type_defaults: config.actors.type_options(),
        })
    }

    /// Registers an embedded Rust actor type; `options` are checked as an app's are.
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
        let channel = Arc::new(EmbeddedChannel::new(factory, self.api.clone()));
        self.types.register(
            Provider::Embedded,
            vec![(actor_type.to_owned(), channel, options)],
        )
    }

    /// Makes embedded Rust code the receiver of this host's app's jobs (Jobs API) and input
    /// binding events: they are delivered to `triggers` while the host runs. Fails without
    /// an app id, or when an app of this host already receives them.
    pub fn serve_triggers(&self, triggers: Arc<dyn AppTriggers>) -> Result<(), TypeError> {
        if self.app_id.is_empty() {
            return Err(TypeError::NoAppId);
        }
        serve_triggers(
            &self.types,
            &self.triggers,
            Provider::Embedded,
            &self.app_id,
            self.type_defaults.clone(),
            triggers,
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
        self.api.reminders()
    }

    /// The jobs of this host's app id (Dapr's Jobs API), delivered to whoever receives the
    /// app's triggers ([`Host::serve_triggers`] for embedded code).
    pub fn jobs(&self) -> &JobsClient {
        &self.jobs
    }

    pub fn grpc_addr(&self) -> &str {
        &self.bound.grpc_addr
    }

    pub fn internal_addr(&self) -> Option<&str> {
        self.bound.internal_addr.as_deref()
    }

    /// Where the HTTP API (Dapr's `/v1.0/*`, `/healthz`) listens, if it does.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.bound.http_addr
    }

    /// Where Prometheus `/metrics` listens, if it does.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.bound.metrics_addr
    }

    pub fn metrics(&self) -> &Arc<HostMetrics> {
        &self.metrics
    }

    pub fn activations(&self) -> &Arc<Activations> {
        &self.activations
    }

    /// The table state as it changes.
    pub fn table(&self) -> watch::Receiver<TableState> {
        self.placement.subscribe()
    }

    /// Leaves the cluster gracefully, then shuts down: refuses new activations, asks
    /// placement to remove this host, waits (up to `timeout`) until the table without it is in
    /// force everywhere — its actors drained and deactivated on the way — and stops. Calls that
    /// arrive meanwhile are forwarded to the actors' new owners.
    pub async fn leave(self, timeout: Duration) {
        self.activations.close();
        self.placement.leave();
        let host_id = self.router.host_id().to_owned();
        let mut table = self.placement.subscribe();
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
        // (the placement session writes the state while shutdown runs).
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
        self.shutdown.fire();
        self.types.withdraw_all();
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// The host's actor state store, if it has one.
/// The state store, under its component's resiliency policies if any apply.
fn open_state(
    config: &HostConfig,
    resiliency: &Resiliency,
) -> Result<Option<ActorStateAccess>, HostError> {
    let store = crate::state::open(&config.state).map_err(HostError::State)?;
    Ok(store.map(|store| {
        tracing::info!(store = store.kind(), component = %config.state_component, "actor state store");
        let store = match resiliency.state_component(&config.state_component) {
            Some(policy) => ResilientStore::wrap(store, policy),
            None => store,
        };
        ActorStateAccess {
            store,
            max_transaction_bytes: config.max_request_bytes,
        }
    }))
}

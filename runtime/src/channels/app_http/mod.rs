//! The HTTP app channel: how the host serves the actor types of an app that speaks Dapr's
//! HTTP app protocol (`--app-port`, `--app-protocol http`), as apps written with the Dapr SDKs
//! do. Once the app answers `GET /dapr/config` ([`config`]), its types are registered (the
//! host re-registers with placement) and driven over HTTP ([`channel`], [`client`]). With
//! `--enable-app-health-check`, [`health`]'s probe then drives `channels::app_health`, which
//! suspends them while the app is unhealthy. The app also receives its jobs and binding
//! events ([`triggers`]).
//!
//! The host's HTTP API answers the app's own calls back (state, timers, reminders, other
//! actors) while a turn is in progress: they never queue behind the actor's turn.

pub mod channel;
pub mod client;
pub mod config;
pub mod health;
pub mod triggers;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use rookery_core::shutdown::Shutdown;

use crate::actors::activations::Activations;
use crate::actors::channel::ActorChannel;
use crate::actors::types::{AppGroup, Provider, TypeRegistry};
use crate::channels::app_grpc::MAX_APP_MESSAGE_BYTES;
use crate::channels::app_health::{self, HealthCheck};
use crate::channels::triggers::{serve_triggers, TriggerSlot};
use crate::config::{ActorDefaults, HttpAppConfig};
use crate::metrics::HostMetrics;

/// First and last pause between attempts to read the app's configuration.
pub const CONFIG_RETRY_MIN_MS: u64 = 100;
pub const CONFIG_RETRY_MAX_MS: u64 = 2_000;
/// How long one attempt may take.
pub const CONFIG_TIMEOUT_MS: u64 = 5_000;

/// Reads the app's `GET /dapr/config` until the app answers (or the host shuts down), then
/// registers its actor types; with health checks on, then probes the app until shutdown.
#[allow(clippy::too_many_arguments)]
pub async fn connect(
    app: HttpAppConfig,
    app_id: String,
    defaults: ActorDefaults,
    types: Arc<TypeRegistry>,
    activations: Arc<Activations>,
    metrics: Arc<HostMetrics>,
    trigger_slot: TriggerSlot,
    shutdown: Shutdown,
) {
    let client = client::AppHttpClient::new(&app, MAX_APP_MESSAGE_BYTES);
    let mut pause = Duration::from_millis(CONFIG_RETRY_MIN_MS);
    let mut attempts = 0u64;
    let body = loop {
        let headers = [
            ("content-type", "application/json".to_owned()),
            ("dapr-app-id", app_id.clone()),
        ];
        let attempt = tokio::time::timeout(
            Duration::from_millis(CONFIG_TIMEOUT_MS),
            client.send(Method::GET, "/dapr/config", &headers, Bytes::new()),
        );
        let answer = tokio::select! {
            answer = attempt => answer,
            _ = shutdown.fired() => return,
        };
        attempts += 1;
        match answer {
            Ok(Ok(response)) if response.status == StatusCode::OK => break Some(response.body),
            Ok(Ok(response)) => {
                // As daprd: an app that does not serve its configuration hosts no actors.
                tracing::warn!(app = %client.address(), status = %response.status, "GET /dapr/config did not answer 200: the app hosts no actor types");
                break None;
            }
            Ok(Err(e)) if attempts == 1 => {
                tracing::info!(error = %e, "waiting for the app to serve GET /dapr/config")
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "the app is not up yet"),
            Err(_) => tracing::debug!("GET /dapr/config timed out"),
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.fired() => return,
        }
        pause = (pause * 2).min(Duration::from_millis(CONFIG_RETRY_MAX_MS));
    };
    let config::AppActorConfig {
        types: app_types,
        warnings,
    } = match body.map(|body| config::read_app_config(&body, &defaults)) {
        Some(Ok(read)) => read,
        Some(Err(e)) => {
            tracing::error!(app = %client.address(), error = %e, "the app's actor configuration is unusable: it hosts no actor types");
            config::AppActorConfig::default()
        }
        None => config::AppActorConfig::default(),
    };
    for warning in warnings {
        tracing::warn!(app = %client.address(), "{warning}");
    }
    let names: Vec<String> = app_types.iter().map(|(n, _)| n.clone()).collect();
    let registrations: Vec<_> = app_types
        .into_iter()
        .map(|(name, options)| {
            let channel: Arc<dyn ActorChannel> = Arc::new(channel::HttpTypeChannel::new(
                client.clone(),
                options.reentrancy,
            ));
            (name, channel, options)
        })
        .collect();
    match types.register(Provider::HttpApp, registrations) {
        Ok(()) => {
            tracing::info!(app = %client.address(), types = ?names, "HTTP app registered its actor types")
        }
        Err(e) => {
            tracing::error!(app = %client.address(), error = %e, "cannot register the HTTP app's actor types");
            return;
        }
    }
    // The app receives its jobs and binding events, with or without actor types (as daprd
    // delivers them to any app).
    let app_triggers = Arc::new(triggers::HttpTriggers {
        client: client.clone(),
    });
    if app_id.is_empty() {
        tracing::info!(app = %client.address(), "no --app-id: the app receives no jobs");
    } else if let Err(e) = serve_triggers(
        &types,
        &trigger_slot,
        Provider::HttpApp,
        &app_id,
        defaults.type_options(),
        app_triggers,
    ) {
        tracing::error!(app = %client.address(), error = %e, "the HTTP app cannot receive its jobs");
    }
    metrics.app_healthy.set(1);
    if let Some(config) = app.health {
        let probe = health::HttpProbe {
            client,
            path: config.path,
            app_id,
        };
        let check = HealthCheck {
            config: config.probes,
            group: AppGroup::Http,
            types,
            activations,
            metrics,
        };
        app_health::run(probe, check, shutdown).await;
    }
}

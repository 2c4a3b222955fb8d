//! The gRPC app's health probe, as daprd's for `--app-protocol grpc`: with `--app-port P
//! --enable-app-health-check` the host calls `grpc.health.v1.Health/Check` for the overall
//! service (`""`) at `--app-channel-address:P`. `SERVING` is healthy; any other status
//! (`NOT_SERVING`, `UNKNOWN`, `SERVICE_UNKNOWN`), an error status, a refused connection or no
//! answer within `--app-health-probe-timeout` is a failure.
//!
//! The app connects into the host over `AppChannel.Connect`, so the probe's port is the one
//! thing the host dials. What the probes decide covers every `AppChannel` connection of this
//! host ([`AppGroup::Grpc`]): the loop, the threshold and the suspension of the types are
//! `channels::app_health`'s, shared with HTTP apps.

use std::sync::Arc;
use std::time::Duration;

use rookery_core::shutdown::Shutdown;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::actors::activations::Activations;
use crate::actors::types::{AppGroup, TypeRegistry};
use crate::channels::app_health::{self, HealthCheck, Probe};
use crate::config::GrpcAppHealthConfig;
use crate::metrics::HostMetrics;

/// `grpc.health.v1.Health/Check` of one address, over one lazily (re)connected channel.
pub struct GrpcHealthProbe {
    address: String,
    client: HealthClient<Channel>,
    timeout: Duration,
}

impl GrpcHealthProbe {
    /// A probe of `address` (`host:port`); each call is bounded by `timeout`, which the app is
    /// told (`grpc-timeout`). Connects on the first probe, and again after the app is lost.
    pub fn new(address: &str, timeout: Duration) -> Result<GrpcHealthProbe, String> {
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| format!("app address {address:?}: {e}"))?
            .connect_timeout(timeout)
            .tcp_nodelay(true);
        Ok(GrpcHealthProbe {
            address: address.to_owned(),
            client: HealthClient::new(endpoint.connect_lazy()),
            timeout,
        })
    }
}

impl Probe for GrpcHealthProbe {
    fn target(&self) -> String {
        format!("{} (grpc.health.v1)", self.address)
    }

    async fn check(&self) -> Result<(), String> {
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        request.set_timeout(self.timeout);
        let response = self
            .client
            .clone()
            .check(request)
            .await
            .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?;
        let status = response.into_inner().status;
        match ServingStatus::try_from(status) {
            Ok(ServingStatus::Serving) => Ok(()),
            Ok(other) => Err(other.as_str_name().to_owned()),
            Err(_) => Err(format!("unknown serving status {status}")),
        }
    }
}

/// Probes the gRPC app until the host shuts down, suspending the types of every `AppChannel`
/// connection while it is unhealthy.
pub async fn run(
    config: GrpcAppHealthConfig,
    types: Arc<TypeRegistry>,
    activations: Arc<Activations>,
    metrics: Arc<HostMetrics>,
    shutdown: Shutdown,
) {
    let timeout = Duration::from_millis(config.probes.timeout_ms);
    let probe = match GrpcHealthProbe::new(&config.address, timeout) {
        Ok(probe) => probe,
        Err(e) => {
            tracing::error!(error = %e, "cannot probe the gRPC app's health: health checks are off");
            return;
        }
    };
    tracing::info!(app = %probe.target(), interval_ms = config.probes.interval_ms, "probing the gRPC app's health");
    let check = HealthCheck {
        config: config.probes,
        group: AppGroup::Grpc,
        types,
        activations,
        metrics,
    };
    app_health::run(probe, check, shutdown).await;
}

#[cfg(test)]
mod tests {
    use tokio_stream::wrappers::TcpListenerStream;

    use super::*;

    const TIMEOUT: Duration = Duration::from_millis(500);

    /// A `grpc.health.v1` server on a free port, and the reporter that sets its statuses.
    async fn serve_health() -> (String, tonic_health::server::HealthReporter) {
        let (reporter, service) = tonic_health::server::health_reporter();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        (address, reporter)
    }

    #[tokio::test]
    async fn serving_is_healthy_and_every_other_status_is_not() {
        let (address, mut reporter) = serve_health().await;
        let probe = GrpcHealthProbe::new(&address, TIMEOUT).expect("probe");
        assert_eq!(probe.check().await, Ok(()));
        for (status, name) in [
            (tonic_health::ServingStatus::NotServing, "NOT_SERVING"),
            (tonic_health::ServingStatus::Unknown, "UNKNOWN"),
        ] {
            reporter.set_service_status("", status).await;
            assert_eq!(probe.check().await, Err(name.to_owned()));
        }
        reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        assert_eq!(probe.check().await, Ok(()), "healthy again, same channel");
        // Without the overall service the server answers NOT_FOUND.
        reporter.clear_service_status("").await;
        let error = probe.check().await.expect_err("no overall status");
        assert!(error.starts_with("NotFound"), "{error}");
    }

    #[tokio::test]
    async fn nothing_listening_is_a_failure_and_a_bad_address_is_refused() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("address").port()
        };
        let probe = GrpcHealthProbe::new(&format!("127.0.0.1:{port}"), TIMEOUT).expect("probe");
        let error = probe.check().await.expect_err("connection refused");
        assert!(error.starts_with("Unavailable"), "{error}");
        assert!(GrpcHealthProbe::new("not an address", TIMEOUT).is_err());
    }
}

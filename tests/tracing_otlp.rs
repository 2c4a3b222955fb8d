//! Tracing across hosts: a call made through one host with a W3C `traceparent`, to an actor
//! the other host owns, yields one trace of spans exported over OTLP by both hosts
//! (`--otlp-endpoint`): `actor.invoke` (child of the client's span) and `actor.forward` on the
//! first host, `actor.turn` and `app.invoke` on the owner; the owner's app receives a
//! `traceparent` of the same trace whose parent is `app.invoke`. Over HTTP (Dapr's HTTP API, an
//! HTTP app that records the headers it receives) and over gRPC (`Actors.Invoke` with gRPC
//! metadata, a `TestApp` on the `AppChannel` stream that answers with the metadata it heard).
//!
//! Real processes: one `rookery placement` and two `rookery host`s on loopback; the OTLP
//! collector is a `TraceService` served by this test, recording every span.

mod support;

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use rookery_proto::v1::InvokeRequest;
use serde_json::json;
use support::app::{actor_type, TestApp};
use support::app_server::AppServer;
use support::free_port;
use support::host_process::{start_placement, wait_for_routing, HostProcess};
use support::http::request;
use support::wait::{wait_until, DEADLINE};

/// One span as the collector received it.
#[derive(Clone, Debug)]
struct ReceivedSpan {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
}

/// An OTLP/gRPC trace collector recording every span.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(name) => Some(name.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(ReceivedSpan {
                        service: service.clone(),
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Collector {
    /// Serves the collector on a loopback port; returns its endpoint URL.
    async fn serve(&self) -> String {
        let port = free_port();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the collector");
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .expect("serve the collector");
        });
        format!("http://127.0.0.1:{port}")
    }

    fn of_trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        let spans = self.spans.lock().unwrap();
        spans
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }
}

/// What an app received: `(actor id, traceparent)` of each method call.
#[derive(Default)]
struct Received {
    name: &'static str,
    calls: Mutex<Vec<(String, String)>>,
}

/// An HTTP app serving the `Echo` type: every method answers with the app's name.
async fn start_app(name: &'static str) -> (AppServer, Arc<Received>) {
    let received = Arc::new(Received {
        name,
        ..Default::default()
    });
    let router = Router::new()
        .route(
            "/dapr/config",
            get(|| async { Json(json!({ "entities": ["Echo"] })) }),
        )
        .route(
            "/actors/:actor_type/:id/method/:method",
            put(
                |State(received): State<Arc<Received>>,
                 Path((_t, id, _m)): Path<(String, String, String)>,
                 headers: HeaderMap| async move {
                    let traceparent = headers
                        .get("traceparent")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    received.calls.lock().unwrap().push((id, traceparent));
                    received.name
                },
            ),
        )
        .route(
            "/actors/:actor_type/:id",
            delete(|| async { StatusCode::OK }),
        )
        .with_state(received.clone());
    (AppServer::start(router).await, received)
}

fn start_host(placement: String, app: &AppServer, id: &str, otlp: &str) -> HostProcess {
    HostProcess::builder(placement)
        .host_id(id)
        .arg("--app-port")
        .arg(app.port.to_string())
        .arg("--otlp-endpoint")
        .arg(otlp)
        .arg("--otlp-service-name")
        .arg(id)
        .start()
}

/// The one span named `name` of `service` among `spans`.
fn span<'a>(
    spans: &'a [ReceivedSpan],
    service: &str,
    name: &str,
) -> Result<&'a ReceivedSpan, String> {
    let found: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.service == service && s.name == name)
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        _ => Err(format!(
            "{} spans {name} of {service} in {spans:#?}",
            found.len()
        )),
    }
}

/// The client's span id, parent of every trace's `actor.invoke`.
const CLIENT_SPAN: &str = "b7ad6b7169203331";

/// The trace id and `traceparent` of the `n`th call (each call a trace of its own).
fn trace_of(n: u32) -> (String, String) {
    let trace_id = format!(
        "{:032x}",
        0x0af7_6519_16cd_43dd_8448_eb21_1c80_0000u128 + n as u128
    );
    let traceparent = format!("00-{trace_id}-{CLIENT_SPAN}-01");
    (trace_id, traceparent)
}

/// The parent span id of `traceparent`, checked to be of trace `trace_id`.
fn parent_in(traceparent: &str, trace_id: &str) -> String {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "traceparent {traceparent:?}");
    assert_eq!(parts[1], trace_id, "the app's traceparent {traceparent:?}");
    parts[2].to_owned()
}

/// Waits until the collector holds the spans of `trace_id` (host A: ingress and forward;
/// host B: turn and app request), and checks they form one tree under the client's span,
/// with `app_parent` (the parent the app heard) the app request's span.
async fn assert_one_tree(
    collector: &Collector,
    trace_id: &str,
    app_parent: &str,
    hosts: [&HostProcess; 2],
) {
    let (invoke, forward, turn, app) = wait_until(
        format!("the spans of trace {trace_id} from both hosts"),
        DEADLINE,
        || async {
            for host in hosts {
                host.assert_alive();
            }
            let spans = collector.of_trace(trace_id);
            let invoke = span(&spans, "host-a", "actor.invoke")?.clone();
            let forward = span(&spans, "host-a", "actor.forward")?.clone();
            let turn = span(&spans, "host-b", "actor.turn")?.clone();
            let app = span(&spans, "host-b", "app.invoke")?.clone();
            Ok((invoke, forward, turn, app))
        },
    )
    .await;
    assert_eq!(
        invoke.parent_span_id, CLIENT_SPAN,
        "actor.invoke: {invoke:?}"
    );
    assert_eq!(
        forward.parent_span_id, invoke.span_id,
        "actor.forward: {forward:?}"
    );
    assert_eq!(turn.parent_span_id, forward.span_id, "actor.turn: {turn:?}");
    assert_eq!(app.parent_span_id, turn.span_id, "app.invoke: {app:?}");
    assert_eq!(
        app_parent, app.span_id,
        "the app's parent span is app.invoke"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_spans_the_ingress_the_forward_the_owner_and_its_http_app() {
    // Exported batches leave every 200 ms (the hosts inherit the variable).
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "200");
    let collector = Collector::default();
    let otlp = collector.serve().await;

    let cluster = start_placement(1).await;
    let (server_a, app_a) = start_app("A").await;
    let (server_b, app_b) = start_app("B").await;
    let host_a = start_host(cluster.addr_list(), &server_a, "host-a", &otlp);
    let host_b = start_host(cluster.addr_list(), &server_b, "host-b", &otlp);
    host_a.wait_ready().await;
    host_b.wait_ready().await;
    wait_for_routing(&cluster, &[&host_a, &host_b], &["Echo"]).await;

    // Dapr's HTTP API on host A, the trace context in the headers, until app B answers.
    let mut forwarded = None;
    for n in 0..64u32 {
        let (trace_id, traceparent) = trace_of(n);
        let path = format!("/v1.0/actors/Echo/e{n}/method/who");
        let response = request(
            host_a.http_port,
            "PUT",
            &path,
            &[("traceparent", &traceparent)],
            b"{}",
        )
        .await
        .expect("call through host A");
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        if response.text() == "B" {
            forwarded = Some((format!("e{n}"), trace_id));
            break;
        }
    }
    let (actor_id, trace_id) = forwarded.expect("one of 64 actors lives on host B");
    assert_eq!(app_a.name, "A");

    // The owner's app heard the trace in its headers.
    let app_parent = {
        let calls = app_b.calls.lock().unwrap();
        let (_, traceparent) = calls
            .iter()
            .find(|(id, _)| *id == actor_id)
            .expect("app B received the call");
        parent_in(traceparent, &trace_id)
    };
    assert_one_tree(&collector, &trace_id, &app_parent, [&host_a, &host_b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_spans_grpc_calls_and_grpc_apps() {
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "200");
    let collector = Collector::default();
    let otlp = collector.serve().await;

    let cluster = start_placement(1).await;
    let start = |id: &str| {
        HostProcess::builder(cluster.addr_list())
            .host_id(id)
            .arg("--otlp-endpoint")
            .arg(&otlp)
            .arg("--otlp-service-name")
            .arg(id)
            .start()
    };
    let (host_a, host_b) = (start("host-a"), start("host-b"));
    host_a.wait_ready().await;
    host_b.wait_ready().await;
    let mut apps = Vec::new();
    for host in [&host_a, &host_b] {
        let app = TestApp::builder(&host.grpc_addr)
            .serve(actor_type("Counter"))
            .start();
        app.wait_registered().await;
        apps.push(app);
    }
    wait_for_routing(&cluster, &[&host_a, &host_b], &["Counter"]).await;

    // `Actors.Invoke` on host A, the trace context in the gRPC metadata, until an actor of
    // host B answers; the answer is the `traceparent` its app heard in `InvokeActor`.
    let mut forwarded = None;
    for n in 0..64u32 {
        let (trace_id, traceparent) = trace_of(n);
        let id = format!("c{n}");
        let mut call = tonic::Request::new(InvokeRequest {
            actor_type: "Counter".into(),
            actor_id: id.clone(),
            method: "traceparent".into(),
            ..Default::default()
        });
        call.metadata_mut()
            .insert("traceparent", traceparent.parse().expect("ascii"));
        let heard = host_a
            .actors()
            .invoke(call)
            .await
            .expect("call through host A")
            .into_inner()
            .data;
        let on_b = host_b.active_ids("Counter").await.expect("host B's actors");
        if on_b.contains(&id) {
            forwarded = Some((trace_id, String::from_utf8(heard).expect("utf-8")));
            break;
        }
    }
    let (trace_id, heard) = forwarded.expect("one of 64 actors lives on host B");
    let app_parent = parent_in(&heard, &trace_id);
    assert_one_tree(&collector, &trace_id, &app_parent, [&host_a, &host_b]).await;
}

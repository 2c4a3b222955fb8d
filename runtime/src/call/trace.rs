//! W3C trace context (`traceparent`, `tracestate`) across the hops of a call.
//!
//! A call's trace context travels in its metadata under the W3C names: an ingress copies the
//! client's headers (HTTP) or request metadata (gRPC) there, each hop starts its span as a
//! child of the context the metadata holds and writes its own span's context back, and the
//! app channels pass it to the app (HTTP headers, or the `InvokeActor` metadata). The spans:
//! `actor.invoke` (the router, where a call enters), `actor.forward` (a call sent to its
//! owner), `actor.turn` (the owner's turn) and `app.invoke` (the request to the app).
//!
//! The propagator is the process's global one (the CLI installs the W3C one with its OTLP
//! exporter). Without it, or without an OpenTelemetry layer, spans carry no context: the
//! client's `traceparent` then reaches the app unchanged.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry::trace::TraceContextExt;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::call::Call;

/// The W3C header of the trace and parent span ids.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header of vendor trace state.
pub const TRACESTATE: &str = "tracestate";
/// Both, in the order they are sent.
pub const TRACE_FIELDS: [&str; 2] = [TRACEPARENT, TRACESTATE];

/// Copies the trace context `get` finds (by lower-case header name) into `metadata`, unless
/// the metadata has its own.
pub fn carry<'a>(metadata: &mut HashMap<String, String>, get: impl Fn(&str) -> Option<&'a str>) {
    if metadata.contains_key(TRACEPARENT) {
        return;
    }
    for field in TRACE_FIELDS {
        if let Some(value) = get(field).filter(|v| !v.is_empty()) {
            metadata.insert(field.to_owned(), value.to_owned());
        }
    }
}

/// Makes `span` a child of the trace context in `metadata`, if it holds one (else the span
/// keeps its parent: the current span, or none).
pub fn set_parent(span: &Span, metadata: &HashMap<String, String>) {
    if !metadata.contains_key(TRACEPARENT) {
        return;
    }
    let carrier: HashMap<String, String> = TRACE_FIELDS
        .iter()
        .filter_map(|f| metadata.get(*f).map(|v| ((*f).to_owned(), v.clone())))
        .collect();
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
    if parent.span().span_context().is_valid() {
        span.set_parent(parent);
    }
}

/// Writes `span`'s trace context into `metadata`, replacing the one there, if the span has
/// one (it has none without an OpenTelemetry layer).
pub fn inject(span: &Span, metadata: &mut HashMap<String, String>) {
    if let Some(carrier) = context_of(span) {
        replace_context(metadata, carrier);
    }
}

/// [`inject`] into a call shared with others: it is copied only if the span has a context
/// to write.
pub fn inject_shared(span: &Span, call: &mut Arc<Call>) {
    if let Some(carrier) = context_of(span) {
        replace_context(&mut Arc::make_mut(call).metadata, carrier);
    }
}

/// `span`'s trace context as W3C fields, if it has one.
fn context_of(span: &Span) -> Option<HashMap<String, String>> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut carrier));
    carrier.contains_key(TRACEPARENT).then_some(carrier)
}

fn replace_context(metadata: &mut HashMap<String, String>, carrier: HashMap<String, String>) {
    metadata.remove(TRACESTATE);
    metadata.extend(carrier);
}

/// The trace headers of `metadata`, as an HTTP request to an app sends them.
pub fn headers(metadata: &HashMap<String, String>) -> Vec<(&'static str, String)> {
    TRACE_FIELDS
        .iter()
        .filter_map(|f| metadata.get(*f).map(|v| (*f, v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carried_headers_do_not_replace_the_metadata_s_own() {
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let mut metadata = HashMap::new();
        carry(&mut metadata, |name| match name {
            TRACEPARENT => Some(parent),
            TRACESTATE => Some(""),
            _ => None,
        });
        assert_eq!(metadata.get(TRACEPARENT).map(String::as_str), Some(parent));
        assert!(!metadata.contains_key(TRACESTATE));
        carry(&mut metadata, |_| Some("other"));
        assert_eq!(metadata.get(TRACEPARENT).map(String::as_str), Some(parent));
        assert_eq!(headers(&metadata), vec![(TRACEPARENT, parent.to_owned())]);
    }

    #[test]
    fn without_a_layer_spans_leave_the_metadata_alone() {
        let mut metadata: HashMap<String, String> =
            [(TRACEPARENT.to_owned(), "x".to_owned())].into();
        let span = tracing::info_span!("actor.invoke");
        set_parent(&span, &metadata);
        inject(&span, &mut metadata);
        assert_eq!(metadata.get(TRACEPARENT).map(String::as_str), Some("x"));
    }
}

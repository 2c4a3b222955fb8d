//! The actor types of an HTTP app, driven as daprd drives them: a method call is `PUT
//! /actors/{type}/{id}/method/{method}`, a reminder `PUT .../method/remind/{name}` with
//! `{data, dueTime, period}`, a timer `PUT .../method/timer/{name}` with `{data, callback,
//! dueTime, period}`, a deactivation `DELETE /actors/{type}/{id}`. There is no activation
//! request: the app creates the actor on its first call. An answer other than 200 is the
//! actor's error (`(status) body`, as daprd words it).
//!
//! An HTTP app cannot check a turn's `not_after_ms` fence: the host checks its lease before
//! it sends each request, and nothing after (see ARCHITECTURE.md, "Single activation").

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use http::{Method, StatusCode};
use rookery_core::schedule::format_duration_ms;
use tracing::Instrument;

use super::client::{encode_segment, AppHttpClient, AppHttpError};
use crate::actors::channel::{ActorChannel, ActorInstance, ReentrantInvoker};
use crate::call::{trace, ActorKey, Call, CallKind};
use crate::dapr_wire::{data_as_json, REENTRANCY_ID_HEADER};
use crate::error::CallError;

/// Set by an app on a 200 answer that is an actor error passed through as is.
const ERROR_RESPONSE_HEADER: &str = "x-daprerrorresponseheader";

/// One actor type of an HTTP app.
pub struct HttpTypeChannel {
    client: AppHttpClient,
    reentrancy: bool,
}

impl HttpTypeChannel {
    pub fn new(client: AppHttpClient, reentrancy: bool) -> HttpTypeChannel {
        HttpTypeChannel { client, reentrancy }
    }
}

impl ActorChannel for HttpTypeChannel {
    fn activate(
        &self,
        key: Arc<ActorKey>,
    ) -> BoxFuture<'static, Result<Box<dyn ActorInstance>, CallError>> {
        let instance = HttpInstance {
            client: self.client.clone(),
            key,
            reentrancy: self.reentrancy,
        };
        async move { Ok(Box::new(instance) as Box<dyn ActorInstance>) }.boxed()
    }
}

struct HttpInstance {
    client: AppHttpClient,
    key: Arc<ActorKey>,
    reentrancy: bool,
}

/// The request for one turn: method and path (encoded), and body.
fn turn_request(key: &ActorKey, call: &Call) -> (String, Bytes) {
    let actor = format!(
        "/actors/{}/{}",
        encode_segment(&key.actor_type),
        encode_segment(&key.actor_id)
    );
    match &call.kind {
        CallKind::Reminder(tick) => {
            let mut body = serde_json::Map::new();
            if let Some(data) = data_as_json(&call.data) {
                body.insert(
                    "data".into(),
                    serde_json::to_value(data).unwrap_or_default(),
                );
            }
            body.insert("dueTime".into(), "".into());
            let period = if tick.period_ms == 0 {
                String::new()
            } else {
                format_duration_ms(tick.period_ms)
            };
            body.insert("period".into(), period.into());
            (
                format!("{actor}/method/remind/{}", encode_segment(&tick.name)),
                Bytes::from(serde_json::Value::Object(body).to_string()),
            )
        }
        CallKind::Timer(tick) => {
            let mut body = serde_json::Map::new();
            if let Some(data) = data_as_json(&call.data) {
                body.insert(
                    "data".into(),
                    serde_json::to_value(data).unwrap_or_default(),
                );
            }
            body.insert("callback".into(), tick.callback.clone().into());
            body.insert("dueTime".into(), "".into());
            body.insert("period".into(), "".into());
            (
                format!("{actor}/method/timer/{}", encode_segment(&tick.name)),
                Bytes::from(serde_json::Value::Object(body).to_string()),
            )
        }
        // Job firings go to the jobs type's channel, never here.
        CallKind::Method | CallKind::Wake | CallKind::Job(_) => {
            let method: Vec<String> = call.method.split('/').map(encode_segment).collect();
            (
                format!("{actor}/method/{}", method.join("/")),
                call.data.clone(),
            )
        }
    }
}

/// What an app's answer to a turn means.
fn turn_result(
    answer: Result<super::client::AppResponse, AppHttpError>,
) -> Result<Bytes, CallError> {
    let response = answer.map_err(app_error)?;
    if response.status == StatusCode::OK && !response.headers.contains_key(ERROR_RESPONSE_HEADER) {
        return Ok(response.body);
    }
    let body = String::from_utf8_lossy(&response.body);
    if response.status == StatusCode::OK {
        return Err(CallError::Application(body.into_owned()));
    }
    Err(CallError::Application(format!(
        "({}) {body}",
        response.status.as_u16()
    )))
}

/// A request that got no answer: not retried when the app may have run it.
fn app_error(error: AppHttpError) -> CallError {
    match error {
        AppHttpError::Unreachable { .. } => CallError::Unavailable(error.to_string()),
        AppHttpError::NoAnswer { .. } => CallError::AppDisconnected(error.to_string()),
        AppHttpError::TooLarge { .. } => CallError::TooLarge(error.to_string()),
    }
}

async fn run_turn(
    client: AppHttpClient,
    key: Arc<ActorKey>,
    reentrancy: bool,
    call: Arc<Call>,
) -> Result<Bytes, CallError> {
    if call.kind == CallKind::Wake {
        return Ok(Bytes::new());
    }
    let (path, body) = turn_request(&key, &call);
    let span = tracing::info_span!("app.invoke", otel.kind = "client", http.path = %path);
    let mut call = call;
    trace::inject_shared(&span, &mut call);
    let mut headers = vec![("content-type", "application/json".to_owned())];
    if reentrancy && call.kind == CallKind::Method && !call.call_chain_id.is_empty() {
        headers.push((REENTRANCY_ID_HEADER, call.call_chain_id.clone()));
    }
    headers.extend(trace::headers(&call.metadata));
    turn_result(
        client
            .send(Method::PUT, &path, &headers, body)
            .instrument(span)
            .await,
    )
}

impl ActorInstance for HttpInstance {
    fn invoke(&mut self, call: Arc<Call>) -> BoxFuture<'_, Result<Bytes, CallError>> {
        run_turn(self.client.clone(), self.key.clone(), self.reentrancy, call).boxed()
    }

    fn reentrant_invoker(&self) -> Option<ReentrantInvoker> {
        if !self.reentrancy {
            return None;
        }
        let (client, key) = (self.client.clone(), self.key.clone());
        Some(Arc::new(move |call: Arc<Call>| {
            run_turn(client.clone(), key.clone(), true, call).boxed()
        }))
    }

    fn deactivate(self: Box<Self>) -> BoxFuture<'static, Result<(), CallError>> {
        async move {
            let path = format!(
                "/actors/{}/{}",
                encode_segment(&self.key.actor_type),
                encode_segment(&self.key.actor_id)
            );
            let answer = self
                .client
                .send(Method::DELETE, &path, &[], Bytes::new())
                .await;
            turn_result(answer).map(|_| ())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{ReminderTick, TimerTick};

    fn call(kind: CallKind, data: &[u8]) -> Call {
        Call {
            key: ActorKey::new("Counter", "c 1"),
            method: "Increment".into(),
            data: Bytes::copy_from_slice(data),
            metadata: Default::default(),
            call_chain_id: "chain".into(),
            kind,
        }
    }

    #[test]
    fn turns_become_daprs_requests() {
        let key = ActorKey::new("Counter", "c 1");
        let (path, body) = turn_request(&key, &call(CallKind::Method, b"5"));
        assert_eq!(path, "/actors/Counter/c%201/method/Increment");
        assert_eq!(body, Bytes::from_static(b"5"));

        let reminder = CallKind::Reminder(ReminderTick {
            name: "bump".into(),
            due_at_ms: 1,
            period_ms: 1000,
        });
        let (path, body) = turn_request(&key, &call(reminder, br#""AQ==""#));
        assert_eq!(path, "/actors/Counter/c%201/method/remind/bump");
        assert_eq!(
            body,
            Bytes::from_static(br#"{"data":"AQ==","dueTime":"","period":"1s"}"#)
        );

        let timer = CallKind::Timer(TimerTick {
            name: "tick".into(),
            callback: "on_tick".into(),
        });
        let (path, body) = turn_request(&key, &call(timer.clone(), br#"{"n":1}"#));
        assert_eq!(path, "/actors/Counter/c%201/method/timer/tick");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({"data": {"n": 1}, "callback": "on_tick", "dueTime": "", "period": ""})
        );
        // Bytes that are not JSON (Rookery's own API) arrive base64, as Go marshals bytes.
        let (_, body) = turn_request(&key, &call(timer, b"\x01"));
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["data"], "AQ==");
    }
}

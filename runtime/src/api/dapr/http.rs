//! Dapr's HTTP API (`/v1.0/...`, `/v1.0-alpha1/jobs/...`) on the host's HTTP port, as daprd
//! serves it for actors and jobs:
//!
//! | verbs | path | answer |
//! |---|---|---|
//! | any | `/v1.0/actors/{type}/{id}/method/{method}` | 200 with the actor's bytes |
//! | PUT, POST | `/v1.0/actors/{type}/{id}/state` (a transaction) | 204 |
//! | GET | `/v1.0/actors/{type}/{id}/state/{key}` | 200 raw JSON, 204 when missing |
//! | PUT, POST / GET / DELETE | `/v1.0/actors/{type}/{id}/reminders/{name}` | 204 / 200 JSON / 204 |
//! | PUT, POST / DELETE | `/v1.0/actors/{type}/{id}/timers/{name}` | 204 / 204 |
//! | GET | `/v1.0/healthz`, `/v1.0/healthz/outbound` | 204 when ready |
//! | GET | `/v1.0/metadata` | 200 JSON |
//! | POST / GET / DELETE | `/v1.0-alpha1/jobs/{name}` | 204 / 200 JSON / 204 (also when there was none) |
//! | GET | `/v1.0-alpha1/jobs` | 200 `{"jobs": [...]}`, by name (Rookery's; daprd lists jobs over gRPC only) |
//!
//! A job's JSON, both ways, is described in [`super::jobs`]; its errors in [`super::errors`].
//!
//! Errors are daprd's `{"errorCode", "message"}` ([`DaprError`]). With an API token set,
//! every route but the two health checks needs the `dapr-api-token` header (401 otherwise).
//! Bodies are bounded by `--max-request-size` (413).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::actors::{DaprActors, ReminderRegistration, API_TOKEN_HEADER, REENTRANCY_ID_HEADER};
use super::errors::{DaprError, JobOp};
use super::jobs;
use crate::api::probes::Report;
use crate::call::trace;
use crate::state::StateOp;

/// The routes of Dapr's HTTP API.
pub fn routes(actors: DaprActors) -> Router {
    let limit = actors.max_request_bytes();
    Router::new()
        .route("/v1.0/healthz", get(healthz))
        .route("/v1.0/healthz/outbound", get(healthz_outbound))
        .route("/v1.0/metadata", get(metadata))
        .route(
            "/v1.0/actors/:actor_type/:actor_id/method/*method",
            any(invoke),
        )
        .route(
            "/v1.0/actors/:actor_type/:actor_id/state",
            axum::routing::put(transact_state).post(transact_state),
        )
        .route(
            "/v1.0/actors/:actor_type/:actor_id/state/:key",
            get(get_state),
        )
        .route(
            "/v1.0/actors/:actor_type/:actor_id/reminders/:name",
            axum::routing::put(create_reminder)
                .post(create_reminder)
                .get(get_reminder)
                .delete(delete_reminder),
        )
        .route(
            "/v1.0/actors/:actor_type/:actor_id/timers/:name",
            axum::routing::put(create_timer)
                .post(create_timer)
                .delete(delete_timer),
        )
        .route("/v1.0-alpha1/jobs", get(list_jobs))
        .route(
            "/v1.0-alpha1/jobs/:name",
            post(schedule_job).get(get_job).delete(delete_job),
        )
        .layer(axum::middleware::from_fn_with_state(
            actors.clone(),
            require_token,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(actors)
}

/// Refuses requests without the API token (when one is set), but for health checks.
async fn require_token(State(actors): State<DaprActors>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let exempt = matches!(
        path,
        "/v1.0/healthz" | "/v1.0/healthz/outbound" | "/healthz"
    );
    let token = request
        .headers()
        .get(API_TOKEN_HEADER)
        .map(HeaderValue::as_bytes);
    if exempt || actors.token_accepted(token) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [("content-type", "text/plain; charset=utf-8")],
        "invalid api token\n",
    )
        .into_response()
}

/// A request body, or daprd's error for one that could not be read (413 when too large).
fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, DaprError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            DaprError::too_large(rejection.body_text())
        } else {
            DaprError::new(
                "ERR_BODY_READ",
                StatusCode::BAD_REQUEST,
                tonic::Code::InvalidArgument,
                format!("failed to read request body: {}", rejection.body_text()),
            )
        }
    })
}

/// A JSON body of `T`, or ERR_MALFORMED_REQUEST.
fn json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DaprError> {
    serde_json::from_slice(bytes).map_err(DaprError::malformed)
}

/// 204 for a healthy report, else daprd's error `code` naming the failing checks.
fn health(report: Report, code: &'static str, what: &str) -> Result<StatusCode, DaprError> {
    if report.ok() {
        return Ok(StatusCode::NO_CONTENT);
    }
    Err(DaprError::new(
        code,
        StatusCode::INTERNAL_SERVER_ERROR,
        tonic::Code::Internal,
        format!("{what}: {}", report.failures()),
    ))
}

/// Readiness (`/readyz`): 204, or ERR_HEALTH_NOT_READY.
async fn healthz(State(actors): State<DaprActors>) -> Result<StatusCode, DaprError> {
    health(
        actors.readiness().await,
        "ERR_HEALTH_NOT_READY",
        "dapr is not ready",
    )
}

/// Placement and the state store can be reached: 204, or ERR_OUTBOUND_HEALTH_NOT_READY.
async fn healthz_outbound(State(actors): State<DaprActors>) -> Result<StatusCode, DaprError> {
    health(
        actors.outbound().await,
        "ERR_OUTBOUND_HEALTH_NOT_READY",
        "dapr outbound is not ready",
    )
}

async fn metadata(State(actors): State<DaprActors>) -> Json<serde_json::Value> {
    let metadata = actors.metadata();
    let counts: Vec<serde_json::Value> = metadata
        .actors
        .iter()
        .map(|a| {
            let mut entry = serde_json::json!({"type": a.actor_type});
            if a.count > 0 {
                entry["count"] = a.count.into();
            }
            entry
        })
        .collect();
    Json(serde_json::json!({
        "id": metadata.app_id,
        "runtimeVersion": metadata.runtime_version,
        "enabledFeatures": [],
        "actors": counts,
        "components": [],
        "extended": {"daprRuntimeVersion": metadata.runtime_version},
        "actorRuntime": {
            "runtimeStatus": "RUNNING",
            "activeActors": counts,
            "hostReady": metadata.host_ready,
            "placement": if metadata.placement_connected {
                "placement: connected"
            } else {
                "placement: disconnected"
            },
        },
    }))
}

async fn invoke(
    State(actors): State<DaprActors>,
    Path((actor_type, actor_id, method)): Path<(String, String, String)>,
    headers: HeaderMap,
    data: Result<Bytes, BytesRejection>,
) -> Result<Response, DaprError> {
    let data = body(data)?;
    let reentrancy_id = headers
        .get(REENTRANCY_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let mut metadata = HashMap::new();
    trace::carry(&mut metadata, |name| {
        headers.get(name).and_then(|v| v.to_str().ok())
    });
    let answer = actors
        .invoke(
            &actor_type,
            &actor_id,
            &method,
            data,
            reentrancy_id,
            metadata,
        )
        .await?;
    Ok((
        StatusCode::OK,
        [("content-type", content_type_of(&answer))],
        answer,
    )
        .into_response())
}

/// What an actor's answer is, as far as the host can tell: apps answer JSON, as Dapr's SDKs
/// do; anything else is passed as bytes.
fn content_type_of(body: &[u8]) -> &'static str {
    if body.is_empty() || serde_json::from_slice::<&RawValue>(body).is_ok() {
        "application/json"
    } else {
        "application/octet-stream"
    }
}

/// One operation of a state transaction.
#[derive(Deserialize)]
struct StateOperation<'a> {
    operation: String,
    #[serde(borrow)]
    request: Option<StateOperationRequest<'a>>,
}

#[derive(Deserialize)]
struct StateOperationRequest<'a> {
    key: Option<String>,
    #[serde(borrow)]
    value: Option<&'a RawValue>,
    metadata: Option<HashMap<String, String>>,
}

/// A transaction body as Rookery's operations, or daprd's error for the first bad one.
fn state_operations(body: &[u8]) -> Result<Vec<StateOp>, DaprError> {
    let operations: Vec<StateOperation> = json(body)?;
    let invalid = |message: String| {
        DaprError::new(
            "ERR_ACTOR_STATE_TRANSACTION_SAVE",
            StatusCode::INTERNAL_SERVER_ERROR,
            tonic::Code::Internal,
            format!("error saving actor transaction state: {message}"),
        )
    };
    operations
        .into_iter()
        .map(|op| {
            let request = op
                .request
                .ok_or_else(|| invalid("request data is empty".into()))?;
            let key = request
                .key
                .filter(|k| !k.is_empty())
                .ok_or_else(|| invalid("missing key".into()))?;
            match op.operation.as_str() {
                "upsert" => {
                    let ttl_seconds = match request
                        .metadata
                        .as_ref()
                        .and_then(|m| m.get("ttlInSeconds"))
                    {
                        None => None,
                        Some(ttl) => Some(ttl.trim().parse::<u64>().map_err(|_| {
                            invalid(format!(
                                "ttlInSeconds {ttl:?} is not a whole number of seconds"
                            ))
                        })?),
                    };
                    let value = request.value.map(|v| v.get()).unwrap_or("null");
                    Ok(StateOp::Upsert {
                        key,
                        value: Bytes::copy_from_slice(value.as_bytes()),
                        ttl_seconds,
                    })
                }
                "delete" => Ok(StateOp::Delete { key }),
                "" => Err(invalid("operation is empty".into())),
                other => Err(invalid(format!("operation type {other} not supported"))),
            }
        })
        .collect()
}

async fn transact_state(
    State(actors): State<DaprActors>,
    Path((actor_type, actor_id)): Path<(String, String)>,
    data: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, DaprError> {
    let operations = state_operations(&body(data)?)?;
    actors
        .transact_state(&actor_type, &actor_id, operations)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_state(
    State(actors): State<DaprActors>,
    Path((actor_type, actor_id, key)): Path<(String, String, String)>,
) -> Result<Response, DaprError> {
    match actors.get_state(&actor_type, &actor_id, &key).await? {
        Some(value) if !value.is_empty() => Ok((
            StatusCode::OK,
            [("content-type", "application/json")],
            value,
        )
            .into_response()),
        _ => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// A reminder or timer registration body (keys as Dapr's SDKs send them).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Registration<'a> {
    due_time: Option<String>,
    period: Option<String>,
    ttl: Option<String>,
    callback: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    overwrite: Option<bool>,
}

/// The raw JSON of a registration's `data`; empty when absent.
fn raw_data(data: Option<&RawValue>) -> Bytes {
    data.map(|d| Bytes::copy_from_slice(d.get().as_bytes()))
        .unwrap_or_default()
}

fn registration(body: &[u8]) -> Result<Registration<'_>, DaprError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Registration::default());
    }
    json(body)
}

async fn create_reminder(
    State(actors): State<DaprActors>,
    Path((actor_type, actor_id, name)): Path<(String, String, String)>,
    data: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, DaprError> {
    let bytes = body(data)?;
    let r = registration(&bytes)?;
    let registration = ReminderRegistration {
        due_time: r.due_time.unwrap_or_default(),
        period: r.period.unwrap_or_default(),
        ttl: r.ttl.unwrap_or_default(),
        data: raw_data(r.data),
        overwrite: r.overwrite.unwrap_or(true),
    };
    actors
        .create_reminder(&actor_type, &actor_id, &name, registration)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_reminder(
    State(actors): State<DaprActors>,
    Path((actor_type, actor_id, name)): Path<(String, String, String)>,
) -> Result<Response, DaprError> {
    let reminder = actors.get_reminder(&actor_type, &actor_id, &name).await?;
    let mut body = serde_json::Map::new();
    body.insert("actorID".into(), actor_id.into());
    body.insert("actorType".into(), actor_type.into());
    if !reminder.data.is_empty() {
        let raw =
            serde_json::from_slice::<serde_json::Value>(&reminder.data).unwrap_or_else(|_| {
                // Data registered through another API as plain bytes: a base64 string, as Go
                // marshals bytes.
                serde_json::Value::String(crate::dapr_wire::base64(&reminder.data))
            });
        body.insert("data".into(), raw);
    }
    for (field, value) in [
        ("dueTime", reminder.due_time),
        ("period", reminder.period),
        ("ttl", reminder.ttl),
    ] {
        if !value.is_empty() {
            body.insert(field.into(), value.into());
        }
    }
    Ok(Json(serde_json::Value::Object(body)).into_response())
}

async fn delete_reminder(
    State(actors): State<DaprActors>,
    Path((actor_type, actor_id, name)): Path<(String, String, String)>,
) -> Result<StatusCode, DaprError> {
    actors
        .delete_reminder(&actor_type, &actor_id, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_timer(
    State(actors): State<DaprActors>,
    Path((actor_type, actor_id, name)): Path<(String, String, String)>,
    data: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, DaprError> {
    let bytes = body(data)?;
    let r = registration(&bytes)?;
    actors.create_timer(
        &actor_type,
        &actor_id,
        &name,
        r.due_time.as_deref().unwrap_or_default(),
        r.period.as_deref().unwrap_or_default(),
        r.ttl.as_deref().unwrap_or_default(),
        r.callback.as_deref().unwrap_or_default(),
        raw_data(r.data),
    )?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_timer(
    State(actors): State<DaprActors>,
    Path((actor_type, actor_id, name)): Path<(String, String, String)>,
) -> Result<StatusCode, DaprError> {
    actors.delete_timer(&actor_type, &actor_id, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn schedule_job(
    State(actors): State<DaprActors>,
    Path(name): Path<String>,
    data: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, DaprError> {
    let input = jobs::input_from_http(&name, &body(data)?)?;
    actors
        .jobs()
        .schedule(input, rookery_core::clock::now_ms())
        .await
        .map_err(|e| DaprError::job(JobOp::Schedule, e))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_job(
    State(actors): State<DaprActors>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, DaprError> {
    let name = jobs::url_name(&name);
    jobs::check_name(JobOp::Get, name)?;
    let spec = actors
        .jobs()
        .get(name)
        .await
        .map_err(|e| DaprError::job(JobOp::Get, e))?;
    Ok(Json(jobs::job_to_json(&jobs::job_to_wire(&spec))))
}

async fn list_jobs(State(actors): State<DaprActors>) -> Result<Json<serde_json::Value>, DaprError> {
    let mut specs = actors
        .jobs()
        .list()
        .await
        .map_err(|e| DaprError::job(JobOp::List, e))?;
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    let listed: Vec<serde_json::Value> = specs
        .iter()
        .map(|spec| jobs::job_to_json(&jobs::job_to_wire(spec)))
        .collect();
    Ok(Json(serde_json::json!({ "jobs": listed })))
}

async fn delete_job(
    State(actors): State<DaprActors>,
    Path(name): Path<String>,
) -> Result<StatusCode, DaprError> {
    let name = jobs::url_name(&name);
    jobs::check_name(JobOp::Delete, name)?;
    actors
        .jobs()
        .delete(name)
        .await
        .map_err(|e| DaprError::job(JobOp::Delete, e))?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactions_read_as_the_sdks_send_them() {
        let body = br#"[{"operation":"upsert","request":{"key":"count","value":5}},
            {"operation":"upsert","request":{"key":"tmp","value":{"a":1},"metadata":{"ttlInSeconds":"60"}}},
            {"operation":"delete","request":{"key":"x"}}]"#;
        let ops = state_operations(body).expect("valid");
        assert_eq!(
            ops,
            vec![
                StateOp::Upsert {
                    key: "count".into(),
                    value: Bytes::from_static(b"5"),
                    ttl_seconds: None
                },
                StateOp::Upsert {
                    key: "tmp".into(),
                    value: Bytes::from_static(br#"{"a":1}"#),
                    ttl_seconds: Some(60)
                },
                StateOp::Delete { key: "x".into() },
            ]
        );
    }

    #[test]
    fn bad_transactions_get_daprds_codes() {
        assert_eq!(
            state_operations(b"{not json").unwrap_err().code,
            "ERR_MALFORMED_REQUEST"
        );
        for body in [
            &br#"[{"operation":"merge","request":{"key":"k"}}]"#[..],
            br#"[{"operation":"upsert","request":{}}]"#,
            br#"[{"operation":"upsert"}]"#,
            br#"[{"operation":"upsert","request":{"key":"k","metadata":{"ttlInSeconds":"soon"}}}]"#,
        ] {
            assert_eq!(
                state_operations(body).unwrap_err().code,
                "ERR_ACTOR_STATE_TRANSACTION_SAVE",
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn registrations_keep_their_data_raw() {
        let body = br#"{"reminderName":"r","dueTime":"0h0m1s0ms0\u03bcs","period":null,"data":"aGVsbG8="}"#;
        let r = registration(body).expect("valid");
        assert_eq!(r.due_time.as_deref(), Some("0h0m1s0ms0\u{3bc}s"));
        assert_eq!(r.period, None);
        assert_eq!(raw_data(r.data), Bytes::from_static(br#""aGVsbG8=""#));
        assert!(registration(b"").expect("empty").data.is_none());
    }
}

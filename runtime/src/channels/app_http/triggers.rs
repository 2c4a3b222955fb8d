//! Jobs and binding events to an HTTP app, as daprd sends them: a job's firing is
//! `POST /job/{name}` with its data (JSON data as that JSON, any other payload as its bytes),
//! a binding's event `POST /{binding}` with the event's data and its metadata as headers. A
//! job's firing also carries the instant it was due in [`JOB_DUE_HEADER`] (Unix-epoch ms):
//! delivery is at least once, and name and instant identify a firing delivered again. Any
//! 2xx answer takes it; any other answer, or none, fails it (a job's failure policy decides
//! what follows).

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use http::Method;
use rookery_core::jobs::JSON_VALUE_TYPE_URL;

use super::client::{encode_segment, AppHttpClient, AppHttpError, AppResponse};
use crate::channels::triggers::{AppTriggers, BindingEvent, JobPayload, TriggerError};
use crate::dapr_wire::protobuf_value_to_json;

/// The header with the due instant of a job's firing, Unix-epoch ms (a Rookery addition:
/// apps written for daprd ignore it).
pub const JOB_DUE_HEADER: &str = "rookery-job-due-ms";

/// The triggers of the HTTP app of `--app-port`.
pub struct HttpTriggers {
    pub client: AppHttpClient,
}

/// The body an HTTP app receives for a job's payload.
pub fn job_body(payload: &JobPayload) -> Result<Bytes, TriggerError> {
    if payload.data_type_url == JSON_VALUE_TYPE_URL {
        let json = protobuf_value_to_json(&payload.data).map_err(TriggerError::NotDelivered)?;
        return Ok(Bytes::from(json.to_string()));
    }
    Ok(payload.data.clone())
}

fn outcome(answer: Result<AppResponse, AppHttpError>) -> Result<(), TriggerError> {
    let response = answer.map_err(|e| TriggerError::NotDelivered(e.to_string()))?;
    if response.status.is_success() {
        return Ok(());
    }
    Err(TriggerError::Refused(format!(
        "({}) {}",
        response.status.as_u16(),
        String::from_utf8_lossy(&response.body)
    )))
}

impl AppTriggers for HttpTriggers {
    fn job(&self, name: &str, payload: JobPayload) -> BoxFuture<'static, Result<(), TriggerError>> {
        let client = self.client.clone();
        let path = format!("/job/{}", encode_segment(name));
        async move {
            let body = job_body(&payload)?;
            let headers = [
                ("content-type", "application/json".to_owned()),
                (JOB_DUE_HEADER, payload.due_at_ms.to_string()),
            ];
            outcome(client.send(Method::POST, &path, &headers, body).await)
        }
        .boxed()
    }

    fn binding(
        &self,
        name: &str,
        event: BindingEvent,
    ) -> BoxFuture<'static, Result<(), TriggerError>> {
        let client = self.client.clone();
        let path = format!("/{}", encode_segment(name));
        async move {
            let mut headers: Vec<(&str, String)> =
                vec![("content-type", "application/json".to_owned())];
            headers.extend(event.metadata.iter().map(|(k, v)| (k.as_str(), v.clone())));
            outcome(client.send(Method::POST, &path, &headers, event.data).await)
        }
        .boxed()
    }
}

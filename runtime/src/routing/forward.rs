//! A call forwarded to its owner host over the internal protocol (`HostInternal.Forward`):
//! the one conversion of a [`Call`] to its wire form and back, the typed answer, and the
//! connections to peer hosts.
//!
//! What a forwarded call is for travels in its `kind` field and every outcome of the call in
//! the typed `ForwardResponse`, so no metadata key or message text carries meaning between
//! hosts. A gRPC error status means the forward itself failed (the owner was unreachable or
//! broke off mid-call).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use rookery_core::net::{self, SharedTransport};
use rookery_core::table::TableVersion;
use rookery_proto::internal::v1::host_internal_client::HostInternalClient;
use rookery_proto::internal::v1::{forward_response, ForwardKind, ForwardRequest, ForwardResponse};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::call::{ActorKey, Call, CallKind};
use crate::error::CallError;

/// A call as it travels to its owner, under the sender's table `version`, with `remaining`
/// of the caller's deadline.
pub fn to_wire(
    call: Call,
    version: TableVersion,
    remaining: Duration,
) -> Result<ForwardRequest, CallError> {
    let kind = match call.kind {
        CallKind::Method => ForwardKind::Method,
        CallKind::Wake => ForwardKind::Wake,
        // Reminder, timer and job firings run where they fire; they are never forwarded.
        CallKind::Reminder(_) | CallKind::Timer(_) | CallKind::Job(_) => {
            return Err(CallError::Internal(format!(
                "a {:?} turn of {} cannot be forwarded",
                call.kind, call.key
            )))
        }
    };
    Ok(ForwardRequest {
        actor_type: call.key.actor_type,
        actor_id: call.key.actor_id,
        method: call.method,
        data: call.data.to_vec(),
        metadata: call.metadata,
        table_version: version.0,
        call_chain_id: call.call_chain_id,
        timeout_ms: remaining.as_millis() as u64,
        kind: kind as i32,
    })
}

/// A forwarded call as its owner receives it, with the sender's table version.
pub fn from_wire(request: ForwardRequest) -> Result<(Call, TableVersion), CallError> {
    let kind = match ForwardKind::try_from(request.kind) {
        Ok(ForwardKind::Method) => CallKind::Method,
        Ok(ForwardKind::Wake) => CallKind::Wake,
        _ => {
            return Err(CallError::InvalidArgument(format!(
                "forward of unknown kind {}",
                request.kind
            )))
        }
    };
    let call = Call {
        key: ActorKey::new(request.actor_type, request.actor_id),
        method: request.method,
        data: Bytes::from(request.data),
        metadata: request.metadata,
        call_chain_id: request.call_chain_id,
        kind,
    };
    Ok((call, TableVersion(request.table_version)))
}

/// The owner's answer to a forwarded call.
pub fn answer(result: Result<Bytes, CallError>) -> ForwardResponse {
    let result = match result {
        Ok(data) => forward_response::Result::Data(data.to_vec()),
        Err(error) => forward_response::Result::Error(error.to_forward_error()),
    };
    ForwardResponse {
        result: Some(result),
    }
}

/// What the sender makes of the owner's answer.
fn read_answer(response: ForwardResponse) -> Result<Bytes, CallError> {
    match response.result {
        Some(forward_response::Result::Data(data)) => Ok(Bytes::from(data)),
        Some(forward_response::Result::Error(error)) => Err(CallError::from_forward_error(error)),
        None => Err(CallError::Internal("the owner sent an empty answer".into())),
    }
}

/// Connections to the other hosts, one per address, made on first use.
pub struct Peers {
    transport: SharedTransport,
    clients: Mutex<HashMap<String, HostInternalClient<Channel>>>,
}

impl Peers {
    pub fn new(transport: SharedTransport) -> Peers {
        Peers {
            transport,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Forwards `call` to the host at `address`, which `version` names as its owner.
    pub async fn forward(
        &self,
        address: &str,
        call: Call,
        version: TableVersion,
        deadline: Instant,
    ) -> Result<Bytes, CallError> {
        let mut client = self.client(address)?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut request = tonic::Request::new(to_wire(call, version, remaining)?);
        request.set_timeout(remaining);
        match client.forward(request).await {
            Ok(response) => read_answer(response.into_inner()),
            Err(status) => {
                let error = CallError::from_forward_status(&status);
                tracing::debug!(owner = address, ?status, %error, "forward failed");
                Err(error)
            }
        }
    }

    fn client(&self, address: &str) -> Result<HostInternalClient<Channel>, CallError> {
        let mut clients = self.clients.lock().expect("peers lock");
        if let Some(client) = clients.get(address) {
            return Ok(client.clone());
        }
        let channel = net::channel(&self.transport, address)
            .map_err(|e| CallError::Unavailable(format!("bad host address {address:?}: {e}")))?;
        let client = HostInternalClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        clients.insert(address.to_owned(), client.clone());
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{ReminderTick, TimerTick};

    fn call(kind: CallKind) -> Call {
        Call {
            key: ActorKey::new("Counter", "c1"),
            method: "increment".into(),
            data: Bytes::from_static(b"{}"),
            metadata: [("k".to_owned(), "v".to_owned())].into(),
            call_chain_id: "chain".into(),
            kind,
        }
    }

    #[test]
    fn methods_and_wakes_cross_unchanged() {
        for kind in [CallKind::Method, CallKind::Wake] {
            let wire = to_wire(
                call(kind.clone()),
                TableVersion(7),
                Duration::from_millis(250),
            )
            .expect("forwardable");
            assert_eq!(wire.timeout_ms, 250);
            let (back, version) = from_wire(wire).expect("valid");
            assert_eq!(version, TableVersion(7));
            assert_eq!(back.kind, kind);
            assert_eq!(back.key, ActorKey::new("Counter", "c1"));
            assert_eq!(back.metadata.get("k").map(String::as_str), Some("v"));
        }
    }

    #[test]
    fn a_client_metadata_key_never_turns_a_call_into_a_wake() {
        let mut method = call(CallKind::Method);
        method.metadata.insert("rookery-wake".into(), "1".into());
        let (back, _) =
            from_wire(to_wire(method, TableVersion(1), Duration::ZERO).unwrap()).expect("valid");
        assert_eq!(back.kind, CallKind::Method);
    }

    #[test]
    fn ticks_are_never_forwarded_and_unknown_kinds_are_refused() {
        let reminder = CallKind::Reminder(ReminderTick {
            name: "r".into(),
            due_at_ms: 1,
            period_ms: 0,
        });
        let timer = CallKind::Timer(TimerTick {
            name: "t".into(),
            callback: "cb".into(),
        });
        for kind in [reminder, timer] {
            assert!(to_wire(call(kind), TableVersion(1), Duration::ZERO).is_err());
        }
        let mut wire = to_wire(call(CallKind::Method), TableVersion(1), Duration::ZERO).unwrap();
        wire.kind = ForwardKind::Unspecified as i32;
        assert!(matches!(
            from_wire(wire),
            Err(CallError::InvalidArgument(_))
        ));
    }

    #[test]
    fn answers_carry_data_or_the_typed_error() {
        let ok = read_answer(answer(Ok(Bytes::from_static(b"5"))));
        assert_eq!(ok, Ok(Bytes::from_static(b"5")));
        let moved = read_answer(answer(Err(CallError::Moved("elsewhere".into()))));
        assert_eq!(moved, Err(CallError::Moved("elsewhere".into())));
    }
}

//! The operations of Dapr's actor API, shared by its HTTP and gRPC front ends: what each
//! checks, which Rookery part serves it, and which Dapr error it answers with.
//!
//! Reminder and timer `data` is kept as the raw JSON the client sent (Dapr's HTTP API takes any
//! JSON value; its gRPC API sends bytes, which daprd stores as a base64 JSON string), and
//! echoed back byte for byte, to the app on every firing and on GET.

use crate::jobs::JobsClient;
use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use rookery_core::schedule::{format_duration_ms, format_rfc3339_ms};
use rookery_proto::v1::{CreateActorReminderRequest, ReminderRef};
use tokio::sync::watch;

use super::errors::DaprError;
use crate::actors::activations::Activations;
use crate::actors::types::TypeRegistry;
use crate::api::probes::{Probes, Report};
use crate::api::token::ApiToken;
use crate::call::{ActorKey, Call, CallKind};
use crate::channels::actor_api::{ActorApi, TimerRequest};
use crate::cluster::table::TableState;
use crate::error::CallError;
use crate::routing::Router;
use crate::state::StateOp;

pub use crate::dapr_wire::{API_TOKEN_HEADER, REENTRANCY_ID_HEADER};
/// The version `GET /v1.0/metadata` reports.
pub const RUNTIME_VERSION: &str = concat!("rookery-", env!("CARGO_PKG_VERSION"));

/// One active-actors count of the metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveActors {
    pub actor_type: String,
    pub count: u64,
}

/// What `GetMetadata` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub app_id: String,
    pub runtime_version: &'static str,
    /// Every type this host serves, with how many of its actors are active here.
    pub actors: Vec<ActiveActors>,
    /// Whether a placement leader session is open.
    pub placement_connected: bool,
    /// Whether this host holds a table (it can route calls).
    pub host_ready: bool,
}

/// A reminder as Dapr's API returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaprReminder {
    /// The raw JSON registered (empty: none).
    pub data: Bytes,
    pub due_time: String,
    pub period: String,
    /// The expiry instant, RFC3339 (empty: none).
    pub ttl: String,
}

/// A reminder registration.
#[derive(Clone, Debug, Default)]
pub struct ReminderRegistration {
    pub due_time: String,
    pub period: String,
    pub ttl: String,
    /// Raw JSON (empty: none).
    pub data: Bytes,
    /// Replace an existing reminder of that name (Dapr's default).
    pub overwrite: bool,
}

/// The operations of Dapr's actor API on one host.
#[derive(Clone)]
pub struct DaprActors {
    app_id: String,
    router: Arc<Router>,
    api: ActorApi,
    types: Arc<TypeRegistry>,
    activations: Arc<Activations>,
    table: watch::Receiver<TableState>,
    api_token: ApiToken,
    probes: Probes,
    jobs: JobsClient,
}

/// Dapr's name check (`ValidateName`): no `# ? / \`, NUL or control bytes, not `.` or `..`.
pub fn validate_name(what: &str, name: &str) -> Result<(), DaprError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| matches!(c, '#' | '?' | '/' | '\\') || c.is_control());
    if bad {
        return Err(DaprError::bad_request(format!("invalid {what}: {name:?}")));
    }
    Ok(())
}

/// Dapr's method check (`NormalizeMethod`): no `# ?`, NUL or control bytes.
pub fn validate_method(method: &str) -> Result<(), DaprError> {
    if method.is_empty()
        || method
            .chars()
            .any(|c| matches!(c, '#' | '?') || c.is_control())
    {
        return Err(DaprError::bad_request(format!(
            "invalid actor method: {method:?}"
        )));
    }
    Ok(())
}

impl DaprActors {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        app_id: String,
        router: Arc<Router>,
        api: ActorApi,
        types: Arc<TypeRegistry>,
        table: watch::Receiver<TableState>,
        api_token: Option<String>,
        probes: Probes,
        jobs: JobsClient,
    ) -> DaprActors {
        DaprActors {
            app_id,
            activations: router.activations().clone(),
            router,
            api,
            types,
            table,
            api_token: ApiToken::new(api_token),
            probes,
            jobs,
        }
    }

    /// The jobs of this host's app (the Jobs API).
    pub fn jobs(&self) -> &JobsClient {
        &self.jobs
    }

    /// The largest payload the host accepts, in bytes.
    pub fn max_request_bytes(&self) -> usize {
        self.router.max_request_bytes()
    }

    /// Whether a request carrying `token` may use the API (always when no token is set).
    /// Compared in constant time.
    pub fn token_accepted(&self, token: Option<&[u8]>) -> bool {
        self.api_token.accepts(token)
    }

    /// The API token clients of this host must present.
    pub fn api_token(&self) -> &ApiToken {
        &self.api_token
    }

    /// The host's readiness (Dapr's `/v1.0/healthz`).
    pub async fn readiness(&self) -> Report {
        self.probes.readiness().await
    }

    /// What the host needs from outside (Dapr's `/v1.0/healthz/outbound`).
    pub async fn outbound(&self) -> Report {
        self.probes.outbound().await
    }

    fn key(actor_type: &str, actor_id: &str) -> Result<ActorKey, DaprError> {
        validate_name("actorType", actor_type)?;
        validate_name("actorId", actor_id)?;
        Ok(ActorKey::new(actor_type, actor_id))
    }

    /// Calls an actor method wherever the actor lives. `reentrancy_id` is Dapr's reentrancy
    /// id, Rookery's call chain (a fresh one when `None`); `metadata` the call's (the
    /// client's trace context, [`crate::call::trace`]).
    pub async fn invoke(
        &self,
        actor_type: &str,
        actor_id: &str,
        method: &str,
        data: Bytes,
        reentrancy_id: Option<String>,
        metadata: HashMap<String, String>,
    ) -> Result<Bytes, DaprError> {
        let key = DaprActors::key(actor_type, actor_id)?;
        validate_method(method)?;
        let call = Call {
            key,
            method: method.to_owned(),
            data,
            metadata,
            call_chain_id: reentrancy_id.unwrap_or_default(),
            kind: CallKind::Method,
        };
        self.router
            .invoke(call, None)
            .await
            .map_err(DaprError::invoke)
    }

    /// Applies a state transaction of an actor active on this host.
    pub async fn transact_state(
        &self,
        actor_type: &str,
        actor_id: &str,
        operations: Vec<StateOp>,
    ) -> Result<(), DaprError> {
        let key = DaprActors::key(actor_type, actor_id)?;
        if !self.api.has_state_store() {
            return Err(DaprError::no_state_store());
        }
        self.api
            .transact_state(&key, &operations)
            .await
            .map_err(DaprError::state_transaction)
    }

    /// Reads one key of an actor's state (active here or not, as daprd reads it).
    pub async fn get_state(
        &self,
        actor_type: &str,
        actor_id: &str,
        state_key: &str,
    ) -> Result<Option<Bytes>, DaprError> {
        let key = DaprActors::key(actor_type, actor_id)?;
        if !self.api.has_state_store() {
            return Err(DaprError::no_state_store());
        }
        self.api
            .read_state(&key, state_key)
            .await
            .map_err(DaprError::state_get)
    }

    /// Reminders are only for the types this host serves, as in Dapr.
    fn hosted(&self, actor_type: &str, actor_id: &str, name: &str) -> Result<(), DaprError> {
        DaprActors::key(actor_type, actor_id)?;
        validate_name("reminder name", name)?;
        if self.types.get(actor_type).is_none() {
            return Err(DaprError::reminder_not_hosted());
        }
        Ok(())
    }

    /// Creates (or, with `overwrite`, replaces) a reminder; once committed in placement.
    pub async fn create_reminder(
        &self,
        actor_type: &str,
        actor_id: &str,
        name: &str,
        registration: ReminderRegistration,
    ) -> Result<(), DaprError> {
        self.hosted(actor_type, actor_id, name)?;
        let request = CreateActorReminderRequest {
            reminder: Some(reminder_ref(actor_type, actor_id, name)),
            due_time: registration.due_time,
            period: registration.period,
            ttl: registration.ttl,
            data: registration.data.to_vec(),
            fail_if_exists: !registration.overwrite,
        };
        self.api
            .reminders()
            .create(request)
            .await
            .map(|_| ())
            .map_err(|status| {
                DaprError::reminder(
                    status,
                    "ERR_ACTOR_REMINDER_CREATE",
                    "error creating actor reminder",
                )
            })
    }

    /// A reminder as registered.
    pub async fn get_reminder(
        &self,
        actor_type: &str,
        actor_id: &str,
        name: &str,
    ) -> Result<DaprReminder, DaprError> {
        self.hosted(actor_type, actor_id, name)?;
        let info = self
            .api
            .reminders()
            .get(reminder_ref(actor_type, actor_id, name))
            .await
            .map_err(|status| {
                DaprError::reminder(
                    status,
                    "ERR_ACTOR_REMINDER_GET",
                    "error getting actor reminder",
                )
            })?;
        Ok(DaprReminder {
            data: Bytes::from(info.data),
            due_time: format_rfc3339_ms(info.due_at_ms),
            period: if info.period_ms == 0 {
                String::new()
            } else if info.repetitions > 0 {
                format!("R{}/{}", info.repetitions, iso_duration_ms(info.period_ms))
            } else {
                format_duration_ms(info.period_ms)
            },
            ttl: if info.expires_at_ms == 0 {
                String::new()
            } else {
                format_rfc3339_ms(info.expires_at_ms)
            },
        })
    }

    /// Deletes a reminder (none of that name is not an error, as in Dapr).
    pub async fn delete_reminder(
        &self,
        actor_type: &str,
        actor_id: &str,
        name: &str,
    ) -> Result<(), DaprError> {
        self.hosted(actor_type, actor_id, name)?;
        self.api
            .reminders()
            .delete(reminder_ref(actor_type, actor_id, name))
            .await
            .map(|_| ())
            .map_err(|status| {
                DaprError::reminder(
                    status,
                    "ERR_ACTOR_REMINDER_DELETE",
                    "error deleting actor reminder",
                )
            })
    }

    /// Registers a timer of an actor active on this host. `data` is raw JSON.
    #[allow(clippy::too_many_arguments)]
    pub fn create_timer(
        &self,
        actor_type: &str,
        actor_id: &str,
        name: &str,
        due_time: &str,
        period: &str,
        ttl: &str,
        callback: &str,
        data: Bytes,
    ) -> Result<(), DaprError> {
        let key = DaprActors::key(actor_type, actor_id)?;
        validate_name("timer name", name)?;
        self.api
            .register_timer(
                &key,
                TimerRequest {
                    name: name.to_owned(),
                    due_time: due_time.to_owned(),
                    period: period.to_owned(),
                    ttl: ttl.to_owned(),
                    callback: callback.to_owned(),
                    data,
                },
            )
            .map_err(DaprError::timer_create)
    }

    /// Stops a timer; never an error once the names are valid (as in Dapr).
    pub fn delete_timer(
        &self,
        actor_type: &str,
        actor_id: &str,
        name: &str,
    ) -> Result<(), DaprError> {
        let key = DaprActors::key(actor_type, actor_id)?;
        validate_name("timer name", name)?;
        match self.api.unregister_timer(&key, name) {
            Ok(_) | Err(CallError::NotActive(_)) => Ok(()),
            Err(other) => Err(DaprError::timer_create(other)),
        }
    }

    /// This host as `GetMetadata` describes it.
    pub fn metadata(&self) -> Metadata {
        let mut counts: std::collections::BTreeMap<String, u64> = self
            .types
            .subscribe()
            .borrow()
            .iter()
            .map(|t| (t.clone(), 0))
            .collect();
        for key in self.activations.list(None) {
            *counts.entry(key.actor_type).or_default() += 1;
        }
        let state = self.table.borrow();
        Metadata {
            app_id: self.app_id.clone(),
            runtime_version: RUNTIME_VERSION,
            actors: counts
                .into_iter()
                .map(|(actor_type, count)| ActiveActors { actor_type, count })
                .collect(),
            placement_connected: state.connected,
            host_ready: state.table.is_some(),
        }
    }
}

fn reminder_ref(actor_type: &str, actor_id: &str, name: &str) -> ReminderRef {
    ReminderRef {
        actor_type: actor_type.to_owned(),
        actor_id: actor_id.to_owned(),
        name: name.to_owned(),
    }
}

/// An ISO-8601 duration of whole milliseconds (`PT1.5S`), for periods with repetitions.
fn iso_duration_ms(ms: u64) -> String {
    let (seconds, millis) = (ms / 1000, ms % 1000);
    if millis == 0 {
        format!("PT{seconds}S")
    } else {
        let fraction = format!("{millis:03}");
        format!("PT{seconds}.{}S", fraction.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_as_dapr_checks_them() {
        for bad in [
            "", ".", "..", "a/b", "a?b", "a#b", "a\\b", "a\u{0}b", "a\nb",
        ] {
            assert!(validate_name("actorId", bad).is_err(), "{bad:?}");
        }
        for good in ["c1", "my actor", "ünï", "a.b"] {
            assert!(validate_name("actorId", good).is_ok(), "{good:?}");
        }
        assert!(validate_method("remind/x").is_ok());
        assert!(validate_method("a?b").is_err());
    }

    #[test]
    fn periods_with_repetitions_print_as_iso8601() {
        assert_eq!(
            format_rfc3339_ms(1_764_754_200_500),
            "2025-12-03T09:30:00.500Z"
        );
        assert_eq!(iso_duration_ms(1500), "PT1.5S");
        assert_eq!(iso_duration_ms(2000), "PT2S");
    }
}

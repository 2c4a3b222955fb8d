//! Routing a call to its actor: by the current table, to a local activation or to the owner
//! host's `HostInternal` service (see [`crate::routing::forward`]).
//!
//! The fence that keeps one activation per actor: a host activates an actor only if it owns
//! it under its current table and the table is not locked; a forwarded call carries the
//! sender's table version, and a receiver with an older table waits (bounded) for it; a
//! receiver that does not own the actor answers "moved".
//!
//! Around each attempt, the actor type's resiliency policies ([`crate::resiliency`]): its
//! circuit breakers admit it, its timeout bounds it, and its retry policy (by default the
//! built-in retries) says whether a failure is sent again. "Moved" is followed, with a short
//! back-off, until the caller's deadline, whatever the policies. A failure of a call that
//! may have run (an app error, a timeout, an owner lost mid-call) is never sent again.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rookery_core::limits::{
    validate_actor_type, TypeNameError, MAX_ACTOR_ID_BYTES, MAX_METHOD_BYTES,
};
use rookery_core::net::SharedTransport;
use rookery_core::table::TableVersion;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

use crate::actors::activations::Activations;
use crate::call::{deadline, new_call_chain_id, trace, Call};
use crate::cluster::lease::ServingGate;
use crate::cluster::table::{read_current, RoutingTable, TableState};
use crate::error::CallError;
use crate::metrics::HostMetrics;
use crate::resiliency::{BreakerKey, Resiliency};
use crate::routing::forward::Peers;
/// Deadline of a call whose caller set none.
pub const DEFAULT_INVOKE_TIMEOUT_MS: u64 = 60_000;
/// First and last pause before following a "moved" answer again.
pub const MOVED_BACKOFF_MIN_MS: u64 = 5;
pub const MOVED_BACKOFF_MAX_MS: u64 = 500;
/// How long a receiver waits for the sender's newer table before answering "unavailable".
pub const FORWARD_TABLE_WAIT_MS: u64 = 3_000;

/// Where a call's actor lives, under the table of `version`.
enum Owner {
    Here(TableVersion),
    There {
        host_id: String,
        address: String,
        version: TableVersion,
    },
}

pub struct Router {
    host_id: String,
    table: watch::Receiver<TableState>,
    activations: Arc<Activations>,
    peers: Peers,
    max_request_bytes: usize,
    metrics: Arc<HostMetrics>,
    gate: ServingGate,
    resiliency: Arc<Resiliency>,
}

fn validate(call: &Call, max_request_bytes: usize) -> Result<(), CallError> {
    validate_actor_type(&call.key.actor_type).map_err(|e| match e {
        TypeNameError::Empty => CallError::InvalidArgument("actor_type must not be empty".into()),
        other => CallError::InvalidArgument(other.to_string()),
    })?;
    if call.key.actor_id.is_empty() {
        return Err(CallError::InvalidArgument(
            "actor_id must not be empty".into(),
        ));
    }
    if call.key.actor_id.len() > MAX_ACTOR_ID_BYTES {
        return Err(CallError::InvalidArgument(format!(
            "actor_id is longer than {MAX_ACTOR_ID_BYTES} bytes"
        )));
    }
    if call.method.is_empty() {
        return Err(CallError::InvalidArgument(
            "method must not be empty".into(),
        ));
    }
    if call.method.len() > MAX_METHOD_BYTES {
        return Err(CallError::InvalidArgument(format!(
            "method is longer than {MAX_METHOD_BYTES} bytes"
        )));
    }
    if call.data.len() > max_request_bytes {
        return Err(CallError::TooLarge(format!(
            "request data of {} bytes is over the limit of {max_request_bytes} bytes (--max-request-size)",
            call.data.len()
        )));
    }
    Ok(())
}

/// What a router is made of.
pub struct RouterParts {
    pub host_id: String,
    pub table: watch::Receiver<TableState>,
    pub activations: Arc<Activations>,
    pub transport: SharedTransport,
    pub max_request_bytes: usize,
    pub metrics: Arc<HostMetrics>,
    pub gate: ServingGate,
    pub resiliency: Arc<Resiliency>,
}

impl Router {
    pub fn new(parts: RouterParts) -> Router {
        Router {
            host_id: parts.host_id,
            table: parts.table,
            activations: parts.activations,
            peers: Peers::new(parts.transport),
            max_request_bytes: parts.max_request_bytes,
            metrics: parts.metrics,
            gate: parts.gate,
            resiliency: parts.resiliency,
        }
    }

    /// The largest call payload this host accepts, in bytes (`--max-request-size`).
    pub fn max_request_bytes(&self) -> usize {
        self.max_request_bytes
    }

    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    pub fn activations(&self) -> &Arc<Activations> {
        &self.activations
    }

    /// The newest table, if any.
    pub fn table(&self) -> Option<Arc<RoutingTable>> {
        self.table.borrow().table.clone()
    }

    /// Calls an actor wherever it lives. `timeout` defaults to [`DEFAULT_INVOKE_TIMEOUT_MS`].
    /// The call's span (`actor.invoke`) continues the trace its metadata carries, if any.
    pub async fn invoke(
        &self,
        mut call: Call,
        timeout: Option<Duration>,
    ) -> Result<Bytes, CallError> {
        let span = tracing::info_span!(
            "actor.invoke",
            otel.kind = "server",
            actor_type = %call.key.actor_type,
            actor_id = %call.key.actor_id,
            method = %call.method,
            host_id = %self.host_id,
        );
        trace::set_parent(&span, &call.metadata);
        trace::inject(&span, &mut call.metadata);
        self.route(call, timeout).instrument(span).await
    }

    async fn route(&self, mut call: Call, timeout: Option<Duration>) -> Result<Bytes, CallError> {
        validate(&call, self.max_request_bytes)?;
        if call.call_chain_id.is_empty() {
            call.call_chain_id = new_call_chain_id();
        }
        let deadline =
            Instant::now() + timeout.unwrap_or(Duration::from_millis(DEFAULT_INVOKE_TIMEOUT_MS));
        // Shared with each attempt rather than copied: kept here to be sent again.
        let call = Arc::new(call);
        let policy = self.resiliency.actor(&call.key.actor_type);
        let mut retries = policy.retries();
        let mut moved_backoff = Duration::from_millis(MOVED_BACKOFF_MIN_MS);
        loop {
            let Some(owner) = self.locate(&call)? else {
                self.ready_table(deadline, TableVersion(0)).await?;
                continue;
            };
            let admission = policy.admit::<CallError>(BreakerKey {
                type_key: &call.key.actor_type,
                id_key: &call.key.actor_id,
            })?;
            let attempt_deadline = policy.attempt_deadline(deadline);
            let attempt = match owner {
                Owner::Here(version) => {
                    deadline::within(attempt_deadline, self.run_local(call.clone(), version))
                        .await
                        .unwrap_or_else(|_| {
                            Err(self.cut_off(&call, policy, deadline, attempt_deadline))
                        })
                }
                Owner::There {
                    host_id,
                    address,
                    version,
                } => {
                    self.metrics.forwarded_total.inc();
                    let span = tracing::info_span!(
                        "actor.forward",
                        otel.kind = "client",
                        owner = %host_id,
                        address = %address,
                    );
                    let mut forwarded_call = Call::clone(&call);
                    trace::inject(&span, &mut forwarded_call.metadata);
                    // Boxed: the forward's future is large, and inline it would grow every call's
                    // future, local ones too, by its size (each call moves its future a few times).
                    let forwarded = Box::pin(
                        self.peers
                            .forward(&address, forwarded_call, version, attempt_deadline)
                            .instrument(span),
                    )
                    .await;
                    match forwarded {
                        Err(CallError::DeadlineExceeded(_))
                            if Instant::now() >= attempt_deadline =>
                        {
                            Err(self.cut_off(&call, policy, deadline, attempt_deadline))
                        }
                        other => other,
                    }
                }
            };
            match &attempt {
                Err(CallError::Moved(_)) => admission.release(),
                _ => admission.record(&attempt),
            }
            let pause = match &attempt {
                Err(CallError::Moved(_)) if Instant::now() + moved_backoff < deadline => {
                    let pause = moved_backoff;
                    moved_backoff =
                        (moved_backoff * 2).min(Duration::from_millis(MOVED_BACKOFF_MAX_MS));
                    Some(pause)
                }
                Err(e) => retries.pause_after(e, Some(deadline)),
                Ok(_) => None,
            };
            match (pause, attempt) {
                (Some(pause), Err(e)) => {
                    tracing::debug!(actor = %call.key, error = %e, pause_ms = pause.as_millis() as u64, "sending the call again");
                    self.metrics.retries_total.inc();
                    tokio::time::sleep(pause).await;
                }
                (_, result) => return result,
            }
        }
    }

    /// The error of an attempt that ran out of time: the policy's timeout, or the caller's
    /// deadline.
    fn cut_off(
        &self,
        call: &Call,
        policy: &crate::resiliency::TargetPolicy,
        deadline: Instant,
        attempt_deadline: Instant,
    ) -> CallError {
        if attempt_deadline < deadline {
            policy.timed_out()
        } else {
            CallError::DeadlineExceeded(format!(
                "actor {} did not answer by the call's deadline",
                call.key
            ))
        }
    }

    /// Serves a call another host forwarded here under its table `sender_version`.
    pub async fn serve_forwarded(
        &self,
        call: Call,
        sender_version: TableVersion,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        validate(&call, self.max_request_bytes)?;
        let deadline = Instant::now() + timeout;
        let wait_until =
            deadline.min(Instant::now() + Duration::from_millis(FORWARD_TABLE_WAIT_MS));
        let table = match self.ready_table(wait_until, sender_version).await {
            Ok(table) => table,
            Err(_) => {
                return Err(CallError::Unavailable(format!(
                    "host {} has not yet received table {sender_version}",
                    self.host_id
                )))
            }
        };
        match table.owner(&call.key.actor_type, &call.key.actor_id) {
            Some(owner) if owner.id == self.host_id => {
                self.run_local(Arc::new(call), table.version()).await
            }
            Some(owner) => Err(CallError::Moved(format!(
                "actor {} is owned by host {} under table {}",
                call.key,
                owner.id,
                table.version()
            ))),
            None => Err(CallError::Moved(format!(
                "no host serves actor type {:?} under table {}",
                call.key.actor_type,
                table.version()
            ))),
        }
    }

    /// Runs a call (a reminder tick) on this host, if it owns the actor under its current
    /// table; "moved" otherwise.
    pub async fn fire_local(&self, call: Call) -> Result<Bytes, CallError> {
        let table = self
            .table()
            .ok_or_else(|| CallError::Unavailable("no placement table yet".into()))?;
        match table.owner(&call.key.actor_type, &call.key.actor_id) {
            Some(owner) if owner.id == self.host_id => {
                self.run_local(Arc::new(call), table.version()).await
            }
            _ => Err(CallError::Moved(format!(
                "actor {} is not owned here",
                call.key
            ))),
        }
    }

    /// Where the actor lives under the current table; `None` while there is no table or it
    /// is locked, `UnknownType` if no host serves its type. Read without taking the table's
    /// lock or count (see [`read_current`]).
    fn locate(&self, call: &Call) -> Result<Option<Owner>, CallError> {
        read_current(&self.table, |state| {
            let Some(table) = state.table.as_ref().filter(|_| !state.locked) else {
                return Ok(None);
            };
            match table.owner(&call.key.actor_type, &call.key.actor_id) {
                None => Err(CallError::UnknownType(call.key.actor_type.clone())),
                Some(owner) if owner.id == self.host_id => Ok(Some(Owner::Here(table.version()))),
                Some(owner) => Ok(Some(Owner::There {
                    host_id: owner.id.clone(),
                    address: owner.address.clone(),
                    version: table.version(),
                })),
            }
        })
    }

    /// Runs a call on this host, which owns the actor under table `version`.
    async fn run_local(&self, call: Arc<Call>, version: TableVersion) -> Result<Bytes, CallError> {
        // The table may have moved on while the call travelled: check ownership again against
        // the newest one, unlocked, before activating.
        let still_owner = read_current(&self.table, |current| {
            !current.locked
                && current.table.as_ref().is_some_and(|t| {
                    // The same table: its owner was just looked up.
                    t.version() == version
                        || (t.version() > version
                            && t.owner(&call.key.actor_type, &call.key.actor_id)
                                .is_some_and(|o| o.id == self.host_id))
                })
        });
        if !still_owner {
            return Err(CallError::Moved(format!("actor {} is moving", call.key)));
        }
        if !self.gate.is_open() {
            return Err(CallError::Unavailable(format!(
                "host {} holds no valid placement lease; actor {} is not served here",
                self.host_id, call.key
            )));
        }
        let activation = self.activations.get_or_activate(&call.key).await?;
        activation.call(call).await
    }

    /// The current table once it is unlocked and at least `min_version`, waiting up to
    /// `deadline`.
    async fn ready_table(
        &self,
        deadline: Instant,
        min_version: TableVersion,
    ) -> Result<Arc<RoutingTable>, CallError> {
        let ready = |s: &TableState| {
            !s.locked && s.table.as_ref().is_some_and(|t| t.version() >= min_version)
        };
        {
            let state = self.table.borrow();
            if ready(&state) {
                return Ok(state.table.clone().expect("checked by ready"));
            }
        }
        let mut table = self.table.clone();
        let ready = tokio::time::timeout_at(deadline, table.wait_for(ready)).await;
        match ready {
            Ok(Ok(state)) => Ok(state.table.clone().expect("checked above")),
            Ok(Err(_)) => Err(CallError::Unavailable("the host is shutting down".into())),
            Err(_) => {
                let state = self.table.borrow();
                let why = if state.table.is_none() {
                    "this host has not yet received a placement table"
                } else {
                    "the placement table stayed locked"
                };
                Err(CallError::Unavailable(format!(
                    "{why} until the call's deadline"
                )))
            }
        }
    }
}

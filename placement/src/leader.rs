//! What the placement leader does: keep host sessions, detect failed hosts, turn membership
//! changes into Raft commands, and disseminate each new table in LOCK → UPDATE → UNLOCK rounds.
//!
//! Every placement node has a [`Coordinator`]; only the leader's does anything. Host sessions
//! are soft state of the leader: they are lost with it, and hosts reconnect to the next leader,
//! which gives them a grace period (the host timeout) before removing absent hosts.
//!
//! One dissemination task per leadership term serializes all table deliveries, so a host sees
//! orders of one round at a time and versions that only grow:
//! 1. pending changes (registrations, departures) wait `debounce_ms`, then become one
//!    `ChangeMembership` command; once committed, a round runs for its version;
//! 2. a round sends LOCK to every session and waits for every ack (up to `round_timeout_ms`),
//!    then UPDATE, then UNLOCK; a session that does not ack in time is dropped and its host
//!    removed in the next change;
//! 3. sessions that have not acknowledged the current table (new hosts, reconnects, hosts
//!    without actor types) get it alone, without a new version.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use rookery_proto::internal::v1::{
    placement_order::Order, HeartbeatAck, LockOrder, OrderPhase, PlacementOrder, UnlockOrder,
};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tonic::Status;

use crate::metrics::PlacementMetrics;
use crate::raft_types::{NodeId, PlacementRaft};
use crate::state::Command;
use crate::store::AppliedState;
use rookery_core::shutdown::{shutdown_signal, Shutdown, ShutdownTrigger};
use rookery_core::table::{HostInfo, TableVersion};

/// Most host sessions one leader keeps; more registrations are refused.
pub const MAX_HOST_SESSIONS: usize = 10_000;
/// Orders queued to one host before it counts as not keeping up. Rounds wait for acks, so a
/// healthy host never has more than one or two outstanding.
pub const ORDER_QUEUE_CAPACITY: usize = 16;
use rookery_core::limits::{MAX_ACTOR_TYPES_PER_HOST, MAX_ACTOR_TYPE_BYTES, MAX_HOST_FIELD_BYTES};

/// Timing of the leader's duties.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// A host silent this long is removed. Also bounds host leases: see [`LeaderConfig::lease_ms`].
    pub host_timeout_ms: u64,
    /// Raft's election timeout lower bound: a leader that heard from a quorum less than this
    /// long ago cannot have been replaced yet, so it may renew host leases.
    pub election_timeout_min_ms: u64,
    /// How often the leader confirms its leadership with a quorum.
    pub leadership_check_ms: u64,
    pub round_timeout_ms: u64,
    pub debounce_ms: u64,
    pub vnodes_per_host: u32,
    /// See [`PlacementConfig::skip_lock_phase`](crate::node::PlacementConfig::skip_lock_phase).
    #[doc(hidden)]
    pub skip_lock_phase: bool,
}

impl LeaderConfig {
    /// The lease granted with each heartbeat ack: the host timeout less a margin for clock
    /// drift and scheduling, so a host's lease always ends before placement may remove it.
    pub fn lease_ms(&self) -> u64 {
        let margin_ms =
            (self.host_timeout_ms / 4).max(MIN_LEASE_MARGIN_MS.min(self.host_timeout_ms / 2));
        self.host_timeout_ms - margin_ms
    }
}

/// Smallest margin between a host's lease and its host timeout.
pub const MIN_LEASE_MARGIN_MS: u64 = 500;

/// Orders to one host, as the response stream of its `ReportHost` call.
pub type OrderSender = mpsc::Sender<Result<PlacementOrder, Status>>;

/// The leader's view of one connected host.
struct Session {
    /// Distinguishes a host's successive sessions, so a stale one cannot remove a newer one.
    session_id: u64,
    info: HostInfo,
    orders: OrderSender,
    /// The latest (phase, version) the host acknowledged.
    acks: watch::Receiver<(OrderPhase, u64)>,
    last_heartbeat: Instant,
    /// Activations the host reported in its last heartbeat.
    active_actors: u64,
    /// The host asked to leave: it stays connected only to take part in its removal round.
    leaving: bool,
    /// The newest table version this host acknowledged an UNLOCK of; `None` before its first.
    synced_version: Option<TableVersion>,
}

#[derive(Clone, Debug)]
enum Change {
    Upsert(HostInfo),
    Remove,
}

/// A session taking part in a round: host id, session id, its order queue and its acks.
type Participant = (String, u64, OrderSender, watch::Receiver<(OrderPhase, u64)>);

/// Per-term state of the leader. Replaced whole when leadership changes.
struct Term {
    sessions: HashMap<String, Session>,
    pending: BTreeMap<String, Change>,
    /// When each replicated host was last seen connected (or when this term began).
    absent_since: HashMap<String, Instant>,
    /// Whether this node is the leader; sessions are refused otherwise.
    active: bool,
}

/// A host's handle on its session: feeds heartbeats and acks back to the leader.
pub struct SessionHandle {
    coordinator: Arc<Coordinator>,
    host_id: String,
    session_id: u64,
    acks: watch::Sender<(OrderPhase, u64)>,
}

/// Why a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("{0}")]
    Invalid(String),
    #[error("this placement node is not the leader")]
    NotLeader,
    #[error("too many host sessions (limit {MAX_HOST_SESSIONS})")]
    TooManySessions,
}

impl From<RegistrationError> for Status {
    fn from(e: RegistrationError) -> Status {
        match e {
            RegistrationError::Invalid(message) => Status::invalid_argument(message),
            RegistrationError::NotLeader => Status::unavailable(e.to_string()),
            RegistrationError::TooManySessions => Status::resource_exhausted(e.to_string()),
        }
    }
}

/// Checks a registration's fields. Returns the normalized host info.
pub fn validate_registration(info: HostInfo) -> Result<HostInfo, RegistrationError> {
    let invalid = |m: String| Err(RegistrationError::Invalid(m));
    if info.id.trim().is_empty() {
        return invalid("host_id must not be empty".into());
    }
    for (field, value) in [
        ("host_id", &info.id),
        ("address", &info.address),
        ("app_id", &info.app_id),
    ] {
        if value.len() > MAX_HOST_FIELD_BYTES {
            return invalid(format!(
                "{field} is longer than {MAX_HOST_FIELD_BYTES} bytes"
            ));
        }
    }
    if info.address.trim().is_empty() {
        return invalid("address must not be empty".into());
    }
    if info.actor_types.len() > MAX_ACTOR_TYPES_PER_HOST {
        return invalid(format!("more than {MAX_ACTOR_TYPES_PER_HOST} actor types"));
    }
    for actor_type in &info.actor_types {
        if actor_type.is_empty() {
            return invalid("actor type names must not be empty".into());
        }
        if actor_type.len() > MAX_ACTOR_TYPE_BYTES {
            return invalid(format!(
                "actor type name is longer than {MAX_ACTOR_TYPE_BYTES} bytes: {}…",
                actor_type.chars().take(32).collect::<String>()
            ));
        }
    }
    Ok(info.normalized())
}

/// The leader's duties, present on every node.
pub struct Coordinator {
    node_id: NodeId,
    raft: PlacementRaft,
    applied: watch::Receiver<Arc<AppliedState>>,
    config: LeaderConfig,
    metrics: Arc<PlacementMetrics>,
    term: Mutex<Term>,
    /// Wakes the dissemination task: a change is pending or a session needs the table.
    wake: Notify,
    next_session_id: AtomicU64,
    /// When the latest successful leadership check started: a quorum acknowledged this node
    /// as leader after that instant.
    confirmed_at: Mutex<Option<Instant>>,
}

impl Coordinator {
    pub fn new(
        node_id: NodeId,
        raft: PlacementRaft,
        applied: watch::Receiver<Arc<AppliedState>>,
        config: LeaderConfig,
        metrics: Arc<PlacementMetrics>,
    ) -> Arc<Coordinator> {
        Arc::new(Coordinator {
            node_id,
            raft,
            applied,
            config,
            metrics,
            term: Mutex::new(Term {
                sessions: HashMap::new(),
                pending: BTreeMap::new(),
                absent_since: HashMap::new(),
                active: false,
            }),
            wake: Notify::new(),
            next_session_id: AtomicU64::new(1),
            confirmed_at: Mutex::new(None),
        })
    }

    pub fn config(&self) -> &LeaderConfig {
        &self.config
    }

    /// Follows Raft leadership until `shutdown` fires: starts the leader's tasks on gaining
    /// leadership, and on losing it closes every host session so hosts go to the new leader.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let mut metrics = self.raft.metrics();
        // The running term's stop signal, its task, and the Raft term it leads.
        let mut leading: Option<(ShutdownTrigger, tokio::task::JoinHandle<()>, u64)> = None;
        // Re-checks now and then: a term's task may end on its own (it lost leadership while
        // catching up, or a commit failed), and the metrics feed coalesces changes, so a
        // leader → follower → leader flip may never be seen as such.
        let mut recheck = tokio::time::interval(Duration::from_millis(
            self.config.host_timeout_ms.clamp(50, 1_000),
        ));
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let (is_leader, term) = {
                let m = metrics.borrow_and_update();
                (
                    m.current_leader == Some(self.node_id) && m.state.is_leader(),
                    m.current_term,
                )
            };
            let current = leading
                .as_ref()
                .is_some_and(|(_, task, led)| !task.is_finished() && *led == term);
            if leading.is_some() && !(is_leader && current) {
                if let Some((stop, _, _)) = leading.take() {
                    stop.fire();
                }
                self.step_down();
            }
            if is_leader && leading.is_none() {
                let (stop_tx, stop_rx) = shutdown_signal();
                let task = tokio::spawn(self.clone().lead(stop_rx));
                leading = Some((stop_tx, task, term));
            }
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { break },
                _ = recheck.tick() => {}
                _ = shutdown.fired() => break,
            }
        }
        if let Some((stop, _, _)) = leading.take() {
            stop.fire();
        }
        self.step_down();
    }

    /// One leadership term: catch up with the log, then disseminate and detect failures.
    async fn lead(self: Arc<Self>, stop: Shutdown) {
        // The new leader's state machine may lag the log it inherited; tables must never be
        // sent from a state older than one a host may already hold.
        tokio::select! {
            caught_up = self.raft.ensure_linearizable() => if let Err(e) = caught_up {
                tracing::warn!(error = %e, "lost leadership before catching up");
                return;
            },
            _ = stop.fired() => return,
        }
        {
            let mut term = self.term.lock().expect("term lock");
            let now = Instant::now();
            term.absent_since = self
                .applied
                .borrow()
                .state
                .hosts
                .keys()
                .map(|id| (id.clone(), now))
                .collect();
            term.active = true;
        }
        self.metrics.is_leader.set(1);
        tracing::info!(
            node_id = self.node_id,
            "leading: hosts have a grace period to reconnect"
        );
        let detector = tokio::spawn(self.clone().detect_failures(stop.clone()));
        let confirmer = tokio::spawn(self.clone().confirm_leadership(stop.clone()));
        self.disseminate(stop.clone()).await;
        detector.abort();
        confirmer.abort();
        // Returning lets `run` see the task finished and start afresh if still leader.
    }

    /// Confirms leadership with a quorum every `leadership_check_ms`. Leases are renewed only
    /// on a recent confirmation, so a leader cut off from its quorum stops renewing them before
    /// any new leader could be elected.
    async fn confirm_leadership(self: Arc<Self>, stop: Shutdown) {
        let period = Duration::from_millis(self.config.leadership_check_ms.max(1));
        loop {
            let started = Instant::now();
            let confirmed = tokio::select! {
                confirmed = self.raft.get_read_log_id() => confirmed.is_ok(),
                _ = stop.fired() => return,
            };
            if confirmed {
                *self.confirmed_at.lock().expect("confirmed lock") = Some(started);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(started + period) => {}
                _ = stop.fired() => return,
            }
        }
    }

    /// Whether this node may renew leases now.
    fn may_grant_lease(&self) -> bool {
        let window = Duration::from_millis(self.config.election_timeout_min_ms);
        self.confirmed_at
            .lock()
            .expect("confirmed lock")
            .is_some_and(|at| at.elapsed() < window)
    }

    fn step_down(&self) {
        *self.confirmed_at.lock().expect("confirmed lock") = None;
        let sessions = {
            let mut term = self.term.lock().expect("term lock");
            term.active = false;
            term.pending.clear();
            term.absent_since.clear();
            std::mem::take(&mut term.sessions)
        };
        self.metrics.is_leader.set(0);
        self.metrics.hosts_connected.set(0);
        let leader = self.raft.metrics().borrow().current_leader;
        for (_, session) in sessions {
            let _ = session.orders.try_send(Ok(not_leader_order(leader, None)));
        }
    }

    /// Opens a session for a registering host.
    pub fn open_session(
        self: &Arc<Self>,
        info: HostInfo,
        orders: OrderSender,
    ) -> Result<SessionHandle, RegistrationError> {
        let info = validate_registration(info)?;
        let session_id = self.next_session_id.fetch_add(1, Ordering::Relaxed);
        let (ack_tx, ack_rx) = watch::channel((OrderPhase::Unspecified, 0));
        {
            let mut term = self.term.lock().expect("term lock");
            if !term.active {
                return Err(RegistrationError::NotLeader);
            }
            if let Some(existing) = term.sessions.get(&info.id) {
                if existing.info.address != info.address {
                    return Err(RegistrationError::Invalid(format!(
                        "host_id {:?} is already registered by a live host at {}",
                        info.id, existing.info.address
                    )));
                }
            } else if term.sessions.len() >= MAX_HOST_SESSIONS {
                return Err(RegistrationError::TooManySessions);
            }
            let replicated = self.applied.borrow().state.hosts.get(&info.id).cloned();
            if replicated.as_ref() != Some(&info)
                && !(replicated.is_none() && info.actor_types.is_empty())
            {
                term.pending
                    .insert(info.id.clone(), Change::Upsert(info.clone()));
            } else {
                // Unchanged: a reconnect must not undo a departure queued for this host.
                term.pending.remove(&info.id);
            }
            term.absent_since.remove(&info.id);
            let previous = term.sessions.insert(
                info.id.clone(),
                Session {
                    session_id,
                    info: info.clone(),
                    orders,
                    acks: ack_rx,
                    last_heartbeat: Instant::now(),
                    active_actors: 0,
                    leaving: false,
                    synced_version: None,
                },
            );
            if let Some(previous) = previous {
                // The same host reconnected before its old stream was noticed broken.
                let _ = previous.orders.try_send(Err(Status::aborted(
                    "replaced by a newer session of this host",
                )));
            }
            self.metrics.hosts_connected.set(term.sessions.len() as i64);
        }
        tracing::info!(host_id = %info.id, address = %info.address, types = ?info.actor_types, "host registered");
        self.wake.notify_one();
        Ok(SessionHandle {
            coordinator: self.clone(),
            host_id: info.id,
            session_id,
            acks: ack_tx,
        })
    }

    /// Queues a removal and wakes the dissemination task.
    fn queue_removal(&self, term: &mut Term, host_id: &str) {
        let replicated = self.applied.borrow().state.hosts.contains_key(host_id);
        if replicated {
            term.pending.insert(host_id.to_owned(), Change::Remove);
        } else {
            term.pending.remove(host_id);
        }
        term.absent_since.remove(host_id);
        self.wake.notify_one();
    }

    /// Ends a session (if it is still the host's current one). The host itself is removed
    /// only once its lease has surely expired: a host timeout after its last heartbeat. It may
    /// be alive behind a broken connection, serving its actors until then.
    fn drop_session(&self, host_id: &str, session_id: u64, reason: &str) {
        let mut term = self.term.lock().expect("term lock");
        let current = term.sessions.get(host_id).map(|s| s.session_id) == Some(session_id);
        if !current {
            return;
        }
        let Some(session) = term.sessions.remove(host_id) else {
            return;
        };
        let _ = session.orders.try_send(Err(Status::unavailable(format!(
            "placement dropped this host: {reason}"
        ))));
        self.metrics.hosts_connected.set(term.sessions.len() as i64);
        if term.active && !session.leaving {
            tracing::info!(
                host_id,
                reason,
                "host session ended; removing it once its lease has expired"
            );
            term.absent_since
                .insert(host_id.to_owned(), session.last_heartbeat);
            self.wake.notify_one();
        }
    }

    /// Removes hosts whose heartbeats stopped, and replicated hosts that stayed away longer
    /// than the host timeout (after a leader change, or after their session was dropped).
    async fn detect_failures(self: Arc<Self>, stop: Shutdown) {
        let timeout = Duration::from_millis(self.config.host_timeout_ms);
        let period = (timeout / 4).max(Duration::from_millis(10));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.fired() => return,
            }
            let now = Instant::now();
            let silent: Vec<(String, u64)> = {
                let term = self.term.lock().expect("term lock");
                term.sessions
                    .iter()
                    .filter(|(_, s)| now.duration_since(s.last_heartbeat) > timeout)
                    .map(|(id, s)| (id.clone(), s.session_id))
                    .collect()
            };
            for (host_id, session_id) in silent {
                self.drop_session(&host_id, session_id, "heartbeats stopped");
            }
            let mut term = self.term.lock().expect("term lock");
            let replicated: Vec<String> =
                self.applied.borrow().state.hosts.keys().cloned().collect();
            for host_id in replicated {
                if term.sessions.contains_key(&host_id) || term.pending.contains_key(&host_id) {
                    continue;
                }
                let since = *term.absent_since.entry(host_id.clone()).or_insert(now);
                if now.duration_since(since) > timeout {
                    tracing::info!(
                        host_id,
                        "removing host: silent for longer than the host timeout"
                    );
                    self.metrics.hosts_removed_total.inc();
                    self.queue_removal(&mut term, &host_id);
                }
            }
        }
    }

    /// The dissemination task of one term.
    async fn disseminate(&self, stop: Shutdown) {
        let debounce = Duration::from_millis(self.config.debounce_ms);
        loop {
            let has_pending = !self.term.lock().expect("term lock").pending.is_empty();
            if has_pending {
                // Let a burst of changes (several hosts starting, a rack failing) gather into one.
                tokio::select! {
                    _ = tokio::time::sleep(debounce) => {}
                    _ = stop.fired() => return,
                }
                let command = {
                    let mut term = self.term.lock().expect("term lock");
                    let pending = std::mem::take(&mut term.pending);
                    let mut upserts = Vec::new();
                    let mut removals = Vec::new();
                    for (id, change) in pending {
                        match change {
                            Change::Upsert(info) => upserts.push(info),
                            Change::Remove => removals.push(id),
                        }
                    }
                    Command::ChangeMembership { upserts, removals }
                };
                let started = Instant::now();
                match self.raft.client_write(command).await {
                    Ok(written) => {
                        self.metrics
                            .commit_latency_seconds
                            .observe(started.elapsed().as_secs_f64());
                        tracing::info!(
                            version = written.data.table_version.0,
                            changed = written.data.changed,
                            "membership committed"
                        );
                        self.reconcile_sessions();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot commit membership change; stepping back");
                        return;
                    }
                }
            }
            self.sync_sessions(&stop).await;
            if stop.is_fired() {
                return;
            }
            let idle = self.term.lock().expect("term lock").pending.is_empty();
            if idle {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = stop.fired() => return,
                }
            }
        }
    }

    /// When the leases of replicated hosts without a session may last until, if any still may:
    /// a host timeout after they were last heard from (leases are shorter than that).
    fn absent_leases_end(&self) -> Option<Instant> {
        let term = self.term.lock().expect("term lock");
        let applied = self.applied.borrow();
        let timeout = Duration::from_millis(self.config.host_timeout_ms);
        let now = Instant::now();
        term.absent_since
            .iter()
            .filter(|(id, _)| {
                applied.state.hosts.contains_key(*id) && !term.sessions.contains_key(*id)
            })
            .map(|(_, since)| *since + timeout)
            .filter(|end| *end > now)
            .max()
    }

    /// Queues a registration for every connected host the committed state disagrees with. A
    /// host may reconnect while its removal is already on its way through Raft: it saw itself
    /// still replicated, so it queued nothing, and the removal then took it out.
    fn reconcile_sessions(&self) {
        let mut term = self.term.lock().expect("term lock");
        let applied = self.applied.borrow().clone();
        let stale: Vec<HostInfo> = term
            .sessions
            .iter()
            .filter(|(id, s)| {
                !s.leaving
                    && !s.info.actor_types.is_empty()
                    && !term.pending.contains_key(*id)
                    && applied.state.hosts.get(*id) != Some(&s.info)
            })
            .map(|(_, s)| s.info.clone())
            .collect();
        for info in stale {
            tracing::info!(host_id = %info.id, "re-registering a connected host the membership lost");
            term.pending.insert(info.id.clone(), Change::Upsert(info));
        }
    }

    /// Brings every session to the current table: one round to all sessions behind it.
    async fn sync_sessions(&self, stop: &Shutdown) {
        let table = self
            .applied
            .borrow()
            .state
            .table(self.config.vnodes_per_host);
        let participants: Vec<Participant> = {
            let term = self.term.lock().expect("term lock");
            term.sessions
                .iter()
                .filter(|(_, s)| s.synced_version.is_none_or(|v| v < table.version))
                .map(|(id, s)| (id.clone(), s.session_id, s.orders.clone(), s.acks.clone()))
                .collect()
        };
        if participants.is_empty() {
            return;
        }
        let started = Instant::now();
        let version = table.version.0;
        let wire = table.to_wire();
        let phases = [
            (OrderPhase::Lock, Order::Lock(LockOrder { version })),
            (OrderPhase::Update, Order::Update(wire)),
            (OrderPhase::Unlock, Order::Unlock(UnlockOrder { version })),
        ];
        let mut alive = participants;
        for (phase, order) in phases {
            if phase == OrderPhase::Lock && self.config.skip_lock_phase {
                continue;
            }
            if phase == OrderPhase::Unlock {
                // UNLOCK lets new owners activate. A replicated host not in this round (its
                // stream broke, or it missed an ack) may still hold a lease and serve the actors
                // this table moves away from it: wait until every such lease has surely expired.
                if let Some(until) = self.absent_leases_end() {
                    tracing::info!(
                        version,
                        wait_ms =
                            until.saturating_duration_since(Instant::now()).as_millis() as u64,
                        "holding UNLOCK until absent hosts' leases have expired"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {}
                        _ = stop.fired() => return,
                    }
                }
            }
            let order = PlacementOrder { order: Some(order) };
            let deadline = Instant::now() + Duration::from_millis(self.config.round_timeout_ms);
            let waits = alive.iter().map(|(host_id, session_id, orders, acks)| {
                let order = order.clone();
                let mut acks = acks.clone();
                async move {
                    if orders.try_send(Ok(order)).is_err() {
                        return (host_id.clone(), *session_id, false);
                    }
                    let acked = tokio::time::timeout_at(
                        deadline,
                        acks.wait_for(|(p, v)| *p == phase && *v == version),
                    )
                    .await;
                    (host_id.clone(), *session_id, matches!(acked, Ok(Ok(_))))
                }
            });
            let results = tokio::select! {
                results = join_all(waits) => results,
                _ = stop.fired() => return,
            };
            let mut keep = Vec::with_capacity(alive.len());
            for ((host_id, session_id, acked), participant) in results.into_iter().zip(alive) {
                if acked {
                    keep.push(participant);
                } else {
                    self.drop_session(
                        &host_id,
                        session_id,
                        &format!("no {phase:?} ack within the round timeout"),
                    );
                }
            }
            alive = keep;
        }
        {
            let mut term = self.term.lock().expect("term lock");
            for (host_id, session_id, _, _) in &alive {
                if let Some(session) = term.sessions.get_mut(host_id) {
                    if session.session_id == *session_id {
                        session.synced_version = Some(table.version);
                    }
                }
            }
        }
        self.metrics.table_version.set(version as i64);
        self.metrics.rounds_total.inc();
        self.metrics
            .round_duration_seconds
            .observe(started.elapsed().as_secs_f64());
        tracing::debug!(version, hosts = alive.len(), "round complete");
    }

    /// Each host with a session: (ms since its last heartbeat, activations it reported).
    pub fn session_health(&self) -> HashMap<String, (u64, u64)> {
        let term = self.term.lock().expect("term lock");
        let now = Instant::now();
        term.sessions
            .iter()
            .map(|(id, s)| {
                (
                    id.clone(),
                    (
                        now.duration_since(s.last_heartbeat).as_millis() as u64,
                        s.active_actors,
                    ),
                )
            })
            .collect()
    }
}

impl SessionHandle {
    /// A heartbeat: the host is alive. Renews its lease if this node is surely still leader.
    pub fn heartbeat(&self, seq: u64, active_actors: u64) {
        let orders = {
            let mut term = self.coordinator.term.lock().expect("term lock");
            match term.sessions.get_mut(&self.host_id) {
                Some(session) if session.session_id == self.session_id => {
                    session.last_heartbeat = Instant::now();
                    session.active_actors = active_actors;
                    session.orders.clone()
                }
                _ => return,
            }
        };
        if self.coordinator.may_grant_lease() {
            let ack = PlacementOrder {
                order: Some(Order::HeartbeatAck(HeartbeatAck {
                    seq,
                    lease_ms: self.coordinator.config.lease_ms(),
                    table_version: self.coordinator.applied.borrow().state.table_version.0,
                })),
            };
            // A full queue means the host is not reading; it will not renew its lease.
            let _ = orders.try_send(Ok(ack));
        }
    }

    /// Any message from the host shows it is alive, but only heartbeats renew leases.
    fn touch(&self) {
        let mut term = self.coordinator.term.lock().expect("term lock");
        if let Some(session) = term.sessions.get_mut(&self.host_id) {
            if session.session_id == self.session_id {
                session.last_heartbeat = Instant::now();
            }
        }
    }

    pub fn ack(&self, phase: OrderPhase, version: u64) {
        self.touch();
        let _ = self.acks.send((phase, version));
    }

    /// The host leaves gracefully: it is removed now, and stays connected for the round that
    /// removes it, draining its actors before it acks the UPDATE.
    pub fn leave(&self) {
        let mut term = self.coordinator.term.lock().expect("term lock");
        let current = term
            .sessions
            .get(&self.host_id)
            .is_some_and(|s| s.session_id == self.session_id);
        if !current || !term.active {
            return;
        }
        if let Some(session) = term.sessions.get_mut(&self.host_id) {
            session.leaving = true;
        }
        tracing::info!(host_id = %self.host_id, "host leaving");
        self.coordinator.queue_removal(&mut term, &self.host_id);
    }

    /// The host sent a new registration on its open stream (its actor types changed).
    pub fn reregister(&self, info: HostInfo) -> Result<(), RegistrationError> {
        let info = validate_registration(info)?;
        if info.id != self.host_id {
            return Err(RegistrationError::Invalid(
                "host_id cannot change within a session".into(),
            ));
        }
        let mut term = self.coordinator.term.lock().expect("term lock");
        let Some(session) = term.sessions.get_mut(&self.host_id) else {
            return Ok(());
        };
        if session.session_id != self.session_id || session.info == info {
            return Ok(());
        }
        session.info = info.clone();
        term.pending.insert(info.id.clone(), Change::Upsert(info));
        self.coordinator.wake.notify_one();
        Ok(())
    }

    /// The host's stream ended or broke: the host is gone.
    pub fn close(&self, reason: &str) {
        self.coordinator
            .drop_session(&self.host_id, self.session_id, reason);
    }
}

/// The order a follower answers a host with.
pub fn not_leader_order(
    leader_id: Option<NodeId>,
    leader_address: Option<String>,
) -> PlacementOrder {
    PlacementOrder {
        order: Some(Order::NotLeader(rookery_proto::internal::v1::NotLeader {
            leader_id,
            leader_address: leader_address.unwrap_or_default(),
        })),
    }
}

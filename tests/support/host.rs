//! [`TestHost`]: a scriptable host speaking the `ReportHost` stream protocol, the way a real
//! Rookery host will, but recording everything so tests can assert on it.
//!
//! A test host connects to any of the placement addresses it is given, follows `NotLeader`
//! redirects, and reconnects with back-off when its stream breaks (leader crash, restart). On
//! each stream it registers, heartbeats every ~200 ms and acknowledges every order. Every
//! LOCK/UPDATE/UNLOCK it receives is appended to an [`OrderLog`], which several hosts may share:
//! the log's sequence numbers then give the receive order *across* hosts, which is what shows
//! that a round's phases are barriers (no host sees UPDATE(v) before every host acked LOCK(v)).
//!
//! Faults are injected on request: stop heartbeating while keeping the stream open, never ack
//! LOCK, disconnect, or don't reconnect after placement closes the stream.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rookery_proto::internal::v1::host_report::Report;
use rookery_proto::internal::v1::placement_client::PlacementClient;
use rookery_proto::internal::v1::placement_order::Order;
use rookery_proto::internal::v1::{
    Heartbeat, HostRegistration, HostReport, OrderAck, OrderPhase, PlacementTable,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;
use tonic::Code;

use super::free_port;
use super::wait::{wait_until, DEADLINE};

/// Reconnect back-off: starts small so a host finds a new leader quickly after a fail-over,
/// doubles while attempts keep failing (dead node, no leader yet), capped well below the
/// default host timeout so a host always gets back within the grace period.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// How long placement may take to answer the ReportHost call before the attempt is abandoned.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Polling interval for waits on in-memory state (cheap, so short).
const POLL: Duration = Duration::from_millis(20);

/// A dissemination order as a host received it.
#[derive(Clone, Debug, PartialEq)]
pub enum Received {
    Lock(u64),
    Update(PlacementTable),
    Unlock(u64),
}

impl Received {
    pub fn phase(&self) -> OrderPhase {
        match self {
            Received::Lock(_) => OrderPhase::Lock,
            Received::Update(_) => OrderPhase::Update,
            Received::Unlock(_) => OrderPhase::Unlock,
        }
    }

    /// The order's version; for UPDATE, the table's.
    pub fn version(&self) -> u64 {
        match self {
            Received::Lock(v) | Received::Unlock(v) => *v,
            Received::Update(table) => table.version,
        }
    }

    pub fn table(&self) -> Option<&PlacementTable> {
        match self {
            Received::Update(table) => Some(table),
            _ => None,
        }
    }
}

impl fmt::Display for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Received::Lock(v) => write!(f, "LOCK v{v}"),
            Received::Unlock(v) => write!(f, "UNLOCK v{v}"),
            Received::Update(table) => {
                write!(f, "UPDATE v{} {:?}", table.version, table_host_ids(table))
            }
        }
    }
}

/// Ids of the hosts in a table, in table order (placement sorts them by id).
pub fn table_host_ids(table: &PlacementTable) -> Vec<String> {
    table.hosts.iter().map(|h| h.host_id.clone()).collect()
}

/// One received order and where it came from.
#[derive(Clone, Debug)]
pub struct OrderRecord {
    /// Position in the [`OrderLog`]: the receive order across every host sharing the log.
    pub seq: u64,
    pub host_id: String,
    /// Which of the host's streams (1-based, counted across reconnects) delivered it.
    pub connection: u64,
    /// Placement address of that stream.
    pub from: String,
    pub at: Instant,
    pub order: Received,
}

impl fmt::Display for OrderRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} {} stream#{} from {}: {}",
            self.seq, self.host_id, self.connection, self.from, self.order
        )
    }
}

/// Orders received by one or more hosts, in receive order. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct OrderLog {
    records: Arc<Mutex<Vec<OrderRecord>>>,
}

impl OrderLog {
    pub fn new() -> OrderLog {
        OrderLog::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<OrderRecord>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends under the lock, so sequence numbers follow real receive order: a host records
    /// an order before it acks it, hence before placement can send anything that depends on
    /// the ack.
    fn push(&self, host_id: &str, connection: u64, from: &str, order: Received) {
        let mut records = self.lock();
        let seq = records.len() as u64;
        records.push(OrderRecord {
            seq,
            host_id: host_id.to_owned(),
            connection,
            from: from.to_owned(),
            at: Instant::now(),
            order,
        });
    }

    pub fn records(&self) -> Vec<OrderRecord> {
        self.lock().clone()
    }

    /// The sequence number the next record will get: pass it to `since` to see what happened
    /// after this point.
    pub fn mark(&self) -> u64 {
        self.lock().len() as u64
    }

    pub fn since(&self, mark: u64) -> Vec<OrderRecord> {
        self.lock()
            .iter()
            .filter(|r| r.seq >= mark)
            .cloned()
            .collect()
    }
}

impl fmt::Display for OrderLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for record in self.lock().iter() {
            writeln!(f, "  {record}")?;
        }
        Ok(())
    }
}

/// What a test host has been through, besides orders.
#[derive(Clone, Debug, Default)]
pub struct HostState {
    /// Placement address of the current stream, once that stream delivered a LOCK, UPDATE or
    /// UNLOCK (a follower's stream only ever delivers NotLeader, so it never counts).
    pub connected_to: Option<String>,
    /// Streams opened so far (a ReportHost call that placement answered).
    pub connections: u64,
    /// Streams placement ended (end of stream, or an error status other than
    /// INVALID_ARGUMENT), not counting NotLeader redirects.
    pub closed_by_placement: u64,
    pub not_leader_replies: u64,
    /// The INVALID_ARGUMENT that ended the host, if placement refused its registration.
    pub rejection: Option<(Code, String)>,
    /// The host's task has ended (disconnected, rejected, or closed without reconnect).
    pub finished: bool,
    /// Human-readable history, for failure messages.
    pub events: Vec<String>,
}

struct Spec {
    host_id: String,
    address: String,
    app_id: String,
    placement: Vec<String>,
    heartbeat_every: Duration,
    reconnect: bool,
    started: Instant,
}

struct Shared {
    log: OrderLog,
    heartbeats: AtomicBool,
    ack_lock: AtomicBool,
    /// Registered on every new stream; changed by [`TestHost::reregister`].
    actor_types: Mutex<Vec<String>>,
    state: Mutex<HostState>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, HostState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn actor_types(&self) -> Vec<String> {
        self.actor_types
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn event(&self, spec: &Spec, what: String) {
        let at = spec.started.elapsed().as_millis();
        self.state().events.push(format!("+{at}ms {what}"));
    }
}

enum Control {
    /// Send a registration with the current actor types on the open stream.
    Reregister,
    Disconnect,
}

/// Configures a [`TestHost`] before it connects.
pub struct HostBuilder {
    host_id: String,
    address: Option<String>,
    app_id: String,
    actor_types: Vec<String>,
    heartbeat_every: Duration,
    reconnect: bool,
    ack_lock: bool,
    log: Option<OrderLog>,
}

impl HostBuilder {
    /// The address it registers (default: 127.0.0.1 and an unused port; nothing listens there,
    /// placement only records and disseminates it).
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    pub fn app_id(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = app_id.into();
        self
    }

    /// Actor types it registers (default: `Counter`). Empty: it only receives tables.
    pub fn actor_types<S: Into<String>>(mut self, types: impl IntoIterator<Item = S>) -> Self {
        self.actor_types = types.into_iter().map(Into::into).collect();
        self
    }

    pub fn heartbeat_every(mut self, every: Duration) -> Self {
        self.heartbeat_every = every;
        self
    }

    /// Stay down once placement closes the stream (default: reconnect, as a real host does).
    pub fn no_reconnect(mut self) -> Self {
        self.reconnect = false;
        self
    }

    /// Never acknowledge LOCK orders (other orders are acked).
    pub fn never_ack_lock(mut self) -> Self {
        self.ack_lock = false;
        self
    }

    /// Record into this (possibly shared) log instead of a private one.
    pub fn log(mut self, log: &OrderLog) -> Self {
        self.log = Some(log.clone());
        self
    }

    /// Starts the host's task: it connects to one of `placement` (addresses `host:port`) and
    /// keeps a session going until disconnected or dropped. Returns at once.
    pub fn connect<S: Into<String>>(self, placement: impl IntoIterator<Item = S>) -> TestHost {
        let placement: Vec<String> = placement.into_iter().map(Into::into).collect();
        assert!(!placement.is_empty(), "no placement address");
        let spec = Arc::new(Spec {
            host_id: self.host_id.clone(),
            address: self
                .address
                .unwrap_or_else(|| format!("127.0.0.1:{}", free_port())),
            app_id: self.app_id,
            placement,
            heartbeat_every: self.heartbeat_every,
            reconnect: self.reconnect,
            started: Instant::now(),
        });
        let shared = Arc::new(Shared {
            log: self.log.unwrap_or_default(),
            heartbeats: AtomicBool::new(true),
            ack_lock: AtomicBool::new(self.ack_lock),
            actor_types: Mutex::new(self.actor_types),
            state: Mutex::new(HostState::default()),
        });
        let (control, control_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(spec.clone(), shared.clone(), control_rx));
        TestHost {
            id: self.host_id,
            spec,
            shared,
            control,
            task: Some(task),
        }
    }
}

/// A host of the placement protocol driven by a test. Dropping it aborts its session (placement
/// sees the stream break) and, when the test is failing, prints its history.
pub struct TestHost {
    pub id: String,
    spec: Arc<Spec>,
    shared: Arc<Shared>,
    control: mpsc::UnboundedSender<Control>,
    task: Option<JoinHandle<()>>,
}

impl TestHost {
    /// A host with id `host_id`, app `app`, serving actor type `Counter`, that reconnects and
    /// acks everything.
    pub fn builder(host_id: impl Into<String>) -> HostBuilder {
        HostBuilder {
            host_id: host_id.into(),
            address: None,
            app_id: "app".to_owned(),
            actor_types: vec!["Counter".to_owned()],
            heartbeat_every: Duration::from_millis(200),
            reconnect: true,
            ack_lock: true,
            log: None,
        }
    }

    /// The address it registers.
    pub fn address(&self) -> &str {
        &self.spec.address
    }

    pub fn log(&self) -> &OrderLog {
        &self.shared.log
    }

    /// The orders this host received, oldest first.
    pub fn orders(&self) -> Vec<OrderRecord> {
        self.orders_since(0)
    }

    /// The orders this host received at or after `mark` (see [`OrderLog::mark`]).
    pub fn orders_since(&self, mark: u64) -> Vec<OrderRecord> {
        self.shared
            .log
            .since(mark)
            .into_iter()
            .filter(|r| r.host_id == self.id)
            .collect()
    }

    /// The newest table it received (highest version): the one a real host would route by.
    pub fn latest_table(&self) -> Option<PlacementTable> {
        self.orders()
            .into_iter()
            .filter_map(|r| r.order.table().cloned())
            .max_by_key(|t| t.version)
    }

    pub fn state(&self) -> HostState {
        self.shared.state().clone()
    }

    pub fn connected_to(&self) -> Option<String> {
        self.shared.state().connected_to.clone()
    }

    /// Stops sending heartbeats; the stream stays open and orders are still acked.
    pub fn stop_heartbeats(&self) {
        self.shared.heartbeats.store(false, Ordering::SeqCst);
        self.shared.event(&self.spec, "heartbeats stopped".into());
    }

    pub fn resume_heartbeats(&self) {
        self.shared.heartbeats.store(true, Ordering::SeqCst);
        self.shared.event(&self.spec, "heartbeats resumed".into());
    }

    pub fn set_ack_lock(&self, ack: bool) {
        self.shared.ack_lock.store(ack, Ordering::SeqCst);
    }

    /// Registers again on the open stream with new actor types (also used on later streams).
    pub fn reregister<S: Into<String>>(&self, types: impl IntoIterator<Item = S>) {
        *self
            .shared
            .actor_types
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = types.into_iter().map(Into::into).collect();
        let _ = self.control.send(Control::Reregister);
    }

    /// Closes its stream and ends its session for good; returns once it has.
    pub async fn disconnect(&mut self) {
        let _ = self.control.send(Control::Disconnect);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Polls this host's orders until `condition` accepts them; returns them.
    pub async fn wait_for(
        &self,
        what: impl fmt::Display,
        within: Duration,
        condition: impl Fn(&[OrderRecord]) -> bool,
    ) -> Vec<OrderRecord> {
        let condition = &condition;
        let what = format!("host {}: {what}", self.id);
        wait_until(what, within, || async move {
            let orders = self.orders();
            if condition(&orders) {
                return Ok(orders);
            }
            tokio::time::sleep(POLL).await;
            Err(self.dump())
        })
        .await
    }

    /// Waits until it has received UNLOCK(`version`): the round of that version is over.
    pub async fn wait_unlock(&self, version: u64) -> Vec<OrderRecord> {
        self.wait_for(format!("UNLOCK v{version}"), DEADLINE, |orders| {
            orders.iter().any(|r| r.order == Received::Unlock(version))
        })
        .await
    }

    /// Waits until its newest table satisfies `condition`; returns that table.
    pub async fn wait_table(
        &self,
        what: impl fmt::Display,
        condition: impl Fn(&PlacementTable) -> bool,
    ) -> PlacementTable {
        let condition = &condition;
        let what = format!("host {}: table where {what}", self.id);
        wait_until(what, DEADLINE, || async move {
            match self.latest_table() {
                Some(table) if condition(&table) => Ok(table),
                _ => {
                    tokio::time::sleep(POLL).await;
                    Err(self.dump())
                }
            }
        })
        .await
    }

    /// Waits until its newest table lists exactly `ids` and it got the UNLOCK of that version
    /// (or, for a table sent on its own without a round, just the table); returns the table.
    pub async fn wait_settled_on(&self, ids: &[&str]) -> PlacementTable {
        let table = self
            .wait_table(format!("hosts are {ids:?}"), |t| table_host_ids(t) == ids)
            .await;
        let version = table.version;
        let got_lock = self
            .orders()
            .iter()
            .any(|r| r.order == Received::Lock(version));
        if got_lock {
            self.wait_unlock(version).await;
        }
        table
    }

    /// Waits until placement refused its registration; returns the status code and message.
    pub async fn wait_rejected(&self) -> (Code, String) {
        wait_until(
            format!("host {}: registration refused", self.id),
            DEADLINE,
            || async {
                let state = self.state();
                match state.rejection {
                    Some(rejection) => Ok(rejection),
                    None if state.finished => {
                        Err(format!("ended without rejection: {}", self.dump()))
                    }
                    None => {
                        tokio::time::sleep(POLL).await;
                        Err(self.dump())
                    }
                }
            },
        )
        .await
    }

    /// Waits until placement has closed at least `count` of its streams.
    pub async fn wait_closed_by_placement(&self, count: u64, within: Duration) {
        wait_until(
            format!("host {}: {count} stream(s) closed by placement", self.id),
            within,
            || async {
                if self.state().closed_by_placement >= count {
                    return Ok(());
                }
                tokio::time::sleep(POLL).await;
                Err(self.dump())
            },
        )
        .await
    }

    /// Its events and orders, for failure messages.
    pub fn dump(&self) -> String {
        let state = self.state();
        let mut out = format!(
            "\n--- test host {} ({}) connected_to={:?} connections={} closed_by_placement={} \
             not_leader={} rejection={:?} finished={}\n",
            self.id,
            self.spec.address,
            state.connected_to,
            state.connections,
            state.closed_by_placement,
            state.not_leader_replies,
            state.rejection,
            state.finished
        );
        for event in &state.events {
            out.push_str(&format!("  {event}\n"));
        }
        for record in self.orders() {
            out.push_str(&format!("  {record}\n"));
        }
        out
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.dump());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Why one session (one stream, or one attempt at one) ended.
#[derive(Debug)]
enum End {
    /// The test asked the host to disconnect.
    Disconnect,
    /// INVALID_ARGUMENT: placement refused the registration.
    Rejected(Code, String),
    /// NotLeader, with the leader's address if known.
    Redirect(Option<String>),
    /// Placement ended the stream, or it broke.
    Closed(String),
    /// Could not connect at all.
    Unreachable(String),
}

/// The host's life: sessions one after another until disconnected, rejected, or closed
/// without reconnect.
async fn run(spec: Arc<Spec>, shared: Arc<Shared>, mut control: mpsc::UnboundedReceiver<Control>) {
    let mut next = 0usize;
    let mut redirect: Option<String> = None;
    let mut backoff = MIN_BACKOFF;
    loop {
        let target = redirect.take().unwrap_or_else(|| {
            let target = spec.placement[next % spec.placement.len()].clone();
            next += 1;
            target
        });
        let (end, got_orders) = session(&spec, &shared, &target, &mut control).await;
        shared.state().connected_to = None;
        shared.event(&spec, format!("session with {target} ended: {end:?}"));
        if got_orders {
            // It was a real session: reconnect quickly, as a host does after a leader crash.
            backoff = MIN_BACKOFF;
        }
        match end {
            End::Disconnect => break,
            End::Rejected(code, message) => {
                shared.state().rejection = Some((code, message));
                break;
            }
            End::Redirect(leader) => {
                shared.state().not_leader_replies += 1;
                redirect = leader;
            }
            End::Closed(_) => {
                shared.state().closed_by_placement += 1;
                if !spec.reconnect {
                    break;
                }
            }
            End::Unreachable(_) => {}
        }
        // Back off before the next attempt; a disconnect request cuts it short.
        let sleep = tokio::time::sleep(backoff);
        tokio::pin!(sleep);
        let disconnect = loop {
            tokio::select! {
                _ = &mut sleep => break false,
                message = control.recv() => match message {
                    None | Some(Control::Disconnect) => break true,
                    // The new types are in `shared` and go out with the next registration.
                    Some(Control::Reregister) => {}
                },
            }
        };
        if disconnect {
            break;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    let mut state = shared.state();
    state.connected_to = None;
    state.finished = true;
}

fn registration(spec: &Spec, shared: &Shared) -> HostReport {
    HostReport {
        report: Some(Report::Register(HostRegistration {
            host_id: spec.host_id.clone(),
            address: spec.address.clone(),
            app_id: spec.app_id.clone(),
            actor_types: shared.actor_types(),
        })),
    }
}

fn classify(status: tonic::Status) -> End {
    if status.code() == Code::InvalidArgument {
        End::Rejected(status.code(), status.message().to_owned())
    } else {
        End::Closed(format!("{status}"))
    }
}

/// One ReportHost stream with `target`: register, then heartbeat and ack until it ends.
/// Returns how it ended and whether it delivered any LOCK/UPDATE/UNLOCK.
async fn session(
    spec: &Spec,
    shared: &Shared,
    target: &str,
    control: &mut mpsc::UnboundedReceiver<Control>,
) -> (End, bool) {
    let endpoint = match Endpoint::from_shared(format!("http://{target}")) {
        Ok(endpoint) => endpoint
            .connect_timeout(Duration::from_secs(2))
            // Notice a vanished peer even if no FIN/RST arrives.
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true),
        Err(e) => return (End::Unreachable(e.to_string()), false),
    };
    let channel = match tokio::time::timeout(Duration::from_secs(5), endpoint.connect()).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(e)) => return (End::Unreachable(format!("{e:?}")), false),
        Err(_) => return (End::Unreachable("connect timed out".into()), false),
    };
    let mut client = PlacementClient::new(channel);
    let (tx, rx) = mpsc::channel::<HostReport>(256);
    // The registration must be the stream's first message.
    tx.try_send(registration(spec, shared))
        .expect("empty channel");

    let call = client.report_host(ReceiverStream::new(rx));
    tokio::pin!(call);
    let call_deadline = tokio::time::sleep(CALL_TIMEOUT);
    tokio::pin!(call_deadline);
    let response = loop {
        tokio::select! {
            response = &mut call => break response,
            _ = &mut call_deadline => {
                return (End::Closed(format!("no answer to ReportHost within {CALL_TIMEOUT:?}")), false);
            }
            message = control.recv() => match message {
                None | Some(Control::Disconnect) => return (End::Disconnect, false),
                Some(Control::Reregister) => {
                    let _ = tx.try_send(registration(spec, shared));
                }
            },
        }
    };
    let mut orders = match response {
        Ok(response) => response.into_inner(),
        Err(status) => return (classify(status), false),
    };
    let connection = {
        let mut state = shared.state();
        state.connections += 1;
        state.connections
    };
    shared.event(spec, format!("stream#{connection} open to {target}"));

    let mut heartbeat = tokio::time::interval(spec.heartbeat_every);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut got_orders = false;
    // `try_send`: the channel never fills in practice (tonic drains it), and a full channel must
    // not block the loop that reads orders.
    let send = |report: Report| match tx.try_send(HostReport {
        report: Some(report),
    }) {
        Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
        _ => Ok(()),
    };
    loop {
        tokio::select! {
            message = orders.message() => match message {
                Ok(Some(order)) => {
                    let received = match order.order {
                        Some(Order::NotLeader(not_leader)) => {
                            shared.event(spec, format!("NotLeader from {target}: {not_leader:?}"));
                            let leader = Some(not_leader.leader_address).filter(|a| !a.is_empty());
                            return (End::Redirect(leader), got_orders);
                        }
                        Some(Order::Lock(lock)) => Received::Lock(lock.version),
                        Some(Order::Update(table)) => Received::Update(table),
                        Some(Order::Unlock(unlock)) => Received::Unlock(unlock.version),
                        // Lease renewals matter to real hosts serving actors, not to this one.
                        Some(Order::HeartbeatAck(_)) => continue,
                        None => {
                            shared.event(spec, format!("empty order from {target}"));
                            continue;
                        }
                    };
                    if !got_orders {
                        got_orders = true;
                        shared.state().connected_to = Some(target.to_owned());
                    }
                    let ack = OrderAck {
                        phase: received.phase() as i32,
                        version: received.version(),
                    };
                    let skip_ack = received.phase() == OrderPhase::Lock
                        && !shared.ack_lock.load(Ordering::SeqCst);
                    // Record before acking: see `OrderLog::push`.
                    shared.log.push(&spec.host_id, connection, target, received);
                    if !skip_ack && send(Report::Ack(ack)).is_err() {
                        return (End::Closed("request stream closed".into()), got_orders);
                    }
                }
                Ok(None) => return (End::Closed("placement ended the stream".into()), got_orders),
                Err(status) => return (classify(status), got_orders),
            },
            _ = heartbeat.tick() => {
                if shared.heartbeats.load(Ordering::SeqCst) && send(Report::Heartbeat(Heartbeat::default())).is_err() {
                    return (End::Closed("request stream closed".into()), got_orders);
                }
            }
            message = control.recv() => match message {
                None | Some(Control::Disconnect) => return (End::Disconnect, got_orders),
                Some(Control::Reregister) => {
                    let _ = tx.try_send(registration(spec, shared));
                }
            },
        }
    }
}

/// Connects hosts `ids` (default settings, sharing `log`) one after another, each only once
/// every host so far has settled on the table that lists it, so each joins with its own table
/// version (no debounce merging): the final version is at least `ids.len()`.
pub async fn register_in_turn(placement: &[String], log: &OrderLog, ids: &[&str]) -> Vec<TestHost> {
    let mut hosts: Vec<TestHost> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        hosts.push(TestHost::builder(*id).log(log).connect(placement.to_vec()));
        let mut expected: Vec<&str> = ids[..=i].to_vec();
        expected.sort();
        for host in &hosts {
            host.wait_settled_on(&expected).await;
        }
    }
    hosts
}

/// Asserts that what `host` received since `mark` is exactly one round: LOCK(v), UPDATE(table
/// v listing `ids`), UNLOCK(v).
pub fn assert_exactly_one_round(host: &TestHost, mark: u64, version: u64, ids: &[&str]) {
    let orders = host.orders_since(mark);
    let shape: Vec<String> = orders.iter().map(|r| r.order.to_string()).collect();
    let ok = orders.len() == 3
        && orders[0].order == Received::Lock(version)
        && orders[1]
            .order
            .table()
            .is_some_and(|t| t.version == version && table_host_ids(t) == ids)
        && orders[2].order == Received::Unlock(version);
    assert!(
        ok,
        "host {} should have received exactly [LOCK v{version}, UPDATE v{version} {ids:?}, \
         UNLOCK v{version}] since the change, got {shape:?}",
        host.id
    );
}

/// Asserts that the round of `version` was a barrier across `hosts`: every one of them got
/// LOCK, UPDATE and UNLOCK of it, and (in receive order across hosts, after `mark`) every
/// LOCK came before any UPDATE, and every UPDATE before any UNLOCK. A host only receives the
/// next phase once placement has every ack of the previous one.
pub fn assert_round_is_a_barrier(log: &OrderLog, mark: u64, version: u64, hosts: &[&str]) {
    let records = log.since(mark);
    let first = |host: &str, phase: OrderPhase| {
        records
            .iter()
            .find(|r| r.host_id == host && r.order.phase() == phase && r.order.version() == version)
            .map(|r| r.seq)
            .unwrap_or_else(|| panic!("host {host} got no {phase:?} v{version}; log:\n{log}"))
    };
    let seqs = |phase: OrderPhase| -> Vec<u64> { hosts.iter().map(|h| first(h, phase)).collect() };
    let (locks, updates, unlocks) = (
        seqs(OrderPhase::Lock),
        seqs(OrderPhase::Update),
        seqs(OrderPhase::Unlock),
    );
    let max = |s: &[u64]| s.iter().copied().max().expect("hosts");
    let min = |s: &[u64]| s.iter().copied().min().expect("hosts");
    assert!(
        max(&locks) < min(&updates) && max(&updates) < min(&unlocks),
        "round v{version} was not a barrier across {hosts:?}: LOCK at {locks:?}, UPDATE at \
         {updates:?}, UNLOCK at {unlocks:?}; log:\n{log}"
    );
}

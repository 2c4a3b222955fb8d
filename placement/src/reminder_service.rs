//! The `PlacementReminders` gRPC service: reminders stored in the Raft state, for hosts.
//!
//! Writes go through Raft and are acknowledged once committed, so an acknowledged reminder
//! survives the loss of any single placement node. Reads and fetches are served by the leader
//! from its applied state; a follower answers FAILED_PRECONDITION naming the leader in the
//! `rookery-leader` metadata, and hosts retry there.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rookery_proto::internal::v1::placement_reminders_server::PlacementReminders;
use rookery_proto::internal::v1::{
    CreateReminderRequest, DeleteReminderResponse, FetchDueRequest, ListRemindersRequest,
    ListRemindersResponse, RecordFiringsRequest, RecordFiringsResponse, ReminderKey as WireKey,
    StoredReminder,
};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::raft_types::{NodeId, PlacementRaft};
use crate::reminder_index::{Firing, Outcome, MAX_REMINDERS_PER_PAGE};
use crate::state::Command;
use crate::store::{AppliedState, RemindersView};
use rookery_core::reminders::{key_from_wire, reminder_from_wire, reminder_to_wire, LEADER_KEY};
use rookery_core::table::TableVersion;

type Rings = Arc<rookery_core::table::SharedRings>;

/// Commands gathered into one Raft entry at most; a bound on one entry's size.
pub const MAX_COMMANDS_PER_PROPOSAL: usize = 1_024;
/// Payload bytes gathered into one Raft entry before it is closed (a job may carry 1 MiB):
/// a bound on one entry's size when many large payloads arrive at once.
pub const MAX_PAYLOAD_BYTES_PER_PROPOSAL: usize = 4 * 1024 * 1024;
/// Proposals in flight at once; more requests wait in the queue and join the next ones.
pub const MAX_PROPOSALS_IN_FLIGHT: usize = 4;
/// Reminder writes waiting to be proposed.
pub const PROPOSAL_QUEUE_CAPACITY: usize = 16_384;

type Proposal = (
    Command,
    tokio::sync::oneshot::Sender<Result<Outcome, Status>>,
);

/// Group commit: concurrent reminder writes are proposed together as one `Batch` entry, so
/// they share one Raft round trip and one disk flush. A write that arrives alone is proposed
/// at once; while proposals are in flight, newer writes gather for the next one.
struct Proposer {
    queue: tokio::sync::mpsc::Sender<Proposal>,
}

impl Proposer {
    fn spawn(raft: PlacementRaft, members: BTreeMap<NodeId, String>) -> Proposer {
        let (queue, mut pending) = tokio::sync::mpsc::channel::<Proposal>(PROPOSAL_QUEUE_CAPACITY);
        let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_PROPOSALS_IN_FLIGHT));
        tokio::spawn(async move {
            while let Some(first) = pending.recv().await {
                let permit = in_flight
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore open");
                let mut payload_bytes = payload_of(&first.0);
                let mut proposals = vec![first];
                while proposals.len() < MAX_COMMANDS_PER_PROPOSAL
                    && payload_bytes < MAX_PAYLOAD_BYTES_PER_PROPOSAL
                {
                    match pending.try_recv() {
                        Ok(next) => {
                            payload_bytes += payload_of(&next.0);
                            proposals.push(next);
                        }
                        Err(_) => break,
                    }
                }
                let raft = raft.clone();
                let members = members.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let (commands, replies): (Vec<Command>, Vec<_>) = proposals.into_iter().unzip();
                    match raft.client_write(Command::Batch(commands)).await {
                        Ok(written) => {
                            for (reply, outcome) in replies.into_iter().zip(written.data.outcomes) {
                                let _ = reply.send(Ok(outcome));
                            }
                        }
                        Err(e) => {
                            let status = match e.forward_to_leader() {
                                Some(forward) => not_leader(&members, forward.leader_id),
                                None => Status::unavailable(format!("cannot commit: {e}")),
                            };
                            for reply in replies {
                                let _ = reply.send(Err(status.clone()));
                            }
                        }
                    }
                });
            }
        });
        Proposer { queue }
    }

    async fn propose(&self, command: Command) -> Result<Outcome, Status> {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        self.queue
            .send((command, reply))
            .await
            .map_err(|_| Status::unavailable("the placement node is shutting down"))?;
        outcome
            .await
            .unwrap_or_else(|_| Err(Status::unavailable("the proposal was dropped")))
    }
}

/// The payload bytes a command carries (a reminder's or job's data).
fn payload_of(command: &Command) -> usize {
    match command {
        Command::CreateReminder { reminder, .. } => reminder.data.len(),
        _ => 0,
    }
}

fn not_leader(members: &BTreeMap<NodeId, String>, leader: Option<NodeId>) -> Status {
    let mut status = Status::failed_precondition("this placement node is not the leader");
    if let Some(address) = leader.and_then(|id| members.get(&id)) {
        if let Ok(value) = address.parse() {
            status.metadata_mut().insert(LEADER_KEY, value);
        }
    }
    status
}

pub struct ReminderService {
    proposer: Proposer,
    raft: PlacementRaft,
    applied: watch::Receiver<Arc<AppliedState>>,
    reminders: RemindersView,
    members: BTreeMap<NodeId, String>,
    vnodes_per_host: u32,
    /// Rings of the current table, built once per version for fetches.
    rings: Mutex<Option<(TableVersion, Rings)>>,
}

impl ReminderService {
    pub fn new(
        raft: PlacementRaft,
        applied: watch::Receiver<Arc<AppliedState>>,
        reminders: RemindersView,
        members: BTreeMap<NodeId, String>,
        vnodes_per_host: u32,
    ) -> ReminderService {
        ReminderService {
            proposer: Proposer::spawn(raft.clone(), members.clone()),
            raft,
            applied,
            reminders,
            members,
            vnodes_per_host,
            rings: Mutex::new(None),
        }
    }

    fn not_leader(&self, leader: Option<NodeId>) -> Status {
        not_leader(&self.members, leader)
    }

    fn require_leader(&self) -> Result<(), Status> {
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.current_leader == Some(metrics.id) {
            Ok(())
        } else {
            Err(self.not_leader(metrics.current_leader))
        }
    }

    async fn write(&self, command: Command) -> Result<Outcome, Status> {
        self.require_leader()?;
        self.proposer.propose(command).await
    }

    fn rings(&self) -> Rings {
        let state = self.applied.borrow().clone();
        let version = state.state.table_version;
        let mut cached = self.rings.lock().expect("rings lock");
        if let Some((at, rings)) = cached.as_ref() {
            if *at == version {
                return rings.clone();
            }
        }
        let rings: Rings = Arc::new(state.state.table(self.vnodes_per_host).shared_rings());
        *cached = Some((version, rings.clone()));
        rings
    }
}

#[tonic::async_trait]
impl PlacementReminders for ReminderService {
    async fn create_reminder(
        &self,
        request: Request<CreateReminderRequest>,
    ) -> Result<Response<StoredReminder>, Status> {
        let request = request.into_inner();
        let wire = request
            .reminder
            .ok_or_else(|| Status::invalid_argument("reminder is missing"))?;
        let reminder = reminder_from_wire(wire)?;
        let stored = reminder_to_wire(&reminder);
        let key = reminder.key.clone();
        match self
            .write(Command::CreateReminder {
                reminder,
                overwrite: request.overwrite,
            })
            .await?
        {
            Outcome::AlreadyExists => Err(Status::already_exists(format!(
                "reminder {key} already exists"
            ))),
            _ => Ok(Response::new(stored)),
        }
    }

    async fn get_reminder(
        &self,
        request: Request<WireKey>,
    ) -> Result<Response<StoredReminder>, Status> {
        self.require_leader()?;
        let key = key_from_wire(Some(request.into_inner()))?;
        self.reminders
            .read(|index| index.get(&key).map(reminder_to_wire))
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("no reminder {key}")))
    }

    async fn list_reminders(
        &self,
        request: Request<ListRemindersRequest>,
    ) -> Result<Response<ListRemindersResponse>, Status> {
        self.require_leader()?;
        let request = request.into_inner();
        if request.actor_type.is_empty() {
            return Err(Status::invalid_argument("actor_type must not be empty"));
        }
        let actor_id = (!request.actor_id.is_empty()).then_some(request.actor_id.as_str());
        let reminders = self.reminders.read(|index| {
            index
                .list(&request.actor_type, actor_id)
                .take(MAX_REMINDERS_PER_PAGE)
                .map(reminder_to_wire)
                .collect()
        });
        Ok(Response::new(ListRemindersResponse { reminders }))
    }

    async fn delete_reminder(
        &self,
        request: Request<WireKey>,
    ) -> Result<Response<DeleteReminderResponse>, Status> {
        let key = key_from_wire(Some(request.into_inner()))?;
        let outcome = self.write(Command::DeleteReminder { key }).await?;
        Ok(Response::new(DeleteReminderResponse {
            deleted: outcome == Outcome::Done,
        }))
    }

    async fn fetch_due_reminders(
        &self,
        request: Request<FetchDueRequest>,
    ) -> Result<Response<ListRemindersResponse>, Status> {
        self.require_leader()?;
        let request = request.into_inner();
        let limit = (request.limit as usize).clamp(1, MAX_REMINDERS_PER_PAGE);
        let after = request
            .after
            .map(|cursor| Ok::<_, Status>((cursor.due_ms, key_from_wire(cursor.key)?)))
            .transpose()?;
        let rings = self.rings();
        let reminders = self.reminders.read(|index| {
            index
                .due_until(after.as_ref(), request.until_ms)
                .filter(|r| {
                    rings
                        .get(&r.key.actor_type)
                        .and_then(|ring| ring.owner(&r.key.actor_id))
                        .is_some_and(|owner| owner == request.host_id)
                })
                .take(limit)
                .map(reminder_to_wire)
                .collect()
        });
        Ok(Response::new(ListRemindersResponse { reminders }))
    }

    async fn record_firings(
        &self,
        request: Request<RecordFiringsRequest>,
    ) -> Result<Response<RecordFiringsResponse>, Status> {
        let firings = request
            .into_inner()
            .firings
            .into_iter()
            .map(|f| {
                Ok(Firing {
                    key: key_from_wire(f.key)?,
                    fired_due_ms: f.fired_due_ms,
                    next_due_ms: (!f.done).then_some(f.next_due_ms),
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        if !firings.is_empty() {
            self.write(Command::RecordFirings { firings }).await?;
        }
        Ok(Response::new(RecordFiringsResponse {}))
    }
}

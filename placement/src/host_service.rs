//! The `Placement` gRPC service: host sessions (`ReportHost`) and `GetStatus`.
//!
//! A follower does not serve host sessions: it answers with one `NotLeader` order naming the
//! leader's address, and the host reconnects there.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use rookery_proto::internal::v1::placement_server::Placement;
use rookery_proto::internal::v1::{
    host_report::Report, GetStatusRequest, HostReport, HostStatus, OrderPhase, PlacementOrder,
    PlacementStatus, RaftMember,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::leader::{not_leader_order, Coordinator, ORDER_QUEUE_CAPACITY};
use crate::raft_types::{NodeId, PlacementRaft};
use crate::store::AppliedState;
use rookery_core::table::HostInfo;

pub struct HostService {
    raft: PlacementRaft,
    coordinator: Arc<Coordinator>,
    applied: watch::Receiver<Arc<AppliedState>>,
    /// Member id → address, for redirecting hosts to the leader.
    members: BTreeMap<NodeId, String>,
}

impl HostService {
    pub fn new(
        raft: PlacementRaft,
        coordinator: Arc<Coordinator>,
        applied: watch::Receiver<Arc<AppliedState>>,
        members: BTreeMap<NodeId, String>,
    ) -> HostService {
        HostService {
            raft,
            coordinator,
            applied,
            members,
        }
    }
}

fn host_info(registration: rookery_proto::internal::v1::HostRegistration) -> HostInfo {
    HostInfo {
        id: registration.host_id,
        address: registration.address,
        app_id: registration.app_id,
        actor_types: registration.actor_types,
    }
}

type OrderStream = Pin<Box<dyn Stream<Item = Result<PlacementOrder, Status>> + Send>>;

#[tonic::async_trait]
impl Placement for HostService {
    type ReportHostStream = OrderStream;

    async fn report_host(
        &self,
        request: Request<Streaming<HostReport>>,
    ) -> Result<Response<OrderStream>, Status> {
        let mut reports = request.into_inner();
        let metrics = self.raft.metrics().borrow().clone();
        let me = metrics.id;
        if metrics.current_leader != Some(me) {
            let leader = metrics.current_leader;
            let address = leader.and_then(|id| self.members.get(&id).cloned());
            let redirect = futures::stream::iter([Ok(not_leader_order(leader, address))]);
            return Ok(Response::new(Box::pin(redirect)));
        }
        let first = match reports.next().await {
            Some(Ok(report)) => report,
            Some(Err(status)) => return Err(status),
            None => return Err(Status::invalid_argument("stream closed before registering")),
        };
        let Some(Report::Register(registration)) = first.report else {
            return Err(Status::invalid_argument(
                "the first message must be a registration",
            ));
        };
        let (orders_tx, orders_rx) = mpsc::channel(ORDER_QUEUE_CAPACITY);
        // The reader below keeps only a weak handle: the order stream must end as soon as the
        // leader drops the session, or the host would never notice it was let go.
        let orders_weak = orders_tx.downgrade();
        let session = match self
            .coordinator
            .open_session(host_info(registration), orders_tx)
        {
            Ok(session) => session,
            Err(crate::leader::RegistrationError::NotLeader) => {
                let leader = self.raft.metrics().borrow().current_leader;
                let address = leader.and_then(|id| self.members.get(&id).cloned());
                let redirect = futures::stream::iter([Ok(not_leader_order(leader, address))]);
                return Ok(Response::new(Box::pin(redirect)));
            }
            Err(e) => return Err(e.into()),
        };
        tokio::spawn(async move {
            let reason = loop {
                match reports.next().await {
                    None => break "stream closed by host".to_owned(),
                    Some(Err(status)) => break format!("stream broke: {}", status.message()),
                    Some(Ok(HostReport {
                        report: Some(report),
                    })) => match report {
                        Report::Heartbeat(beat) => session.heartbeat(beat.seq, beat.active_actors),
                        Report::Leave(_) => session.leave(),
                        Report::Ack(ack) => session.ack(
                            OrderPhase::try_from(ack.phase).unwrap_or(OrderPhase::Unspecified),
                            ack.version,
                        ),
                        Report::Register(registration) => {
                            if let Err(e) = session.reregister(host_info(registration)) {
                                if let Some(orders) = orders_weak.upgrade() {
                                    let _ = orders.try_send(Err(e.into()));
                                }
                                break "invalid re-registration".to_owned();
                            }
                        }
                    },
                    Some(Ok(HostReport { report: None })) => {}
                }
            };
            session.close(&reason);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(orders_rx))))
    }

    async fn get_status(
        &self,
        _request: Request<GetStatusRequest>,
    ) -> Result<Response<PlacementStatus>, Status> {
        let metrics = self.raft.metrics().borrow().clone();
        let applied = self.applied.borrow().clone();
        let is_leader = metrics.current_leader == Some(metrics.id);
        let health = if is_leader {
            self.coordinator.session_health()
        } else {
            Default::default()
        };
        let members = metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, node)| RaftMember {
                id: *id,
                address: node.addr.clone(),
            })
            .collect();
        let hosts = applied
            .state
            .hosts
            .values()
            .map(|host| {
                let health = health.get(&host.id).copied();
                HostStatus {
                    host: Some(host.to_wire()),
                    connected: health.is_some(),
                    last_heartbeat_age_ms: health.map(|(age, _)| age),
                    active_actors: health.map(|(_, active)| active),
                }
            })
            .collect();
        Ok(Response::new(PlacementStatus {
            node_id: metrics.id,
            raft_state: format!("{:?}", metrics.state),
            leader_id: metrics.current_leader,
            term: metrics.current_term,
            members,
            table_version: applied.state.table_version.0,
            hosts,
            last_applied_index: applied.last_applied.map(|id| id.index),
        }))
    }
}

//! Unary calls to the placement leader (reminders), from any of the configured placement
//! addresses: a follower's FAILED_PRECONDITION names the leader (`rookery-leader`), and the
//! call goes there; an unreachable node is skipped. Bounded attempts with back-off.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use rookery_core::net::{self, SharedTransport};
use rookery_core::reminders::LEADER_KEY;
use rookery_proto::internal::v1::placement_reminders_client::PlacementRemindersClient;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Attempts of one call across placement nodes before giving up (a leader election takes a
/// few of them).
pub const MAX_PLACEMENT_ATTEMPTS: u32 = 12;
/// Pause between attempts that found no leader.
pub const PLACEMENT_RETRY_BACKOFF_MS: u64 = 200;
/// Deadline of one attempt.
pub const PLACEMENT_CALL_TIMEOUT_MS: u64 = 5_000;

pub struct LeaderRpc {
    addresses: Vec<String>,
    transport: SharedTransport,
    /// The leader's address as last learned.
    leader: Mutex<Option<String>>,
    clients: Mutex<HashMap<String, PlacementRemindersClient<Channel>>>,
}

impl LeaderRpc {
    pub fn new(addresses: Vec<String>, transport: SharedTransport) -> LeaderRpc {
        LeaderRpc {
            addresses,
            transport,
            leader: Mutex::new(None),
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, address: &str) -> Result<PlacementRemindersClient<Channel>, Status> {
        let mut clients = self.clients.lock().expect("clients lock");
        if let Some(client) = clients.get(address) {
            return Ok(client.clone());
        }
        let channel = net::channel(&self.transport, address).map_err(|e| {
            Status::invalid_argument(format!("bad placement address {address:?}: {e}"))
        })?;
        let client = PlacementRemindersClient::new(channel);
        clients.insert(address.to_owned(), client.clone());
        Ok(client)
    }

    /// Sends `message` to the leader with `call` (one RPC of the client), finding the leader
    /// as needed; each attempt has its own deadline.
    pub async fn call<M, T, F, Fut>(&self, message: M, call: F) -> Result<T, Status>
    where
        M: Clone,
        F: Fn(PlacementRemindersClient<Channel>, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut next = 0usize;
        let mut last_error = Status::unavailable("no placement address configured");
        for attempt in 0..MAX_PLACEMENT_ATTEMPTS {
            let address = match self.leader.lock().expect("leader lock").clone() {
                Some(leader) => leader,
                None => {
                    let address = self.addresses[next % self.addresses.len()].clone();
                    next += 1;
                    address
                }
            };
            let mut request = tonic::Request::new(message.clone());
            request.set_timeout(Duration::from_millis(PLACEMENT_CALL_TIMEOUT_MS));
            let result = call(self.client(&address)?, request).await;
            match result {
                Ok(response) => {
                    *self.leader.lock().expect("leader lock") = Some(address);
                    return Ok(response.into_inner());
                }
                Err(status)
                    if status.code() == Code::FailedPrecondition
                        && status.metadata().get(LEADER_KEY).is_some() =>
                {
                    let leader = status
                        .metadata()
                        .get(LEADER_KEY)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    *self.leader.lock().expect("leader lock") = leader;
                    last_error = status;
                }
                Err(status)
                    if matches!(
                        status.code(),
                        Code::Unavailable
                            | Code::FailedPrecondition
                            | Code::DeadlineExceeded
                            | Code::Unknown
                    ) =>
                {
                    // Not the leader (none known yet) or unreachable: try another node.
                    *self.leader.lock().expect("leader lock") = None;
                    last_error = status;
                    if attempt as usize + 1 >= self.addresses.len() {
                        tokio::time::sleep(Duration::from_millis(PLACEMENT_RETRY_BACKOFF_MS)).await;
                    }
                }
                Err(status) => return Err(status),
            }
        }
        Err(Status::unavailable(format!(
            "no placement leader reachable: {}",
            last_error.message()
        )))
    }
}

//! `rookery status --json`, run as a subprocess exactly as an operator would, and its output
//! parsed into typed structs that mirror the documented JSON shape.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::run_rookery;

/// How long one `rookery status` may take. It answers within its own RPC timeouts; this only
/// catches a hang.
const STATUS_TIMEOUT: Duration = Duration::from_secs(30);

/// The JSON object `rookery status --json` prints.
#[derive(Clone, Debug, Deserialize)]
pub struct Status {
    pub leader: Option<u64>,
    pub term: u64,
    pub members: Vec<MemberStatus>,
    pub table_version: u64,
    pub hosts: Vec<HostStatus>,
    /// The whole object as printed, for messages.
    #[serde(skip)]
    pub raw: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct MemberStatus {
    pub id: u64,
    pub address: String,
    pub reachable: bool,
    /// Absent or null for a member that did not answer.
    #[serde(default)]
    pub raft_state: Option<String>,
    /// Not in the documented shape (extras `rookery status` adds); absent means unknown.
    #[serde(default)]
    pub term: Option<u64>,
    #[serde(default)]
    pub last_applied_index: Option<u64>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct HostStatus {
    pub id: String,
    pub address: String,
    pub app_id: String,
    pub actor_types: Vec<String>,
    /// Only the leader knows; tolerated as null when no leader answered.
    #[serde(default)]
    pub connected: Option<bool>,
    #[serde(default)]
    pub last_heartbeat_age_ms: Option<u64>,
}

impl Status {
    pub fn member(&self, id: u64) -> Option<&MemberStatus> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn host(&self, id: &str) -> Option<&HostStatus> {
        self.hosts.iter().find(|h| h.id == id)
    }

    /// Ids of the hosts in the replicated membership, sorted.
    pub fn host_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.hosts.iter().map(|h| h.id.clone()).collect();
        ids.sort();
        ids
    }

    /// Whether `id` is in the membership with its stream open on the leader.
    pub fn host_connected(&self, id: &str) -> bool {
        self.host(id).and_then(|h| h.connected).unwrap_or(false)
    }

    /// The leader's id, if a leader is known and it reports itself as `Leader`.
    pub fn confirmed_leader(&self) -> Option<u64> {
        let leader = self.leader?;
        let member = self.member(leader)?;
        (member.reachable && member.raft_state.as_deref() == Some("Leader")).then_some(leader)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Why `rookery status` did not produce a [`Status`].
#[derive(Clone, Debug)]
pub struct StatusError {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Set when it exited 0 but stdout was not the documented JSON.
    pub parse_error: Option<String>,
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rookery status exited {:?}; parse error: {:?}; stdout: {:?}; stderr: {:?}",
            self.code,
            self.parse_error,
            self.stdout.trim(),
            self.stderr.trim()
        )
    }
}

/// Runs `rookery status --placement <addrs> --json`. `addrs` is the comma-separated list the
/// CLI takes.
pub async fn status_of(addrs: &str) -> Result<Status, StatusError> {
    status_with(addrs, &[]).await
}

/// [`status_of`] with more arguments (e.g. TLS files).
pub async fn status_with(addrs: &str, extra: &[String]) -> Result<Status, StatusError> {
    let mut args = vec!["status", "--placement", addrs, "--json"];
    args.extend(extra.iter().map(String::as_str));
    let out = run_rookery(&args, STATUS_TIMEOUT).await;
    let error = |parse_error: Option<String>| StatusError {
        code: out.code,
        stdout: out.stdout.clone(),
        stderr: out.stderr.clone(),
        parse_error,
    };
    if out.code != Some(0) {
        return Err(error(None));
    }
    // The contract is ONE JSON object on stdout; anything else there is a failure.
    match serde_json::from_str::<Status>(out.stdout.trim()) {
        Ok(mut status) => {
            status.raw = out.stdout.trim().to_owned();
            Ok(status)
        }
        Err(e) => Err(error(Some(e.to_string()))),
    }
}

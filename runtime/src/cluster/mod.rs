//! The host's view of the cluster: its session with placement, the table it routes by, and
//! the lease that lets it serve. Knows nothing of actors: the session asks the host's
//! [`placement_session::LocalActors`] to release moved actors before it acknowledges a table.
//!
//! - [`placement_session`]: register, heartbeat, follow redirects, apply orders, renew the
//!   lease, reconnect with back-off.
//! - [`table`]: the routing table (a placement table with its rings) and [`table::TableState`].
//! - [`lease`]: the serving gate (may this host run turns now) and the app's fence.
//! - [`leader_rpc`]: unary calls to the placement leader (reminders), following redirects.

pub mod leader_rpc;
pub mod lease;
pub mod placement_session;
pub mod table;

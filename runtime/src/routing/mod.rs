//! Routing calls to their actors: here or on the owner host.
//!
//! - [`router`]: owner lookup by the table, local dispatch or forwarding, the ownership
//!   fence, retries of "moved"/unavailable answers until the caller's deadline.
//! - [`forward`]: a forwarded call on the internal protocol, and the connections to peers.
//! - [`internal_service`]: the `HostInternal` service other hosts forward to.
//! - [`waker`]: wakes actors that moved with timers on their new owner.

pub mod forward;
pub mod internal_service;
pub mod router;
pub mod waker;

pub use router::Router;

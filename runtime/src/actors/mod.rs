//! Actors on this host: which types it serves, their activations — one per actor, one turn at
//! a time — and what ends them.
//!
//! - [`channel`]: how the host drives a type (implemented by `crate::channels`).
//! - [`types`]: the served types, who provides each, and the one check of their options.
//! - [`activations`]: the registry of activations; hand-offs to wake elsewhere.
//! - [`activation`]: one actor's queue, turns, reentrancy, claim, state and timers.
//! - [`timers`]: an activation's timers, and the record a move hands off.
//! - [`lifecycle`]: ends activations that moved, went stale or idle.

pub mod activation;
pub mod activations;
pub mod channel;
pub mod lifecycle;
pub mod timers;
pub mod types;

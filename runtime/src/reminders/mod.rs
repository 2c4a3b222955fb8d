//! Durable reminders on a host: the client of the placement leader's reminder store, and the
//! scheduler that fires the reminders of the actors this host owns.
//!
//! - [`client`]: create, get, list, delete (for the API, apps and embedded actors).
//! - [`scheduler`]: fetch what falls due soon, fire it as a turn, report progress.

pub mod client;
pub mod scheduler;

pub use client::ReminderClient;

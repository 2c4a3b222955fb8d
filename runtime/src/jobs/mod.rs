//! Jobs of Dapr's Jobs API on a host: [`JobsClient`] checks a job (`rookery_core::jobs`) and
//! stores, reads, lists and deletes the jobs of this host's app in the placement service,
//! where each is a reminder of the app's jobs type (`rookery_core::job_reminders`). The
//! reminder scheduler fires them; `channels::triggers` delivers them to the app.

pub mod client;

pub use client::{JobsClient, JobsError};

//! The checkers: one module per property, each reading the ledger of a finished run.
//!
//! - [`single_activation`]: at most one activation per actor at any time (turns never overlap;
//!   no two hosts claim one actor at once).
//! - [`versions`]: table versions only grow on every host, and one version means one table.
//! - [`counters`]: acknowledged increments are never lost while their activation lives.
//! - [`liveness`]: once faults stop, tables converge and every actor answers.
//!
//! [`timeline`] turns the ledger into activation and turn intervals they share.

pub mod counters;
pub mod liveness;
pub mod single_activation;
pub mod timeline;
pub mod versions;

use std::fmt;

use crate::cluster::SimConfig;
use crate::ledger::{Record, SimNanos};

/// A property that did not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The property's short name (`single-activation/turns`, `versions/grow`, …).
    pub property: &'static str,
    /// Simulated time of the violation, when it has one.
    pub at: Option<SimNanos>,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some(at) => write!(
                f,
                "[{}] at {}: {}",
                self.property,
                fmt_time(at),
                self.message
            ),
            None => write!(f, "[{}] {}", self.property, self.message),
        }
    }
}

/// Simulated time as seconds with microseconds.
pub fn fmt_time(at: SimNanos) -> String {
    format!(
        "{}.{:06}s",
        at / 1_000_000_000,
        (at % 1_000_000_000) / 1_000
    )
}

/// Most violations reported per property: one bug tends to repeat.
pub const MAX_VIOLATIONS_PER_PROPERTY: usize = 5;

/// Runs every checker.
pub fn check_all(records: &[Record], config: &SimConfig) -> Vec<Violation> {
    let timeline = timeline::Timeline::build(records);
    let mut violations = Vec::new();
    violations.extend(single_activation::check_turns(&timeline));
    violations.extend(single_activation::check_claims(&timeline));
    violations.extend(versions::check(records));
    violations.extend(counters::check(&timeline, records));
    violations.extend(liveness::check(&timeline, records, config));
    violations
}

/// Keeps at most [`MAX_VIOLATIONS_PER_PROPERTY`] and says how many were left out.
pub(crate) fn capped(mut found: Vec<Violation>) -> Vec<Violation> {
    if found.len() > MAX_VIOLATIONS_PER_PROPERTY {
        let more = found.len() - MAX_VIOLATIONS_PER_PROPERTY;
        let property = found[0].property;
        found.truncate(MAX_VIOLATIONS_PER_PROPERTY);
        found.push(Violation {
            property,
            at: None,
            message: format!("… and {more} more"),
        });
    }
    found
}

//! A ledger of actor turns kept outside the cluster, and the single-activation checker.
//!
//! Every test app writes each turn it runs (actor, app, which activation of the actor in that
//! app, start and end on the test process's one clock). The checker then asserts what a
//! caller can observe of "one activation per actor":
//! - no two turns of one actor overlap in time, whoever runs them;
//! - activations are used one after another: once a turn of a newer activation has run, no
//!   older activation of that actor (on any app) runs a turn again.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// (actor type, actor id).
pub type ActorKey = (String, String);

#[derive(Clone, Debug)]
pub struct TurnRecord {
    /// Which app (so which host) ran it.
    pub app: String,
    /// The ordinal of the activation in that app (1 for its first activation of the actor).
    pub activation: u32,
    pub start: Instant,
    pub end: Instant,
}

pub struct Ledger {
    turns: Mutex<BTreeMap<ActorKey, Vec<TurnRecord>>>,
    /// Times in messages are reported relative to this.
    pub epoch: Instant,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            turns: Mutex::default(),
            epoch: Instant::now(),
        }
    }
}

/// What the ledger holds, for the report.
#[derive(Debug, Default)]
pub struct LedgerSummary {
    pub actors: usize,
    pub turns: usize,
    /// Distinct (app, activation) pairs: how many activations served turns.
    pub activations: usize,
}

impl Ledger {
    pub fn record(&self, key: ActorKey, turn: TurnRecord) {
        self.turns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .push(turn);
    }

    /// Checks every actor's turns; returns the violations found.
    pub fn check(&self) -> (LedgerSummary, Vec<String>) {
        let turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
        let mut summary = LedgerSummary {
            actors: turns.len(),
            ..Default::default()
        };
        let mut violations = Vec::new();
        for (key, records) in turns.iter() {
            let mut records = records.clone();
            records.sort_by_key(|r| r.start);
            summary.turns += records.len();
            // Activation order: the first turn of each (app, activation) defines its place.
            let mut order: Vec<(String, u32)> = Vec::new();
            for (i, record) in records.iter().enumerate() {
                let id = (record.app.clone(), record.activation);
                if let Some(previous) = i.checked_sub(1).map(|p| &records[p]) {
                    if record.start < previous.end {
                        violations.push(format!(
                            "{key:?}: turn on {} (activation {}) started {:?} before the turn on {} (activation {}) ended",
                            record.app,
                            record.activation,
                            previous.end - record.start,
                            previous.app,
                            previous.activation
                        ));
                    }
                }
                match order.iter().position(|o| *o == id) {
                    None => order.push(id),
                    Some(position) if position + 1 != order.len() => violations.push(format!(
                        "{key:?}: activation {} on {} ran a turn at +{:?} after the newer activation {:?} had run one (its turns: {:?})",
                        record.activation,
                        record.app,
                        record.start - self.epoch,
                        order.last(),
                        records
                            .iter()
                            .map(|r| (r.app.clone(), r.activation, r.start - self.epoch))
                            .collect::<Vec<_>>()
                    )),
                    Some(_) => {}
                }
            }
            summary.activations += order.len();
        }
        (summary, violations)
    }
}

//! Acknowledged increments are never lost while their activation lives.
//!
//! State lives in memory until actor state persistence exists, so a new activation of an
//! actor starts again from zero: losing the count across activations is expected today. What
//! must hold is the in-memory contract of one activation.
//!
//! **Acknowledged** means the workload received `Ok("<activation>:<value>")` for an
//! `increment`: that activation ran the turn that produced `value`.
//!
//! - `counters/consecutive`: the turns of each activation that finished returned 1, 2, 3, …
//!   in the order they ran — no increment lost, none applied twice. So every acknowledged
//!   value stays below every later value of its activation.
//! - `counters/acknowledged`: every acknowledged answer names an activation of the actor
//!   that was called and a value one of its turns returned — the answer came from that turn,
//!   not from another actor or a turn that never ran.
//! - `counters/unique-ack`: no two calls were acknowledged with the same value by the same
//!   activation (one turn answered one call).

use std::collections::{BTreeMap, BTreeSet};

use crate::check::timeline::Timeline;
use crate::check::{capped, Violation};
use crate::ledger::{CallOutcome, Event, Record};

pub fn check(t: &Timeline, records: &[Record]) -> Vec<Violation> {
    let mut consecutive = Vec::new();
    let mut values: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    for turn in &t.turns {
        let Some(value) = turn.value else { continue };
        let expected = last.get(&turn.activation).copied().unwrap_or(0) + 1;
        if value != expected {
            consecutive.push(Violation {
                property: "counters/consecutive",
                at: Some(turn.end),
                message: format!(
                    "activation {} of actor {} returned {value} where {expected} was next",
                    turn.activation, turn.actor
                ),
            });
        }
        last.insert(turn.activation, value);
        values.entry(turn.activation).or_default().insert(value);
    }
    let mut acknowledged = Vec::new();
    let mut unique = Vec::new();
    let mut seen: BTreeSet<(u64, u64)> = BTreeSet::new();
    for record in records {
        let Event::Call {
            actor,
            outcome: CallOutcome::Ok { activation, value },
            caller,
            ..
        } = &record.event
        else {
            continue;
        };
        let right_actor = t
            .activations
            .get(activation)
            .is_some_and(|a| a.actor == *actor);
        let produced = values.get(activation).is_some_and(|v| v.contains(value));
        if !right_actor || !produced {
            acknowledged.push(Violation {
                property: "counters/acknowledged",
                at: Some(record.at),
                message: format!(
                    "{caller} called {actor} and was acknowledged {activation}:{value}, which no turn of that actor produced"
                ),
            });
        }
        if !seen.insert((*activation, *value)) {
            unique.push(Violation {
                property: "counters/unique-ack",
                at: Some(record.at),
                message: format!(
                    "activation {activation} of {actor} acknowledged value {value} twice"
                ),
            });
        }
    }
    let mut found = capped(consecutive);
    found.extend(capped(acknowledged));
    found.extend(capped(unique));
    found
}

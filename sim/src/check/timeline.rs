//! The ledger as intervals: when each node incarnation ran, when each activation lived, when
//! each turn ran, and each incarnation's table states over time.
//!
//! An incarnation ends when the driver crashed it, when its software stopped after a leave,
//! when the next incarnation of its node started, or when the run ended. An activation lives
//! from its `on_activate` until its `on_deactivate`, or until its incarnation ended (a crash
//! ends activations without telling them). A turn runs from its start to its end, or until its
//! incarnation ended.

use std::collections::BTreeMap;

use crate::ledger::{Event, Incarnation, Record, SimNanos, TableSnapshot};

/// One activation's life.
#[derive(Clone, Debug)]
pub struct ActivationSpan {
    pub id: u64,
    pub actor: String,
    pub incarnation: Incarnation,
    pub start: SimNanos,
    pub end: SimNanos,
    /// Whether it ended with `on_deactivate` (rather than a crash or the run's end).
    pub deactivated: bool,
}

/// One turn.
#[derive(Clone, Debug)]
pub struct TurnSpan {
    pub actor: String,
    pub activation: u64,
    pub start: SimNanos,
    pub end: SimNanos,
    /// The value it returned, if it finished.
    pub value: Option<u64>,
}

/// A table state of one incarnation, in force from `at` until the next one.
#[derive(Clone, Debug)]
pub struct StateSpan {
    pub at: SimNanos,
    pub table: Option<TableSnapshot>,
    pub locked: bool,
    pub lease_until: Option<SimNanos>,
    pub lease_version: u64,
    pub epoch: u64,
}

#[derive(Debug, Default)]
pub struct Timeline {
    /// When each incarnation started and ended.
    pub incarnations: BTreeMap<Incarnation, (SimNanos, SimNanos)>,
    pub activations: BTreeMap<u64, ActivationSpan>,
    /// In the order they started (per the ledger).
    pub turns: Vec<TurnSpan>,
    /// Each incarnation's table states, in time order.
    pub states: BTreeMap<Incarnation, Vec<StateSpan>>,
    /// The last simulated time in the ledger.
    pub run_end: SimNanos,
}

impl Timeline {
    pub fn build(records: &[Record]) -> Timeline {
        let run_end = records.iter().map(|r| r.at).max().unwrap_or(0);
        let mut t = Timeline {
            run_end,
            ..Timeline::default()
        };
        // Incarnations: start, then the earliest end event.
        let mut latest_run: BTreeMap<String, Incarnation> = BTreeMap::new();
        for record in records {
            match &record.event {
                Event::Started { incarnation } => {
                    if let Some(previous) =
                        latest_run.insert(incarnation.node.clone(), incarnation.clone())
                    {
                        if let Some(span) = t.incarnations.get_mut(&previous) {
                            span.1 = span.1.min(record.at);
                        }
                    }
                    t.incarnations
                        .insert(incarnation.clone(), (record.at, run_end));
                }
                Event::Crashed { incarnation } | Event::Stopped { incarnation } => {
                    if let Some(span) = t.incarnations.get_mut(incarnation) {
                        span.1 = span.1.min(record.at);
                    }
                }
                _ => {}
            }
        }
        let end_of = |t: &Timeline, inc: &Incarnation| {
            t.incarnations.get(inc).map(|s| s.1).unwrap_or(run_end)
        };
        let mut open_turns: BTreeMap<u64, usize> = BTreeMap::new();
        for record in records {
            match &record.event {
                Event::Activated {
                    actor,
                    activation,
                    incarnation,
                } => {
                    let end = end_of(&t, incarnation);
                    t.activations.insert(
                        *activation,
                        ActivationSpan {
                            id: *activation,
                            actor: actor.clone(),
                            incarnation: incarnation.clone(),
                            start: record.at,
                            end,
                            deactivated: false,
                        },
                    );
                }
                Event::Deactivated { activation, .. } => {
                    if let Some(span) = t.activations.get_mut(activation) {
                        span.end = span.end.min(record.at);
                        span.deactivated = true;
                    }
                }
                Event::TurnStarted { actor, activation } => {
                    let end = t
                        .activations
                        .get(activation)
                        .map(|a| a.end)
                        .unwrap_or(run_end);
                    open_turns.insert(*activation, t.turns.len());
                    t.turns.push(TurnSpan {
                        actor: actor.clone(),
                        activation: *activation,
                        start: record.at,
                        end,
                        value: None,
                    });
                }
                Event::TurnEnded {
                    activation, value, ..
                } => {
                    if let Some(index) = open_turns.remove(activation) {
                        let turn = &mut t.turns[index];
                        turn.end = record.at;
                        turn.value = Some(*value);
                    }
                }
                Event::TableState {
                    incarnation,
                    table,
                    locked,
                    lease_until,
                    lease_version,
                    epoch,
                } => {
                    t.states
                        .entry(incarnation.clone())
                        .or_default()
                        .push(StateSpan {
                            at: record.at,
                            table: table.clone(),
                            locked: *locked,
                            lease_until: *lease_until,
                            lease_version: *lease_version,
                            epoch: *epoch,
                        });
                }
                _ => {}
            }
        }
        for states in t.states.values_mut() {
            states.sort_by_key(|s| s.at);
        }
        t
    }

    /// The node an activation ran on.
    pub fn host_of(&self, activation: u64) -> Option<&str> {
        self.activations
            .get(&activation)
            .map(|a| a.incarnation.node.as_str())
    }
}

/// Whether two half-open intervals `[a0, a1)` and `[b0, b1)` share an instant.
pub fn overlap(a: (SimNanos, SimNanos), b: (SimNanos, SimNanos)) -> Option<(SimNanos, SimNanos)> {
    let start = a.0.max(b.0);
    let end = a.1.min(b.1);
    (start < end).then_some((start, end))
}

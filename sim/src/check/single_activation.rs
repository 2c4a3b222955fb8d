//! At most one activation per actor at any time.
//!
//! Two properties, both in simulated time, both over half-open intervals (an interval that
//! ends at the instant another starts does not overlap it):
//!
//! 1. **Turns** (`single-activation/turns`): no two turns of one actor that belong to
//!    different activations overlap. This is what the architecture guarantees ("at most one
//!    host runs turns of a given actor"), and turns of the simulated Counter take up to
//!    `MAX_TURN_MS / 4` ms, well within the drain timeout its precondition asks for. A turn
//!    cut short by a crash ends at the crash.
//! 2. **Claims** (`single-activation/claims`): an activation *claims* its actor at instant `t`
//!    when it is alive (between `on_activate` and `on_deactivate`, or its host's crash) and may
//!    serve: its host at `t` holds a lease (`t` is before the `lease_until` of the host's
//!    latest table state) granted against a table version it holds (`lease_version` ≤ its
//!    table's version), its table is unlocked and makes it the actor's owner, and the host is
//!    still in the serving epoch the activation was created in (a host that resumes after a
//!    lapse during which the table changed starts a new epoch, and refuses turns to older
//!    activations). No two activations on different hosts claim one actor at the same
//!    instant. This is the invariant the
//!    architecture builds single activation on ("an activation never outlives its owner's
//!    claim"); it catches a double activation even when the two never happen to run a turn
//!    at the same time.
//!
//! The lease and table of a host are seen by a watcher task on the host, so they are
//! recorded at the simulated instant the host's own state changed (the watcher runs in the
//! same scheduler pass). Changes within one pass coalesce; the claim check then sees the
//! latest of them, never an earlier one.

use std::collections::BTreeMap;

use crate::check::timeline::{overlap, ActivationSpan, Timeline};
use crate::check::{capped, fmt_time, Violation};
use crate::counter::COUNTER_TYPE;
use crate::ledger::SimNanos;

pub fn check_turns(t: &Timeline) -> Vec<Violation> {
    let mut by_actor: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, turn) in t.turns.iter().enumerate() {
        by_actor.entry(turn.actor.as_str()).or_default().push(i);
    }
    let mut found = Vec::new();
    for (actor, mut turns) in by_actor {
        turns.sort_by_key(|&i| (t.turns[i].start, i));
        // Sweep: turns still running when the next one starts.
        let mut running: Vec<usize> = Vec::new();
        for &i in &turns {
            let turn = &t.turns[i];
            running.retain(|&j| t.turns[j].end > turn.start);
            for &j in &running {
                let other = &t.turns[j];
                if other.activation == turn.activation {
                    continue;
                }
                if let Some((from, to)) = overlap((other.start, other.end), (turn.start, turn.end))
                {
                    found.push(Violation {
                        property: "single-activation/turns",
                        at: Some(from),
                        message: format!(
                            "actor {actor}: turn of activation {} on {} [{} – {}] overlaps turn of activation {} on {} [{} – {}] until {}",
                            other.activation,
                            t.host_of(other.activation).unwrap_or("?"),
                            fmt_time(other.start),
                            fmt_time(other.end),
                            turn.activation,
                            t.host_of(turn.activation).unwrap_or("?"),
                            fmt_time(turn.start),
                            fmt_time(turn.end),
                            fmt_time(to),
                        ),
                    });
                }
            }
            running.push(i);
        }
    }
    capped(found)
}

/// The intervals in which `activation` claims its actor.
pub fn claims(t: &Timeline, activation: &ActivationSpan) -> Intervals {
    let Some(states) = t.states.get(&activation.incarnation) else {
        return Vec::new();
    };
    // The epoch the activation was created in: the host's at its start.
    let created_epoch = states
        .iter()
        .rev()
        .find(|s| s.at <= activation.start)
        .map(|s| s.epoch)
        .unwrap_or(0);
    let mut intervals = Vec::new();
    for (k, state) in states.iter().enumerate() {
        let next = states.get(k + 1).map(|s| s.at).unwrap_or(t.run_end);
        let Some(table) = &state.table else { continue };
        if state.locked || state.epoch != created_epoch || table.version() < state.lease_version {
            continue;
        }
        let owns = table
            .table
            .owner(COUNTER_TYPE, &activation.actor)
            .is_some_and(|owner| owner.id == activation.incarnation.node);
        if !owns {
            continue;
        }
        let Some(lease_until) = state.lease_until else {
            continue;
        };
        let held = (state.at, next.min(lease_until));
        if let Some(claim) = overlap(held, (activation.start, activation.end)) {
            intervals.push(claim);
        }
    }
    intervals
}

/// Half-open intervals of simulated time.
type Intervals = Vec<(SimNanos, SimNanos)>;

pub fn check_claims(t: &Timeline) -> Vec<Violation> {
    let mut by_actor: BTreeMap<&str, Vec<(&ActivationSpan, Intervals)>> = BTreeMap::new();
    for activation in t.activations.values() {
        let claimed = claims(t, activation);
        if !claimed.is_empty() {
            by_actor
                .entry(activation.actor.as_str())
                .or_default()
                .push((activation, claimed));
        }
    }
    let mut found = Vec::new();
    for (actor, activations) in by_actor {
        for (i, (a, a_claims)) in activations.iter().enumerate() {
            for (b, b_claims) in &activations[i + 1..] {
                if a.incarnation.node == b.incarnation.node {
                    continue;
                }
                let both = a_claims
                    .iter()
                    .flat_map(|x| b_claims.iter().filter_map(move |y| overlap(*x, *y)))
                    .next();
                if let Some((from, to)) = both {
                    found.push(Violation {
                        property: "single-activation/claims",
                        at: Some(from),
                        message: format!(
                            "actor {actor}: activation {} on {} and activation {} on {} both claim it (alive, leased, unlocked owner) from {} to {}",
                            a.id,
                            a.incarnation,
                            b.id,
                            b.incarnation,
                            fmt_time(from),
                            fmt_time(to),
                        ),
                    });
                }
            }
        }
    }
    capped(found)
}

//! What a call is, wherever it comes from and whoever serves it: the actor it is for, its
//! method and payload, its call chain, and what kind of turn it asks for; [`trace`]: the W3C
//! trace context its metadata carries from hop to hop; [`deadline`]: the time bounds of its
//! futures, armed only when they wait.

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;

pub mod deadline;
pub mod trace;

/// Identifies one virtual actor in the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorKey {
    pub actor_type: String,
    pub actor_id: String,
}

impl ActorKey {
    pub fn new(actor_type: impl Into<String>, actor_id: impl Into<String>) -> ActorKey {
        ActorKey {
            actor_type: actor_type.into(),
            actor_id: actor_id.into(),
        }
    }
}

impl fmt::Display for ActorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.actor_type, self.actor_id)
    }
}

/// One method call on one actor.
#[derive(Clone, Debug)]
pub struct Call {
    pub key: ActorKey,
    pub method: String,
    pub data: Bytes,
    pub metadata: HashMap<String, String>,
    /// Identifies the chain of nested calls this call belongs to (for reentrancy).
    pub call_chain_id: String,
    pub kind: CallKind,
}

/// What a turn is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// A method call (`method`, `data`).
    Method,
    /// A reminder tick: `data` is the reminder's data.
    Reminder(ReminderTick),
    /// A timer tick: `data` is the timer's data.
    Timer(TimerTick),
    /// A firing of a job of the Jobs API: the actor is the job (its id the job's name, its
    /// type the app's jobs type), `data` the job's payload. Delivered to the app by the
    /// jobs type's own channel (`channels::triggers`), never to an actor's.
    Job(JobTrigger),
    /// Only activates the actor (its instance hears nothing but the activation): sent to an
    /// actor's new owner after a graceful hand-off left timers in the store, so that they
    /// resume there without waiting for the actor's next call.
    Wake,
}

/// One firing of a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobTrigger {
    /// What the payload holds: a protobuf `Any`'s type URL; empty: raw bytes.
    pub data_type_url: String,
    /// The instant this firing was due, Unix-epoch ms: with the job's name, it identifies
    /// the firing (a firing delivered again has the same one).
    pub due_at_ms: u64,
}

/// One firing of an activation's timer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerTick {
    pub name: String,
    /// The callback named at registration (Dapr's timer callback method).
    pub callback: String,
}

/// A timer as registered by actor code.
#[derive(Clone, Debug)]
pub struct TimerSpec {
    pub name: String,
    pub schedule: rookery_core::schedule::Schedule,
    pub callback: String,
    pub data: Bytes,
}

/// One firing of a reminder, as the actor hears it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReminderTick {
    pub name: String,
    /// The due instant of this tick, Unix-epoch ms.
    pub due_at_ms: u64,
    /// 0: one-shot.
    pub period_ms: u64,
}

/// A fresh call chain id: 128 random bits in hex (32 digits). Made on every call that starts
/// a chain, so written digit by digit rather than through `format!`.
pub fn new_call_chain_id() -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let bits = fastrand::u128(..);
    let mut digits = [0u8; 32];
    for (i, digit) in digits.iter_mut().enumerate() {
        *digit = DIGITS[((bits >> (124 - 4 * i)) & 0xf) as usize];
    }
    // Hex digits only: always valid UTF-8.
    String::from_utf8(digits.to_vec()).expect("hex digits")
}

#[cfg(test)]
mod tests {
    #[test]
    fn call_chain_ids_are_32_lowercase_hex_digits_and_differ() {
        let (a, b) = (super::new_call_chain_id(), super::new_call_chain_id());
        for id in [&a, &b] {
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
                "{id}"
            );
        }
        assert_ne!(a, b);
        let word = u64::from_str_radix(&a[..16], 16).unwrap();
        assert_eq!(format!("{word:016x}"), a[..16]);
    }
}

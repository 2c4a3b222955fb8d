//! The Counter actor the workload calls: an embedded actor whose `increment` returns the new
//! value, and which writes every activation, turn and deactivation to the [`Ledger`].
//!
//! A turn takes as long as the caller asks (the request carries a duration in milliseconds),
//! so turns have extent in simulated time and two overlapping turns can be seen. The answer is
//! `"<activation>:<value>"`, so the workload knows which activation served it.

use bytes::Bytes;
use rookery_runtime::{Actor, ActorContext, ActorError};

use crate::ledger::{Event, Incarnation, Ledger};

/// The actor type name the hosts register.
pub const COUNTER_TYPE: &str = "Counter";
/// The method that adds one and returns the new value.
pub const INCREMENT: &str = "increment";
/// Longest turn the actor agrees to take, well under the drain timeout (2 s): the guarantee
/// only covers turns that end within it.
pub const MAX_TURN_MS: u64 = 200;

/// One activation's state: in memory only, so a new activation starts from zero.
pub struct CounterActor {
    ledger: Ledger,
    incarnation: Incarnation,
    activation: u64,
    count: u64,
}

impl CounterActor {
    pub fn new(ledger: Ledger, incarnation: Incarnation) -> CounterActor {
        CounterActor {
            ledger,
            incarnation,
            activation: 0,
            count: 0,
        }
    }
}

fn actor_name(ctx: &ActorContext) -> String {
    ctx.actor_id().to_owned()
}

/// The request payload: the turn's duration in milliseconds, as decimal text.
pub fn turn_request(turn_ms: u64) -> Vec<u8> {
    turn_ms.to_string().into_bytes()
}

/// Parses an answer `"<activation>:<value>"`.
pub fn parse_answer(data: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(data).ok()?;
    let (activation, value) = text.split_once(':')?;
    Some((activation.parse().ok()?, value.parse().ok()?))
}

#[async_trait::async_trait]
impl Actor for CounterActor {
    async fn on_activate(&mut self, ctx: &ActorContext) -> Result<(), ActorError> {
        self.activation = self.ledger.next_activation();
        self.ledger.record(Event::Activated {
            actor: actor_name(ctx),
            activation: self.activation,
            incarnation: self.incarnation.clone(),
        });
        Ok(())
    }

    async fn handle(
        &mut self,
        ctx: &ActorContext,
        method: &str,
        data: Bytes,
    ) -> Result<Bytes, ActorError> {
        if method != INCREMENT {
            return Err(ActorError::new(format!("unknown method {method:?}")));
        }
        let turn_ms = std::str::from_utf8(&data)
            .ok()
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(0)
            .min(MAX_TURN_MS);
        self.ledger.record(Event::TurnStarted {
            actor: actor_name(ctx),
            activation: self.activation,
        });
        if turn_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(turn_ms)).await;
        }
        self.count += 1;
        self.ledger.record(Event::TurnEnded {
            actor: actor_name(ctx),
            activation: self.activation,
            value: self.count,
        });
        Ok(Bytes::from(format!("{}:{}", self.activation, self.count)))
    }

    async fn on_deactivate(&mut self, ctx: &ActorContext) {
        self.ledger.record(Event::Deactivated {
            actor: actor_name(ctx),
            activation: self.activation,
        });
    }
}

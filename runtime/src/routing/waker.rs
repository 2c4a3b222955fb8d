//! Wakes actors on their new owner after they moved away with timers: the old activation
//! left them in the state store, and the wake — a turn that only activates — lets the new
//! owner resume them without waiting for the actor's next call.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rookery_core::shutdown::Shutdown;

use crate::actors::activations::{HandOff, HandOffs};
use crate::call::{Call, CallKind};
use crate::routing::Router;

/// How long a wake after a hand-off may take (it waits for the new owner's UNLOCK).
pub const WAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Wakes every hand-off queued until shutdown.
pub async fn wake_handed_off(mut hand_offs: HandOffs, router: Arc<Router>, shutdown: Shutdown) {
    loop {
        tokio::select! {
            next = hand_offs.recv() => match next {
                Some(hand_off) => {
                    tokio::spawn(wake(hand_off, router.clone()));
                }
                None => return,
            },
            _ = shutdown.fired() => return,
        }
    }
}

/// One wake; the hand-off stays pending until it is answered.
async fn wake(hand_off: HandOff, router: Arc<Router>) {
    let key = hand_off.key.clone();
    let wake = Call {
        method: "wake".into(),
        data: Bytes::new(),
        metadata: Default::default(),
        call_chain_id: String::new(),
        kind: CallKind::Wake,
        key: key.clone(),
    };
    match router.invoke(wake, Some(WAKE_TIMEOUT)).await {
        Ok(_) => tracing::debug!(actor = %key, "woke the actor on its new owner"),
        Err(e) => {
            tracing::warn!(actor = %key, error = %e, "cannot wake a handed-off actor; its timers resume on its next activation")
        }
    }
    drop(hand_off);
}

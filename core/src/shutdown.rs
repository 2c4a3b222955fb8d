//! The one stop signal of a node: a [`ShutdownTrigger`] fires it once, and every task holding a
//! [`Shutdown`] sees it, whether it was waiting already or looks later.

use std::future::Future;

use tokio::sync::watch;

/// Fires the signal. Dropping it fires it too: when the owner of a node is gone, so is the
/// node.
#[derive(Debug)]
pub struct ShutdownTrigger {
    fired: watch::Sender<bool>,
}

/// A task's view of the signal: cheap to clone, one per task.
#[derive(Clone, Debug)]
pub struct Shutdown {
    fired: watch::Receiver<bool>,
}

/// A new signal, not fired.
pub fn shutdown_signal() -> (ShutdownTrigger, Shutdown) {
    let (fired, watcher) = watch::channel(false);
    (ShutdownTrigger { fired }, Shutdown { fired: watcher })
}

impl ShutdownTrigger {
    /// Fires the signal (again: no effect).
    pub fn fire(&self) {
        self.fired.send_replace(true);
    }

    /// Another view of this signal.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            fired: self.fired.subscribe(),
        }
    }
}

impl Shutdown {
    /// Whether the signal has fired (or its trigger is gone).
    pub fn is_fired(&self) -> bool {
        *self.fired.borrow() || self.fired.has_changed().is_err()
    }

    /// Resolves once the signal has fired or its trigger is gone (at once if so already).
    pub fn fired(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut fired = self.fired.clone();
        async move {
            let _ = fired.wait_for(|fired| *fired).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_view_sees_the_signal_once_fired() {
        let (trigger, shutdown) = shutdown_signal();
        let later = trigger.subscribe();
        assert!(!shutdown.is_fired());
        let waiting = tokio::spawn(shutdown.fired());
        trigger.fire();
        waiting.await.expect("waiter");
        assert!(later.is_fired());
        later.fired().await;
    }

    #[tokio::test]
    async fn a_dropped_trigger_fires() {
        let (trigger, shutdown) = shutdown_signal();
        let waiting = tokio::spawn(shutdown.fired());
        drop(trigger);
        waiting.await.expect("waiter");
        assert!(shutdown.is_fired());
    }
}

//! Time bounds on a call's futures that cost nothing when the future is ready at its first
//! poll: the timer is made only once the future has to wait.
//!
//! `tokio::time::timeout` makes its timer as it is created (a handle on the runtime, a read of
//! the clock, a timer entry, all dropped again), which is most of the cost of a turn that
//! answers at once (an embedded actor's). [`within`] polls the future first and arms a timer
//! only when it returns pending; from then on it behaves as `timeout_at` with the same
//! deadline, so nothing waits longer than before.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

/// The future did not finish by its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// `future`, unless `deadline` passes first.
pub fn within<F: Future>(deadline: Instant, future: F) -> Within<F> {
    Within {
        future,
        limit: Limit::At(deadline),
        timer: None,
    }
}

/// `future`, unless `bound` passes first, counted from its first wait.
pub fn within_for<F: Future>(bound: std::time::Duration, future: F) -> Within<F> {
    Within {
        future,
        limit: Limit::After(bound),
        timer: None,
    }
}

/// When a bounded future is cut off.
#[derive(Clone, Copy)]
enum Limit {
    At(Instant),
    /// This long after its first wait.
    After(std::time::Duration),
}

pin_project_lite::pin_project! {
    /// The future of [`within`] and [`within_for`].
    pub struct Within<F> {
        #[pin]
        future: F,
        limit: Limit,
        // Boxed: made only for a future that waits, and small inside every one that does not.
        timer: Option<Pin<Box<Sleep>>>,
    }
}

impl<F: Future> Future for Within<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        let limit = *this.limit;
        let timer = this.timer.get_or_insert_with(|| {
            let deadline = match limit {
                Limit::At(deadline) => deadline,
                Limit::After(bound) => Instant::now() + bound,
            };
            Box::pin(tokio::time::sleep_until(deadline))
        });
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_ready_future_needs_no_timer_and_a_waiting_one_is_cut_off() {
        assert_eq!(within_for(Duration::ZERO, async { 7 }).await, Ok(7));
        let waits = within_for(Duration::from_secs(5), std::future::pending::<()>());
        let started = Instant::now();
        assert_eq!(waits.await, Err(Elapsed));
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_secs(3);
        let sleeps = within(deadline, tokio::time::sleep(Duration::from_secs(1)));
        assert_eq!(sleeps.await, Ok(()));
        assert_eq!(
            within(deadline, std::future::pending::<()>()).await,
            Err(Elapsed)
        );
        assert_eq!(Instant::now(), deadline);
    }
}

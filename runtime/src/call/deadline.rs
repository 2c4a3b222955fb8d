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
        deadline,
        timer: None,
    }
}

/// `future`, unless `bound` passes first, counted from its first wait.
pub fn within_for<F: Future>(bound: std::time::Duration, future: F) -> WithinFor<F> {
    WithinFor {
        future,
        bound,
        timer: None,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`within`].
    pub struct Within<F> {
        #[pin]
        future: F,
        deadline: Instant,
        // Boxed: made only for a future that waits, and small inside every one that does not.
        timer: Option<Pin<Box<Sleep>>>,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`within_for`].
    pub struct WithinFor<F> {
        #[pin]
        future: F,
        bound: std::time::Duration,
        timer: Option<Pin<Box<Sleep>>>,
    }
}

/// Polls `future`, then the timer (armed by `arm` on the first wait).
fn poll_bounded<F: Future>(
    future: Pin<&mut F>,
    timer: &mut Option<Pin<Box<Sleep>>>,
    arm: impl FnOnce() -> Instant,
    cx: &mut Context<'_>,
) -> Poll<Result<F::Output, Elapsed>> {
    if let Poll::Ready(output) = future.poll(cx) {
        return Poll::Ready(Ok(output));
    }
    let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(arm())));
    match timer.as_mut().poll(cx) {
        Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
        Poll::Pending => Poll::Pending,
    }
}

impl<F: Future> Future for Within<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let deadline = *this.deadline;
        poll_bounded(this.future, this.timer, || deadline, cx)
    }
}

impl<F: Future> Future for WithinFor<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let bound = *this.bound;
        poll_bounded(this.future, this.timer, || Instant::now() + bound, cx)
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

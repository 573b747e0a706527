//! [`Contained`]: a handler's future polled in place, with a panic turned
//! into a value instead of unwinding through the transport's task.
//!
//! The pipeline once spawned every handler as its own task for this (and
//! aborted it on timeout); polling it in place gives the same containment
//! without a task and a cross-task wake-up per task. Dropping a `Contained`
//! drops the handler's future, which aborts whatever it was doing (the
//! model server call), as aborting the task did.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A future whose panic becomes `Err(Panicked)`.
pub(crate) struct Contained<F> {
    inner: Option<F>,
}

/// The handler panicked (the panic hook has already reported it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Panicked;

impl<F> Contained<F> {
    pub fn new(inner: F) -> Self {
        Self { inner: Some(inner) }
    }
}

impl<F: Future + Unpin> Future for Contained<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(Err(Panicked)); // never polled again after a panic
        };
        match catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(_) => {
                // A future that panicked is in no state to be dropped
                // normally either; dropping it may panic again, so it is
                // dropped inside the same guard.
                let broken = self.inner.take();
                let _ = catch_unwind(AssertUnwindSafe(move || drop(broken)));
                Poll::Ready(Err(Panicked))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_value_passes_and_a_panic_becomes_an_error() {
        let ok = Contained::new(Box::pin(async { 7 })).await;
        assert_eq!(ok, Ok(7));
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {})); // keep the test output clean
        let panicked = Contained::new(Box::pin(async {
            tokio::task::yield_now().await;
            panic!("handler bug");
        }))
        .await;
        std::panic::set_hook(hook);
        assert_eq!(panicked, Err::<(), _>(Panicked));
    }
}

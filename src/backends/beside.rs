//! Two futures that poll a piece of work with something beside it, for the
//! backends' client (`client.rs`): [`Driven`] drives a connection's I/O
//! while the work waits on it, [`Before`] ends the work at a deadline.
//!
//! Hand-written rather than `async fn`s: an `async fn` that pins its
//! argument keeps the work twice in its state and copies it in, and the
//! work here is the whole exchange with an engine (hundreds of bytes,
//! copied on every task).

use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project! {
    /// `work`, with the connection `conn` polled first on each wake-up
    /// (what it reads is then seen by `work` at once). When the connection
    /// ends it is dropped (`*conn = None`) and `work` goes on alone: it then
    /// finishes with what was read, or fails.
    pub(super) struct Driven<'a, C, F> {
        conn: &'a mut Option<Pin<Box<C>>>,
        #[pin]
        work: F,
    }
}

/// [`Driven`]: `work` with `conn` driven beside it.
pub(super) fn driven<C, F>(conn: &mut Option<Pin<Box<C>>>, work: F) -> Driven<'_, C, F> {
    Driven { conn, work }
}

impl<C: Future, F: Future> Future for Driven<'_, C, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if let Some(c) = this.conn.as_mut()
            && c.as_mut().poll(cx).is_ready()
        {
            **this.conn = None;
        }
        this.work.poll(cx)
    }
}

pin_project! {
    /// `work` until it is done (`Some`), or until `deadline` passes first
    /// (`None`), as `tokio::time::timeout` does, but on a timer the caller
    /// keeps and reuses for each step of one exchange.
    pub(super) struct Before<'a, D, F> {
        deadline: &'a mut Pin<Box<D>>,
        #[pin]
        work: F,
    }
}

/// [`Before`]: `work`, ended at `deadline`.
pub(super) fn before<D, F>(deadline: &mut Pin<Box<D>>, work: F) -> Before<'_, D, F> {
    Before { deadline, work }
}

impl<D: Future<Output = ()>, F: Future> Future for Before<'_, D, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        let this = self.project();
        if let Poll::Ready(done) = this.work.poll(cx) {
            return Poll::Ready(Some(done));
        }
        this.deadline.as_mut().poll(cx).map(|()| None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn work_done_first_wins_else_the_deadline() {
        let mut deadline = Box::pin(tokio::time::sleep(Duration::from_secs(5)));
        assert_eq!(before(&mut deadline, async { 7 }).await, Some(7));
        let slow = tokio::time::sleep(Duration::from_secs(3));
        assert_eq!(before(&mut deadline, slow).await, Some(()));
        // The same timer: 3 of its 5 s are gone.
        let slow = tokio::time::sleep(Duration::from_secs(3));
        assert_eq!(before(&mut deadline, slow).await, None);
    }

    #[tokio::test]
    async fn a_connection_that_ends_is_dropped_and_the_work_goes_on() {
        let mut conn = Some(Box::pin(async {}));
        let (tx, rx) = tokio::sync::oneshot::channel();
        tx.send(1).unwrap();
        assert_eq!(driven(&mut conn, rx).await, Ok(1));
        assert!(conn.is_none());
        let mut conn = Some(Box::pin(std::future::pending::<()>()));
        assert_eq!(driven(&mut conn, async { 2 }).await, 2);
        assert!(conn.is_some(), "a connection still open is kept");
    }
}

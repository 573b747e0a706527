//! [`Tracked`]: a socket, or a write half of one, that tells its
//! connection's [`Activity`] what the peer does at the byte level: writes
//! that cannot proceed (the client does not read what it asked for) and
//! bytes read before a first whole request. It adds no buffering and no
//! waiting of its own; every call goes straight to the inner stream.

use super::activity::Activity;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A socket (or its write half) whose writes report stalls to its
/// connection's [`Activity`] (a write that cannot proceed means the client
/// does not read what it asked for) and whose reads count the bytes sent
/// before a first whole request.
pub(crate) struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Tracked<T> {
    pub(crate) fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }

    fn note<R>(&self, poll: Poll<R>) -> Poll<R> {
        match poll {
            Poll::Pending => self.activity.write_pending(),
            Poll::Ready(_) => self.activity.write_progressed(),
        }
        poll
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.activity.read(buf.filled().len() - before);
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.note(poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::activity::Clock;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_write_that_cannot_proceed_is_a_stall_until_one_goes_through() {
        let activity = Activity::accepted(Clock::new());
        activity.request_started();
        let (ours, mut peer) = tokio::io::duplex(16);
        let mut tracked = Tracked::new(ours, activity.clone());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let first = Pin::new(&mut tracked).poll_write(&mut cx, &[0; 64]);
        assert!(matches!(first, Poll::Ready(Ok(16))), "{first:?}");
        assert_eq!(activity.waiting(), None, "busy, nothing stalled yet");
        let second = Pin::new(&mut tracked).poll_write(&mut cx, &[0; 64]);
        assert!(second.is_pending());
        assert!(activity.waiting().is_some(), "the full pipe is a stall");
        let mut drained = [0u8; 16];
        tokio::io::AsyncReadExt::read_exact(&mut peer, &mut drained)
            .await
            .unwrap();
        let third = Pin::new(&mut tracked).poll_write(&mut cx, &[0; 8]);
        assert!(matches!(third, Poll::Ready(Ok(8))), "{third:?}");
        assert_eq!(activity.waiting(), None, "the stall ended");
    }

    #[tokio::test]
    async fn bytes_read_before_a_head_are_counted() {
        let activity = Activity::accepted(Clock::new());
        let (ours, mut peer) = tokio::io::duplex(64 * 1024);
        let mut tracked = Tracked::new(ours, activity.clone());
        let fresh = activity.waiting().unwrap().order();
        peer.write_all(&[b'x'; 20 * 1024]).await.unwrap();
        let mut buf = vec![0u8; 32 * 1024];
        let n = tokio::io::AsyncReadExt::read(&mut tracked, &mut buf)
            .await
            .unwrap();
        assert_eq!(n, 20 * 1024);
        let flooding = activity.waiting().unwrap().order();
        assert!(flooding < fresh, "20 KiB and no head: evicted first");
    }
}

//! A connection's writing half as a task of its own: frames sent to its
//! queue are written in order, so every call of a multiplexed session can
//! answer on the one connection without holding the socket.

use super::{Frame, FrameCodec};
use futures_util::SinkExt;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::FramedWrite;

/// Spawns the writer of `sink`: returns the queue (`capacity` frames; a
/// sender waits for room when it is full) and the task, which writes until
/// every sender is gone or a write fails, then closes the sink.
pub(crate) fn spawn_writer<W>(
    mut sink: FramedWrite<W, FrameCodec>,
    capacity: usize,
) -> (mpsc::Sender<Frame>, JoinHandle<()>)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, mut queue) = mpsc::channel::<Frame>(capacity);
    let writer = tokio::spawn(async move {
        while let Some(frame) = queue.recv().await {
            if sink.send(frame).await.is_err() {
                break;
            }
        }
        let _ = SinkExt::<Frame>::close(&mut sink).await;
    });
    (out, writer)
}

//! [`PartialSink`]: where a task's partial results go while it runs.
//!
//! A consumer that asks for a streamed answer (a native CALL with a task
//! id, PROTOCOL.md §7.1) gets each partial result as a lifecycle `partial`
//! step, then the final result as the `completed` step. The node hands the
//! handler a sink in [`TaskContext::partials`](crate::TaskContext) only for
//! such a task, and never for a confidential (CX) one: a partial travels in
//! plaintext. The handler (or a backend) sends into it as pieces arrive; the
//! final result is still what the handler returns, whole.
//!
//! The sink is bounded: `send` waits while the consumer's connection is
//! slow, so a fast model cannot pile up memory behind a slow reader. When
//! the consumer is gone `send` returns `false`; the node cancels the task
//! then anyway.

use serde_json::Value;
use tokio::sync::mpsc;

/// Partial results waiting for the transport, per task.
#[cfg_attr(not(feature = "iicp-tcp"), allow(dead_code))]
const QUEUE: usize = 16;

/// The sending side of a task's partial results.
#[derive(Debug, Clone)]
pub struct PartialSink {
    tx: mpsc::Sender<Value>,
}

impl PartialSink {
    /// A sink and the receiver the transport reads partials from (only a
    /// streaming transport makes one: native, and later the gateway).
    #[cfg_attr(not(feature = "iicp-tcp"), allow(dead_code))]
    pub(crate) fn channel() -> (Self, mpsc::Receiver<Value>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self { tx }, rx)
    }

    /// Sends one partial result, waiting while the queue is full. `false`
    /// when nobody reads any more (the consumer went away): stop producing.
    pub async fn send(&self, partial: Value) -> bool {
        self.tx.send(partial).await.is_ok()
    }

    /// Whether the consumer is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn partials_arrive_in_order_and_a_gone_reader_is_reported() {
        let (sink, mut rx) = PartialSink::channel();
        assert!(sink.send(Value::from(1)).await);
        assert!(sink.send(Value::from(2)).await);
        assert_eq!(rx.recv().await, Some(Value::from(1)));
        assert_eq!(rx.recv().await, Some(Value::from(2)));
        drop(rx);
        assert!(sink.is_closed());
        assert!(!sink.send(Value::from(3)).await);
    }
}

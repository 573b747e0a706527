//! `AdmissionGate`: at most `max_concurrent` tasks run at once (PROTOCOL.md
//! §2.3 step 4). `realtime` and `interactive` tasks wait up to 2 s for a
//! slot; other classes are refused at once. A slot is an RAII permit, so a
//! task that panics or is cancelled still gives it back.

use crate::wire::Qos;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long waiting classes may wait for a slot.
pub const ADMISSION_WAIT: Duration = Duration::from_secs(2);

/// Concurrency limit of a node.
#[derive(Debug, Clone)]
pub(crate) struct AdmissionGate {
    slots: Arc<Semaphore>,
    max: u32,
}

impl AdmissionGate {
    pub fn new(max_concurrent: u32) -> Self {
        let max = max_concurrent.max(1);
        Self {
            slots: Arc::new(Semaphore::new(max as usize)),
            max,
        }
    }

    /// A slot if one is free now (never waits).
    pub fn try_admit(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// A slot, or `None` when the node is full (after waiting, for the
    /// classes that wait).
    pub async fn admit(&self, qos: Option<Qos>) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Some(permit);
        }
        if qos.is_some_and(Qos::waits_for_slot) {
            tokio::time::timeout(ADMISSION_WAIT, self.slots.clone().acquire_owned())
                .await
                .ok()?
                .ok()
        } else {
            None
        }
    }

    /// Tasks running now.
    pub fn active(&self) -> u32 {
        self.max - self.slots.available_permits() as u32
    }

    /// The limit.
    pub fn max(&self) -> u32 {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_gate_refuses_batch_and_frees_on_drop() {
        let gate = AdmissionGate::new(1);
        let held = gate.admit(Some(Qos::Batch)).await.unwrap();
        assert_eq!(gate.active(), 1);
        assert!(gate.admit(Some(Qos::Batch)).await.is_none());
        assert!(gate.admit(None).await.is_none());
        drop(held);
        assert_eq!(gate.active(), 0);
        assert!(gate.admit(None).await.is_some());
    }

    #[tokio::test]
    async fn interactive_waits_for_a_freed_slot() {
        let gate = AdmissionGate::new(1);
        let held = gate.admit(None).await.unwrap();
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.admit(Some(Qos::Interactive)).await.is_some() })
        };
        tokio::task::yield_now().await;
        drop(held);
        assert!(waiter.await.unwrap());
    }
}

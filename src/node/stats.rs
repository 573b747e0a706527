//! Task outcome counters, read by the health route and drained into
//! heartbeat metrics batches.

use std::sync::atomic::{AtomicU64, Ordering};

/// Outcomes since the last drain.
#[derive(Debug, Default)]
pub(crate) struct NodeStats {
    success: AtomicU64,
    failed: AtomicU64,
    timeouts: AtomicU64,
    latency_ms_total: AtomicU64,
}

/// One drained batch of counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StatsDelta {
    pub success: u64,
    pub failed: u64,
    pub timeouts: u64,
    pub latency_ms_total: u64,
}

impl StatsDelta {
    pub fn is_empty(&self) -> bool {
        self.success + self.failed + self.timeouts == 0
    }
}

/// How a task ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Failed,
    TimedOut,
}

impl NodeStats {
    pub fn record(&self, outcome: Outcome, latency_ms: u64) {
        let counter = match outcome {
            Outcome::Success => &self.success,
            Outcome::Failed => &self.failed,
            Outcome::TimedOut => &self.timeouts,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.latency_ms_total
            .fetch_add(latency_ms, Ordering::Relaxed);
    }

    /// Takes the counts accumulated so far, leaving zeros.
    pub fn drain(&self) -> StatsDelta {
        StatsDelta {
            success: self.success.swap(0, Ordering::Relaxed),
            failed: self.failed.swap(0, Ordering::Relaxed),
            timeouts: self.timeouts.swap(0, Ordering::Relaxed),
            latency_ms_total: self.latency_ms_total.swap(0, Ordering::Relaxed),
        }
    }
}

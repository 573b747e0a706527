//! What one open connection is doing, as the accept loop's eviction policy
//! needs it (see [`super::slots`]): is the server waiting on the client, and
//! since when?
//!
//! A connection **waits on its client** when the server can make no
//! progress without it:
//! - before its first request and between requests (HTTP keep-alive, or a
//!   native session with no call in flight), counted from the accept or
//!   from the end of the last answer; header bytes trickling in do not
//!   refresh it;
//! - while a request's body is read, counted from when the connection began
//!   waiting for that request (a slow head plus a slow body is as old as
//!   both);
//! - while a write to the socket cannot proceed because the client does not
//!   read (a stalled write), counted from when writing stopped making
//!   progress (a write that goes through ends the stall).
//!
//! A connection that has sent more than [`FLOOD_BYTES`] before its first
//! whole request head is **flooding** (a request head of these servers is a
//! few hundred bytes, sent in one write: many kilobytes and no end is a
//! header flood); at the cap, flooding connections are evicted first.
//!
//! A native session's INIT restarts its wait: the handshake is its first
//! exchange, and its first call comes a round trip later (an HTTP client's
//! request is busy as soon as its head is in). Bytes are counted on HTTP connections (the
//! [`Tracked`](super::tracked::Tracked) socket hyper reads); a native session's INIT is bounded by
//! its own frame limit and INIT timeout.
//!
//! It is **busy** while the server works on a request: an HTTP handler runs
//! or its answer is produced, or a native call is in flight. Busy
//! connections are never evicted.
//!
//! Threat model: every field here is written by the connection's own task
//! from what its peer does, so a peer decides how its connection looks;
//! what it cannot do is look younger while it sends nothing useful: only an
//! answered request (real work for the server, bounded by the node's own
//! admission limits) or reading what the server wrote refreshes the time.
//! The last is a weakness: a client that reads its answers a little at a
//! time keeps its stalled connection young, though it must have asked for
//! answers larger than the socket buffers to stall at all.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::task::AbortHandle;

/// `since` value of a busy connection (or of no stalled write).
const NONE: u64 = 0;
/// `since` value of a connection being evicted: never chosen again.
const EVICTED: u64 = u64::MAX;
/// Bytes read before a first whole request head past which a connection
/// counts as flooding.
pub(crate) const FLOOD_BYTES: u64 = 16 * 1024;

/// The clock every connection of one server shares: nanoseconds since the
/// server started, plus one (so that 0 can mean "not waiting").
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock(Instant);

impl Clock {
    pub(crate) fn new() -> Self {
        Self(Instant::now())
    }

    fn now(self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos())
            .unwrap_or(EVICTED - 2)
            .saturating_add(1)
            .min(EVICTED - 1)
    }
}

/// One connection's state, shared by its task (which writes it) and the
/// accept loop (which reads it to choose whom to evict).
#[derive(Debug)]
pub(crate) struct Activity {
    clock: Clock,
    /// Since when the connection waits for a request or its body; [`NONE`]
    /// while busy.
    waiting: AtomicU64,
    /// When the connection began waiting for the request now in progress
    /// (kept for its body read).
    request_wait: AtomicU64,
    /// Since when a write to the socket has been stalled; [`NONE`] if none.
    stalled: AtomicU64,
    /// Set once a whole request head (HTTP) or INIT (native) has arrived.
    spoke: AtomicBool,
    /// Bytes read from the socket before it spoke.
    unspoken_bytes: AtomicU64,
    /// Set when the connection is evicted.
    evicted: AtomicBool,
    /// Aborts the connection's task (dropping the connection closes its
    /// socket); set once the task is spawned. An abort costs the task
    /// nothing while it runs, unlike a token it would poll.
    task: OnceLock<AbortHandle>,
}

/// Why a connection may be evicted, and since when (smaller is older).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Waiting {
    since: u64,
    stalled: bool,
    flooding: bool,
}

impl Activity {
    /// A connection accepted now: it waits for its first request.
    pub(crate) fn accepted(clock: Clock) -> Arc<Self> {
        let now = clock.now();
        Arc::new(Self {
            clock,
            waiting: AtomicU64::new(now),
            request_wait: AtomicU64::new(now),
            stalled: AtomicU64::new(NONE),
            spoke: AtomicBool::new(false),
            unspoken_bytes: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            task: OnceLock::new(),
        })
    }

    /// A native session's INIT arrived and was answered: it waits for its
    /// first call from now.
    #[cfg(any(feature = "iicp-tcp", test))]
    pub(crate) fn handshake_done(&self) {
        self.spoke.store(true, Ordering::Release);
        self.idle();
    }

    /// A request's head arrived: the server works on it.
    pub(crate) fn request_started(&self) {
        self.spoke.store(true, Ordering::Release);
        let previous = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                (v != EVICTED).then_some(NONE)
            });
        if let Ok(since) = previous {
            if since != NONE {
                self.request_wait.store(since, Ordering::Release);
            }
        }
    }

    /// The request's body is being read: the server waits on the client
    /// again, as long as it has waited for this request.
    pub(crate) fn body_read_started(&self) {
        let since = self.request_wait.load(Ordering::Acquire);
        let _ = self
            .waiting
            .compare_exchange(NONE, since, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The body is read (or reading it ended): busy again.
    pub(crate) fn body_read_ended(&self) {
        self.busy();
    }

    /// The answer is done (HTTP) or the last call ended (native): the
    /// connection waits for the next request from now on.
    pub(crate) fn idle(&self) {
        let now = self.clock.now();
        let _ = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                (v != EVICTED).then_some(now)
            });
    }

    /// A native call started: busy.
    pub(crate) fn busy(&self) {
        let _ = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                (v != EVICTED).then_some(NONE)
            });
    }

    /// How it waits on its client now, if it does (the older of a pending
    /// request and a stalled write).
    pub(crate) fn waiting(&self) -> Option<Waiting> {
        let waiting = self.waiting.load(Ordering::Acquire);
        let stalled = self.stalled.load(Ordering::Acquire);
        if waiting == EVICTED || stalled == EVICTED {
            return None;
        }
        let flooding = !self.spoke.load(Ordering::Acquire)
            && self.unspoken_bytes.load(Ordering::Relaxed) > FLOOD_BYTES;
        match (waiting, stalled) {
            (NONE, NONE) => None,
            (w, s) if s == NONE || (w != NONE && w <= s) => Some(Waiting {
                since: w,
                stalled: false,
                flooding,
            }),
            (_, s) => Some(Waiting {
                since: s,
                stalled: true,
                flooding,
            }),
        }
    }

    /// Evicts the connection if it still waits as `seen` says (it may have
    /// become busy since it was looked at): true when it was evicted.
    pub(crate) fn evict(&self, seen: Waiting) -> bool {
        let word = if seen.stalled {
            &self.stalled
        } else {
            &self.waiting
        };
        let taken = word
            .compare_exchange(seen.since, EVICTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if taken {
            self.evicted.store(true, Ordering::Release);
            if let Some(task) = self.task.get() {
                task.abort();
            }
        }
        taken
    }

    /// Whether the connection has been evicted.
    pub(crate) fn was_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }

    /// The connection's task, which [`Activity::evict`] aborts. The accept
    /// loop sets it right after the spawn, before it admits anyone else
    /// (so before anyone can evict this connection).
    pub(crate) fn set_task(&self, task: AbortHandle) {
        let _ = self.task.set(task);
    }

    /// `bytes` were read from the socket.
    pub(super) fn read(&self, bytes: usize) {
        if bytes > 0 && !self.spoke.load(Ordering::Relaxed) {
            self.unspoken_bytes
                .fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// A write to the socket could not proceed.
    pub(super) fn write_pending(&self) {
        if self.stalled.load(Ordering::Relaxed) == NONE {
            let now = self.clock.now();
            let _ = self
                .stalled
                .compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// A write to the socket went through (or failed: no longer stalled).
    pub(super) fn write_progressed(&self) {
        if self.stalled.load(Ordering::Relaxed) != NONE {
            let _ = self
                .stalled
                .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| {
                    (v != EVICTED).then_some(NONE)
                });
        }
    }
}

impl Waiting {
    /// Its place in the eviction order, first evicted first: flooding
    /// connections, then the others; the oldest wait first within each.
    pub(crate) fn order(self) -> (bool, u64) {
        (!self.flooding, self.since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_busy_its_body_read_waits_as_old_as_the_request() {
        let a = Activity::accepted(Clock::new());
        let first = a.waiting().expect("a new connection waits");
        assert!(!first.stalled);
        a.request_started();
        assert_eq!(a.waiting(), None, "busy while the request is worked on");
        a.body_read_started();
        let body = a.waiting().expect("the body read waits on the client");
        assert_eq!(
            body.since, first.since,
            "the body read keeps the wait's start"
        );
        a.body_read_ended();
        assert_eq!(a.waiting(), None);
        a.idle();
        let next = a.waiting().expect("idle after the answer");
        assert!(next.since > first.since, "the wait restarts at the answer");
    }

    #[test]
    fn many_bytes_without_a_whole_head_go_first() {
        let clock = Clock::new();
        let quiet = Activity::accepted(clock);
        let answered = Activity::accepted(clock);
        let flooding = Activity::accepted(clock);
        quiet.read(200);
        flooding.read(FLOOD_BYTES as usize + 1);
        let order = |a: &Activity| a.waiting().unwrap().order();
        assert!(order(&flooding) < order(&quiet), "younger, but flooding");
        answered.request_started();
        answered.idle();
        answered.read(1 << 20);
        assert!(
            order(&quiet) < order(&answered),
            "bytes after a whole head are requests, not a flood"
        );
    }

    #[test]
    fn a_native_handshake_restarts_the_wait() {
        let a = Activity::accepted(Clock::new());
        let accepted = a.waiting().unwrap();
        a.handshake_done();
        let after = a.waiting().expect("waits for its first call");
        assert!(after.since > accepted.since);
    }

    #[test]
    fn a_stalled_write_makes_a_busy_connection_evictable() {
        let a = Activity::accepted(Clock::new());
        a.request_started();
        a.write_pending();
        let stalled = a.waiting().expect("a stalled write waits on the client");
        assert!(stalled.stalled);
        a.write_pending();
        assert_eq!(a.waiting(), Some(stalled), "the stall keeps its start");
        a.write_progressed();
        assert_eq!(a.waiting(), None);
    }

    #[test]
    fn eviction_takes_only_the_state_that_was_seen() {
        let a = Activity::accepted(Clock::new());
        let seen = a.waiting().unwrap();
        a.request_started();
        assert!(!a.evict(seen), "it became busy: not evicted");
        assert!(!a.was_evicted());
        a.idle();
        let seen = a.waiting().unwrap();
        assert!(a.evict(seen));
        assert!(a.was_evicted());
        assert_eq!(
            a.waiting(),
            None,
            "an evicted connection is not chosen again"
        );
        a.idle();
        a.request_started();
        assert_eq!(a.waiting(), None, "and stays out of the choice");
    }
}

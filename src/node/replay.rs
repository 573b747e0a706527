//! Replay protection (PROTOCOL.md §2.3 steps 5-6): nonces seen in the last
//! 5 min and task ids seen in the last 300 s are refused with 409.
//!
//! Each window holds at most `capacity` ids (each id stored once, shared
//! between the expiry queue and the look-up table; ids are at most 128
//! bytes, `wire::task::MAX_ID_LEN`). A window full of unexpired ids does not
//! forget any: new tasks are refused until the oldest id expires, so a flood
//! of fillers cannot make a replay pass inside its window.
//!
//! Ids are chosen by peers, so they are hashed with SipHash under a key
//! drawn at start (std's `RandomState`): no one can aim ids at one bucket.
//! Each id is hashed once, when it arrives; the hash is kept beside it, so
//! neither the table's growth nor the id's expiry hashes it again.

use crate::wire::ErrorBody;
use hashbrown::HashTable;
use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The nonce and task-id windows of one node, checked and updated together
/// under one lock (a task refused by one window leaves no trace in the other).
#[derive(Debug)]
pub(crate) struct ReplayGuard {
    inner: Mutex<Windows>,
}

#[derive(Debug)]
struct Windows {
    nonces: Window,
    task_ids: Window,
}

/// Why a task did not pass the replay checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// The nonce was seen within its window.
    Nonce,
    /// The task id was seen within its window.
    TaskId,
    /// A window is full of unexpired ids; the oldest expires after this long.
    Full(Duration),
}

impl Replay {
    /// The refusal: HTTP status, error body and Retry-After seconds.
    /// 409 `IICP-E011` / `IICP-E010` for a replay; 503 `IICP-E005` (reason
    /// `replay_window_full`) until the oldest id expires for a full window,
    /// since forgetting ids early would let a replay pass.
    pub fn error(self) -> (u16, ErrorBody, Option<u64>) {
        match self {
            Self::Nonce => (
                409,
                ErrorBody::new("IICP-E011", "nonce was already used"),
                None,
            ),
            Self::TaskId => (
                409,
                ErrorBody::new(
                    "IICP-E010",
                    "this node already received a task with this task_id",
                ),
                None,
            ),
            Self::Full(wait) => {
                let retry_after_s = wait.as_secs_f64().ceil().max(1.0) as u64;
                let body = ErrorBody::new(
                    "IICP-E005",
                    "this node's replay window is full; try again later or another node",
                )
                .with("reason", "replay_window_full")
                .with("retry_after_ms", retry_after_s * 1000);
                (503, body, Some(retry_after_s))
            }
        }
    }
}

impl ReplayGuard {
    /// Windows of `nonce_window` and `task_id_window`, `capacity` ids each.
    pub fn new(nonce_window: Duration, task_id_window: Duration, capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Windows {
                nonces: Window::new(nonce_window, capacity),
                task_ids: Window::new(task_id_window, capacity),
            }),
        }
    }

    /// Records the task's nonce (if any) and id when neither was seen within
    /// its window and there is room for both; otherwise records nothing.
    pub fn admit(&self, nonce: Option<&str>, task_id: &str) -> Result<(), Replay> {
        let now = Instant::now();
        let mut guard = crate::sync::lock(&self.inner);
        let Windows { nonces, task_ids } = &mut *guard;
        nonces.expire(now);
        task_ids.expire(now);
        let nonce = nonce.map(|n| nonces.key(n));
        if nonce.as_ref().is_some_and(|n| nonces.contains(n)) {
            return Err(Replay::Nonce);
        }
        let task_id = task_ids.key(task_id);
        if task_ids.contains(&task_id) {
            return Err(Replay::TaskId);
        }
        let full = [
            nonce.as_ref().and_then(|_| nonces.full_until(now)),
            task_ids.full_until(now),
        ];
        if let Some(wait) = full.into_iter().flatten().max() {
            return Err(Replay::Full(wait));
        }
        if let Some(n) = nonce {
            nonces.insert(now, n);
        }
        task_ids.insert(now, task_id);
        Ok(())
    }
}

/// An id as a window looks it up: the text and its hash.
struct Key<'a> {
    id: &'a str,
    hash: u64,
}

/// Ids seen within `window`, oldest first, at most `capacity` of them.
#[derive(Debug)]
struct Window {
    window: Duration,
    capacity: usize,
    /// When each id was seen (nanoseconds after `start`), its hash and the
    /// id, oldest first: 32 bytes an entry, as many as one `Instant` and
    /// the id took.
    order: VecDeque<(u64, u64, Arc<str>)>,
    /// The same ids (and hashes), for look-up.
    ids: HashTable<(u64, Arc<str>)>,
    hasher: RandomState,
    /// When the window was made.
    start: Instant,
}

impl Window {
    fn new(window: Duration, capacity: usize) -> Self {
        Self {
            window,
            capacity: capacity.max(1),
            order: VecDeque::new(),
            ids: HashTable::new(),
            hasher: RandomState::new(),
            start: Instant::now(),
        }
    }

    /// `now` as the queue keeps it.
    fn since_start(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_nanos() as u64
    }

    fn key<'a>(&self, id: &'a str) -> Key<'a> {
        Key {
            id,
            hash: self.hasher.hash_one(id),
        }
    }

    /// Drops the ids older than the window.
    fn expire(&mut self, now: Instant) {
        let now = self.since_start(now);
        while let Some((seen, hash, id)) = self.order.front() {
            if Duration::from_nanos(now.saturating_sub(*seen)) < self.window {
                break;
            }
            if let Ok(entry) = self.ids.find_entry(*hash, |(_, e)| Arc::ptr_eq(e, id)) {
                entry.remove();
            }
            self.order.pop_front();
        }
    }

    fn contains(&self, key: &Key<'_>) -> bool {
        self.ids.find(key.hash, |(_, e)| **e == *key.id).is_some()
    }

    /// When full (after `expire`): how long until the oldest id expires.
    fn full_until(&self, now: Instant) -> Option<Duration> {
        if self.order.len() < self.capacity {
            return None;
        }
        let now = self.since_start(now);
        let oldest = self.order.front().map_or(now, |(t, _, _)| *t);
        Some(
            self.window
                .saturating_sub(Duration::from_nanos(now.saturating_sub(oldest))),
        )
    }

    /// Records an id that [`contains`](Self::contains) did not find.
    fn insert(&mut self, now: Instant, key: Key<'_>) {
        let id: Arc<str> = Arc::from(key.id);
        self.ids
            .insert_unique(key.hash, (key.hash, id.clone()), |(hash, _)| *hash);
        self.order.push_back((self.since_start(now), key.hash, id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_MIN: Duration = Duration::from_secs(300);

    #[tokio::test(start_paused = true)]
    async fn detects_repeats_and_refuses_when_full_instead_of_forgetting() {
        let g = ReplayGuard::new(FIVE_MIN, FIVE_MIN, 2);
        assert_eq!(g.admit(Some("n1"), "a"), Ok(()));
        assert_eq!(g.admit(Some("n2"), "a"), Err(Replay::TaskId));
        assert_eq!(g.admit(Some("n1"), "b"), Err(Replay::Nonce));
        tokio::time::advance(Duration::from_secs(100)).await;
        assert_eq!(g.admit(None, "b"), Ok(()), "no nonce: only the id counts");
        assert_eq!(
            g.admit(None, "c"),
            Err(Replay::Full(Duration::from_secs(200))),
            "full: wait until `a` expires"
        );
        assert_eq!(
            g.admit(Some("n1"), "c"),
            Err(Replay::Nonce),
            "still remembered"
        );
        assert_eq!(g.admit(None, "a"), Err(Replay::TaskId), "still remembered");
        tokio::time::advance(Duration::from_secs(200)).await;
        assert_eq!(g.admit(Some("n1"), "c"), Ok(()), "`a` and `n1` expired");
    }

    #[test]
    fn refusals_carry_codes_and_retry_after() {
        let (status, body, retry) = Replay::Full(Duration::from_millis(1500)).error();
        assert_eq!((status, retry), (503, Some(2)));
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(v["error"]["code"], "IICP-E005");
        assert_eq!(v["error"]["retry_after_ms"], 2000);
        assert_eq!(Replay::Nonce.error().0, 409);
        assert_eq!(Replay::Full(Duration::ZERO).error().2, Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_task_leaves_no_trace() {
        let g = ReplayGuard::new(FIVE_MIN, FIVE_MIN, 1);
        assert_eq!(g.admit(None, "a"), Ok(()));
        assert!(matches!(g.admit(Some("n"), "b"), Err(Replay::Full(_))));
        tokio::time::advance(FIVE_MIN).await;
        assert_eq!(g.admit(Some("n"), "b"), Ok(()), "`n` was not recorded");
    }

    #[tokio::test(start_paused = true)]
    async fn each_window_expires_on_its_own() {
        let g = ReplayGuard::new(Duration::from_secs(10), FIVE_MIN, 100);
        assert_eq!(g.admit(Some("n"), "a"), Ok(()));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(g.admit(Some("n"), "b"), Ok(()));
        assert_eq!(g.admit(None, "a"), Err(Replay::TaskId));
    }

    /// Many ids over time: each expires with its window (the table and the
    /// queue stay in step through the table's growth), none before.
    #[tokio::test(start_paused = true)]
    async fn ids_expire_in_order_through_growth() {
        let mut w = Window::new(Duration::from_secs(10), 10_000);
        for i in 0..2_000 {
            let now = Instant::now();
            w.expire(now);
            let id = format!("task-{i}");
            assert!(!w.contains(&w.key(&id)));
            w.insert(now, w.key(&id));
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        // 20 s have passed: an id seen 10 s ago or more is forgotten.
        w.expire(Instant::now());
        assert_eq!(w.order.len(), 999);
        assert_eq!(w.ids.len(), 999);
        assert!(!w.contains(&w.key("task-1000")));
        assert!(w.contains(&w.key("task-1001")));
        assert!(w.contains(&w.key("task-1999")));
    }
}

//! `ReplayWindow`: ids seen within a time window (task ids: 300 s, nonces:
//! 5 min; PROTOCOL.md §2.3 steps 5-6). Bounded: beyond `capacity` the
//! oldest ids are forgotten first.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct ReplayWindow {
    window: Duration,
    capacity: usize,
    inner: Mutex<Seen>,
}

/// Ids in arrival order (for expiry) and as a set (for look-up).
#[derive(Debug, Default)]
struct Seen {
    order: VecDeque<(Instant, String)>,
    ids: HashSet<String>,
}

impl ReplayWindow {
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            window,
            capacity,
            inner: Mutex::new(Seen::default()),
        }
    }

    /// Records `id`; false when it was already seen within the window.
    pub fn first_sighting(&self, id: &str) -> bool {
        let now = Instant::now();
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Seen { order, ids: seen } = &mut *guard;
        while let Some((t, old)) = order.front() {
            if now.duration_since(*t) < self.window && order.len() < self.capacity {
                break;
            }
            seen.remove(old);
            order.pop_front();
        }
        if seen.contains(id) {
            return false;
        }
        seen.insert(id.to_owned());
        order.push_back((now, id.to_owned()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_repeats_and_stays_bounded() {
        let w = ReplayWindow::new(Duration::from_secs(300), 2);
        assert!(w.first_sighting("a"));
        assert!(!w.first_sighting("a"));
        assert!(w.first_sighting("b"));
        assert!(w.first_sighting("c"), "capacity pushes out `a`");
        assert!(w.first_sighting("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn forgets_after_the_window() {
        let w = ReplayWindow::new(Duration::from_secs(300), 100);
        assert!(w.first_sighting("a"));
        tokio::time::advance(Duration::from_secs(301)).await;
        assert!(w.first_sighting("a"));
    }
}

//! The reconnect schedule: 2 s doubling to 60 s (PROTOCOL.md §7.2), reset
//! by a successful bind; and the count of failed attempts in a row at one
//! relay, after which another is elected.

use std::time::Duration;

/// First pause before reconnecting.
pub(crate) const FIRST: Duration = Duration::from_secs(2);
/// Longest pause.
pub(crate) const MAX: Duration = Duration::from_secs(60);
/// Failed attempts in a row at one relay before electing another.
pub(crate) const ATTEMPTS_PER_RELAY: u32 = 3;

/// Pause and failure count of the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Backoff {
    delay: Duration,
    failures: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            delay: FIRST,
            failures: 0,
        }
    }
}

impl Backoff {
    /// The pause before the next attempt; each call doubles the next one.
    pub fn next_delay(&mut self) -> Duration {
        let now = self.delay;
        self.delay = (self.delay * 2).min(MAX);
        now
    }

    /// A bind succeeded: start over.
    pub fn bound(&mut self) {
        *self = Self::default();
    }

    /// An attempt failed; true when it is time to elect another relay (the
    /// count starts over then).
    pub fn failed(&mut self) -> bool {
        self.failures += 1;
        if self.failures >= ATTEMPTS_PER_RELAY {
            self.failures = 0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_starts_over_when_bound() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..7).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 60, 60]);
        b.bound();
        assert_eq!(b.next_delay(), FIRST);
    }

    #[test]
    fn three_failures_in_a_row_elect_again() {
        let mut b = Backoff::default();
        assert_eq!([b.failed(), b.failed(), b.failed()], [false, false, true]);
        assert!(!b.failed(), "the count starts over");
        b.bound();
        assert_eq!([b.failed(), b.failed(), b.failed()], [false, false, true]);
    }
}

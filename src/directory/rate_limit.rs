//! Fixed-window rate limiting per source address (register: 60 per 60 s,
//! PROTOCOL.md §1.3 step 1).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Above this many tracked addresses, expired windows are swept.
const SWEEP_THRESHOLD: usize = 4096;

/// Counts events per address in fixed windows.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: u32,
    window_ms: u64,
    windows: Mutex<HashMap<IpAddr, (u64, u32)>>,
}

impl RateLimiter {
    /// `limit` events per `window_ms`; a limit of 0 disables limiting.
    pub fn new(limit: u32, window_ms: u64) -> Self {
        Self {
            limit,
            window_ms,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Records one event and says whether it is allowed, and whether it is
    /// the first one refused in its window (so a refusal can be logged once
    /// per window, not once per request of a flood).
    pub fn check(&self, ip: IpAddr, now_ms: u64) -> Verdict {
        if self.limit == 0 {
            return Verdict::Allowed;
        }
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > SWEEP_THRESHOLD {
            windows.retain(|_, (start, _)| now_ms.saturating_sub(*start) < self.window_ms);
        }
        let entry = windows.entry(ip).or_insert((now_ms, 0));
        if now_ms.saturating_sub(entry.0) >= self.window_ms {
            *entry = (now_ms, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        match entry.1.checked_sub(self.limit) {
            None | Some(0) => Verdict::Allowed,
            Some(over) => Verdict::Refused { first: over == 1 },
        }
    }
}

/// What [`RateLimiter::check`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the limit.
    Allowed,
    /// Over it; `first` for the first refusal of the window.
    Refused {
        /// The first refused event of this address in this window.
        first: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    impl RateLimiter {
        fn allow(&self, ip: IpAddr, now_ms: u64) -> bool {
            self.check(ip, now_ms) == Verdict::Allowed
        }
    }

    #[test]
    fn limits_per_address_and_window() {
        let rl = RateLimiter::new(2, 60_000);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(rl.allow(a, 0));
        assert!(rl.allow(a, 1));
        assert!(!rl.allow(a, 2));
        assert!(rl.allow(b, 2), "another address has its own budget");
        assert!(rl.allow(a, 60_000), "a new window starts");
        assert!(RateLimiter::new(0, 1).allow(a, 0));
    }

    #[test]
    fn only_the_first_refusal_of_a_window_says_so() {
        let rl = RateLimiter::new(1, 60_000);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(rl.check(a, 0), Verdict::Allowed);
        assert_eq!(rl.check(a, 1), Verdict::Refused { first: true });
        assert_eq!(rl.check(a, 2), Verdict::Refused { first: false });
        assert_eq!(rl.check(a, 3), Verdict::Refused { first: false });
        assert_eq!(rl.check(a, 60_000), Verdict::Allowed);
        assert_eq!(rl.check(a, 60_001), Verdict::Refused { first: true });
    }
}

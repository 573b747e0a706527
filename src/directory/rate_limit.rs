//! Fixed-window rate limiting per source (register: 60 per 60 s,
//! PROTOCOL.md §1.3 step 1).
//!
//! Threat model: a flood of registrations, from one address or from many.
//! - An IPv6 source is counted by its /64: one home connection or one server
//!   usually holds a whole /64, so counting single addresses would hand an
//!   attacker 2^64 budgets. An IPv4-mapped IPv6 address counts as its IPv4
//!   address.
//! - The table of sources is bounded ([`MAX_SOURCES`], a few MiB): expired
//!   windows are swept once it is large, and when it is full of live windows
//!   a source it does not know yet is refused until windows expire. A flood
//!   from that many sources within one window is refused as a whole rather
//!   than letting memory grow with it (sources already counted keep their
//!   budgets).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;

/// Above this many tracked sources, expired windows are swept.
const SWEEP_THRESHOLD: usize = 4096;

/// The most sources tracked at once (about 40 bytes each).
pub(crate) const MAX_SOURCES: usize = 65_536;

/// Counts events per source in fixed windows.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: u32,
    window_ms: u64,
    max_sources: usize,
    windows: Mutex<HashMap<IpAddr, (u64, u32)>>,
}

impl RateLimiter {
    /// `limit` events per `window_ms`; a limit of 0 disables limiting.
    pub fn new(limit: u32, window_ms: u64) -> Self {
        Self::with_capacity(limit, window_ms, MAX_SOURCES)
    }

    fn with_capacity(limit: u32, window_ms: u64, max_sources: usize) -> Self {
        Self {
            limit,
            window_ms,
            max_sources,
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
        let source = source_of(ip);
        let mut windows = crate::sync::lock(&self.windows);
        if !windows.contains_key(&source) {
            if windows.len() >= SWEEP_THRESHOLD.min(self.max_sources) {
                windows.retain(|_, (start, _)| now_ms.saturating_sub(*start) < self.window_ms);
            }
            if windows.len() >= self.max_sources {
                return Verdict::Refused { first: false };
            }
        }
        let entry = windows.entry(source).or_insert((now_ms, 0));
        if now_ms.saturating_sub(entry.0) >= self.window_ms {
            *entry = (now_ms, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        match entry.1.checked_sub(self.limit) {
            None | Some(0) => Verdict::Allowed,
            Some(over) => Verdict::Refused { first: over == 1 },
        }
    }

    #[cfg(test)]
    fn sources(&self) -> usize {
        crate::sync::lock(&self.windows).len()
    }
}

/// The key an address is counted under: an IPv4 address itself (also when
/// IPv4-mapped), an IPv6 address's /64.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
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

    #[test]
    fn an_ipv6_source_is_its_64_and_a_mapped_address_its_ipv4() {
        let rl = RateLimiter::new(1, 60_000);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(rl.allow(a, 0));
        assert!(
            !rl.allow(same_64, 1),
            "the rest of the /64 shares the budget"
        );
        assert!(rl.allow(other_64, 1));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert!(rl.allow(v4, 1));
        assert!(!rl.allow(mapped, 2));
    }

    #[test]
    fn the_table_of_sources_is_bounded_and_refuses_newcomers_while_full() {
        let rl = RateLimiter::with_capacity(2, 60_000, 3);
        let ip = |i: u8| IpAddr::from([10, 0, 0, i]);
        for i in 0..3 {
            assert!(rl.allow(ip(i), 0));
        }
        assert_eq!(rl.check(ip(9), 1), Verdict::Refused { first: false });
        assert_eq!(rl.sources(), 3, "a refused newcomer is not stored");
        assert!(rl.allow(ip(0), 2), "a known source keeps its budget");
        assert!(rl.allow(ip(9), 60_000), "expired windows make room");
        assert!(rl.sources() <= 3);
    }
}

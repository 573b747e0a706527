//! Per-source rate limit of inbound exchanges: a token bucket per client
//! address (an IPv6 client by its /64, which one host usually holds whole)
//! with a small burst and one exchange per [`REFILL`] after it. The table
//! is bounded: when it is full, idle sources (a full bucket) go first, then
//! the one heard from longest ago.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Exchanges a source may send at once.
pub(crate) const BURST: f64 = 5.0;
/// One more exchange per this interval (PROTOCOL.md §8: one per 30 s).
pub(crate) const REFILL: Duration = Duration::from_secs(30);
/// Sources remembered.
const MAX_SOURCES: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The limiter (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct RateLimit {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// The key of a client address: IPv4 as is (also when IPv4-mapped), IPv6
/// by its /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

fn refill(b: &mut Bucket, now: Instant) {
    let gained = now.saturating_duration_since(b.at).as_secs_f64() / REFILL.as_secs_f64();
    b.tokens = (b.tokens + gained).min(BURST);
    b.at = now;
}

impl RateLimit {
    /// Takes one exchange for `ip`: `Ok` when allowed, else `Err(seconds)`
    /// until the next one is.
    pub(crate) fn take(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let mut buckets = crate::sync::lock(&self.buckets);
        let k = key(ip);
        if !buckets.contains_key(&k) && buckets.len() >= MAX_SOURCES {
            buckets.retain(|_, b| {
                refill(b, now);
                b.tokens < BURST
            });
            if buckets.len() >= MAX_SOURCES {
                if let Some(oldest) = buckets.iter().min_by_key(|(_, b)| b.at).map(|(k, _)| *k) {
                    buckets.remove(&oldest);
                }
            }
        }
        let b = buckets.entry(k).or_insert(Bucket {
            tokens: BURST,
            at: now,
        });
        refill(b, now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - b.tokens) * REFILL.as_secs_f64();
            Err((wait.ceil() as u64).max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_interval_per_source() {
        let limit = RateLimit::default();
        let t0 = Instant::now();
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        for _ in 0..BURST as usize {
            assert!(limit.take(a, t0).is_ok());
        }
        assert_eq!(limit.take(a, t0), Err(30));
        assert!(limit.take("203.0.113.8".parse().unwrap(), t0).is_ok());
        assert!(limit.take(a, t0 + REFILL).is_ok());
        assert!(limit.take(a, t0 + REFILL).is_err());
        // One /64 is one source.
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        for i in 0..BURST as usize {
            assert!(limit.take(v6(&format!("2001:db8:1:2::{i}")), t0).is_ok());
        }
        assert!(limit.take(v6("2001:db8:1:2::ffff"), t0).is_err());
        assert!(limit.take(v6("::ffff:203.0.113.7"), t0 + REFILL).is_err());
    }

    #[test]
    fn the_table_stays_bounded() {
        let limit = RateLimit::default();
        let t0 = Instant::now();
        for i in 0..(MAX_SOURCES as u32 * 2) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            assert!(limit.take(ip, t0).is_ok());
        }
        assert!(limit.buckets.lock().unwrap().len() <= MAX_SOURCES);
    }
}

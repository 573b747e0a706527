//! The client's one TTL cache: values kept under a key until their own
//! time to live runs out, in a map of bounded size. The discover answers
//! ([`DiscoveryCache`](super::discovery::DiscoveryCache), also the
//! gateway's model catalog) and the consumer tokens
//! ([`ConsumerTokens`](super::consumer_token::ConsumerTokens)) are kept in
//! one.
//!
//! An expired entry is dropped when it is next looked up, or when the map is
//! full; a full map of fresh entries drops the one that expires first, so a
//! flood of new keys can grow it no further than its capacity.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Values by key, each until its own expiry; at most `capacity` of them.
#[derive(Debug)]
pub(crate) struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// An empty cache holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The value under `key`, if it has not expired.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let mut entries = crate::sync::lock(&self.entries);
        match entries.get(key) {
            Some((expires, value)) if *expires > Instant::now() => Some(value.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `value` under `key` for `ttl`, replacing what was there.
    pub fn put(&self, key: K, value: V, ttl: Duration) {
        let now = Instant::now();
        let mut entries = crate::sync::lock(&self.entries);
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (expires, _)| *expires > now);
            if entries.len() >= self.capacity {
                let first_to_expire = entries
                    .iter()
                    .min_by_key(|(_, (expires, _))| *expires)
                    .map(|(k, _)| k.clone());
                if let Some(k) = first_to_expire {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(key, (now + ttl, value));
    }

    /// Drops every entry whose value `keep` refuses.
    pub fn retain(&self, mut keep: impl FnMut(&V) -> bool) {
        crate::sync::lock(&self.entries).retain(|_, (_, value)| keep(value));
    }

    /// How many entries are held, expired ones included.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        crate::sync::lock(&self.entries).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_lives_until_its_own_ttl() {
        let cache = TtlCache::new(8);
        cache.put("short".to_owned(), 1, Duration::ZERO);
        cache.put("long".to_owned(), 2, Duration::from_secs(60));
        assert_eq!(cache.get("short"), None);
        assert_eq!(
            cache.len(),
            1,
            "the expired entry is dropped when looked up"
        );
        assert_eq!(cache.get("long"), Some(2));
        cache.put("long".to_owned(), 3, Duration::from_secs(60));
        assert_eq!(cache.get("long"), Some(3));
    }

    #[test]
    fn a_full_cache_drops_expired_entries_then_the_first_to_expire() {
        let cache = TtlCache::new(3);
        cache.put("a", 1, Duration::from_secs(30));
        cache.put("b", 2, Duration::from_secs(10));
        cache.put("c", 3, Duration::ZERO);
        // Full: the expired "c" makes room.
        cache.put("d", 4, Duration::from_secs(20));
        assert_eq!(cache.len(), 3);
        assert_eq!((cache.get("a"), cache.get("b")), (Some(1), Some(2)));
        // Full of fresh entries: "b" expires first and goes.
        cache.put("e", 5, Duration::from_secs(40));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("b"), None);
        assert_eq!(
            (cache.get("a"), cache.get("d"), cache.get("e")),
            (Some(1), Some(4), Some(5))
        );
        // Replacing a key of a full cache drops nothing else.
        cache.put("a", 6, Duration::from_secs(1));
        assert_eq!(cache.len(), 3);
        assert_eq!((cache.get("a"), cache.get("d")), (Some(6), Some(4)));
    }

    #[test]
    fn retain_drops_the_refused_values() {
        let cache = TtlCache::new(8);
        for (k, v) in [("a", 1), ("b", 2), ("c", 3)] {
            cache.put(k, v, Duration::from_secs(60));
        }
        cache.retain(|v| v % 2 == 1);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("b"), None);
    }
}

//! [`PeerCache`]: the peers this node heard of, from the directory's
//! bootstrap list and from exchanges. Bounded ([`MAX_PEERS`], oldest
//! evicted, gossip before directory entries), pruned after [`STALE_AFTER`]
//! unseen, never holding the node itself, and only a fallback source: an
//! entry the directory gave keeps the directory's endpoint and region
//! whatever peers claim.

use super::Peer;
use std::collections::HashMap;
use std::sync::Mutex;

/// The most peers kept.
pub(crate) const MAX_PEERS: usize = 512;
/// Entries unseen this long are dropped (PROTOCOL.md §8 step 6).
pub(crate) const STALE_AFTER_MS: u64 = 90_000;
/// The most *new* peers one exchange may add (known ones are still
/// refreshed): a single sender cannot flush the cache in one go.
pub(crate) const MAX_NEW_PER_EXCHANGE: usize = 50;
/// The most peers an answer carries.
pub(crate) const MAX_REPLY: usize = 50;

/// Where an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The directory's bootstrap list: trusted for endpoint and region.
    Directory,
    /// A peer's exchange.
    Gossip,
}

#[derive(Debug, Clone)]
struct Entry {
    peer: Peer,
    source: Source,
    /// When we last sent this peer an exchange (0: never).
    contacted_ms: u64,
}

#[derive(Debug, Default)]
struct Inner {
    peers: HashMap<String, Entry>,
    own_id: Option<String>,
    own_endpoint: Option<String>,
}

/// The peer cache (see the module docs). Shared as `Arc<PeerCache>` by the
/// `/v1/peers` route, the exchange loop and the relay election.
#[derive(Debug, Default)]
pub(crate) struct PeerCache {
    inner: Mutex<Inner>,
}

/// Whether an entry last seen at `seen` is still fresh at `now`.
fn fresh(seen: u64, now: u64) -> bool {
    now.saturating_sub(seen) <= STALE_AFTER_MS
}

impl PeerCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::sync::lock(&self.inner)
    }

    /// Who this node is: never cached (an entry with this id or endpoint is
    /// dropped, and one already held is removed).
    pub(crate) fn set_self(&self, node_id: Option<&str>, endpoint: &str) {
        let mut inner = self.lock();
        if inner.own_id.as_deref() != node_id {
            inner.own_id = node_id.map(str::to_owned);
            if let Some(id) = node_id {
                inner.peers.remove(id);
            }
        }
        let endpoint = endpoint.trim_end_matches('/');
        if inner.own_endpoint.as_deref() != Some(endpoint) {
            inner.own_endpoint = Some(endpoint.to_owned());
            inner.peers.retain(|_, e| e.peer.endpoint != endpoint);
        }
    }

    /// Merges judged entries; returns how many were new. From a peer
    /// (`Gossip`) at most `max_new` new ones are added; an entry the
    /// directory gave keeps its endpoint and region. Freshness only moves
    /// forward.
    pub(crate) fn merge(
        &self,
        peers: Vec<Peer>,
        source: Source,
        now: u64,
        max_new: usize,
    ) -> usize {
        let mut inner = self.lock();
        let mut added = 0;
        for peer in peers {
            if inner.own_id.as_deref() == Some(peer.node_id.as_str())
                || inner.own_endpoint.as_deref() == Some(peer.endpoint.as_str())
            {
                continue;
            }
            if let Some(entry) = inner.peers.get_mut(&peer.node_id) {
                let seen = entry.peer.last_seen_ms.max(peer.last_seen_ms);
                match (entry.source, source) {
                    // Peers cannot move what the directory said.
                    (Source::Directory, Source::Gossip) => {
                        entry.peer.relay_capable = peer.relay_capable;
                        entry.peer.relay_accept_port = peer.relay_accept_port;
                        entry.peer.relay_load = peer.relay_load;
                    }
                    (_, Source::Directory) => {
                        entry.peer.endpoint = peer.endpoint;
                        entry.peer.region = peer.region;
                        entry.source = Source::Directory;
                    }
                    (Source::Gossip, Source::Gossip) => entry.peer = peer,
                }
                entry.peer.last_seen_ms = seen;
                continue;
            }
            if source == Source::Gossip && added >= max_new {
                continue;
            }
            if !fresh(peer.last_seen_ms, now) {
                continue;
            }
            if inner.peers.len() >= MAX_PEERS {
                evict_one(&mut inner.peers);
            }
            inner.peers.insert(
                peer.node_id.clone(),
                Entry {
                    peer,
                    source,
                    contacted_ms: 0,
                },
            );
            added += 1;
        }
        added
    }

    /// Drops entries unseen for [`STALE_AFTER_MS`]; returns how many.
    pub(crate) fn prune(&self, now: u64) -> usize {
        let mut inner = self.lock();
        let before = inner.peers.len();
        inner.peers.retain(|_, e| fresh(e.peer.last_seen_ms, now));
        before - inner.peers.len()
    }

    /// The fresh peer contacted longest ago (never contacted first), to
    /// exchange with next; it is marked contacted now.
    pub(crate) fn next_target(&self, now: u64) -> Option<Peer> {
        let mut inner = self.lock();
        let entry = inner
            .peers
            .values_mut()
            .filter(|e| fresh(e.peer.last_seen_ms, now))
            .min_by(|a, b| {
                a.contacted_ms
                    .cmp(&b.contacted_ms)
                    .then_with(|| a.peer.node_id.cmp(&b.peer.node_id))
            })?;
        entry.contacted_ms = now.max(1);
        Some(entry.peer.clone())
    }

    /// A peer answered an exchange: it is alive now.
    pub(crate) fn answered(&self, node_id: &str, now: u64) {
        if let Some(e) = self.lock().peers.get_mut(node_id) {
            e.peer.last_seen_ms = e.peer.last_seen_ms.max(now);
        }
    }

    /// Fresh peers, newest first, at most `limit`.
    pub(crate) fn fresh_peers(&self, now: u64, limit: usize) -> Vec<Peer> {
        let inner = self.lock();
        let mut peers: Vec<Peer> = inner
            .peers
            .values()
            .filter(|e| fresh(e.peer.last_seen_ms, now))
            .map(|e| e.peer.clone())
            .collect();
        peers.sort_by(|a, b| {
            b.last_seen_ms
                .cmp(&a.last_seen_ms)
                .then_with(|| a.node_id.cmp(&b.node_id))
        });
        peers.truncate(limit);
        peers
    }

    /// Every fresh peer, newest first.
    pub(crate) fn snapshot(&self) -> Vec<Peer> {
        self.fresh_peers(super::time::now_ms(), usize::MAX)
    }

    /// Relay-capable fresh peers other than `exclude`, least loaded first
    /// (unknown load last), then by id.
    #[cfg_attr(not(feature = "iicp-tcp"), allow(dead_code))] // the relay election
    pub(crate) fn relay_candidates(&self, exclude: &str) -> Vec<Peer> {
        let mut peers: Vec<Peer> = self
            .snapshot()
            .into_iter()
            .filter(|p| p.relay_capable && p.node_id != exclude)
            .collect();
        peers.sort_by(|a, b| {
            let load = |p: &Peer| p.relay_load.unwrap_or(f64::INFINITY);
            load(a)
                .total_cmp(&load(b))
                .then_with(|| a.node_id.cmp(&b.node_id))
        });
        peers
    }

    /// How many entries are held (fresh or not yet pruned).
    pub(crate) fn len(&self) -> usize {
        self.lock().peers.len()
    }
}

/// Removes the gossip entry seen longest ago, or, when every entry came
/// from the directory, the oldest of those.
fn evict_one(peers: &mut HashMap<String, Entry>) {
    let oldest = |source: Option<Source>| {
        peers
            .values()
            .filter(|e| source.is_none_or(|s| e.source == s))
            .min_by_key(|e| e.peer.last_seen_ms)
            .map(|e| e.peer.node_id.clone())
    };
    if let Some(id) = oldest(Some(Source::Gossip)).or_else(|| oldest(None)) {
        peers.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str, seen: u64) -> Peer {
        Peer {
            node_id: id.into(),
            endpoint: format!("https://{id}.example.com"),
            region: "eu".into(),
            last_seen_ms: seen,
            relay_capable: false,
            relay_accept_port: None,
            relay_load: None,
        }
    }

    const NOW: u64 = 1_000_000_000;

    #[test]
    fn bounded_pruned_and_never_self() {
        let cache = PeerCache::default();
        cache.set_self(Some("me"), "https://me.example.com/");
        let mut mine = peer("other", NOW);
        mine.endpoint = "https://me.example.com".into();
        assert_eq!(
            cache.merge(vec![peer("me", NOW), mine], Source::Gossip, NOW, 50),
            0
        );
        for round in 0..40u64 {
            let batch = (0..100)
                .map(|i| peer(&format!("p{round}-{i}"), NOW + round))
                .collect();
            let added = cache.merge(batch, Source::Gossip, NOW + round, MAX_NEW_PER_EXCHANGE);
            assert_eq!(added, MAX_NEW_PER_EXCHANGE);
            assert!(cache.len() <= MAX_PEERS);
        }
        assert_eq!(cache.len(), MAX_PEERS);
        // The newest survived, the oldest went.
        assert!(
            cache
                .fresh_peers(NOW + 40, usize::MAX)
                .iter()
                .any(|p| p.node_id == "p39-0")
        );
        assert!(
            !cache
                .fresh_peers(NOW + 40, usize::MAX)
                .iter()
                .any(|p| p.node_id == "p0-0")
        );
        assert_eq!(cache.fresh_peers(NOW + 40, MAX_REPLY).len(), MAX_REPLY);
        assert_eq!(cache.prune(NOW + 39 + STALE_AFTER_MS + 1), MAX_PEERS);
        // Learning our id later removes an entry already held.
        cache.merge(vec![peer("late-me", NOW)], Source::Gossip, NOW, 50);
        cache.set_self(Some("late-me"), "https://me.example.com");
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn the_directory_view_wins_and_stale_entries_are_not_added() {
        let cache = PeerCache::default();
        cache.merge(vec![peer("d", NOW)], Source::Directory, NOW, usize::MAX);
        let mut forged = peer("d", NOW + 5);
        forged.endpoint = "https://evil.example.com".into();
        forged.region = "evil".into();
        forged.relay_capable = true;
        forged.relay_accept_port = Some(9485);
        cache.merge(
            vec![forged, peer("old", NOW - STALE_AFTER_MS - 1)],
            Source::Gossip,
            NOW + 5,
            50,
        );
        let held = cache.fresh_peers(NOW + 5, 10);
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].endpoint, "https://d.example.com");
        assert_eq!(held[0].region, "eu");
        assert_eq!(
            (held[0].relay_capable, held[0].last_seen_ms),
            (true, NOW + 5)
        );
        // A flood of gossip evicts gossip entries, not the directory's.
        for round in 0..20u64 {
            let batch = (0..50)
                .map(|i| peer(&format!("g{round}-{i}"), NOW + 10 + round))
                .collect();
            cache.merge(batch, Source::Gossip, NOW + 10 + round, 50);
        }
        assert!(
            cache
                .fresh_peers(NOW + 30, usize::MAX)
                .iter()
                .any(|p| p.node_id == "d")
        );
    }

    #[test]
    fn targets_rotate_and_relay_candidates_sort_by_load() {
        let cache = PeerCache::default();
        let mut a = peer("a", NOW);
        a.relay_capable = true;
        a.relay_load = Some(0.5);
        let mut b = peer("b", NOW);
        b.relay_capable = true;
        b.relay_load = Some(0.1);
        let mut c = peer("c", NOW);
        c.relay_capable = true;
        cache.merge(vec![a, b, c, peer("d", NOW)], Source::Gossip, NOW, 50);
        let order: Vec<String> = (1..=5)
            .filter_map(|t| cache.next_target(NOW + t))
            .map(|p| p.node_id)
            .collect();
        assert_eq!(order, ["a", "b", "c", "d", "a"]);
        let ids = |ps: Vec<Peer>| ps.into_iter().map(|p| p.node_id).collect::<Vec<_>>();
        let now = super::super::time::now_ms();
        let cache2 = PeerCache::default();
        let mut fresh: Vec<Peer> = cache.fresh_peers(NOW, 10);
        for p in &mut fresh {
            p.last_seen_ms = now;
        }
        cache2.merge(fresh, Source::Gossip, now, 50);
        assert_eq!(ids(cache2.relay_candidates("x")), ["b", "a", "c"]);
        assert_eq!(ids(cache2.relay_candidates("b")), ["a", "c"]);
    }
}

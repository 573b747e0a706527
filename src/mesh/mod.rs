//! Mesh gossip / peer exchange (PROTOCOL.md §8), on when
//! [`NodeConfig::enable_mesh`](crate::NodeConfig::enable_mesh) is set.
//!
//! A node keeps a bounded cache of peers ([`cache`]), seeded from the
//! directory's `GET /v1/bootstrap?limit=5` and kept up by exchanges: every
//! [`mesh_interval`](crate::NodeConfig::mesh_interval) it POSTs its view,
//! itself included (relay capability, relay port, current load), to the
//! peer it contacted longest ago and merges the answer ([`exchange`]);
//! peers do the same to its `POST /v1/peers` ([`route`]). Exchanges are
//! signed with the gossip key when one is configured ([`sign`]).
//!
//! Gossip is best-effort and untrusted: the directory stays the source of
//! truth. The cache is only a fallback source of peers (for the relay
//! election, [`PeerCache::relay_candidates`](cache::PeerCache::relay_candidates)):
//! a peer cannot change what the directory said about a node, every entry
//! is judged ([`wire`]) and the cache, the bodies and the exchange rate per
//! source are all bounded.

pub(crate) mod cache;
pub(crate) mod exchange;
mod limit;
mod peer;
pub(crate) mod route;
pub(crate) mod sign;
pub(crate) mod time;
pub(crate) mod wire;

pub(crate) use cache::PeerCache;
pub use peer::Peer;

use crate::client::guard::EndpointGuard;
use crate::secret::Secret;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often a node exchanges its view with one peer (PROTOCOL.md §8 step 2).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// What the node says about itself in exchanges, read fresh each time.
pub(crate) struct SelfView {
    /// The directory-assigned id (none before the registration).
    pub identity: watch::Receiver<Option<String>>,
    /// The advertised endpoint (it changes when the router's address does).
    pub endpoint: watch::Receiver<crate::nat::Advertised>,
    pub region: String,
    pub relay_capable: bool,
    pub relay_accept_port: u16,
    /// Running tasks / capacity.
    pub load: Arc<dyn Fn() -> f64 + Send + Sync>,
}

impl std::fmt::Debug for SelfView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfView")
            .field("identity", &*self.identity.borrow())
            .field("endpoint", &self.endpoint.borrow().endpoint)
            .finish_non_exhaustive()
    }
}

impl SelfView {
    /// The node's id, when it has one.
    pub fn id(&self) -> Option<String> {
        self.identity.borrow().clone()
    }

    /// Tells the cache who we are (so we are never cached).
    pub fn sync(&self, cache: &PeerCache) {
        cache.set_self(self.id().as_deref(), &self.endpoint.borrow().endpoint);
    }

    /// Our own entry, when we have an id.
    pub fn entry(&self, now_ms: u64) -> Option<Peer> {
        Some(Peer {
            node_id: self.id()?,
            endpoint: self
                .endpoint
                .borrow()
                .endpoint
                .trim_end_matches('/')
                .to_owned(),
            region: self.region.clone(),
            last_seen_ms: now_ms,
            relay_capable: self.relay_capable,
            relay_accept_port: self.relay_capable.then_some(self.relay_accept_port),
            relay_load: Some((self.load)().clamp(0.0, 1.0)),
        })
    }
}

/// The mesh state the route and the loop share.
#[derive(Debug)]
pub(crate) struct Mesh {
    pub cache: Arc<PeerCache>,
    /// The gossip key; `None`: send unsigned, accept everything.
    pub key: Option<Secret>,
    /// Judges peer endpoints: public only, unless the directory is local.
    pub guard: EndpointGuard,
    pub me: SelfView,
    limit: limit::RateLimit,
}

impl Mesh {
    pub fn new(key: Option<Secret>, allow_private: bool, me: SelfView) -> Self {
        Self {
            cache: Arc::new(PeerCache::default()),
            key: key.filter(|k| !k.is_empty()),
            guard: EndpointGuard::new(allow_private),
            me,
            limit: limit::RateLimit::default(),
        }
    }

    /// Judges `entries` and merges the good ones; returns (taken, new).
    pub fn take_in(
        &self,
        entries: &[serde_json::Value],
        source: cache::Source,
        max_new: usize,
    ) -> (usize, usize) {
        let now = time::now_ms();
        self.me.sync(&self.cache);
        let peers: Vec<Peer> = entries
            .iter()
            .filter_map(|v| wire::judge(v, &self.guard, now).ok())
            .collect();
        let taken = peers.len();
        (taken, self.cache.merge(peers, source, now, max_new))
    }

    /// Our view as we send it and answer it: ourselves first, then the
    /// freshest cached peers, at most [`cache::MAX_REPLY`] in all.
    pub fn view(&self) -> Vec<serde_json::Value> {
        let now = time::now_ms();
        self.me.sync(&self.cache);
        let me = self.me.entry(now);
        let room = cache::MAX_REPLY - usize::from(me.is_some());
        me.into_iter()
            .chain(self.cache.fresh_peers(now, room))
            .map(|p| wire::to_wire(&p))
            .collect()
    }
}

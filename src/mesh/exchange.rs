//! The exchange loop (PROTOCOL.md §8 steps 1-2, 5-6): seed the cache from
//! the directory's `GET /v1/bootstrap?limit=5`, then every interval prune
//! it and POST our view to the peer contacted longest ago, merging its
//! answer. With no peer to contact the bootstrap list is asked again.
//!
//! Calls to peers go through the client's SSRF guard (the endpoint rules
//! and a resolver that judges every answer; private hosts only when the
//! directory is local), with no proxy, no redirects, timeouts and a bounded
//! read of the answer. One debug line per exchange; the key is never logged.

use super::cache::{MAX_NEW_PER_EXCHANGE, Source};
use super::wire::{ExchangeReply, FirstEntries};
use super::{Mesh, Peer, sign, time};
use crate::error::IicpError;
use crate::outbound::exchange_limited;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Time limit of one call (bootstrap or exchange).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Time limit of connecting to a peer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read: a bootstrap list, or a peer's reply (the Python
/// SDK answers with its whole, unbounded cache; only the first entries are
/// used, but the answer must be read to parse them).
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// How many peers the bootstrap asks for (PROTOCOL.md §1.8).
const BOOTSTRAP_LIMIT: u32 = 5;

/// What the loop needs besides the shared state.
pub(crate) struct Params {
    pub mesh: Arc<Mesh>,
    /// Directory base URL; `None`: no bootstrap.
    pub directory_url: Option<String>,
    pub interval: Duration,
}

/// The guarded client for calls to peers.
fn peer_client(mesh: &Mesh) -> Result<reqwest::Client, IicpError> {
    mesh.guard
        .apply(reqwest::Client::builder())
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_idle_timeout(crate::outbound::POOL_IDLE_TIMEOUT)
        .user_agent(concat!("iicp-node/", env!("CARGO_PKG_VERSION"), " mesh"))
        .build()
        .map_err(|e| IicpError::InvalidConfig(format!("HTTP client: {e}")))
}

/// Runs until `stop`.
pub(crate) async fn run(p: Params, stop: CancellationToken) {
    let peers = match peer_client(&p.mesh) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "mesh: no HTTP client; gossip is off");
            return;
        }
    };
    let directory = match crate::outbound::directory_client(concat!(
        "iicp-node/",
        env!("CARGO_PKG_VERSION"),
        " mesh"
    )) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "mesh: no HTTP client; gossip is off");
            return;
        }
    };
    tracing::info!(
        signed = p.mesh.key.is_some(),
        interval_ms = p.interval.as_millis() as u64,
        "mesh gossip on: serving POST /v1/peers and exchanging peers with one peer per interval"
    );
    let lp = Loop {
        mesh: p.mesh,
        peers,
        directory,
        directory_url: p.directory_url,
    };
    lp.bootstrap().await;
    loop {
        lp.round().await;
        tokio::select! {
            () = tokio::time::sleep(p.interval) => {}
            () = stop.cancelled() => return,
        }
    }
}

struct Loop {
    mesh: Arc<Mesh>,
    peers: reqwest::Client,
    directory: reqwest::Client,
    directory_url: Option<String>,
}

impl Loop {
    /// One round: prune, then exchange with the peer contacted longest ago,
    /// or ask the directory for peers when there is none.
    async fn round(&self) {
        let now = time::now_ms();
        self.mesh.me.sync(&self.mesh.cache);
        let pruned = self.mesh.cache.prune(now);
        if pruned > 0 {
            tracing::debug!(pruned, "mesh: dropped peers unseen for 90 s");
        }
        match self.mesh.cache.next_target(now) {
            Some(target) => self.exchange(&target).await,
            None => self.bootstrap().await,
        }
    }

    /// `GET {dir}/v1/bootstrap?limit=5` into the cache as directory entries.
    async fn bootstrap(&self) {
        let Some(dir) = &self.directory_url else {
            return;
        };
        let url = format!(
            "{}/v1/bootstrap?limit={BOOTSTRAP_LIMIT}",
            dir.trim_end_matches('/')
        );
        let reply = match exchange_limited(
            self.directory.get(url),
            "the directory",
            CALL_TIMEOUT,
            MAX_ANSWER_BYTES,
        )
        .await
        .and_then(|r| r.json::<ExchangeReply>("the bootstrap list"))
        {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "mesh: bootstrap failed");
                return;
            }
        };
        let (taken, added) = self.take(&reply.peers, Source::Directory, usize::MAX);
        tracing::debug!(taken, added, "mesh: bootstrap from the directory");
    }

    fn take(&self, entries: &FirstEntries, source: Source, max_new: usize) -> (usize, usize) {
        self.mesh.take_in(&entries.entries, source, max_new)
    }

    /// POSTs our view to `target` and merges its answer.
    async fn exchange(&self, target: &Peer) {
        let outcome = self.send(target).await;
        match outcome {
            Ok(reply) => {
                self.mesh.cache.answered(&target.node_id, time::now_ms());
                let (taken, added) = self.take(&reply.peers, Source::Gossip, MAX_NEW_PER_EXCHANGE);
                tracing::debug!(peer = %target.node_id, taken, added, cached = self.mesh.cache.len(), "mesh exchange");
            }
            Err(e) => {
                tracing::debug!(peer = %target.node_id, error = %e, "mesh exchange failed");
            }
        }
    }

    async fn send(&self, target: &Peer) -> Result<ExchangeReply, IicpError> {
        let what = "the peer";
        let parsed = crate::wire::endpoint::parse_endpoint(&target.endpoint).map_err(|e| {
            IicpError::Transport {
                target: what.into(),
                reason: e.to_string(),
            }
        })?;
        self.mesh
            .guard
            .check_endpoint(&target.endpoint)
            .map_err(|e| IicpError::Transport {
                target: what.into(),
                reason: e.to_string(),
            })?;
        let body = serde_json::to_vec(&json!({
            "known_peers": self.mesh.view(),
            "sender_id": self.mesh.me.id(),
            "timestamp_ms": time::now_ms(),
        }))
        .unwrap_or_default();
        let mut req = self
            .peers
            .post(parsed.url_for("/v1/peers"))
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(key) = &self.mesh.key {
            req = req.header(sign::HEADER, sign::sign(key, &body));
        }
        let reply = exchange_limited(req.body(body), what, CALL_TIMEOUT, MAX_ANSWER_BYTES).await?;
        reply.json("the peer's answer")
    }
}

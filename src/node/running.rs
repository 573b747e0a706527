//! [`RunningNode`]: the handle of a started node. It reports where the node
//! listens and what the directory calls it, waits for the registration, and
//! stops the node: explicitly with [`RunningNode::shutdown`], or when the
//! handle is dropped.

use super::pipeline::Pipeline;
use super::signal::shutdown_signal;
use crate::error::{IicpError, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A node that is serving, returned by `IicpNode::start`.
///
/// Keep it as long as the node should serve: dropping it stops the node
/// (no new connections, running tasks finish in the background, then the
/// lifecycle deregisters, as long as the Tokio runtime runs). Call
/// [`shutdown`](Self::shutdown) to wait for all of that, or
/// [`run_until_signal`](Self::run_until_signal) to serve until SIGINT/SIGTERM.
#[derive(Debug)]
pub struct RunningNode {
    pub(super) local_addr: SocketAddr,
    pub(super) endpoint: String,
    pub(super) identity: watch::Receiver<Option<String>>,
    /// The last registration failure, cleared by a success.
    pub(super) registration_error: watch::Receiver<Option<String>>,
    pub(super) pipeline: Arc<Pipeline>,
    /// `None` once shut down.
    pub(super) server: Option<JoinHandle<()>>,
    pub(super) server_stop: CancellationToken,
    pub(super) lifecycle: Option<JoinHandle<()>>,
    pub(super) registers: bool,
    pub(super) lifecycle_stop: CancellationToken,
    pub(super) grace: Duration,
    /// The reachability tier found at start, when the ladder ran.
    pub(super) tier: Option<crate::nat::Tier>,
    /// Renews the UPnP mapping; removes it when stopped.
    pub(super) keeper: Option<JoinHandle<()>>,
    pub(super) keeper_stop: CancellationToken,
    /// The peer cache, when the mesh is on.
    pub(super) mesh: Option<Arc<crate::mesh::PeerCache>>,
    /// The exchange loop; stopped with the node.
    pub(super) mesh_task: Option<JoinHandle<()>>,
    pub(super) mesh_stop: CancellationToken,
    /// The relay the worker is bound at (`host:port`), when it is.
    pub(super) relay_bound: watch::Receiver<Option<String>>,
    /// The relay worker, when the node serves through a relay.
    pub(super) worker: Option<JoinHandle<()>>,
    pub(super) worker_stop: CancellationToken,
    /// The relay server, when the node is relay-capable.
    pub(super) relay: Option<RelayRun>,
}

/// A running relay server: its accept port's address and task.
#[derive(Debug)]
pub(super) struct RelayRun {
    pub addr: SocketAddr,
    pub task: JoinHandle<()>,
    pub stop: CancellationToken,
}

impl RunningNode {
    /// The peers the mesh knows (fresh ones, newest first); empty when the
    /// mesh is off (`enable_mesh`).
    pub fn peers(&self) -> Vec<crate::mesh::Peer> {
        self.mesh.as_ref().map(|m| m.snapshot()).unwrap_or_default()
    }

    /// The peer cache, when the mesh is on (the relay election's fallback
    /// source of relay-capable peers).
    #[allow(dead_code)]
    pub(crate) fn peer_cache(&self) -> Option<Arc<crate::mesh::PeerCache>> {
        self.mesh.clone()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The endpoint advertised to the directory at start.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Where the relay accepts workers (`relay_accept_port` as bound), when
    /// the node is relay-capable.
    pub fn relay_addr(&self) -> Option<SocketAddr> {
        self.relay.as_ref().map(|r| r.addr)
    }

    /// The reachability tier found at start (`None` when the ladder was
    /// off: `reachability.auto_detect` false and no endpoint given).
    pub fn reachability_tier(&self) -> Option<crate::nat::Tier> {
        self.tier
    }

    /// The relay this node is bound at as a relay worker (`host:port` of
    /// its accept port), while a session is up; `None` otherwise (also for
    /// a node that is not a relay worker).
    pub fn relay(&self) -> Option<String> {
        self.relay_bound.borrow().clone()
    }

    /// Whether the node serves through a relay (the operator named one, or
    /// the reachability ladder found no endpoint and a relay is elected).
    pub fn is_relay_worker(&self) -> bool {
        self.worker.is_some()
    }

    /// Waits at most `limit` until the node is bound at a relay and returns
    /// it (`host:port`); `None` when it is not bound by then.
    pub async fn relay_within(&self, limit: Duration) -> Option<String> {
        let mut rx = self.relay_bound.clone();
        tokio::time::timeout(limit, rx.wait_for(Option::is_some))
            .await
            .ok()?
            .ok()?
            .clone()
    }

    /// The node id, once the directory assigned or confirmed it.
    pub fn node_id(&self) -> Option<String> {
        self.identity.borrow().clone()
    }

    /// The node's current directory token (it changes when the node
    /// registers again): the credential its operator presents to a node in
    /// `token` task-auth mode. Keep it private.
    pub fn node_token(&self) -> Option<crate::Secret> {
        self.pipeline.auth.own_token()
    }

    /// Waits until the node is registered and returns its id; `None` if it
    /// never registers (registration skipped, or the node stopped). It waits
    /// without bound while the directory cannot be reached: prefer
    /// [`registered_within`](Self::registered_within).
    pub async fn registered(&self) -> Option<String> {
        if !self.registers {
            return None;
        }
        let mut rx = self.identity.clone();
        rx.wait_for(Option::is_some).await.ok()?.clone()
    }

    /// Waits at most `limit` for the registration and returns the node id.
    ///
    /// Fails with `InvalidConfig` when the node does not register
    /// (`skip_registration`), and with `Timeout` naming the last
    /// registration failure (directory unreachable, registration refused)
    /// when `limit` runs out. The node keeps serving and retrying either way.
    ///
    /// ```no_run
    /// # async fn f() -> iicp_client::Result<()> {
    /// use iicp_client::{IicpNode, NodeConfig, node::handler_fn};
    /// let node = IicpNode::new(NodeConfig::local("http://127.0.0.1:8020/api"))
    ///     .start(handler_fn(|_req, _ctx| async { Ok(serde_json::json!({})) }))
    ///     .await?;
    /// let id = node.registered_within(std::time::Duration::from_secs(5)).await?;
    /// println!("registered as {id}");
    /// node.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn registered_within(&self, limit: Duration) -> Result<String> {
        if !self.registers {
            return Err(IicpError::InvalidConfig(
                "this node does not register (skip_registration)".into(),
            ));
        }
        match tokio::time::timeout(limit, self.registered()).await {
            Ok(Some(id)) => Ok(id),
            Ok(None) => Err(IicpError::InvalidConfig(
                "the node stopped before it registered".into(),
            )),
            Err(_) => {
                let last = self.registration_error.borrow().clone();
                Err(IicpError::Timeout {
                    what: match last {
                        Some(e) => {
                            format!("the registration with the directory (last attempt: {e})")
                        }
                        None => "the registration with the directory".into(),
                    },
                    elapsed_ms: limit.as_millis() as u64,
                })
            }
        }
    }

    /// Serves until SIGINT or SIGTERM, then shuts down as [`shutdown`](Self::shutdown).
    pub async fn run_until_signal(self) {
        self.run_until(shutdown_signal()).await;
    }

    /// Serves until `stop` resolves (e.g. a [`shutdown_signal`] installed
    /// before the startup line), then shuts down as [`shutdown`](Self::shutdown).
    pub async fn run_until(self, stop: impl std::future::Future<Output = ()>) {
        stop.await;
        tracing::info!("shutdown signal received: finishing running tasks, then deregistering");
        self.shutdown().await;
    }

    /// Stops taking tasks (new ones get 503 `IICP-E024`), lets running ones
    /// finish within the grace period, then deregisters with the current token.
    pub async fn shutdown(mut self) {
        self.stop();
        if let Some(mut server) = self.server.take() {
            if tokio::time::timeout(self.grace, &mut server).await.is_err() {
                tracing::warn!(
                    grace_ms = self.grace.as_millis() as u64,
                    "tasks still running after the grace period; stopping them"
                );
                server.abort();
            }
        }
        // Workers get CLOSE graceful; their consumers' calls fail now.
        if let Some(relay) = self.relay.take() {
            let _ = tokio::time::timeout(self.grace, relay.task).await;
        }
        self.lifecycle_stop.cancel();
        if let Some(lifecycle) = self.lifecycle.take() {
            let _ = lifecycle.await;
        }
        // Deregistered first, then the relay session closes (CLOSE graceful).
        self.worker_stop.cancel();
        if let Some(worker) = self.worker.take() {
            let _ = worker.await;
        }
        // Then the router's mapping goes.
        self.keeper_stop.cancel();
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.await;
        }
        if let Some(mesh) = self.mesh_task.take() {
            let _ = mesh.await;
        }
    }

    /// Starts draining and closes the listener.
    fn stop(&self) {
        self.pipeline.start_draining();
        self.server_stop.cancel();
        self.mesh_stop.cancel();
        if let Some(relay) = &self.relay {
            relay.stop.cancel();
        }
    }
}

/// Dropping the handle stops the node: the listener closes, running tasks
/// finish in the background, and the lifecycle deregisters (it runs on as
/// long as the runtime does).
impl Drop for RunningNode {
    fn drop(&mut self) {
        if self.server.is_some() {
            self.stop();
            self.lifecycle_stop.cancel();
            self.worker_stop.cancel();
            self.keeper_stop.cancel();
        }
    }
}

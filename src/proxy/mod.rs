//! `iicp-node proxy`: a local gateway that lets code written for the
//! OpenAI, Anthropic or Ollama HTTP APIs use the mesh by changing a base
//! URL.
//!
//! Every request becomes one [`IicpClient`] call: discovery, selection by
//! the requested model, failover, IICP-CX sealing and consumer tokens are
//! the client's. The gateway only translates: it decodes the dialect's
//! request, builds the task, and encodes the answer (or the chunk stream)
//! back in the dialect's shape ([`dialect`]).
//!
//! Threat model: whoever reaches the gateway spends the operator's consumer
//! identity (its node token and the mesh's capacity), so it binds loopback
//! by default and refuses any other address unless
//! [`ProxyConfig::allow_remote`] is set. Requests are still untrusted: the
//! body is bounded ([`ProxyConfig::max_body_bytes`]) and read under the
//! server's timeouts, every decoding failure is the dialect's 400, and an
//! error never echoes a payload, a token or a node's message body beyond
//! the client's own `IicpError` text, which carries neither.
//!
//! Layout: [`config`] (what the operator sets), `routes` (the router),
//! `dialect` (error shapes per SDK and the status of each `IicpError`),
//! `catalog` (the model list, cached for the directory's max-age),
//! `events` (a chat stream re-encoded as SSE or NDJSON), one module per
//! API (`openai`, `anthropic`, `ollama`), and `metrics`.

mod answer;
mod anthropic;
mod catalog;
pub mod config;
pub(crate) mod dialect;
pub(crate) mod events;
mod metrics;
mod ollama;
mod openai;
mod routes;
mod task;

pub use config::ProxyConfig;

use crate::client::IicpClient;
use crate::error::{IicpError, Result};
use crate::server::serve::Server;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What every handler shares.
pub(crate) struct ProxyState {
    /// The consumer behind every request.
    pub client: IicpClient,
    /// `GET /v1/models` and `/api/tags`.
    pub catalog: catalog::Catalog,
    /// `GET /metrics`.
    pub metrics: metrics::ProxyMetrics,
}

/// The gateway.
#[derive(Debug)]
pub struct Proxy;

impl Proxy {
    /// Binds [`ProxyConfig::listen`] (port 0 picks a free one) and serves
    /// until [`RunningProxy::shutdown`]. A non-loopback address without
    /// [`ProxyConfig::allow_remote`] is `invalid_config`, before binding.
    pub async fn start(config: ProxyConfig, client: IicpClient) -> Result<RunningProxy> {
        config.check()?;
        let listener = crate::server::listen::bind(config.listen).map_err(|e| {
            IicpError::Io(std::io::Error::new(
                e.kind(),
                format!("cannot bind the proxy to {}: {e}", config.listen),
            ))
        })?;
        let local_addr = listener.local_addr()?;
        let state = Arc::new(ProxyState {
            client,
            catalog: catalog::Catalog::default(),
            metrics: metrics::ProxyMetrics::default(),
        });
        let app = routes::router(state, config.max_body_bytes);
        let cancel = CancellationToken::new();
        let server = Server::new(listener, app, config.server_limits, None, "proxy");
        let task = tokio::spawn(server.run(cancel.clone()));
        Ok(RunningProxy {
            local_addr,
            cancel,
            task,
        })
    }
}

/// A gateway that is serving.
#[derive(Debug)]
pub struct RunningProxy {
    local_addr: SocketAddr,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl RunningProxy {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The OpenAI base URL to give an SDK: `http://HOST:PORT/v1`.
    pub fn openai_base_url(&self) -> String {
        format!("{}/v1", self.url())
    }

    /// The base URL without a path (Anthropic and Ollama SDKs take this).
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// A token that stops the gateway when cancelled (e.g. on SIGTERM).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Serves until the shutdown token is cancelled and the open requests
    /// have finished.
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// Stops accepting, lets the open requests finish, and returns.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

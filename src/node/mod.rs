//! The provider: [`IicpNode`] serves `POST /v1/task`, `GET /iicp/health` and
//! `GET /metrics` (`metrics.rs`), registers with a directory, heartbeats,
//! re-registers when forgotten and deregisters on shutdown (PROTOCOL.md
//! §1.3-§1.5, §2).
//!
//! Tasks go through one pipeline (`pipeline.rs`); the directory state has
//! one owner (`lifecycle.rs`). The handler returns the *inner* result and
//! the node wraps it once.
//!
//! ```no_run
//! use iicp_client::{IicpNode, NodeConfig};
//! use serde_json::json;
//!
//! # async fn run() -> iicp_client::Result<()> {
//! let node = IicpNode::new(NodeConfig {
//!     directory_url: "http://127.0.0.1:8020/api".into(),
//!     models: vec!["echo".into()],
//!     ..Default::default()
//! });
//! node.serve(|req: iicp_client::TaskRequest, _ctx| async move {
//!     Ok(json!({"echo": req.payload}))
//! })
//! .await
//! # }
//! ```

mod admission;
pub(crate) mod answer;
mod backend_handler;
mod capabilities;
mod config;
mod config_builder;
mod contained;
mod directory_link;
pub(crate) mod envelope;
mod handler;
mod http;
pub(crate) mod inbound;
mod launch;
mod lifecycle;
mod listener;
mod metrics;
mod models;
#[cfg(feature = "iicp-tcp")]
mod native;
mod native_limits;
pub(crate) mod pipeline;
mod reach;
mod relayed;
mod replay;
mod runner;
mod running;
mod served;
mod signal;
mod stats;
pub(crate) mod task_auth;
mod task_route;
mod wiring;

#[cfg(feature = "iicp-tcp")]
pub(crate) use wiring::bind_exact;

#[cfg(feature = "iicp-tcp")]
pub use crate::relay::worker::{RelayCandidate, RelayTarget, preview as preview_relay};
pub use admission::ADMISSION_WAIT;
pub use capabilities::{capabilities, intent_for_model, modalities_for_model};
pub use config::{
    DEFAULT_PORT, DEFAULT_RELAY_ACCEPT_PORT, DEFAULT_REPLAY_WINDOW_ENTRIES, NodeConfig,
};
pub use config_builder::NodeConfigBuilder;
pub use handler::{HandlerError, HandlerFuture, TaskContext, TaskHandler, handler_fn};
pub use native_limits::{
    DEFAULT_NATIVE_IDLE_TIMEOUT, DEFAULT_NATIVE_INIT_TIMEOUT, DEFAULT_NATIVE_MAX_CALLS,
    MAX_NATIVE_CALLS, MAX_NATIVE_FRAME_BYTES, MIN_NATIVE_FRAME_BYTES, NativeLimits,
};
#[cfg(feature = "iicp-tcp")]
pub(crate) use reach::directory_is_local;
pub use running::RunningNode;
pub use signal::shutdown_signal;
pub use task_auth::TaskAuthMode;

use crate::backends::Backend;
use crate::error::Result;
use std::sync::Arc;

/// An IICP provider node. Build it with [`IicpNode::new`], then
/// [`serve`](Self::serve) (until SIGINT/SIGTERM) or [`start`](Self::start)
/// (returns a handle).
#[derive(Debug, Clone)]
pub struct IicpNode {
    config: NodeConfig,
}

impl IicpNode {
    /// A node with this configuration (checked when it starts).
    pub fn new(config: NodeConfig) -> Self {
        Self { config }
    }

    /// Its configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Serves tasks with `handler` until SIGINT or SIGTERM, then stops taking
    /// tasks, lets running ones finish (within `shutdown_grace`), deregisters
    /// and returns.
    pub async fn serve<H: TaskHandler>(self, handler: H) -> Result<()> {
        self.start(handler).await?.run_until_signal().await;
        Ok(())
    }

    /// Binds, starts serving and (unless `skip_registration`) starts the
    /// directory lifecycle in the background.
    pub async fn start<H: TaskHandler>(self, handler: H) -> Result<RunningNode> {
        launch::launch(
            self.config,
            runner::Runner::Handler(Arc::new(handler)),
            None,
        )
        .await
    }

    /// Serves a model server until SIGINT or SIGTERM (see [`start_backend`](Self::start_backend)).
    pub async fn serve_backend(self, backend: Arc<dyn Backend>) -> Result<()> {
        self.start_backend(backend).await?.run_until_signal().await;
        Ok(())
    }

    /// Serves tasks with a [`Backend`]. Its models are probed at start (when
    /// `models` is empty they become the advertised models, and the engine
    /// flavour the register `backend` field) and before every heartbeat
    /// (`health_models`; a changed list re-registers with new capabilities).
    /// A task may name only an advertised model (else 404 `IICP-E029`), and
    /// its cost fields are lowered to `max_tokens` / `max_choices`.
    pub async fn start_backend(mut self, backend: Arc<dyn Backend>) -> Result<RunningNode> {
        match backend.probe().await {
            Ok((models, flavour)) => {
                if self.config.models.is_empty() {
                    self.config.models = models;
                }
                self.config.backend.get_or_insert(flavour);
            }
            Err(e) => {
                tracing::warn!(error = ?e.to_string(), "could not list the backend's models at start")
            }
        }
        let advertised = models::AdvertisedModels::new(&self.config.models);
        let handler = runner::Runner::Backend(Arc::new(backend_handler::BackendHandler {
            backend: backend.clone(),
            default_model: self.config.models.first().cloned(),
            advertised: advertised.clone(),
            limits: crate::backends::CostLimits {
                max_tokens: self.config.max_tokens,
                max_choices: self.config.max_choices,
            },
        }));
        launch::launch(self.config, handler, Some((backend, advertised))).await
    }
}

/// The `transport_endpoint` advertised beside `endpoint`, when the node
/// serves the native transport.
pub(crate) fn transport_endpoint_for(endpoint: &str) -> Option<String> {
    #[cfg(feature = "iicp-tcp")]
    {
        native::transport_endpoint(endpoint)
    }
    #[cfg(not(feature = "iicp-tcp"))]
    {
        let _ = endpoint;
        None
    }
}

//! A local IICP directory: the same wire as the public one (IICP-DIR), in
//! process or standalone (`iicp-node directory`), so a whole mesh runs on
//! one machine with no internet.
//!
//! It owns node registrations (register, heartbeat with HMAC challenges,
//! deregister), discovery with the reference eligibility and score, and
//! optional persistence in SQLite or PostgreSQL (`store`; on PostgreSQL,
//! replicas sharing one database, `replica.rs`). With a signing key (the default generates
//! one) it publishes `GET /v1/directory-key` and signs consumer tokens at
//! `POST /v1/consumer-token` (PROTOCOL.md §1.7). It does not carry task
//! payloads, issue dispatch tickets or keep credit ledgers; those routes
//! answer in JSON. `GET /metrics` serves its counters in the Prometheus
//! text format (`metrics.rs`).
//!
//! ```no_run
//! # async fn demo() -> iicp_client::Result<()> {
//! use iicp_client::directory::{Directory, DirectoryConfig};
//! let dir = Directory::start(DirectoryConfig::default(), "127.0.0.1:0".parse().unwrap()).await?;
//! println!("directory at {}", dir.url()); // http://127.0.0.1:PORT/api
//! dir.shutdown().await;
//! # Ok(()) }
//! ```

mod addresses;
mod beat;
mod change;
pub mod clock;
mod metrics;
mod nodes;
pub mod ranking;
mod rate_limit;
mod reachability;
mod record;
mod registry;
mod replica;
mod routes;
mod store;
mod validate;

pub use addresses::parse_cidr;
pub use ipnet::IpNet;
pub use store::{Database, PostgresUrl};

use crate::error::{IicpError, Result};
use crate::server::serve::Server;
use crate::token::{self, DirectoryPublicKey, DirectorySigningKey};
use clock::{Clock, SystemClock};
use rate_limit::RateLimiter;
use registry::{Bounds, Registry};
use routes::AppState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Default request body limit: 256 KiB, ample for a registration with many
/// capabilities.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// Default limit of a `POST /v1/register` body: 32 KiB, far above a
/// registration with dozens of models.
pub const DEFAULT_MAX_REGISTER_BODY_BYTES: usize = 32 * 1024;

/// Default storage budget of one node: 64 KiB for its registration and the
/// fields its heartbeats update (`health_models`, backend state, batch id).
pub const DEFAULT_MAX_NODE_BYTES: usize = 64 * 1024;

/// Default cap on registered nodes.
pub const DEFAULT_MAX_NODES: usize = 1000;

/// Default eviction age: a node unseen for 10 minutes is forgotten.
pub const DEFAULT_EVICT_AFTER: Duration = Duration::from_secs(600);

/// How the directory behaves.
#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    /// Accept loopback and private endpoints (a mesh on one machine or LAN).
    /// When false, endpoints must resolve only to public addresses (422 `IICP-E035`).
    pub local_mode: bool,
    /// Skip the `GET {endpoint}/iicp/health` liveness probe at registration.
    /// For conformance runs that register unreachable example hosts.
    pub skip_liveness_check: bool,
    /// In local mode, refuse (422 `IICP-E036`) loopback and private endpoints
    /// that do not answer the probe, as public endpoints are. Off by default:
    /// some SDKs register before they listen (PROTOCOL.md §1.9 item 3), so
    /// such nodes are accepted and stay out of discover until their first
    /// heartbeat.
    pub require_local_liveness: bool,
    /// Apply the QoS gates: `interactive` needs 100 completed tasks
    /// (probation), `realtime` 1000 and reputation 0.8.
    pub enforce_probation: bool,
    /// Persist registrations in this database (a SQLite file or a
    /// PostgreSQL database); `None` keeps them in memory only. Any number
    /// of directories may share one PostgreSQL database and behave as one
    /// directory (the database is the source of truth; each keeps a read
    /// cache of it).
    pub db: Option<Database>,
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Registrations per minute per source address (0 disables the limit).
    pub register_rate_limit: u32,
    /// `next_heartbeat_ms` told to nodes.
    pub heartbeat_interval: Duration,
    /// A node unseen for this long is no longer discoverable.
    pub node_ttl: Duration,
    /// Time limit of DNS look-ups and liveness probes.
    pub probe_timeout: Duration,
    /// Source of time (tests use a [`clock::ManualClock`]).
    pub clock: Arc<dyn Clock>,
    /// The Ed25519 key consumer tokens are signed with; its public half is
    /// served at `GET /v1/directory-key`. `None` turns both token routes
    /// into 503 `not_configured`. The default is a fresh key, valid for the
    /// life of this value (tokens stop verifying once it is gone). On a
    /// PostgreSQL `db` the key stored there is used instead, so that every
    /// replica signs with one key; this one is stored when there is none
    /// yet ([`RunningDirectory::public_key`] tells which is in use).
    pub signing_key: Option<DirectorySigningKey>,
    /// `iss` of the tokens this directory signs.
    pub issuer: String,
    /// Header and body read timeouts and the connection cap of its HTTP server.
    pub server_limits: crate::ServerLimits,
    /// Proxies whose forwarding headers (`CF-Connecting-IP`,
    /// `X-Forwarded-For`, `X-Real-IP`) are believed when they are the socket
    /// peer. Empty (the default): headers are ignored and the peer is the
    /// caller, for the register rate limit and `observed_source_ip` alike.
    pub trusted_proxies: Vec<IpNet>,
    /// In local mode the liveness probe connects only to the registrant's
    /// own address and, for registrants on this machine, loopback; these
    /// ranges are allowed besides (nodes on a LAN registered by another
    /// host). An endpoint resolving elsewhere is refused (422 `IICP-E035`)
    /// before any connection.
    pub probe_allow: Vec<IpNet>,
    /// Largest `POST /v1/register` body (413 `payload_too_large` above);
    /// `max_body_bytes` still applies when it is smaller.
    pub max_register_body_bytes: usize,
    /// Most bytes one node may store: its registration (JSON form) plus the
    /// fields its heartbeats update. 413 `payload_too_large` above.
    pub max_node_bytes: usize,
    /// Most nodes held at once. A registration that needs a new record when
    /// the directory is full (after evicting expired nodes) gets 503
    /// `directory_full` with `Retry-After: 60`.
    pub max_nodes: usize,
    /// A node unseen (no registration or heartbeat) for this long is
    /// forgotten, in memory and in the `db` store.
    pub evict_after: Duration,
    /// How often expired nodes are swept out (also done on demand when the
    /// directory is full).
    pub eviction_sweep_interval: Duration,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        Self {
            local_mode: true,
            skip_liveness_check: false,
            require_local_liveness: false,
            enforce_probation: false,
            db: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            register_rate_limit: 60,
            heartbeat_interval: Duration::from_secs(30),
            node_ttl: Duration::from_secs(90),
            probe_timeout: Duration::from_secs(5),
            clock: Arc::new(SystemClock),
            signing_key: Some(DirectorySigningKey::generate()),
            issuer: token::DEFAULT_ISSUER.to_owned(),
            server_limits: crate::ServerLimits::default(),
            trusted_proxies: Vec::new(),
            probe_allow: Vec::new(),
            max_register_body_bytes: DEFAULT_MAX_REGISTER_BODY_BYTES,
            max_node_bytes: DEFAULT_MAX_NODE_BYTES,
            max_nodes: DEFAULT_MAX_NODES,
            evict_after: DEFAULT_EVICT_AFTER,
            eviction_sweep_interval: Duration::from_secs(30),
        }
    }
}

/// Starts directories.
#[derive(Debug)]
pub struct Directory;

impl Directory {
    /// Binds `listen` (port 0 picks a free one), loads the store if
    /// configured, and serves until [`RunningDirectory::shutdown`].
    pub async fn start(config: DirectoryConfig, listen: SocketAddr) -> Result<RunningDirectory> {
        let mut config = config;
        // Refuses to start when the database cannot be written (store/:
        // read-only, disk full, unreachable, login refused), naming it
        // (never its password) and the cause.
        let cannot_open = |db: &Database, e: std::io::Error| {
            IicpError::Io(std::io::Error::new(
                e.kind(),
                format!("cannot open directory database {db}: {e}"),
            ))
        };
        let (store, shared, records) = match &config.db {
            Some(db @ Database::Sqlite(path)) => {
                let (store, records) = store::Store::open_sqlite(path)
                    .await
                    .map_err(|e| cannot_open(db, e))?;
                (Some(store), None, records)
            }
            Some(db @ Database::Postgres(url)) => {
                let offered = config
                    .signing_key
                    .as_ref()
                    .map(DirectorySigningKey::to_seed);
                let opened = store::postgres::open(url, offered)
                    .await
                    .map_err(|e| cannot_open(db, e))?;
                // Every replica signs with the key the first one stored.
                if let Some(seed) = opened.signing_seed {
                    config.signing_key = Some(DirectorySigningKey::from_seed(seed));
                }
                (None, Some(opened.shared), opened.records)
            }
            None => (None, None, Vec::new()),
        };
        let restored = records.len();
        let state = Arc::new(AppState {
            shared,
            registry: Arc::new(Registry::new(
                records,
                store,
                Bounds {
                    ttl_ms: config.node_ttl.as_millis() as u64,
                    evict_after_ms: config.evict_after.as_millis() as u64,
                    max_nodes: config.max_nodes,
                    max_node_bytes: config.max_node_bytes,
                },
            )),
            register_limiter: RateLimiter::new(config.register_rate_limit, 60_000),
            clock: config.clock.clone(),
            metrics: metrics::DirectoryMetrics::default(),
            config,
        });
        let listener = crate::server::listen::bind(listen)?;
        let local_addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let app = routes::router(state.clone());
        let server = Server::new(listener, app, state.config.server_limits, None, "directory");
        let task = tokio::spawn(server.run(cancel.clone()));
        tokio::spawn(sweep_expired(state.clone(), cancel.clone()));
        if let Some(shared) = &state.shared {
            tokio::spawn(store::postgres::cache::run(
                shared.clone(),
                state.registry.clone(),
                cancel.clone(),
            ));
        }
        tracing::debug!(%local_addr, restored, "directory started");
        Ok(RunningDirectory {
            local_addr,
            cancel,
            task,
            state,
            restored,
        })
    }
}

/// Forgets expired nodes at start (records restored from the store) and
/// then every `eviction_sweep_interval`, until `cancel`: in memory, or on
/// the shared PostgreSQL database.
async fn sweep_expired(state: Arc<AppState>, cancel: CancellationToken) {
    let period = state
        .config
        .eviction_sweep_interval
        .max(Duration::from_millis(10));
    loop {
        let now = state.clock.now_ms();
        match state.replica() {
            // On the shared database: one DELETE, each node by one replica.
            // Without the database the cache keeps its nodes (discover hides
            // the stale ones) until the next sweep reaches it.
            Some(replica) => {
                let _ = replica
                    .expire(now, state.config.evict_after.as_millis() as u64)
                    .await;
            }
            None => {
                state.registry.evict_expired(now);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = cancel.cancelled() => return,
        }
    }
}

/// A directory that is serving.
#[derive(Debug)]
pub struct RunningDirectory {
    local_addr: SocketAddr,
    cancel: CancellationToken,
    task: JoinHandle<()>,
    state: Arc<AppState>,
    restored: usize,
}

impl RunningDirectory {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The directory URL for clients and nodes, in the public form
    /// (`http://HOST:PORT/api`; clients append `/v1/...`).
    pub fn url(&self) -> String {
        let host = match self.local_addr.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            ip => ip.to_string(),
        };
        format!("http://{host}:{}/api", self.local_addr.port())
    }

    /// Registrations restored from the database at start.
    pub fn restored_nodes(&self) -> usize {
        self.restored
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &DirectoryConfig {
        &self.state.config
    }

    /// The public key of [`DirectoryConfig::signing_key`], as served at
    /// `GET /v1/directory-key`; `None` when the directory signs no tokens.
    pub fn public_key(&self) -> Option<DirectoryPublicKey> {
        self.state
            .config
            .signing_key
            .as_ref()
            .map(DirectorySigningKey::public_key)
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Waits until the server stops (after the shutdown token is cancelled),
    /// then flushes the store.
    pub async fn wait(self) {
        let _ = self.task.await;
        self.state.registry.close();
    }

    /// Stops taking connections, finishes open requests, flushes the store.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.wait().await;
    }
}

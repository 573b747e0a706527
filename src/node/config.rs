//! `NodeConfig`: everything a provider node needs, with defaults so the
//! seed's `NodeConfig { endpoint, intent, …, ..Default::default() }` works,
//! and the checks `IicpNode::start` applies before it binds anything.

use crate::client::DEFAULT_DIRECTORY_URL;
use crate::secret::Secret;
use crate::wire::BackendFlavour;
use std::path::PathBuf;
use std::time::Duration;

/// The official IICP port.
pub const DEFAULT_PORT: u16 = 9484;
/// The native relay port.
pub const DEFAULT_RELAY_ACCEPT_PORT: u16 = 9485;

/// Default of [`NodeConfig::replay_window_entries`].
pub const DEFAULT_REPLAY_WINDOW_ENTRIES: usize = 100_000;

/// Configuration of an [`IicpNode`](super::IicpNode).
///
/// The defaults are those of the `iicp-node serve` binary: listen on every
/// interface (`::`) on port 9484 and register with the **public** directory.
/// A node embedded in a program or a test usually wants
/// [`NodeConfig::local`] (loopback, a free port, your directory) or the
/// [`builder`](NodeConfig::builder), which also survives new fields:
///
/// ```
/// use iicp_client::NodeConfig;
/// let config = NodeConfig::builder()
///     .directory_url("http://127.0.0.1:8020/api")
///     .host("127.0.0.1")
///     .port(0u16)
///     .models(vec!["my-model".to_owned()])
///     .build()?;
/// assert_eq!(config, NodeConfig {
///     models: vec!["my-model".into()],
///     ..NodeConfig::local("http://127.0.0.1:8020/api")
/// });
/// # Ok::<(), iicp_client::IicpError>(())
/// ```
///
/// The struct literal with `..Default::default()` keeps working as fields
/// are added. [`validate`](Self::validate) runs at `start()`.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// Public base URL advertised to the directory, trusted as given
    /// (tier 0). Empty: found by the reachability ladder
    /// ([`reachability`](Self::reachability)), else `http://127.0.0.1:PORT`
    /// (reachable from this machine only).
    pub endpoint: String,
    /// The intent served. A model whose name contains `embed` (any case)
    /// is advertised for `urn:iicp:intent:llm:embedding:v1` instead, with a
    /// warning in the log when that differs from this intent.
    pub intent: String,
    /// Accept relay binds from nodes that cannot be reached directly.
    pub relay_capable: bool,
    /// Port of the native relay listener, bound on [`host`](Self::host)
    /// beside the serve port when [`relay_capable`](Self::relay_capable)
    /// (0: a free port, see `RunningNode::relay_addr`).
    pub relay_accept_port: u16,
    /// Refuse relay binds without a valid directory-signed bind ticket
    /// (`IICP_RELAY_REQUIRE_BIND_TICKET=1`). Without
    /// [`relay_bind_ticket_public_key`](Self::relay_bind_ticket_public_key)
    /// the key is fetched from the directory's `GET /v1/directory-key`.
    pub relay_require_bind_ticket: bool,
    /// The directory's Ed25519 key (64 hex characters) that relay bind
    /// tickets are verified with. Without it and without
    /// [`relay_require_bind_ticket`](Self::relay_require_bind_ticket),
    /// tickets are not checked (binds are accepted unsigned, as the
    /// reference relays do).
    pub relay_bind_ticket_public_key: Option<String>,
    /// Bounds of the relay: sessions, bind rate, calls in flight, liveness
    /// (see [`RelayLimits`](crate::relay::RelayLimits)).
    pub relay_limits: crate::relay::RelayLimits,
    /// Take part in peer exchange (gossip, PROTOCOL.md §8; see
    /// [`crate::mesh`]): serve `POST /v1/peers`, seed a peer cache from the
    /// directory's bootstrap list and exchange it with one peer every
    /// [`mesh_interval`](Self::mesh_interval), advertising relay capability
    /// there. Off by default; the directory stays the source of truth.
    pub enable_mesh: bool,
    /// The gossip key (the Python SDK's `node_hmac_key`): exchanges we send
    /// carry `X-IICP-Signature` = hex HMAC-SHA256 of the body with it, and
    /// exchanges we receive must carry a valid one (401 `IICP-E012`
    /// otherwise). `None`: ours are unsigned and every exchange is accepted.
    /// Only peers configured with the same key can then talk to this node.
    pub node_hmac_key: Option<Secret>,
    /// How often the node exchanges its peer list with one peer (30 s).
    pub mesh_interval: Duration,
    /// Serve through this relay (`host:port` of its native accept port,
    /// `IICP_RELAY_WORKER_ENDPOINT`): the node dials out, binds there and
    /// registers the relay's `/v1/relay-for/{node_id}` endpoint (PROTOCOL.md
    /// §7.2). `None`: a relay is elected from the directory only when the
    /// reachability ladder finds no endpoint (see `crate::relay`). Ignored by
    /// a `relay_capable` node.
    pub relay_worker_endpoint: Option<String>,
    /// Directory base URL; the node appends `/v1/...`.
    pub directory_url: String,
    /// Address to bind; `::` listens on IPv6 and IPv4.
    pub host: String,
    /// Port to bind. When it is taken, the next free one is used unless
    /// `endpoint` was given explicitly.
    pub port: u16,
    /// Region advertised, e.g. `eu-central`.
    pub region: Option<String>,
    /// Identity to register under (recovered across restarts); assigned by
    /// the directory when `None`.
    pub node_id: Option<String>,
    /// Models served; advertised as capabilities and `health_models`.
    pub models: Vec<String>,
    /// Tasks run at once; further tasks wait (interactive) or get 429.
    pub max_concurrent: u32,
    /// Token budget advertised in `limits.tokens_per_min`.
    pub tokens_per_min: u64,
    /// Backend flavour advertised to the directory.
    pub backend: Option<BackendFlavour>,
    /// Serve without registering (a private node reached by URL).
    pub skip_registration: bool,
    /// Largest task body accepted (413 above).
    pub max_body_bytes: usize,
    /// Handler budget when a task sets no `constraints.timeout_ms`.
    pub default_task_timeout: Duration,
    /// How long running tasks may finish after shutdown begins.
    pub shutdown_grace: Duration,
    /// Token for an operator-provisioned identity (sent as `current_node_token`).
    pub node_token: Option<Secret>,
    /// Accept IICP-CX encrypted tasks and advertise a `cx_public_key`
    /// (clients of the public mesh skip nodes without one).
    pub confidentiality: bool,
    /// Who may submit tasks: `Open` (default, as the live mesh runs) or
    /// `Token` (the node's own token or a directory-signed consumer token).
    pub task_auth: super::TaskAuthMode,
    /// Where the node's CX key lives (created with 0600 on first start). `None`:
    /// a key kept in memory for this process only.
    pub cx_key_file: Option<PathBuf>,
    /// Header and body read timeouts and the connection cap of its HTTP server.
    pub server_limits: crate::ServerLimits,
    /// Task ids and nonces remembered for replay protection, per window
    /// (task ids 300 s, nonces 5 min). Ids are at most 128 bytes, so each
    /// window takes at most about 200 bytes per entry. When a window is full
    /// of unexpired ids, new tasks get 503 until the oldest expires.
    pub replay_window_entries: usize,
    /// Most tokens one answer may ask for through a backend: larger
    /// `max_tokens` / `max_completion_tokens` (payload or constraints) are
    /// lowered to it, and a backend that requires `max_tokens` (Anthropic)
    /// gets it when the task sets none. The backend's own
    /// [`BackendOptions::max_tokens`](crate::backends::BackendOptions) applies
    /// too; the lower wins.
    pub max_tokens: u64,
    /// Serve the native transport (`iicp-tcp` frames) on the same port and
    /// advertise it as `transport_endpoint` (`iicp://host:port`, or
    /// `iicpsec://` for an https endpoint). Default true; without the
    /// `iicp-tcp` feature there is no native transport and this is ignored.
    pub native_transport: bool,
    /// Bounds of native sessions: INIT deadline, idle timeout, calls in
    /// flight per connection, largest frame (see [`NativeLimits`](super::NativeLimits)).
    pub native_limits: super::NativeLimits,
    /// How the node finds the endpoint it advertises when `endpoint` is
    /// empty: the reachability ladder (public address, UPnP, IPv6; see
    /// [`crate::nat`]), run at start unless `auto_detect` is off.
    pub reachability: crate::nat::ReachabilityConfig,
    /// Most answers one task may ask for through a backend (`n`, `best_of`
    /// are lowered to it; the backend's own `max_choices` applies too).
    pub max_choices: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            intent: crate::wire::intent::LLM_CHAT_V1.into(),
            relay_capable: false,
            relay_accept_port: DEFAULT_RELAY_ACCEPT_PORT,
            relay_require_bind_ticket: false,
            relay_bind_ticket_public_key: None,
            relay_limits: crate::relay::RelayLimits::default(),
            enable_mesh: false,
            node_hmac_key: None,
            mesh_interval: crate::mesh::DEFAULT_INTERVAL,
            relay_worker_endpoint: None,
            directory_url: DEFAULT_DIRECTORY_URL.into(),
            host: "::".into(),
            port: DEFAULT_PORT,
            region: None,
            node_id: None,
            models: Vec::new(),
            max_concurrent: 4,
            tokens_per_min: 100_000,
            backend: None,
            skip_registration: false,
            max_body_bytes: 4 * 1024 * 1024,
            default_task_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            node_token: None,
            confidentiality: true,
            cx_key_file: None,
            task_auth: super::TaskAuthMode::Open,
            server_limits: crate::ServerLimits::default(),
            replay_window_entries: DEFAULT_REPLAY_WINDOW_ENTRIES,
            max_tokens: crate::backends::DEFAULT_MAX_TOKENS,
            max_choices: crate::backends::DEFAULT_MAX_CHOICES,
            native_transport: true,
            native_limits: super::NativeLimits::default(),
            reachability: crate::nat::ReachabilityConfig::default(),
        }
    }
}

impl NodeConfig {
    /// A node for this machine: binds `127.0.0.1` on a free port and
    /// registers with `directory_url`; everything else as [`Default`].
    pub fn local(directory_url: impl Into<String>) -> Self {
        Self {
            directory_url: directory_url.into(),
            host: "127.0.0.1".into(),
            port: 0,
            ..Self::default()
        }
    }

    /// A builder starting from the defaults (see [`NodeConfigBuilder`]).
    pub fn builder() -> super::NodeConfigBuilder {
        super::NodeConfigBuilder::new(Self::default())
    }

    /// Checks what can be checked without the network: the intent, the
    /// directory URL (unless registration is skipped), the endpoint's form,
    /// the bind address, the node id's form and the numeric limits. An
    /// unreachable directory is not an error here (the node serves and
    /// keeps trying); see `RunningNode::registered_within`.
    pub fn validate(&self) -> crate::Result<()> {
        use crate::IicpError::InvalidConfig;
        crate::wire::IntentUrn::parse(&self.intent)?;
        if !self.skip_registration {
            let url = url::Url::parse(&self.directory_url).map_err(|_| {
                InvalidConfig(format!(
                    "directory_url `{}` is not a URL (e.g. http://127.0.0.1:8020/api)",
                    self.directory_url
                ))
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(InvalidConfig(format!(
                    "directory_url must be http:// or https://, not {}://",
                    url.scheme()
                )));
            }
        }
        if !self.endpoint.is_empty() {
            crate::wire::endpoint::parse_endpoint(&self.endpoint)
                .map_err(|e| InvalidConfig(format!("endpoint: {e}")))?;
        }
        self.host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .map_err(|_| {
                InvalidConfig(format!(
                    "host `{}` is not an IP address (e.g. 127.0.0.1 or ::)",
                    self.host
                ))
            })?;
        if let Some(id) = &self.node_id {
            if !crate::wire::register::is_valid_node_id(id) {
                return Err(InvalidConfig(
                    "node_id: up to 36 characters of [A-Za-z0-9._:-], a letter or digit first"
                        .into(),
                ));
            }
        }
        #[cfg(feature = "iicp-tcp")]
        if let Some(relay) = &self.relay_worker_endpoint {
            crate::relay::worker::RelayTarget::parse_named(relay)
                .map_err(|e| InvalidConfig(format!("relay_worker_endpoint: {e}")))?;
        }
        if self.models.len() > 64 {
            return Err(InvalidConfig(
                "models: a directory takes at most 64 per node".into(),
            ));
        }
        let positive = [
            ("max_concurrent", u64::from(self.max_concurrent)),
            ("max_body_bytes", self.max_body_bytes as u64),
            (
                "default_task_timeout",
                self.default_task_timeout.as_millis() as u64,
            ),
            ("replay_window_entries", self.replay_window_entries as u64),
            ("max_tokens", self.max_tokens),
            ("max_choices", self.max_choices),
            ("mesh_interval", self.mesh_interval.as_millis() as u64),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(InvalidConfig(format!("{name} must be greater than 0")));
        }
        if let Some(key) = &self.relay_bind_ticket_public_key {
            crate::token::DirectoryPublicKey::from_hex(key).map_err(|_| {
                InvalidConfig(
                    "relay_bind_ticket_public_key: 64 hex characters of an Ed25519 key".into(),
                )
            })?;
        }
        self.relay_limits.validate()?;
        self.native_limits.validate()
    }
}

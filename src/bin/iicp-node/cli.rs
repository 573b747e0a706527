//! Command-line interface: every flag has an `IICP_*` variable, so the
//! precedence flag > environment > default holds by construction.

use clap::builder::{BoolishValueParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

/// IICP node: serve an LLM to the IICP mesh, or run a local directory.
#[derive(Debug, Parser)]
#[command(name = "iicp-node", version, about, long_about = None)]
pub struct Cli {
    /// Log output format (logs go to stderr). Filter with RUST_LOG; default
    /// `info` for directory, serve and proxy, `warn` for demo, chat, discover
    /// and doctor.
    #[arg(long, global = true, env = "IICP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// Runtime worker threads. Default: 1 for `serve`, the number of cores
    /// for the other commands. A node's own work per task is tens of
    /// microseconds, so one thread serves thousands of tasks a second, far
    /// beyond what a model server answers; threads that do not hand work to
    /// each other spend less CPU per task (BENCHMARKS.md, ninth round),
    /// which leaves the cores to a model server on the same machine. Raise
    /// it for a relay or a gateway that serves many peers at once.
    #[arg(long, global = true, env = "IICP_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The runtime's worker threads: `--workers`, else 1 for `serve` and
    /// the number of cores for the other commands.
    pub fn worker_threads(&self) -> usize {
        match (self.workers, &self.command) {
            (Some(n), _) => usize::from(n),
            (None, Command::Serve(_)) => 1,
            (None, _) => std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a whole mesh on this machine and watch a chat go through it: a
    /// directory, three nodes, and a consumer (discover → select → submit).
    Demo(DemoArgs),

    /// Run a local IICP directory (register, heartbeat, discover) for a mesh
    /// on this machine or network.
    ///
    /// Runs in LOCAL MODE by default: loopback and private node endpoints are
    /// accepted, so nodes on 127.0.0.1 can register. Pass --public for the
    /// public directory's rule (endpoints must resolve to public addresses).
    Directory(DirectoryArgs),

    /// Serve tasks as a provider node: listen on the IICP port, register with
    /// the directory, heartbeat, and deregister on SIGINT/SIGTERM.
    Serve(Box<ServeArgs>),

    /// Send one chat to the mesh and print the reply (a consumer).
    Chat(ChatArgs),

    /// List the nodes a directory offers for an intent.
    Discover(DiscoverArgs),

    /// Show how reachable a node started here would be: every rung of the
    /// reachability ladder (operator endpoint, public address, UPnP, IPv6,
    /// relay, local) as it is tried now, and the guidance. Registers
    /// nothing; a UPnP mapping it makes to test the router is removed at
    /// once.
    Doctor(DoctorArgs),

    /// Run a local gateway that speaks the OpenAI, Anthropic and Ollama HTTP
    /// APIs and sends every request to the mesh (a consumer: it registers
    /// nothing). Point an existing SDK at it by its base URL:
    /// OpenAI `http://127.0.0.1:9483/v1`, Anthropic and Ollama
    /// `http://127.0.0.1:9483`. Model `auto` means any model on the mesh.
    ///
    /// It listens on loopback only unless --allow-remote is given: whoever
    /// reaches it spends your consumer identity (--node-token) and the
    /// mesh's capacity in your name.
    Proxy(ProxyArgs),
}

/// `iicp-node proxy` options.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address to listen on. Loopback unless --allow-remote.
    #[arg(long, env = "IICP_PROXY_HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on (9483 is the IICP proxy port the other SDKs use).
    #[arg(long, env = "IICP_PROXY_PORT", default_value_t = iicp_client::proxy::config::DEFAULT_PORT)]
    pub port: u16,

    /// Allow a --host that is not a loopback address. Anyone who can reach
    /// the port then sends tasks as you.
    #[arg(long, env = "IICP_PROXY_ALLOW_REMOTE", value_parser = BoolishValueParser::new())]
    pub allow_remote: bool,

    /// Largest request body read, in bytes.
    #[arg(long, env = "IICP_PROXY_MAX_BODY_BYTES", default_value_t = iicp_client::proxy::config::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    #[command(flatten)]
    pub mesh: ConsumerArgs,
}

/// `iicp-node doctor` options (the reachability flags of `serve`).
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The port a node would serve on.
    #[arg(long, env = "IICP_PORT", default_value_t = iicp_client::node::DEFAULT_PORT)]
    pub port: u16,

    /// The address a node would bind.
    #[arg(long, env = "IICP_HOST", default_value = "::")]
    pub host: String,

    #[command(flatten)]
    pub reach: ReachArgs,

    /// The directory a node would register with (the relay of tier 3 is
    /// elected from its relay-capable nodes).
    #[arg(long, env = "IICP_DIRECTORY_URL", default_value = iicp_client::client::DEFAULT_DIRECTORY_URL)]
    pub directory_url: String,

    /// The intent a node would serve (the relay election discovers for it).
    #[arg(
        long,
        env = "IICP_INTENT",
        default_value = "urn:iicp:intent:llm:chat:v1"
    )]
    pub intent: String,

    /// The node id a node would use (the election's tie-break depends on it).
    #[arg(long, env = "IICP_NODE_ID")]
    pub node_id: Option<String>,
}

/// Reachability flags, shared by `serve` and `doctor`.
#[derive(Debug, Args)]
pub struct ReachArgs {
    /// The URL consumers reach this node at, e.g. http://203.0.113.7:9484:
    /// trusted as given (tier 0), nothing is probed. Default: found by the
    /// reachability ladder.
    #[arg(long, env = "IICP_PUBLIC_ENDPOINT")]
    pub public_endpoint: Option<String>,

    /// Run the reachability ladder at start (public address, UPnP, IPv6).
    /// `false`: advertise http://127.0.0.1:PORT unless --public-endpoint.
    #[arg(long, env = "IICP_AUTO_DETECT_NAT", default_value_t = true, action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub auto_detect_nat: bool,

    /// Whether this runs in a container on a bridge network (UPnP is then
    /// skipped: it would map the container host's NAT, not the router).
    #[arg(long, env = "IICP_CONTAINER", value_enum, default_value_t = ContainerArg::Auto)]
    pub container: ContainerArg,

    /// Milliseconds to wait for a UPnP gateway to answer, per LAN interface.
    #[arg(long, env = "IICP_UPNP_TIMEOUT_MS", default_value_t = 3000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub upnp_timeout_ms: u64,

    /// Seconds between checks of a UPnP mapping: it is renewed, and a
    /// changed router address re-registers the node with it.
    #[arg(long, env = "IICP_NAT_RECHECK_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub nat_recheck_secs: u64,

    /// Serve through this relay (host:port of its relay accept port, e.g.
    /// relay.example.net:9485): dial out, bind there, and register the
    /// relay's /v1/relay-for/<node id> endpoint. Without it a relay is
    /// elected from the directory when the ladder finds no endpoint.
    /// Ignored with --relay-capable.
    #[arg(long, env = "IICP_RELAY_WORKER_ENDPOINT", value_name = "HOST:PORT")]
    pub relay_worker_endpoint: Option<String>,
}

impl ReachArgs {
    /// The node's reachability configuration.
    pub fn config(&self) -> iicp_client::nat::ReachabilityConfig {
        iicp_client::nat::ReachabilityConfig {
            auto_detect: self.auto_detect_nat,
            container: self.container.mode(),
            upnp: self.upnp(),
            recheck_interval: std::time::Duration::from_secs(self.nat_recheck_secs),
        }
    }

    /// The UPnP rung's options.
    pub fn upnp(&self) -> iicp_client::nat::UpnpOptions {
        iicp_client::nat::UpnpOptions {
            search_timeout: std::time::Duration::from_millis(self.upnp_timeout_ms),
            ..Default::default()
        }
    }
}

/// `--container` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ContainerArg {
    /// Look for container markers (/.dockerenv, /run/.containerenv, cgroups).
    Auto,
    /// Treat this as a container.
    Yes,
    /// Treat this as the host.
    No,
}

impl ContainerArg {
    /// The library's mode.
    pub fn mode(self) -> iicp_client::nat::ContainerMode {
        match self {
            Self::Auto => iicp_client::nat::ContainerMode::Auto,
            Self::Yes => iicp_client::nat::ContainerMode::Yes,
            Self::No => iicp_client::nat::ContainerMode::No,
        }
    }
}

/// `iicp-node demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The question to ask.
    #[arg(long, default_value = "What is IICP?")]
    pub prompt: String,

    /// Provider nodes to start (1-8).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub nodes: u8,

    /// Backend engine. Default: a local LLM server if one answers on its usual
    /// port (Ollama 11434, llama.cpp 8080, vLLM 8000), else the echo demo.
    #[arg(long, value_enum)]
    pub backend_type: Option<BackendType>,

    /// Backend URL (with --backend-type).
    #[arg(long)]
    pub backend_url: Option<String>,

    /// Model to ask for.
    #[arg(long)]
    pub model: Option<String>,

    /// Keep the mesh running after the chat (Ctrl-C stops it), so another
    /// terminal can use it with `iicp-node chat` and `iicp-node discover`.
    #[arg(long)]
    pub keep_running: bool,

    #[command(flatten)]
    pub server: ServerLimitArgs,
}

/// Where a consumer command finds the mesh.
#[derive(Debug, Args)]
pub struct ConsumerArgs {
    /// Directory to ask.
    #[arg(long, env = "IICP_DIRECTORY_URL", default_value = iicp_client::client::DEFAULT_DIRECTORY_URL)]
    pub directory_url: String,

    /// Allow nodes on loopback and private addresses. On by default when the
    /// directory itself is on a loopback address (a local mesh).
    #[arg(long, env = "IICP_PROXY_ALLOW_LOOPBACK_NODES", value_parser = BoolishValueParser::new())]
    pub allow_private_nodes: bool,

    /// Time budget in milliseconds (max 120000).
    #[arg(long, env = "IICP_TIMEOUT_MS", default_value_t = 60_000)]
    pub timeout_ms: u64,

    /// Preferred region.
    #[arg(long, env = "IICP_REGION")]
    pub region: Option<String>,

    /// Send the prompt in plaintext to nodes that advertise no IICP-CX key.
    /// By default such nodes are skipped; nodes with a key always get an
    /// encrypted payload.
    #[arg(long, env = "IICP_CX_ALLOW_PLAINTEXT", value_parser = BoolishValueParser::new())]
    pub allow_plaintext: bool,

    /// Your node's directory token. With it the client asks the directory
    /// for a consumer token per node, which nodes in `token` task-auth mode
    /// require. Never logged.
    #[arg(long, env = "IICP_NODE_TOKEN", hide_env_values = true)]
    pub node_token: Option<String>,
}

/// `iicp-node chat` options.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The message to send.
    pub prompt: String,

    #[command(flatten)]
    pub mesh: ConsumerArgs,

    /// A system message sent first.
    #[arg(long)]
    pub system: Option<String>,

    /// Model wanted.
    #[arg(long, env = "IICP_MODEL")]
    pub model: Option<String>,

    /// Longest answer in tokens.
    #[arg(long)]
    pub max_tokens: Option<u64>,

    /// Sampling temperature (0-2).
    #[arg(long)]
    pub temperature: Option<f64>,

    /// Print the whole reply as JSON (choices, usage, task_id, node_id).
    #[arg(long)]
    pub json: bool,
}

/// `iicp-node discover` options.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Intent to look up.
    #[arg(default_value = "urn:iicp:intent:llm:chat:v1")]
    pub intent: String,

    #[command(flatten)]
    pub mesh: ConsumerArgs,

    /// Only nodes serving this model.
    #[arg(long)]
    pub model: Option<String>,

    /// At most this many nodes (1-50).
    #[arg(long)]
    pub limit: Option<u32>,

    /// Print the directory's answer as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Backend engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendType {
    /// Any OpenAI-compatible server (Ollama, LM Studio, …).
    #[value(name = "openai_compat")]
    OpenaiCompat,
    /// vLLM's OpenAI server.
    Vllm,
    /// llama.cpp's llama-server.
    Llamacpp,
    /// Anthropic's Messages API.
    Anthropic,
    /// A demo backend that answers every chat with "echo: <last user message>".
    /// Not a model: for trying out a mesh and for tests.
    Echo,
}

impl BackendType {
    /// The library's engine for this type; `None` for the echo demo.
    pub fn engine(self) -> Option<iicp_client::backends::BackendKind> {
        use iicp_client::backends::BackendKind;
        match self {
            Self::OpenaiCompat => Some(BackendKind::OpenaiCompat),
            Self::Vllm => Some(BackendKind::Vllm),
            Self::Llamacpp => Some(BackendKind::Llamacpp),
            Self::Anthropic => Some(BackendKind::Anthropic),
            Self::Echo => None,
        }
    }
}

/// `iicp-node serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port to listen on (HTTP and, later, native transport). When taken, the
    /// next free port is used unless --public-endpoint is given.
    #[arg(long, env = "IICP_PORT", default_value_t = iicp_client::node::DEFAULT_PORT)]
    pub port: u16,

    /// Address to bind; `::` accepts IPv6 and IPv4 clients.
    #[arg(long, env = "IICP_HOST", default_value = "::")]
    pub host: String,

    #[command(flatten)]
    pub reach: ReachArgs,

    /// Backend engine.
    #[arg(long, env = "IICP_BACKEND_TYPE", value_enum, default_value_t = BackendType::OpenaiCompat)]
    pub backend_type: BackendType,

    /// Backend base URL (default per engine, e.g. http://localhost:11434/v1).
    #[arg(long, env = "IICP_BACKEND_URL")]
    pub backend_url: Option<String>,

    /// Backend API key: a Bearer token for OpenAI-style engines, x-api-key for
    /// anthropic. Never logged.
    #[arg(long, env = "IICP_BACKEND_API_KEY", hide_env_values = true)]
    pub backend_api_key: Option<String>,

    /// Model to serve (advertised, and used when a task names none).
    #[arg(long, env = "IICP_MODEL")]
    pub model: Option<String>,

    /// Directory to register with.
    #[arg(long, env = "IICP_DIRECTORY_URL", default_value = iicp_client::client::DEFAULT_DIRECTORY_URL)]
    pub directory_url: String,

    /// Region to advertise, e.g. eu-central.
    #[arg(long, env = "IICP_REGION")]
    pub region: Option<String>,

    /// Intent served.
    #[arg(
        long,
        env = "IICP_INTENT",
        default_value = "urn:iicp:intent:llm:chat:v1"
    )]
    pub intent: String,

    /// Tasks run at once.
    #[arg(long, env = "IICP_MAX_CONCURRENT", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub max_concurrent: u32,

    /// Identity to register under (kept across restarts).
    #[arg(long, env = "IICP_NODE_ID")]
    pub node_id: Option<String>,

    /// Serve without registering with a directory.
    #[arg(long, env = "IICP_SKIP_REGISTRATION", value_parser = BoolishValueParser::new())]
    pub skip_registration: bool,

    /// Serve HTTP only: no native (iicp-tcp) frames on the port, and no
    /// transport_endpoint advertised.
    #[arg(long, env = "IICP_DISABLE_NATIVE_TRANSPORT", value_parser = BoolishValueParser::new())]
    pub disable_native_transport: bool,

    /// Largest task body in bytes (413 above).
    #[arg(long, env = "IICP_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// The node's IICP-CX key file (created with 0600 on first start).
    /// Default: $IICP_HOME/cx_x25519.key, with IICP_HOME defaulting to ~/.iicp.
    #[arg(long, env = "IICP_CX_KEY_FILE")]
    pub cx_key_file: Option<std::path::PathBuf>,

    /// Do not accept encrypted tasks or advertise a CX key. Clients of the
    /// public mesh skip nodes without one.
    #[arg(long, env = "IICP_NO_CX", value_parser = BoolishValueParser::new())]
    pub no_cx: bool,

    /// Who may submit tasks. `open` (default, as the live mesh runs): anyone.
    /// `token`: a task needs this node's token (auth.node_token, or
    /// Authorization: Bearer) or an X-IICP-Consumer-Token signed by the
    /// directory for this node and intent; others get 401 unauthorized. A
    /// valid consumer token is accepted in both modes.
    #[arg(long, env = "IICP_TASK_AUTH", value_enum, default_value_t = TaskAuthArg::Open)]
    pub task_auth: TaskAuthArg,

    /// Token of an operator-provisioned identity, presented when registering
    /// (current_node_token). Never logged.
    #[arg(long, env = "IICP_NODE_TOKEN", hide_env_values = true)]
    pub node_token: Option<String>,

    /// Take part in peer exchange (gossip): serve POST /v1/peers, seed a
    /// peer list from the directory's bootstrap list and exchange it with
    /// one peer every 30 s. Best-effort; the directory stays the source of
    /// truth.
    #[arg(long, env = "IICP_ENABLE_MESH", value_parser = BoolishValueParser::new())]
    pub enable_mesh: bool,

    /// Gossip key (the Python SDK's node_hmac_key): peer exchanges are
    /// signed with it (X-IICP-Signature, HMAC-SHA256) and must arrive
    /// signed with it. Without it exchanges are unsigned and every one is
    /// accepted. Never logged.
    #[arg(long, env = "IICP_NODE_HMAC_KEY", hide_env_values = true)]
    pub node_hmac_key: Option<String>,

    /// Seconds running tasks may take to finish after SIGINT/SIGTERM.
    #[arg(long, env = "IICP_SHUTDOWN_GRACE_S", default_value_t = 10)]
    pub shutdown_grace_s: u64,

    /// Most tokens one answer may ask the backend for: a task's larger
    /// max_tokens / max_completion_tokens (payload or constraints) is
    /// lowered to it, and Anthropic gets it when the task sets none.
    #[arg(long, env = "IICP_MAX_TOKENS", default_value_t = iicp_client::backends::DEFAULT_MAX_TOKENS, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_tokens: u64,

    /// Most answers one task may ask the backend for (n, best_of are
    /// lowered to it).
    #[arg(long, env = "IICP_MAX_CHOICES", default_value_t = iicp_client::backends::DEFAULT_MAX_CHOICES, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_choices: u64,

    /// Task ids and nonces remembered for replay protection (task ids 300 s,
    /// nonces 5 min), per window; about 200 bytes each at most. When a
    /// window is full, new tasks get 503 until its oldest id expires.
    #[arg(long, env = "IICP_REPLAY_WINDOW_ENTRIES", default_value_t = iicp_client::node::DEFAULT_REPLAY_WINDOW_ENTRIES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000_000))]
    pub replay_window_entries: usize,
    #[command(flatten)]
    pub server: ServerLimitArgs,
    #[command(flatten)]
    pub native: crate::native_args::NativeLimitArgs,
    #[command(flatten)]
    pub relay: crate::relay_args::RelayServerArgs,
}

/// `--task-auth` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TaskAuthArg {
    /// Anyone may submit tasks.
    Open,
    /// The node's token or a directory-signed consumer token is required.
    Token,
}

impl TaskAuthArg {
    pub fn mode(self) -> iicp_client::node::TaskAuthMode {
        match self {
            Self::Open => iicp_client::node::TaskAuthMode::Open,
            Self::Token => iicp_client::node::TaskAuthMode::Token,
        }
    }
}

/// `iicp-node directory` options.
#[derive(Debug, Args)]
pub struct DirectoryArgs {
    /// Address to listen on. Port 0 picks a free port.
    #[arg(long, env = "IICP_DIRECTORY_LISTEN", default_value = "127.0.0.1:8020")]
    pub listen: SocketAddr,

    /// Persist registrations (in memory otherwise): a SQLite FILE, or a
    /// PostgreSQL database as postgres://USER:PASSWORD@HOST:PORT/DB (schema
    /// migrated at start; no TLS: sslmode=disable only), which any number of
    /// directory replicas may share. Never logged with its password.
    #[arg(
        long,
        env = "IICP_DIRECTORY_DB",
        value_name = "FILE|URL",
        hide_env_values = true
    )]
    pub db: Option<String>,

    /// Refuse loopback, private and local-name endpoints (422 IICP-E035), as
    /// the public directory does. Without it the directory runs in local mode.
    #[arg(long, env = "IICP_DIRECTORY_PUBLIC", value_parser = BoolishValueParser::new())]
    pub public: bool,

    /// Do not probe GET {endpoint}/iicp/health before accepting a
    /// registration. For conformance tests that register example hosts.
    #[arg(long, env = "IICP_SKIP_LIVENESS_CHECK", value_parser = BoolishValueParser::new())]
    pub skip_liveness_check: bool,

    /// In local mode, refuse loopback/private endpoints that do not answer
    /// GET {endpoint}/iicp/health at registration. Without it they are
    /// accepted and stay out of discover until their first heartbeat.
    #[arg(long, env = "IICP_DIRECTORY_REQUIRE_LOCAL_LIVENESS", value_parser = BoolishValueParser::new())]
    pub require_local_liveness: bool,

    /// Hide nodes in probation from qos=interactive (fewer than 100
    /// completed tasks) and unproven nodes from qos=realtime.
    #[arg(long, env = "IICP_DIRECTORY_ENFORCE_PROBATION", value_parser = BoolishValueParser::new())]
    pub enforce_probation: bool,

    /// Registrations allowed per minute per source address (0: unlimited).
    #[arg(long, env = "IICP_DIRECTORY_REGISTER_RATE_LIMIT", default_value_t = 60)]
    pub register_rate_limit: u32,

    /// Largest request body in bytes (413 above).
    #[arg(long, env = "IICP_DIRECTORY_MAX_BODY_BYTES", default_value_t = iicp_client::directory::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// Heartbeat interval told to nodes, in milliseconds.
    #[arg(long, env = "IICP_DIRECTORY_HEARTBEAT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub heartbeat_ms: u64,

    /// Ed25519 key that signs consumer tokens (POST /v1/consumer-token); its
    /// public half is served at GET /v1/directory-key. Loaded from FILE, or
    /// created there (64 hex characters, mode 0600) when FILE does not exist,
    /// so nodes keep verifying tokens across restarts. Without it a fresh key
    /// is generated in memory for this run only. With a PostgreSQL --db, the
    /// key stored in the database (by the first replica) is used.
    #[arg(long, env = "IICP_DIRECTORY_SIGNING_KEY", value_name = "FILE")]
    pub signing_key: Option<PathBuf>,

    /// A reverse proxy whose forwarding headers (CF-Connecting-IP,
    /// X-Forwarded-For, X-Real-IP) are believed when it is the connecting
    /// peer: an address or CIDR range, repeatable (env: comma-separated).
    /// Without any, headers are ignored and the peer address is the caller.
    #[arg(long = "trusted-proxy", env = "IICP_TRUSTED_PROXIES", value_name = "CIDR",
          value_delimiter = ',', value_parser = iicp_client::directory::parse_cidr)]
    pub trusted_proxies: Vec<iicp_client::directory::IpNet>,

    /// In local mode, also let the liveness probe reach this address or CIDR
    /// range (besides the registrant's own address, and loopback for
    /// registrants on this machine), repeatable (env: comma-separated).
    /// Endpoints elsewhere are refused (422 IICP-E035).
    #[arg(long = "probe-allow", env = "IICP_PROBE_ALLOW", value_name = "CIDR",
          value_delimiter = ',', value_parser = iicp_client::directory::parse_cidr)]
    pub probe_allow: Vec<iicp_client::directory::IpNet>,

    /// Largest POST /v1/register body in bytes (413 above).
    #[arg(long, env = "IICP_DIRECTORY_MAX_REGISTER_BODY_BYTES",
          default_value_t = iicp_client::directory::DEFAULT_MAX_REGISTER_BODY_BYTES)]
    pub max_register_body_bytes: usize,

    /// Most bytes one node may store: its registration plus the fields its
    /// heartbeats update (413 above).
    #[arg(long, env = "IICP_DIRECTORY_MAX_NODE_BYTES",
          default_value_t = iicp_client::directory::DEFAULT_MAX_NODE_BYTES)]
    pub max_node_bytes: usize,

    /// Most nodes held at once; a new node beyond it gets 503 directory_full
    /// (Retry-After: 60) once expired nodes are evicted.
    #[arg(long, env = "IICP_DIRECTORY_MAX_NODES",
          default_value_t = iicp_client::directory::DEFAULT_MAX_NODES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_nodes: usize,

    /// Forget a node (memory and --db) after this many seconds without a
    /// registration or heartbeat.
    #[arg(long, env = "IICP_DIRECTORY_EVICT_AFTER_SECS",
          default_value_t = iicp_client::directory::DEFAULT_EVICT_AFTER.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub evict_after_secs: u64,

    /// How often, in seconds, nodes unseen for longer than the eviction age
    /// are swept out. On a shared PostgreSQL database every replica sweeps,
    /// and each node is deleted by exactly one of them.
    #[arg(long, env = "IICP_DIRECTORY_EVICTION_SWEEP_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub eviction_sweep_secs: u64,
    #[command(flatten)]
    pub server: ServerLimitArgs,
}

/// Connection limits of a server (`serve`, `directory`, `demo`): the same
/// flags and `IICP_*` variables for the node and the directory.
#[derive(Debug, Clone, Copy, Args)]
pub struct ServerLimitArgs {
    /// Milliseconds a client has to send a request's headers, on a new
    /// connection and between requests on a kept-alive one (the idle
    /// timeout); the connection is closed after it.
    #[arg(long, env = "IICP_HEADER_TIMEOUT_MS", default_value_t = iicp_client::DEFAULT_HEADER_READ_TIMEOUT.as_millis() as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_ms: u64,

    /// Milliseconds a client has to send a whole request body once its
    /// headers are in; past it: 408 request_timeout and the connection closes.
    #[arg(long, env = "IICP_BODY_TIMEOUT_MS", default_value_t = iicp_client::DEFAULT_BODY_READ_TIMEOUT.as_millis() as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_ms: u64,

    /// Connections served at once; at the cap, the connection that has
    /// waited longest on its client (idle, slow headers or body, not
    /// reading) is closed to make room, and only when every connection is
    /// busy does a new one get 503 IICP-E005. Keep it below half the
    /// open-file limit (ulimit -n): evicted sockets close a moment later.
    #[arg(long, env = "IICP_MAX_CONNECTIONS", default_value_t = iicp_client::DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..).map(|n| n as usize))]
    pub max_connections: usize,
}

impl ServerLimitArgs {
    /// The library's limits.
    pub fn limits(self) -> iicp_client::ServerLimits {
        let mut limits = iicp_client::ServerLimits::default();
        limits.header_read_timeout = std::time::Duration::from_millis(self.header_timeout_ms);
        limits.body_read_timeout = std::time::Duration::from_millis(self.body_timeout_ms);
        limits.max_connections = self.max_connections;
        limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_limit_flags_reach_the_limits() {
        let cli = Cli::try_parse_from([
            "iicp-node",
            "directory",
            "--header-timeout-ms",
            "1500",
            "--body-timeout-ms",
            "2500",
            "--max-connections",
            "7",
        ])
        .unwrap();
        let Command::Directory(args) = cli.command else {
            panic!("directory subcommand");
        };
        let limits = args.server.limits();
        assert_eq!(limits.header_read_timeout.as_millis(), 1500);
        assert_eq!(limits.body_read_timeout.as_millis(), 2500);
        assert_eq!(limits.max_connections, 7);
        for bad in ["--max-connections=0", "--header-timeout-ms=0"] {
            assert!(
                Cli::try_parse_from(["iicp-node", "serve", bad]).is_err(),
                "{bad}"
            );
        }
    }
}

//! Client configuration: the seed's `ClientConfig` (exactly four public
//! fields), the per-call option types, and `ClientBuilder` for everything
//! else (loopback nodes, retries, selection, discovery cache).

use super::selection::SelectionStrategy;
use crate::secret::Secret;
use crate::wire::Qos;

/// The public IICP directory.
pub const DEFAULT_DIRECTORY_URL: &str = "https://iicp.network/api";
/// Default time budget of one `submit()`/`chat()`, discovery included.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Largest `timeout_ms` allowed (SDK-04).
pub const MAX_TIMEOUT_MS: u64 = 120_000;

/// Checks a time budget against SDK-04: 1..=120 000 ms, else `invalid_config`.
pub(crate) fn check_timeout(what: &str, timeout_ms: u64) -> crate::Result<()> {
    if (1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        Ok(())
    } else {
        Err(crate::IicpError::InvalidConfig(format!(
            "{what} is {timeout_ms} ms but must be within 1..={MAX_TIMEOUT_MS} ms (SDK-04)"
        )))
    }
}

/// Where the client finds nodes and how long it may take.
///
/// ```
/// use iicp_client::ClientConfig;
/// let config = ClientConfig {
///     directory_url : "https://iicp.network/api".into(), // IICP directory
///     timeout_ms    : 30_000,                            // max 120 000 (SDK-04)
///     region        : Some("eu-central".into()),         // prefer nodes in region
///     node_token    : None,                              // optional auth token
/// };
/// assert_eq!(config.timeout_ms, 30_000);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// Directory base URL; the client appends `/v1/...`.
    pub directory_url: String,
    /// Time budget of a whole `submit()` or `chat()` in ms (max 120 000).
    pub timeout_ms: u64,
    /// Preferred region: raises the score of nodes there, never filters.
    pub region: Option<String>,
    /// Your node's directory token, for nodes that require authorisation
    /// (`token` mode). The client shows it to the directory only, which
    /// issues a consumer token scoped to one node and intent for each task
    /// (PROTOCOL.md §1.7); it is never sent to a node. Prints as `***`.
    pub node_token: Option<Secret>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            directory_url: DEFAULT_DIRECTORY_URL.into(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            region: None,
            node_token: None,
        }
    }
}

/// Filters for [`IicpClient::discover`](super::IicpClient::discover).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiscoverOptions {
    /// Preferred region (the config's region applies when `None`).
    pub region: Option<String>,
    /// Only nodes serving this model.
    pub model: Option<String>,
    /// Reputation floor, 0..1.
    pub min_reputation: Option<f64>,
    /// At most this many nodes (1..=50, default 10).
    pub limit: Option<u32>,
}

/// Options of [`IicpClient::chat`](super::IicpClient::chat).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatOptions {
    /// Time budget of this chat in ms, instead of the config's.
    pub timeout_ms: Option<u64>,
    /// Model wanted; also filters discovery.
    pub model: Option<String>,
    /// Sampling temperature, 0..2.
    pub temperature: Option<f64>,
    /// Longest answer in tokens.
    pub max_tokens: Option<u64>,
    /// QoS class; `interactive` when `None`, as the reference clients ask.
    /// When that default finds no node (a young mesh: the directory hides
    /// nodes in probation from `interactive`), the call asks again at
    /// `batch`. A class set here is kept as it is.
    pub qos: Option<Qos>,
    /// Preferred region, instead of the config's.
    pub region: Option<String>,
}

/// Options of [`IicpClient::embed`](super::IicpClient::embed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmbedOptions {
    /// Time budget of this call in ms, instead of the config's.
    pub timeout_ms: Option<u64>,
    /// Embedding model wanted; also filters discovery.
    pub model: Option<String>,
    /// QoS class; `interactive` when `None`, with the probation fallback
    /// to `batch` (see [`IicpClient::chat`](super::IicpClient::chat)).
    pub qos: Option<Qos>,
    /// Preferred region, instead of the config's.
    pub region: Option<String>,
}

/// Settings beyond the four of [`ClientConfig`], set through
/// [`ClientBuilder`] and read back with `IicpClient::options()`. The
/// library reads no environment variable by itself: [`ClientOptions::from_env`]
/// and [`ClientBuilder::with_env`] are the explicit ways to let one in.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Allow nodes on loopback, private and link-local addresses (default
    /// false; `IICP_PROXY_ALLOW_LOOPBACK_NODES` with `with_env`).
    pub allow_private_nodes: bool,
    /// Nodes tried per submit (default 3).
    pub max_candidates: usize,
    /// Attempts on one node for 503, 504 and timeouts (default 3).
    pub attempts_per_node: u32,
    /// First retry delay; doubles per retry, ±20 % jitter (default 200 ms).
    pub retry_base_ms: u64,
    /// Candidate order (default: the directory's; `IICP_ROUTING_STRATEGY`
    /// with `with_env`).
    pub selection: SelectionStrategy,
    /// Reuse discover answers for their `Cache-Control: max-age` (default on).
    pub discovery_cache: bool,
    /// Send the payload in plaintext to nodes that advertise no IICP-CX key
    /// (default false: such nodes are skipped and the payload is always
    /// encrypted; `IICP_CX_ALLOW_PLAINTEXT` with `with_env`).
    pub allow_plaintext: bool,
    /// Largest task answer read from a node (default 8 MiB;
    /// `IICP_MAX_RESPONSE_BYTES` with `with_env`); a larger one is cut off
    /// unread with `response_too_large` and the task moves to the next node.
    pub max_response_bytes: usize,
    /// Submit over the native transport (`iicp-tcp`) to nodes whose
    /// discover entry has an `iicp://` `transport_endpoint`, on pooled,
    /// multiplexed connections, with the consumer token (if any) in CALL
    /// key 11; HTTP when the native connection cannot be made (a CALL the
    /// node never saw), for `iicpsec://` endpoints (no TLS on the native
    /// client), and in builds without the `iicp-tcp` feature. A node's
    /// refusal over native is final as over HTTP. Default false
    /// (docs/ARCHITECTURE.md says why);
    /// `IICP_PREFER_NATIVE` with `with_env`.
    pub prefer_native: bool,
}

/// Default of [`ClientOptions::max_response_bytes`]: 8 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            allow_private_nodes: false,
            max_candidates: 3,
            attempts_per_node: 3,
            retry_base_ms: 200,
            selection: SelectionStrategy::DirectoryOrder,
            discovery_cache: true,
            allow_plaintext: false,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            prefer_native: false,
        }
    }
}

impl ClientOptions {
    /// The defaults, with [`ENV_VARS`] that are set applied over them.
    pub fn from_env() -> Self {
        Self::default().with_env()
    }

    /// These options with each of [`ENV_VARS`] that is set applied over
    /// them; unset or unreadable variables leave a setting as it is.
    pub fn with_env(mut self) -> Self {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_ascii_lowercase())
        };
        let flag = |name: &str| {
            var(name).and_then(|v| match v.as_str() {
                "1" | "true" | "yes" | "on" => Some(true),
                "0" | "false" | "no" | "off" => Some(false),
                _ => None,
            })
        };
        if let Some(on) = flag("IICP_PROXY_ALLOW_LOOPBACK_NODES") {
            self.allow_private_nodes = on;
        }
        if let Some(on) = flag("IICP_PREFER_NATIVE") {
            self.prefer_native = on;
        }
        if let Some(on) = flag("IICP_CX_ALLOW_PLAINTEXT") {
            self.allow_plaintext = on;
        }
        if let Some(strategy) = var("IICP_ROUTING_STRATEGY").and_then(|v| v.parse().ok()) {
            self.selection = strategy;
        }
        if let Some(bytes) = var("IICP_MAX_RESPONSE_BYTES").and_then(|v| v.parse().ok()) {
            self.max_response_bytes = bytes;
        }
        self
    }
}

/// The environment variables [`ClientOptions::with_env`] reads. Two of them
/// weaken a protection (loopback nodes, plaintext), which is why the library
/// reads none of them unless asked.
pub const ENV_VARS: [&str; 5] = [
    "IICP_PROXY_ALLOW_LOOPBACK_NODES",
    "IICP_CX_ALLOW_PLAINTEXT",
    "IICP_ROUTING_STRATEGY",
    "IICP_MAX_RESPONSE_BYTES",
    "IICP_PREFER_NATIVE",
];

/// Builds an [`IicpClient`](super::IicpClient) with non-default options.
///
/// ```
/// use iicp_client::{ClientConfig, IicpClient};
/// let client = IicpClient::builder(ClientConfig {
///     directory_url: "http://127.0.0.1:8020/api".into(),
///     ..Default::default()
/// })
/// .allow_private_nodes(true)
/// .build()
/// .unwrap();
/// # drop(client);
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    pub(super) config: ClientConfig,
    pub(super) options: ClientOptions,
}

impl ClientBuilder {
    /// Allow (or refuse) nodes on loopback and private addresses.
    pub fn allow_private_nodes(mut self, allow: bool) -> Self {
        self.options.allow_private_nodes = allow;
        self
    }

    /// Send payloads in plaintext to nodes without an IICP-CX key (default
    /// false: they are skipped). Nodes that advertise a key always get an
    /// encrypted payload.
    pub fn allow_plaintext(mut self, allow: bool) -> Self {
        self.options.allow_plaintext = allow;
        self
    }

    /// Nodes tried per submit (at least 1).
    pub fn max_candidates(mut self, n: usize) -> Self {
        self.options.max_candidates = n.max(1);
        self
    }

    /// Attempts on one node for 503, 504 and timeouts (at least 1).
    pub fn attempts_per_node(mut self, n: u32) -> Self {
        self.options.attempts_per_node = n.max(1);
        self
    }

    /// First retry delay in ms.
    pub fn retry_base_ms(mut self, ms: u64) -> Self {
        self.options.retry_base_ms = ms;
        self
    }

    /// Candidate order.
    pub fn selection(mut self, strategy: SelectionStrategy) -> Self {
        self.options.selection = strategy;
        self
    }

    /// Reuse discover answers for their `Cache-Control: max-age`.
    pub fn discovery_cache(mut self, on: bool) -> Self {
        self.options.discovery_cache = on;
        self
    }

    /// Submit over the native transport to nodes that advertise an
    /// `iicp://` endpoint, falling back to HTTP when it does not connect
    /// (see [`ClientOptions::prefer_native`]).
    pub fn prefer_native(mut self, on: bool) -> Self {
        self.options.prefer_native = on;
        self
    }

    /// Largest task answer read from a node, in bytes (at least 1 KiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.options.max_response_bytes = bytes.max(1024);
        self
    }

    /// Applies the [`ENV_VARS`] that are set over the options so far: the
    /// explicit way to let an operator's environment configure the client
    /// (`iicp-node chat` and the examples do).
    ///
    /// ```
    /// use iicp_client::{ClientConfig, IicpClient};
    /// // IICP_PROXY_ALLOW_LOOPBACK_NODES=1 in the environment would allow
    /// // loopback nodes here; IicpClient::new would ignore it.
    /// let client = IicpClient::builder(ClientConfig::default()).with_env().build()?;
    /// # drop(client);
    /// # Ok::<(), iicp_client::IicpError>(())
    /// ```
    pub fn with_env(mut self) -> Self {
        self.options = self.options.with_env();
        self
    }

    /// Replaces all options at once.
    pub fn options(mut self, options: ClientOptions) -> Self {
        self.options = options;
        self
    }

    /// Checks the configuration and builds the client.
    pub fn build(self) -> crate::Result<super::IicpClient> {
        super::IicpClient::from_parts(self.config, self.options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The only test in the library that sets these variables (the
    /// environment is shared by every test thread of this binary).
    #[test]
    fn the_environment_is_read_only_when_asked() {
        // SAFETY: no other test of this binary reads or writes these variables.
        unsafe {
            std::env::set_var("IICP_PROXY_ALLOW_LOOPBACK_NODES", "1");
            std::env::set_var("IICP_CX_ALLOW_PLAINTEXT", "yes");
            std::env::set_var("IICP_ROUTING_STRATEGY", "weighted_v1");
            std::env::set_var("IICP_MAX_RESPONSE_BYTES", "4096");
            std::env::set_var("IICP_PREFER_NATIVE", "on");
        }
        let config = ClientConfig {
            directory_url: "http://127.0.0.1:1/api".into(),
            ..Default::default()
        };
        let plain = crate::IicpClient::new(config.clone()).unwrap();
        assert_eq!(plain.options(), &ClientOptions::default());
        let built = crate::IicpClient::builder(config.clone()).build().unwrap();
        assert_eq!(built.options(), &ClientOptions::default());

        let from_env = crate::IicpClient::builder(config.clone())
            .max_candidates(5)
            .with_env()
            .build()
            .unwrap();
        let o = from_env.options();
        assert!(o.allow_private_nodes && o.allow_plaintext);
        assert!(matches!(o.selection, SelectionStrategy::WeightedV1 { .. }));
        assert_eq!(o.max_response_bytes, 4096);
        assert!(o.prefer_native);
        assert_eq!(o.max_candidates, 5, "settings made before with_env stay");

        // SAFETY: as above.
        unsafe { std::env::set_var("IICP_CX_ALLOW_PLAINTEXT", "0") };
        assert!(!ClientOptions::from_env().allow_plaintext);
        unsafe {
            for name in ENV_VARS {
                std::env::remove_var(name);
            }
        }
        assert_eq!(ClientOptions::from_env(), ClientOptions::default());
    }
}

//! The directory's Prometheus metrics, served at `GET /metrics` in the text
//! format 0.0.4. One [`DirectoryMetrics`] per running directory (no
//! process-global registry).
//!
//! Labels come from closed vocabularies only: the route (`register`,
//! `heartbeat`, `deregister`, `discover`) and the status class. Never an
//! intent a client asked for (unbounded), a node id, token or address.
//! The counters are resolved at start; a request costs one atomic increment
//! (and one histogram observation for discover).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Discover latency buckets in seconds (an in-memory ranking: µs to ms).
const DISCOVER_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// The routes counted, as the `route` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Route {
    Register,
    Heartbeat,
    Deregister,
    Discover,
}

impl Route {
    const ALL: [Route; 4] = [
        Self::Register,
        Self::Heartbeat,
        Self::Deregister,
        Self::Discover,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Heartbeat => "heartbeat",
            Self::Deregister => "deregister",
            Self::Discover => "discover",
        }
    }

    /// The counted route of a request (paths under `/v1` or `/api/v1`).
    pub fn of(method: &axum::http::Method, path: &str) -> Option<Self> {
        use axum::http::Method;
        let path = path.strip_prefix("/api").unwrap_or(path);
        match (method, path) {
            (&Method::POST, "/v1/register") => Some(Self::Register),
            (&Method::DELETE, "/v1/register") => Some(Self::Deregister),
            (&Method::POST, "/v1/heartbeat") => Some(Self::Heartbeat),
            (&Method::GET, "/v1/discover") => Some(Self::Discover),
            _ => None,
        }
    }
}

/// The status class, as the `status_class` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Class {
    Ok2xx,
    Client4xx,
    Server5xx,
}

impl Class {
    const ALL: [Class; 3] = [Self::Ok2xx, Self::Client4xx, Self::Server5xx];

    fn of(status: u16) -> Self {
        match status {
            100..=399 => Self::Ok2xx,
            400..=499 => Self::Client4xx,
            _ => Self::Server5xx,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Ok2xx => "2xx",
            Self::Client4xx => "4xx",
            Self::Server5xx => "5xx",
        }
    }
}

use crate::server::metrics::label_value;
label_value!(Route);
label_value!(Class);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: Route,
    status_class: Class,
}

/// A directory's metrics and the registry they are encoded from.
pub(crate) struct DirectoryMetrics {
    registry: Registry,
    /// `requests[route][class]`, in `Route::ALL` × `Class::ALL` order.
    requests: [[Counter; 3]; 4],
    discover_latency: Histogram,
    rate_limited: Counter,
    nodes: Gauge,
    live_nodes: Gauge,
}

impl std::fmt::Debug for DirectoryMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryMetrics").finish_non_exhaustive()
    }
}

impl Default for DirectoryMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("iicp_directory");
        let family = Family::<RequestLabels, Counter>::default();
        let requests = std::array::from_fn(|r| {
            std::array::from_fn(|c| {
                family.get_or_create_owned(&RequestLabels {
                    route: Route::ALL[r],
                    status_class: Class::ALL[c],
                })
            })
        });
        registry.register(
            "requests",
            "Register, heartbeat, deregister and discover requests by status class",
            family,
        );
        let discover_latency = Histogram::new(DISCOVER_BUCKETS);
        registry.register(
            "discover_duration_seconds",
            "Time to answer GET /v1/discover (any status)",
            discover_latency.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "rate_limited",
            "Registrations refused with 429 by the per-address rate limit",
            rate_limited.clone(),
        );
        let nodes = Gauge::default();
        registry.register(
            "registered_nodes",
            "Nodes held (registered and not yet evicted)",
            nodes.clone(),
        );
        let live_nodes = Gauge::default();
        registry.register(
            "live_nodes",
            "Registered nodes that are live now (available, heartbeating within the TTL)",
            live_nodes.clone(),
        );
        Self {
            registry,
            requests,
            discover_latency,
            rate_limited,
            nodes,
            live_nodes,
        }
    }
}

impl DirectoryMetrics {
    /// Counts one answered request of `route`.
    pub fn request(&self, route: Route, status: u16, elapsed: Duration) {
        let r = Route::ALL.iter().position(|&x| x == route).unwrap_or(0);
        let c = Class::ALL
            .iter()
            .position(|&x| x == Class::of(status))
            .unwrap_or(2);
        self.requests[r][c].inc();
        if route == Route::Discover {
            self.discover_latency.observe(elapsed.as_secs_f64());
        }
    }

    /// One registration refused by the rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// The text exposition, with the node gauges set to `(held, live)`.
    pub fn encode(&self, (held, live): (usize, usize)) -> String {
        self.nodes.set(held as i64);
        self.live_nodes.set(live as i64);
        crate::server::metrics::encode(&self.registry, 4 * 1024)
    }
}

//! The gateway's Prometheus metrics, served at `GET /metrics`: requests by
//! dialect, endpoint and outcome, their latency (to the whole answer, or to
//! the end of a stream), and the streams open now.
//!
//! Labels come from closed vocabularies ([`Dialect`], [`Endpoint`],
//! [`Outcome`]); never a model name, payload, token or message.
//! A [`RequestTimer`] is started per request and records once: when it is
//! finished, or as `cancelled` when dropped unfinished (the caller hung up
//! on a stream).

use super::dialect::Dialect;
use crate::server::metrics::{CONTENT_TYPE, encode, label_value};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Instant;

/// Which API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Endpoint {
    /// A chat (OpenAI chat completions, Anthropic messages, Ollama chat).
    Chat,
    /// A text completion (OpenAI completions, Ollama generate).
    Completion,
    /// Embeddings.
    Embedding,
    /// The model list (OpenAI models, Ollama tags).
    Models,
}

impl Endpoint {
    fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Completion => "completion",
            Self::Embedding => "embedding",
            Self::Models => "models",
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Outcome {
    /// Answered (or streamed to its end).
    Success,
    /// Refused before the mesh was asked (a bad request: 4xx).
    Invalid,
    /// The mesh failed it (no node, node errors, timeouts).
    MeshError,
    /// The caller went away before the end.
    Cancelled,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Invalid => "invalid",
            Self::MeshError => "mesh_error",
            Self::Cancelled => "cancelled",
        }
    }
}

label_value!(Dialect);
label_value!(Endpoint);
label_value!(Outcome);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    dialect: Dialect,
    endpoint: Endpoint,
    outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    dialect: Dialect,
    endpoint: Endpoint,
}

/// Latency buckets in seconds, from a cached model list to a long answer.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0,
];

/// The gateway's metrics and their registry.
pub(crate) struct ProxyMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    streams_open: Gauge,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("iicp_proxy");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(|| {
                Histogram::new(BUCKETS)
            });
        let streams_open = Gauge::default();
        registry.register(
            "requests",
            "Requests by API dialect, endpoint and outcome",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to the whole answer, or to the end of a stream",
            latency.clone(),
        );
        registry.register(
            "streams_open",
            "Streamed answers being sent now",
            streams_open.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            streams_open,
        }
    }
}

impl ProxyMetrics {
    /// Starts timing a request.
    pub fn start(&self, dialect: Dialect, endpoint: Endpoint) -> RequestTimer {
        RequestTimer {
            requests: self.requests.clone(),
            latency: self.latency.clone(),
            streams_open: None,
            dialect,
            endpoint,
            started: Instant::now(),
            done: false,
        }
    }

    /// `GET /metrics`.
    pub fn render(&self) -> Response {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            encode(&self.registry, 2048),
        )
            .into_response()
    }

    /// The gauge of open streams, for [`RequestTimer::streaming`].
    pub fn streams_open(&self) -> Gauge {
        self.streams_open.clone()
    }
}

/// Records one request once (see the module docs).
pub(crate) struct RequestTimer {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    streams_open: Option<Gauge>,
    dialect: Dialect,
    endpoint: Endpoint,
    started: Instant,
    done: bool,
}

impl RequestTimer {
    /// From now on the request is a stream being sent: counted in
    /// `streams_open` until it is finished or dropped.
    pub fn streaming(&mut self, open: Gauge) {
        open.inc();
        self.streams_open = Some(open);
    }

    /// Records how the request ended.
    pub fn finish(mut self, outcome: Outcome) {
        self.record(outcome);
    }

    fn record(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        if let Some(open) = self.streams_open.take() {
            open.dec();
        }
        self.requests
            .get_or_create(&RequestLabels {
                dialect: self.dialect,
                endpoint: self.endpoint,
                outcome,
            })
            .inc();
        if outcome != Outcome::Invalid {
            self.latency
                .get_or_create(&RouteLabels {
                    dialect: self.dialect,
                    endpoint: self.endpoint,
                })
                .observe(self.started.elapsed().as_secs_f64());
        }
    }
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        self.record(Outcome::Cancelled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &ProxyMetrics) -> String {
        encode(&m.registry, 1024)
    }

    #[test]
    fn a_timer_records_once_and_a_dropped_one_is_cancelled() {
        let m = ProxyMetrics::default();
        m.start(Dialect::OpenAi, Endpoint::Chat)
            .finish(Outcome::Success);
        drop(m.start(Dialect::Ollama, Endpoint::Chat));
        let mut streamed = m.start(Dialect::Anthropic, Endpoint::Chat);
        streamed.streaming(m.streams_open());
        assert!(text(&m).contains("iicp_proxy_streams_open 1"));
        drop(streamed);
        let t = text(&m);
        assert!(t.contains(
            r#"iicp_proxy_requests_total{dialect="openai",endpoint="chat",outcome="success"} 1"#
        ));
        assert!(t.contains(
            r#"iicp_proxy_requests_total{dialect="ollama",endpoint="chat",outcome="cancelled"} 1"#
        ));
        assert!(t.contains(
            r#"iicp_proxy_requests_total{dialect="anthropic",endpoint="chat",outcome="cancelled"} 1"#
        ));
        assert!(t.contains("iicp_proxy_streams_open 0"));
    }
}

//! Discovery: the discover URL, the call itself, and the per-query cache
//! that honours the directory's `Cache-Control: max-age` (PROTOCOL.md §1.6).

use super::ttl_cache::TtlCache;
use crate::error::{IicpError, Result};
use crate::outbound::exchange;
use crate::wire::discover::clamp_limit;
use crate::wire::{NodeList, Qos};
use reqwest::header::{CACHE_CONTROL, HeaderMap};
use std::sync::Arc;
use std::time::Duration;

/// Most cached queries; the one that expires first goes beyond this.
const CACHE_CAPACITY: usize = 256;

/// A discover query, before it becomes a URL.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct DiscoverParams<'a> {
    pub intent: &'a str,
    pub region: Option<&'a str>,
    pub model: Option<&'a str>,
    pub min_reputation: Option<f64>,
    pub limit: Option<u32>,
    pub qos: Option<Qos>,
}

/// `{base}/v1/discover?...` with every value percent-encoded.
pub(crate) fn discover_url(base: &str, p: &DiscoverParams<'_>) -> Result<reqwest::Url> {
    let mut url = reqwest::Url::parse(&format!("{}/v1/discover", base.trim_end_matches('/')))
        .map_err(|_| {
            IicpError::InvalidConfig(format!("directory_url `{base}` is not a valid URL"))
        })?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("intent", p.intent);
        if let Some(r) = p.region.filter(|r| !r.is_empty()) {
            q.append_pair("region", r);
        }
        if let Some(m) = p.model.filter(|m| !m.is_empty()) {
            q.append_pair("model", m);
        }
        if let Some(r) = p.min_reputation {
            q.append_pair("min_reputation", &r.to_string());
        }
        if let Some(qos) = p.qos {
            q.append_pair("qos", qos.as_str());
        }
        q.append_pair("limit", &clamp_limit(p.limit.map(i64::from)).to_string());
    }
    Ok(url)
}

/// `max-age` of a `Cache-Control` header; `None` when absent, `no-store` or `no-cache`.
pub(crate) fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(CACHE_CONTROL)?.to_str().ok()?;
    let mut age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return None;
        }
        if let Some(v) = lower.strip_prefix("max-age=") {
            age = v
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    age.filter(|a| !a.is_zero())
}

/// Calls discover and returns the list with its cache lifetime. The answer
/// is read up to [`MAX_DIRECTORY_ANSWER_BYTES`](crate::outbound::MAX_DIRECTORY_ANSWER_BYTES),
/// and a directory that lists more nodes than the URL's `limit` (made by
/// [`discover_url`] from `params`) is cut to that many, in its order: a
/// directory cannot make the client hold or try more nodes than it asked for.
pub(crate) async fn fetch(
    http: &reqwest::Client,
    url: reqwest::Url,
    params: &DiscoverParams<'_>,
    traceparent: &str,
    timeout: Duration,
) -> Result<(NodeList, Option<Duration>)> {
    let reply = exchange(
        http.get(url).header("traceparent", traceparent),
        "the directory",
        timeout,
    )
    .await?;
    let mut list: NodeList = reply.json("the directory's discover answer")?;
    let asked = clamp_limit(params.limit.map(i64::from)) as usize;
    if list.nodes.len() > asked {
        tracing::debug!(
            listed = list.nodes.len(),
            asked,
            "the directory listed more nodes than asked for; the rest are ignored"
        );
        list.nodes.truncate(asked);
        list.count = asked;
    }
    let ttl = max_age(&reply.headers);
    Ok((list, ttl))
}

/// Discover answers by query, each until its `max-age` runs out, in the
/// client's one TTL cache type ([`TtlCache`]). `V` is what is kept per
/// answer: the submit path keeps [`Screened`] answers, the gateway's model
/// catalog the bare [`NodeList`].
#[derive(Debug)]
pub(crate) struct DiscoveryCache<V = NodeList> {
    answers: TtlCache<String, Arc<V>>,
}

impl<V> Default for DiscoveryCache<V> {
    fn default() -> Self {
        Self {
            answers: TtlCache::new(CACHE_CAPACITY),
        }
    }
}

impl<V: AsRef<NodeList>> DiscoveryCache<V> {
    /// The cached answer for `key`, if still fresh.
    pub fn get(&self, key: &str) -> Option<Arc<V>> {
        self.answers.get(key)
    }

    /// Keeps `list` under `key` for `ttl`.
    pub fn put(&self, key: String, list: Arc<V>, ttl: Duration) {
        self.answers.put(key, list, ttl);
    }

    /// Drops every cached answer that lists `node_id` (it just failed).
    pub fn forget_node(&self, node_id: &str) {
        self.answers.retain(|v| {
            v.as_ref()
                .as_ref()
                .nodes
                .iter()
                .all(|n| n.node_id != node_id)
        });
    }
}

impl AsRef<NodeList> for NodeList {
    fn as_ref(&self) -> &NodeList {
        self
    }
}

/// A discover answer with the endpoint guard's verdict on each of its
/// nodes, judged once when the answer arrives rather than on every submit
/// that reuses it from the cache (the guard is the client's own and does
/// not change; parsing an endpoint URL costs more than the rest of
/// choosing a node).
#[derive(Debug)]
pub(crate) struct Screened {
    /// The answer as the directory gave it (cut to the limit asked).
    pub list: NodeList,
    /// Per node, in the same order: its `POST /v1/task` URL when the guard
    /// admits its endpoint, else the refusal to report.
    pub verdicts: Vec<Result<reqwest::Url, String>>,
}

impl Screened {
    /// Judges every node of `list` with `judge` (a refusal, or `None`).
    pub fn new(list: NodeList, judge: impl Fn(&str) -> Option<String>) -> Self {
        let verdicts = list
            .nodes
            .iter()
            .map(|n| match judge(&n.endpoint) {
                Some(refusal) => Err(refusal),
                None => task_url(&n.endpoint),
            })
            .collect();
        Self { list, verdicts }
    }
}

/// `{endpoint}/v1/task`, parsed once.
fn task_url(endpoint: &str) -> Result<reqwest::Url, String> {
    reqwest::Url::parse(&format!("{}/v1/task", endpoint.trim_end_matches('/')))
        .map_err(|e| format!("node endpoint refused: `{endpoint}` is not a URL ({e})"))
}

impl AsRef<NodeList> for Screened {
    fn as_ref(&self) -> &NodeList {
        &self.list
    }
}

/// The cache key of a discover query: every parameter that changes the
/// URL [`discover_url`] makes, without building that URL (a cache hit
/// needs no URL at all). The directory URL is the client's own and the
/// same for every key.
pub(crate) fn cache_key(p: &DiscoverParams<'_>) -> String {
    // Each text is written with its length first, so two different queries
    // never share a key whatever their values contain. An empty region or
    // model is no filter, as in the URL. (Written without `fmt`: this runs
    // on every call, hit or miss.)
    let mut numbers = itoa::Buffer::new();
    let mut key = String::with_capacity(p.intent.len() + 48);
    for text in [
        Some(p.intent),
        p.region.filter(|r| !r.is_empty()),
        p.model.filter(|m| !m.is_empty()),
        p.qos.map(Qos::as_str),
    ] {
        let text = text.unwrap_or_default();
        key.push_str(numbers.format(text.len()));
        key.push(':');
        key.push_str(text);
        key.push(';');
    }
    if let Some(r) = p.min_reputation {
        use std::fmt::Write;
        let _ = write!(key, "r{r};");
    }
    key.push('l');
    key.push_str(numbers.format(clamp_limit(p.limit.map(i64::from))));
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    /// Two queries share a cache key exactly when they share a URL.
    #[test]
    fn cache_keys_separate_what_urls_separate() {
        let chat = "urn:iicp:intent:llm:chat:v1";
        let queries = [
            DiscoverParams {
                intent: chat,
                ..Default::default()
            },
            DiscoverParams {
                intent: chat,
                region: Some(""),
                model: Some(""),
                ..Default::default()
            },
            DiscoverParams {
                intent: chat,
                region: Some("eu"),
                ..Default::default()
            },
            DiscoverParams {
                intent: chat,
                model: Some("eu"),
                ..Default::default()
            },
            DiscoverParams {
                intent: chat,
                region: Some("a;1:b"),
                ..Default::default()
            },
            DiscoverParams {
                intent: chat,
                region: Some("a"),
                model: Some("b"),
                ..Default::default()
            },
            DiscoverParams {
                intent: chat,
                qos: Some(Qos::Batch),
                ..Default::default()
            },
            DiscoverParams {
                intent: chat,
                limit: Some(10),
                ..Default::default()
            },
            DiscoverParams {
                intent: chat,
                limit: Some(500),
                ..Default::default()
            },
            DiscoverParams {
                intent: chat,
                limit: Some(50),
                ..Default::default()
            },
            DiscoverParams {
                intent: chat,
                min_reputation: Some(0.5),
                ..Default::default()
            },
            DiscoverParams {
                intent: "urn:iicp:intent:llm:embedding:v1",
                ..Default::default()
            },
        ];
        for a in &queries {
            for b in &queries {
                let same_url = discover_url("http://d:1", a).unwrap()
                    == discover_url("http://d:1", b).unwrap();
                assert_eq!(cache_key(a) == cache_key(b), same_url, "{a:?} / {b:?}");
            }
        }
    }

    #[test]
    fn url_is_percent_encoded_and_limit_clamped() {
        let url = discover_url(
            "https://dir.example.net/api/",
            &DiscoverParams {
                intent: "urn:iicp:intent:llm:chat:v1",
                region: Some("eu central&x=1"),
                model: Some("phi3:mini"),
                min_reputation: Some(0.7),
                limit: Some(500),
                qos: Some(Qos::BestEffort),
            },
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://dir.example.net/api/v1/discover?intent=urn%3Aiicp%3Aintent%3Allm%3Achat%3Av1\
             &region=eu+central%26x%3D1&model=phi3%3Amini&min_reputation=0.7&qos=best-effort&limit=50"
        );
        let url = discover_url(
            "http://d:1/api",
            &DiscoverParams {
                intent: "i",
                ..Default::default()
            },
        )
        .unwrap();
        assert!(url.as_str().ends_with("&limit=10"));
        assert!(discover_url("not a url", &DiscoverParams::default()).is_err());
    }

    #[test]
    fn max_age_parsing() {
        let h = |v: &'static str| {
            let mut m = HeaderMap::new();
            m.insert(CACHE_CONTROL, HeaderValue::from_static(v));
            m
        };
        assert_eq!(
            max_age(&h(
                "public, max-age=5, s-maxage=10, stale-while-revalidate=5"
            )),
            Some(Duration::from_secs(5))
        );
        assert_eq!(max_age(&h("no-store, max-age=5")), None);
        assert_eq!(max_age(&h("max-age=0")), None);
        assert_eq!(max_age(&HeaderMap::new()), None);
    }

    #[test]
    fn cache_expires_and_forgets_failed_nodes() {
        let cache = DiscoveryCache::default();
        let list: NodeList = serde_json::from_value(serde_json::json!({"nodes": [
            {"node_id": "n1", "endpoint": "https://a.example.net", "score": 0.5, "available": true}
        ], "count": 1}))
        .unwrap();
        cache.put("k".into(), Arc::new(list.clone()), Duration::from_secs(60));
        cache.put("gone".into(), Arc::new(list.clone()), Duration::ZERO);
        assert!(cache.get("k").is_some());
        assert!(cache.get("gone").is_none());
        cache.forget_node("other");
        assert!(cache.get("k").is_some());
        cache.forget_node("n1");
        assert!(cache.get("k").is_none());
    }
}

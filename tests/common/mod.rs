//! Shared pieces of the integration tests: a directory on a free loopback
//! port, a plain HTTP client, a minimal node that answers its health probe,
//! and the node helpers (`node`: in-process nodes and the transports tasks
//! go over; `native`: a task over the native transport; `node_bin`: the
//! `iicp-node` binary; `python`: the Python SDK side of the interop tests;
//! `fake_http`: scripted peer processes to kill: backend, failing directory;
//! `mounts`: a program on a read-only or full file system).
#![allow(dead_code)]

pub mod fake_http;
pub mod llama;
pub mod logs;
pub mod mounts;
#[cfg(feature = "iicp-tcp")]
pub mod native;
pub mod netlab;
pub mod node;
pub mod node_bin;
pub mod postgres;
pub mod proxy;
pub mod python;
pub mod raw_http;
#[cfg(feature = "iicp-tcp")]
pub mod relay;
pub mod test_node;
pub mod watch;

use axum::Router;
use axum::routing::get;
use iicp_client::directory::{Directory, DirectoryConfig, RunningDirectory};
use serde_json::{Value, json};
use std::net::SocketAddr;

pub const CHAT: &str = "urn:iicp:intent:llm:chat:v1";

/// The last challenge each node token got in a PONG (see `Harness::heartbeat`).
static CHALLENGES: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, String>>,
> = std::sync::LazyLock::new(Default::default);

/// The challenge of the last PONG sent to the holder of `node_token`.
pub fn last_challenge(node_token: &str) -> Option<String> {
    CHALLENGES.lock().unwrap().get(node_token).cloned()
}

/// A running directory and a client for it.
pub struct Harness {
    pub dir: RunningDirectory,
    pub http: reqwest::Client,
    pub base: String,
}

impl Harness {
    pub async fn start(config: DirectoryConfig) -> Self {
        let dir = Directory::start(config, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("directory starts");
        let base = dir.url();
        Self {
            dir,
            http: reqwest::Client::new(),
            base,
        }
    }

    /// A directory that does not probe endpoints (registrations of fake hosts).
    pub async fn without_probe() -> Self {
        Self::start(DirectoryConfig {
            skip_liveness_check: true,
            ..DirectoryConfig::default()
        })
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.expect("request sent")).await
    }

    pub async fn delete(&self, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.delete(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        read(
            self.http
                .get(self.url(path))
                .send()
                .await
                .expect("request sent"),
        )
        .await
    }

    /// Registers and returns the ACK (asserting 201).
    pub async fn register(&self, body: &Value) -> Value {
        let (status, ack) = self.post("/v1/register", body, None).await;
        assert_eq!(status, 201, "register failed: {ack}");
        ack
    }

    /// Sends a heartbeat as a well-behaved node does: it answers the
    /// challenge of this node's last PONG (remembered across harnesses, so a
    /// restarted directory with `--db` is answered too) unless `extra` sets
    /// `challenge_response` itself.
    pub async fn heartbeat(&self, ack: &Value, extra: Value) -> (u16, Value) {
        let token = ack["node_token"].as_str().unwrap_or_default().to_owned();
        let mut body = json!({"node_id": ack["node_id"]});
        if let (Some(challenge), Some(key)) =
            (last_challenge(&token), ack["node_hmac_key"].as_str())
        {
            body["challenge_response"] = json!(iicp_client::wire::heartbeat::challenge_response(
                &iicp_client::Secret::new(key),
                &challenge
            ));
        }
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        let (status, pong) = self.post("/v1/heartbeat", &body, Some(&token)).await;
        if let Some(challenge) = pong["challenge"].as_str() {
            CHALLENGES
                .lock()
                .unwrap()
                .insert(token, challenge.to_owned());
        }
        (status, pong)
    }

    /// Node ids returned by discover for a query string.
    pub async fn discover_ids(&self, query: &str) -> Vec<String> {
        let (status, body) = self.get(&format!("/v1/discover?{query}")).await;
        assert_eq!(status, 200, "{body}");
        body["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["node_id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Waits (up to 60 s, then panics) until discover lists a node for
    /// `intent`: a node process that says it serves may still be
    /// registering (its first attempt can fail and back off on a busy
    /// machine).
    pub async fn wait_listed(&self, intent: &str) {
        for _ in 0..600 {
            if !self
                .discover_ids(&format!("intent={intent}"))
                .await
                .is_empty()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("no node registered for {intent} within 60 s");
    }
}

pub async fn read(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body read");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {bytes:?}"));
    (status, body)
}

/// `GET base+path`, the answer read as JSON (panics otherwise).
pub async fn get_at(base: &str, path: &str) -> Value {
    reqwest::get(format!("{base}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `POST base+path` with a JSON body and an optional bearer token: the
/// status and the JSON answer ([`read`]).
pub async fn post_at(base: &str, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    read(req.send().await.unwrap()).await
}

/// A registration body for `endpoint` serving the chat intent with `models`.
pub fn registration(endpoint: &str, models: &[&str]) -> Value {
    json!({
        "endpoint": endpoint,
        "region": "eu-central",
        "capabilities": [{"intent": CHAT, "models": models, "max_tokens": 4096}],
        "limits": {"max_concurrent": 4, "tokens_per_min": 1000},
    })
}

/// `registration` advertising `key` as the node's IICP-CX key.
pub fn registration_cx(endpoint: &str, models: &[&str], key: &iicp_client::cx::CxKeyPair) -> Value {
    let mut body = registration(endpoint, models);
    body["cx_public_key"] = serde_json::to_value(key.advertised()).unwrap();
    body
}

/// A node stand-in that only answers `GET /iicp/health`, for liveness probes.
pub async fn health_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    serve(Router::new().route(
        "/iicp/health",
        get(|| async { axum::Json(json!({"status": "ok"})) }),
    ))
    .await
}

/// Serves `app` on a free loopback port (a scripted peer: a hostile
/// directory, a stand-in node).
pub async fn serve(app: Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, task)
}

/// A loopback server that answers 200 `{}` to everything and records each
/// request's method and path with its query (`GET /a?b=c`).
pub async fn recording_server() -> (
    SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    tokio::task::JoinHandle<()>,
) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = Router::new().fallback(move |req: axum::extract::Request| {
        let log = log.clone();
        async move {
            let target = req
                .uri()
                .path_and_query()
                .map_or("", |p| p.as_str())
                .to_owned();
            log.lock()
                .unwrap()
                .push(format!("{} {target}", req.method()));
            axum::Json(json!({}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, seen, task)
}

/// A loopback address where nothing listens.
pub async fn dead_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

//! Shared pieces of the integration tests: a directory on a free loopback
//! port, a plain HTTP client, and a minimal node that answers its health probe.
#![allow(dead_code)]

pub mod logs;
pub mod test_node;

use axum::Router;
use axum::routing::get;
use iicp_client::directory::{Directory, DirectoryConfig, RunningDirectory};
use serde_json::{Value, json};
use std::net::SocketAddr;

pub const CHAT: &str = "urn:iicp:intent:llm:chat:v1";

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

    pub async fn heartbeat(&self, ack: &Value, extra: Value) -> (u16, Value) {
        let mut body = json!({"node_id": ack["node_id"]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        self.post("/v1/heartbeat", &body, ack["node_token"].as_str())
            .await
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
}

pub async fn read(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body read");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {bytes:?}"));
    (status, body)
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
    let app = Router::new().route(
        "/iicp/health",
        get(|| async { axum::Json(json!({"status": "ok"})) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, task)
}

/// A loopback address where nothing listens.
pub async fn dead_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

//! Small HTTP stand-ins for provider nodes (until the real node lands) and a
//! recording proxy for the directory. Each answers `POST /v1/task` from a
//! script and records what it received.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use iicp_client::cx::{self, CxKeyPair};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200 success with a chat completion echoing the last user message.
    Echo,
    /// This status and JSON body, with an optional `Retry-After` (seconds).
    Status(u16, Value, Option<u64>),
    /// Never answer.
    Hang,
    /// Like `Echo`, but the answer stays plaintext even when the request
    /// was sealed and asked for a sealed answer (a misbehaving node).
    EchoPlain,
    /// Like `Echo`, with one byte of the sealed answer flipped.
    EchoTampered,
}

/// What a node saw in one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub traceparent: Option<String>,
    pub authorization: Option<String>,
    pub consumer_token: Option<String>,
    pub body: Value,
}

#[derive(Clone)]
struct NodeState {
    script: Arc<Vec<Reply>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    cx: Option<CxKeyPair>,
}

/// A running scripted node.
pub struct TestNode {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestNode {
    /// Starts a node answering request *n* with `script[min(n, len-1)]`.
    pub async fn start(script: Vec<Reply>) -> Self {
        Self::start_with(script, None).await
    }

    /// A node that opens sealed requests with `key` and seals its answers
    /// when asked (PROTOCOL.md §2.5); register it with `key.advertised()`.
    pub async fn start_cx(script: Vec<Reply>, key: CxKeyPair) -> Self {
        Self::start_with(script, Some(key)).await
    }

    async fn start_with(script: Vec<Reply>, cx: Option<CxKeyPair>) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = NodeState {
            script: Arc::new(script),
            seen: seen.clone(),
            cx,
        };
        let app = Router::new()
            .route("/v1/task", post(task))
            .route(
                "/iicp/health",
                get(|| async { axum::Json(json!({"status": "ok"})) }),
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, seen, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// The chat completion an `Echo` node answers with.
pub fn echo_completion(text: &str) -> Value {
    json!({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1, "model": "echo",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    })
}

async fn task(State(st): State<NodeState>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let n = {
        let mut seen = st.seen.lock().unwrap();
        seen.push(Seen {
            traceparent: header("traceparent"),
            authorization: header("authorization"),
            consumer_token: header("x-iicp-consumer-token"),
            body: body.clone(),
        });
        seen.len() - 1
    };
    let reply = st.script[n.min(st.script.len() - 1)].clone();
    match reply {
        Reply::Echo | Reply::EchoPlain | Reply::EchoTampered => {
            let task_id = body["task_id"].as_str().unwrap_or_default().to_owned();
            let (payload, shared) = match (&st.cx, body.get("iicp_conf")) {
                (Some(key), Some(conf)) => {
                    let conf: cx::IicpConf = serde_json::from_value(conf.clone()).unwrap();
                    let intent = body["intent"].as_str().unwrap_or_default();
                    let (plain, ss) = key.open_request(&conf, &task_id, intent).unwrap();
                    (serde_json::from_slice(&plain).unwrap(), Some(ss))
                }
                _ => (body["payload"].clone(), None),
            };
            let last = payload["messages"]
                .as_array()
                .and_then(|m| m.last())
                .and_then(|m| m["content"].as_str())
                .unwrap_or("")
                .to_owned();
            let envelope = json!({
                "task_id": task_id, "status": "success",
                "result": echo_completion(&format!("echo: {last}")), "generated_by_ai": true
            });
            let seal =
                body["cx_response_encryption"] == "required" && !matches!(reply, Reply::EchoPlain);
            match shared.filter(|_| seal) {
                None => axum::Json(envelope).into_response(),
                Some(ss) => {
                    let plain = serde_json::to_vec(&envelope).unwrap();
                    let mut sealed = cx::seal_response(&ss, &task_id, &plain);
                    if matches!(reply, Reply::EchoTampered) {
                        let mut ct = B64.decode(&sealed.encrypted_body).unwrap();
                        ct[0] ^= 1;
                        sealed.encrypted_body = B64.encode(ct);
                    }
                    axum::Json(json!({
                        "task_id": task_id, "status": "encrypted",
                        "iicp_conf_resp": sealed, "generated_by_ai": true
                    }))
                    .into_response()
                }
            }
        }
        Reply::Status(code, value, retry_after) => {
            let mut resp = (StatusCode::from_u16(code).unwrap(), axum::Json(value)).into_response();
            if let Some(s) = retry_after {
                resp.headers_mut().insert("retry-after", s.into());
            }
            resp
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

/// One request that passed through the proxy.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub traceparent: Option<String>,
    pub request: Value,
    pub status: u16,
    pub response: Value,
}

type ExchangeLog = Arc<Mutex<Vec<Exchange>>>;

/// A proxy in front of the directory that records every exchange (method,
/// path, traceparent, bodies, status), then forwards it.
pub struct RecordingProxy {
    pub url: String,
    log: ExchangeLog,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    log: ExchangeLog,
}

impl RecordingProxy {
    /// Proxies to `upstream_base` (e.g. `http://127.0.0.1:PORT`, no `/api`).
    pub async fn start(upstream_base: &str) -> Self {
        let log = Arc::new(Mutex::new(Vec::new()));
        let state = ProxyState {
            upstream: upstream_base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            log: log.clone(),
        };
        let app = Router::new()
            .route("/{*path}", any(forward))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url: format!("http://{addr}/api"),
            log,
        }
    }

    /// Every exchange so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().unwrap().clone()
    }

    /// `(path?query, traceparent)` of every request so far.
    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        self.exchanges()
            .into_iter()
            .map(|e| (e.path, e.traceparent))
            .collect()
    }

    /// Exchanges whose path contains `fragment`.
    pub fn to(&self, fragment: &str) -> Vec<Exchange> {
        self.exchanges()
            .into_iter()
            .filter(|e| e.path.contains(fragment))
            .collect()
    }

    pub fn discover_count(&self) -> usize {
        self.to("/v1/discover").len()
    }
}

async fn forward(
    State(st): State<ProxyState>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let trace = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut req = st
        .http
        .request(method.clone(), format!("{}{path}", st.upstream))
        .body(body.clone());
    for name in ["authorization", "content-type", "traceparent"] {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v.clone());
        }
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let cache = resp.headers().get("cache-control").cloned();
    let bytes = resp.bytes().await.unwrap();
    st.log.lock().unwrap().push(Exchange {
        method: method.to_string(),
        path,
        traceparent: trace,
        request: serde_json::from_slice(&body).unwrap_or(Value::Null),
        status: status.as_u16(),
        response: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    });
    let mut out = (status, bytes).into_response();
    if let Some(c) = cache {
        out.headers_mut().insert("cache-control", c);
    }
    out.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    out
}

//! Node helpers the node suites share: an in-process node with a handler,
//! a task POSTed over HTTP, and [`Transport`], the way a table-driven suite
//! sends each of its cases over every transport a node serves.
//!
//! Adding a transport is one variant in [`Transport`], its entry in
//! [`Transport::ALL`] and one arm in [`Transport::send`]: every suite that
//! loops over `Transport::ALL` then runs its cases over it too.

use iicp_client::{IicpNode, NodeConfig, RunningNode, TaskHandler};
use serde_json::Value;
use std::net::SocketAddr;

/// A configuration for a node on loopback (`127.0.0.1`, a free port) that
/// does not register, serving model `m`.
pub fn local_config() -> NodeConfig {
    NodeConfig {
        skip_registration: true,
        models: vec!["m".into()],
        ..NodeConfig::local("http://127.0.0.1:9/api")
    }
}

/// Starts `handler` in-process with `config`, on `127.0.0.1` and a free
/// port whatever `config` says (panics when the node does not start).
pub async fn start_node<H: TaskHandler>(config: NodeConfig, handler: H) -> RunningNode {
    IicpNode::new(NodeConfig {
        host: "127.0.0.1".into(),
        port: 0,
        ..config
    })
    .start(handler)
    .await
    .expect("the node starts")
}

/// An HTTP answer of a node: status, headers, body as JSON and as text.
#[derive(Debug)]
pub struct Posted {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

/// POSTs `body` to `{endpoint}/v1/task` as JSON with `headers`; every
/// answer of a node must be JSON (panics otherwise).
pub async fn post_task(endpoint: &str, body: &Value, headers: &[(&str, &str)]) -> Posted {
    post_raw(
        endpoint,
        serde_json::to_vec(body).unwrap(),
        "application/json",
        headers,
    )
    .await
}

/// POSTs `bytes` with this `Content-Type` to `{endpoint}/v1/task`.
pub async fn post_raw(
    endpoint: &str,
    bytes: Vec<u8>,
    content_type: &str,
    headers: &[(&str, &str)],
) -> Posted {
    let mut request = reqwest::Client::new()
        .post(format!("{endpoint}/v1/task"))
        .header("content-type", content_type)
        .body(bytes);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the request is sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("the answer is read");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}: the answer is not JSON: {text:?}"));
    Posted {
        status,
        headers,
        body,
        text,
    }
}

/// What a case sends as the task.
#[derive(Debug, Clone)]
pub enum Body {
    /// A task as JSON (the common case).
    Json(Value),
    /// Raw bytes, for malformed input; `content_type` is what HTTP sends
    /// (a transport without content types ignores it).
    Raw {
        bytes: Vec<u8>,
        content_type: &'static str,
    },
}

impl From<Value> for Body {
    fn from(v: Value) -> Self {
        Self::Json(v)
    }
}

impl From<&Value> for Body {
    fn from(v: &Value) -> Self {
        Self::Json(v.clone())
    }
}

/// A node's answer to one task, whatever carried it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// `error.code` of a refusal or of an error envelope, when there is one.
    pub code: Option<String>,
    /// The answer in the JSON shape of the HTTP answer: an envelope
    /// (`status`, `result`, `error{code,message}`, `metrics`, …) or a
    /// refusal `{"error":{"code","message",…}}`.
    pub body: Value,
    /// The answer as it came off the wire, as text (to check that nothing
    /// a peer sent is echoed).
    pub text: String,
    /// When to retry, in seconds (HTTP: the `Retry-After` header).
    pub retry_after_s: Option<u64>,
}

impl Reply {
    /// `(status, code)`, what most cases check.
    pub fn status_code(&self) -> (u16, Option<&str>) {
        (self.status, self.code.as_deref())
    }
}

/// A way of sending a task to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `POST /v1/task` with the task as JSON; credentials and trace
    /// context as headers.
    Http,
}

impl Transport {
    /// Every transport a node serves; the suites loop over it.
    pub const ALL: [Transport; 1] = [Transport::Http];

    /// Whether a Content-Type goes with the task (415 for a wrong one).
    pub fn has_content_type(self) -> bool {
        match self {
            Self::Http => true,
        }
    }

    /// Sends `task` to the node at `addr` with `headers`, named as HTTP
    /// names them (`authorization: Bearer …`, `x-iicp-consumer-token`,
    /// `traceparent`); another transport carries each in its own field.
    pub async fn send(
        self,
        addr: SocketAddr,
        task: impl Into<Body>,
        headers: &[(&str, &str)],
    ) -> Reply {
        match self {
            Self::Http => {
                let endpoint = format!("http://{addr}");
                let posted = match task.into() {
                    Body::Json(v) => post_task(&endpoint, &v, headers).await,
                    Body::Raw {
                        bytes,
                        content_type,
                    } => post_raw(&endpoint, bytes, content_type, headers).await,
                };
                let retry_after_s = posted
                    .headers
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().parse().expect("Retry-After in seconds"));
                Reply {
                    status: posted.status,
                    code: posted.body["error"]["code"].as_str().map(str::to_owned),
                    body: posted.body,
                    text: posted.text,
                    retry_after_s,
                }
            }
        }
    }
}

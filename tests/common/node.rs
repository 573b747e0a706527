//! Node helpers the node suites share: an in-process node with a handler,
//! a task POSTed over HTTP, and [`Transport`], the way a table-driven suite
//! sends each of its cases over every transport a node serves.
//!
//! Adding a transport is one variant in [`Transport`], its entry in
//! [`Transport::ALL`] and one arm in [`Transport::send`]: every suite that
//! loops over `Transport::ALL` then runs its cases over it too. What a
//! transport cannot carry is said by a method (`has_content_type`,
//! `carries_task_id`, …), and a case that needs it checks the method: no
//! case is dropped silently.

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
    /// The HTTP status, or a buffered native answer's (200, or key 100);
    /// `None` where the transport carries none (a lifecycle step, a CLOSE).
    pub status: Option<u16>,
    /// `error.code` of a refusal or of an error envelope, when there is one
    /// (native: the structured error, key 6's code).
    pub code: Option<String>,
    /// The answer in the JSON shape of the HTTP answer, with what the
    /// transport carries: an envelope (`status`, `result`,
    /// `error{code,message}`, `metrics`, …) or a refusal
    /// `{"error":{"code","message",…}}`.
    pub body: Value,
    /// The answer as it came off the wire, as text (to check that nothing
    /// a peer sent is echoed).
    pub text: String,
    /// When to retry, in seconds (HTTP: the `Retry-After` header).
    pub retry_after_s: Option<u64>,
    /// A lifecycle step's key 4 (`success`, `error`, `timeout`), which
    /// stands for the status there.
    pub outcome: Option<String>,
    /// The CLOSE reason when the node closed the connection instead of
    /// answering (native only).
    pub closed: Option<String>,
}

impl Reply {
    /// Asserts that this is the answer `status` with `code` (`None`: no
    /// error code), as far as the transport tells: the status itself where
    /// it carries one, else the outcome a lifecycle step names for it
    /// (`success` for 2xx, `timeout` for 504, `error` otherwise); the code
    /// always. `what` names the case in the failure message.
    #[track_caller]
    pub fn assert_is(&self, status: u16, code: Option<&str>, what: impl std::fmt::Display) {
        let shown: String = self.text.chars().take(300).collect();
        match (self.status, &self.outcome) {
            (Some(got), _) => assert_eq!(
                (got, self.code.as_deref()),
                (status, code),
                "{what}: {shown}"
            ),
            (None, Some(outcome)) => {
                let expected = match status {
                    200..=299 => "success",
                    504 => "timeout",
                    _ => "error",
                };
                assert_eq!(
                    (outcome.as_str(), self.code.as_deref()),
                    (expected, code),
                    "{what} (status {status}): {shown}"
                );
            }
            (None, None) => panic!(
                "{what}: no answer (closed: {:?}), expected {status} {code:?}",
                self.closed
            ),
        }
    }

    /// Asserts a success (200, no error code).
    #[track_caller]
    pub fn assert_ok(&self, what: impl std::fmt::Display) {
        self.assert_is(200, None, what);
    }
}

/// A way of sending a task to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `POST /v1/task` with the task as JSON; credentials and trace
    /// context as headers.
    Http,
    /// A native CALL without key 24, answered in the buffered layout:
    /// `{2, 15, 5 result}` or `{100 status, 101 message, 6 {1 code,
    /// 2 message}}` (see `common::native` for the mapping of each field).
    #[cfg(feature = "iicp-tcp")]
    NativeBuffered,
    /// A native CALL with key 24 (the task id), answered with its final
    /// lifecycle step: `completed` or `failed`/`timed_out` with key 4
    /// (`success`/`error`/`timeout`) and `6 {1 code, 2 message}`.
    #[cfg(feature = "iicp-tcp")]
    NativeLifecycle,
}

impl Transport {
    /// Every transport a node serves; the suites loop over it.
    pub const ALL: &'static [Transport] = &[
        Transport::Http,
        #[cfg(feature = "iicp-tcp")]
        Transport::NativeBuffered,
        #[cfg(feature = "iicp-tcp")]
        Transport::NativeLifecycle,
    ];

    /// Whether a Content-Type goes with the task (415 for a wrong one).
    pub fn has_content_type(self) -> bool {
        matches!(self, Self::Http)
    }

    /// Whether the task's `task_id` travels (and comes back in the answer).
    /// A buffered native CALL has no key for it (key 24 asks for the
    /// lifecycle), so the node assigns one.
    pub fn carries_task_id(self) -> bool {
        !self.is_native_buffered()
    }

    /// Whether the answer carries the task's metrics (`latency_ms`,
    /// `tokens_used`): a lifecycle step does (keys 8 and 7), a buffered
    /// native answer does not.
    pub fn carries_metrics(self) -> bool {
        !self.is_native_buffered()
    }

    /// Whether the answer carries the details of the HTTP answer beyond
    /// status, code, message and result: `model_used`, `generated_by_ai`,
    /// an error envelope's `status`, a refusal's extra fields
    /// (`retry_after_ms`, `qos_class`, `reason`) and `Retry-After`. No
    /// native layout has a place for them (PROTOCOL.md §7.1).
    pub fn carries_details(self) -> bool {
        matches!(self, Self::Http)
    }

    /// Whether a task over the size limit gets an answer (HTTP: 413
    /// `payload_too_large`). Over native the frame limit is checked before
    /// the frame is read, so the node sends CLOSE `frame_too_large`.
    pub fn answers_oversize_tasks(self) -> bool {
        matches!(self, Self::Http)
    }

    fn is_native_buffered(self) -> bool {
        #[cfg(feature = "iicp-tcp")]
        if self == Self::NativeBuffered {
            return true;
        }
        false
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
                    status: Some(posted.status),
                    code: posted.body["error"]["code"].as_str().map(str::to_owned),
                    body: posted.body,
                    text: posted.text,
                    retry_after_s,
                    outcome: None,
                    closed: None,
                }
            }
            #[cfg(feature = "iicp-tcp")]
            Self::NativeBuffered => super::native::send(addr, task.into(), headers, false).await,
            #[cfg(feature = "iicp-tcp")]
            Self::NativeLifecycle => super::native::send(addr, task.into(), headers, true).await,
        }
    }
}

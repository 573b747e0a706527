//! The one pooled HTTP client all backends share (the reference built a new
//! client per request), and sending with status-first error mapping.

use super::error::BackendError;
use crate::outbound::read_capped;
use serde_json::Value;
use std::sync::OnceLock;

/// The shared client. Per-request timeouts come from the backend options.
pub(crate) fn shared_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .user_agent(format!("iicp-node/{}", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(64)
            .build()
            .expect("a default reqwest client builds")
    })
}

/// A 2xx answer, read whole.
pub(crate) struct Answer {
    headers: reqwest::header::HeaderMap,
    body: bytes::Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    pub fn bytes(&self) -> &[u8] {
        &self.body
    }

    pub fn json(&self) -> Result<Value, BackendError> {
        serde_json::from_slice(&self.body).map_err(|e| BackendError::BadAnswer(e.to_string()))
    }
}

/// Largest answer body read from a model server (a buffered answer; a
/// streamed one is bounded event by event). Speech audio comes this way,
/// so it is generous; a server that sends more is cut off, not buffered.
pub(crate) const MAX_BODY_BYTES: usize = 64 << 20;

/// Sends, checks the status before reading the body as JSON, and maps
/// failures to [`BackendError`]. An error answer's body text is logged here
/// at warn, scrubbed; the error itself names only the status.
pub(crate) async fn send(
    req: reqwest::RequestBuilder,
    timeout_ms: u64,
    key: Option<&str>,
) -> Result<Answer, BackendError> {
    let resp = checked(req, timeout_ms, key, true).await?;
    read_answer(resp, timeout_ms).await
}

/// [`send`] for a probe whose error answer is expected and says something
/// (a server that is not Ollama answers 404 to `/api/tags`): the error is
/// logged at debug, not warn, so a node does not warn at every heartbeat.
pub(crate) async fn send_probe(
    req: reqwest::RequestBuilder,
    timeout_ms: u64,
    key: Option<&str>,
) -> Result<Answer, BackendError> {
    let resp = checked(req, timeout_ms, key, false).await?;
    read_answer(resp, timeout_ms).await
}

/// Reads a 2xx answer whole (bounded).
async fn read_answer(resp: reqwest::Response, timeout_ms: u64) -> Result<Answer, BackendError> {
    let headers = resp.headers().clone();
    let body = read_capped(resp, MAX_BODY_BYTES)
        .await
        .map_err(|e| BackendError::from_reqwest(&e, timeout_ms))?;
    if !body.complete {
        return Err(BackendError::BadAnswer(format!(
            "the answer is larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    Ok(Answer {
        headers,
        body: body.bytes,
    })
}

/// Sends and checks the status; a 2xx answer is returned unread (for a
/// streamed body), an error answer is read (bounded), logged and mapped.
pub(crate) async fn send_streaming(
    req: reqwest::RequestBuilder,
    timeout_ms: u64,
    key: Option<&str>,
) -> Result<reqwest::Response, BackendError> {
    checked(req, timeout_ms, key, true).await
}

/// Sends and checks the status; an error answer is read (bounded), logged
/// (at warn when `warn`, else at debug) and mapped.
async fn checked(
    req: reqwest::RequestBuilder,
    timeout_ms: u64,
    key: Option<&str>,
    warn: bool,
) -> Result<reqwest::Response, BackendError> {
    let resp = req
        .send()
        .await
        .map_err(|e| BackendError::from_reqwest(&e, timeout_ms))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    // Only the start of an error body is kept for the log.
    let body = read_capped(resp, 4096)
        .await
        .map_or_else(|_| bytes::Bytes::new(), |b| b.bytes);
    let error = BackendError::upstream(status.as_u16(), &String::from_utf8_lossy(&body), key);
    if let BackendError::Upstream { status, detail } = &error {
        // Scrubbed (key replaced, control characters escaped, cut short)
        // and still Debug-quoted: the one place the body text goes.
        if warn {
            tracing::warn!(status, body = ?detail, "the backend answered with an error");
        } else {
            tracing::debug!(status, body = ?detail, "the backend answered a probe with an error");
        }
    }
    Err(error)
}

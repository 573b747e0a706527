//! Sending a request to an engine ([`super::client`]) with status-first
//! error mapping, and reading its answer whole (bounded).

use super::client::{BackendRequest, BackendResponse};
use super::error::BackendError;
use serde_json::Value;

/// A 2xx answer, read whole.
pub(crate) struct Answer {
    headers: http::HeaderMap,
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

    /// The body, given away.
    pub fn into_body(self) -> bytes::Bytes {
        self.body
    }

    pub fn json(&self) -> Result<Value, BackendError> {
        super::parse_answer(&self.body)
    }
}

/// Largest answer body read from a model server (a buffered answer; a
/// streamed one is bounded event by event). Speech audio comes this way,
/// so it is generous; a server that sends more is cut off, not buffered.
pub(crate) const MAX_BODY_BYTES: usize = 64 << 20;

/// Sends, checks the status before reading the body as JSON, and maps
/// failures to [`BackendError`]. An error answer's body text is logged here
/// at warn, scrubbed; the error itself names only the status.
pub(crate) async fn send(req: BackendRequest, key: Option<&str>) -> Result<Answer, BackendError> {
    let resp = checked(req, key, true).await?;
    read_answer(resp).await
}

/// [`send`] for a probe whose error answer is expected and says something
/// (a server that is not Ollama answers 404 to `/api/tags`): the error is
/// logged at debug, not warn, so a node does not warn at every heartbeat.
pub(crate) async fn send_probe(
    req: BackendRequest,
    key: Option<&str>,
) -> Result<Answer, BackendError> {
    let resp = checked(req, key, false).await?;
    read_answer(resp).await
}

/// Reads a 2xx answer whole (bounded).
async fn read_answer(mut resp: BackendResponse) -> Result<Answer, BackendError> {
    let headers = std::mem::take(&mut resp.headers);
    let (body, complete) = resp.read_capped(MAX_BODY_BYTES).await?;
    if !complete {
        return Err(BackendError::BadAnswer(format!(
            "the answer is larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    Ok(Answer { headers, body })
}

/// Sends and checks the status; a 2xx answer is returned unread (for a
/// streamed body), an error answer is read (bounded), logged and mapped.
pub(crate) async fn send_streaming(
    req: BackendRequest,
    key: Option<&str>,
) -> Result<BackendResponse, BackendError> {
    checked(req, key, true).await
}

/// Sends and checks the status; an error answer is read (bounded), logged
/// (at warn when `warn`, else at debug) and mapped.
async fn checked(
    req: BackendRequest,
    key: Option<&str>,
    warn: bool,
) -> Result<BackendResponse, BackendError> {
    let resp = req.send().await?;
    let status = resp.status;
    if status.is_success() {
        return Ok(resp);
    }
    // Only the start of an error body is kept for the log.
    let body = resp
        .read_capped(4096)
        .await
        .map_or_else(|_| bytes::Bytes::new(), |(b, _)| b);
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

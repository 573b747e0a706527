//! The one pooled HTTP client all backends share (the reference built a new
//! client per request), and sending with status-first error mapping.

use super::error::BackendError;
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

/// Sends, checks the status before reading the body as JSON, and maps
/// failures to [`BackendError`]. An error answer's body text is logged here
/// at warn, scrubbed; the error itself names only the status.
pub(crate) async fn send(
    req: reqwest::RequestBuilder,
    timeout_ms: u64,
    key: Option<&str>,
) -> Result<Answer, BackendError> {
    let resp = req
        .send()
        .await
        .map_err(|e| BackendError::from_reqwest(&e, timeout_ms))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .bytes()
        .await
        .map_err(|e| BackendError::from_reqwest(&e, timeout_ms))?;
    if !status.is_success() {
        let error = BackendError::upstream(status.as_u16(), &String::from_utf8_lossy(&body), key);
        if let BackendError::Upstream { status, detail } = &error {
            // Scrubbed (key replaced, control characters escaped, cut short)
            // and still Debug-quoted: the one place the body text goes.
            tracing::warn!(status, body = ?detail, "the backend answered with an error");
        }
        return Err(error);
    }
    Ok(Answer { headers, body })
}

//! Outbound HTTP, shared by the client, the node lifecycle and the backends:
//! turning HTTP outcomes into [`IicpError`]s: the status is judged before
//! the body is parsed, all three error-body shapes are read (PROTOCOL.md
//! §1.2), and transport errors describe the failure without the request.

use crate::error::IicpError;
use crate::wire::parse_error_body;
use std::time::Duration;

/// A `Protocol` error from a non-2xx answer. Bodies that are not an IICP
/// error (an HTML proxy page, say) give the code `http_<status>`.
pub(crate) fn error_from_response(status: u16, body: &[u8]) -> IicpError {
    match parse_error_body(body) {
        Some(parsed) => IicpError::Protocol {
            code: parsed.code,
            message: if parsed.message.is_empty() {
                format!("HTTP {status}")
            } else {
                parsed.message
            },
            status,
        },
        None => IicpError::Protocol {
            code: format!("http_{status}"),
            message: "the peer answered without an IICP error body".into(),
            status,
        },
    }
}

/// The innermost cause of an error, e.g. "Connection refused (os error 111)".
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// A `Timeout` or `Transport` error for a failed request to `target`.
/// reqwest's own message names the URL; ours names only the target.
pub(crate) fn transport_error(target: &str, e: &reqwest::Error, waited: Duration) -> IicpError {
    if e.is_timeout() {
        IicpError::Timeout {
            what: target.to_owned(),
            elapsed_ms: waited.as_millis() as u64,
        }
    } else {
        let kind = if e.is_connect() {
            "connection failed"
        } else if e.is_body() || e.is_decode() {
            "the answer could not be read"
        } else {
            "request failed"
        };
        IicpError::Transport {
            target: target.to_owned(),
            reason: format!("{kind}: {}", root_cause(e)),
        }
    }
}

/// A whole answer: status, headers and body, read before anything is judged.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: bytes::Bytes,
}

impl Reply {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as `T` when the status is 2xx; otherwise the peer's error
    /// (status first, then the body, PROTOCOL.md §1.2). `what` names the
    /// message in a decode error.
    pub fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, IicpError> {
        if !self.is_success() {
            return Err(error_from_response(self.status, &self.body));
        }
        serde_json::from_slice(&self.body).map_err(|e| IicpError::Decode {
            what: what.to_owned(),
            reason: e.to_string(),
        })
    }
}

/// Sends `req` with a `timeout` and reads the whole answer. Failures name
/// only `target`, never the URL or the request.
pub(crate) async fn exchange(
    req: reqwest::RequestBuilder,
    target: &str,
    timeout: Duration,
) -> Result<Reply, IicpError> {
    let resp = req
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| transport_error(target, &e, timeout))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .bytes()
        .await
        .map_err(|e| transport_error(target, &e, timeout))?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_errors_from_each_body_shape() {
        let e = error_from_response(
            429,
            br#"{"error":{"code":"IICP-E021","message":"capacity_exceeded"}}"#,
        );
        assert_eq!(e.to_string(), "[IICP-E021] capacity_exceeded (HTTP 429)");
        let e = error_from_response(
            429,
            br#"{"error":"IICP-E034","message":"slow","retry_after":60}"#,
        );
        assert_eq!(e.code(), "IICP-E034");
        let e = error_from_response(502, b"<html>Bad gateway</html>");
        assert_eq!(e.code(), "http_502");
        assert_eq!(e.status(), Some(502));
    }
}

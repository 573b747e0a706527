//! Outbound HTTP, shared by the client, the node lifecycle and the backends:
//! turning HTTP outcomes into [`IicpError`]s: the status is judged before
//! the body is parsed, all three error-body shapes are read (PROTOCOL.md
//! §1.2), and transport errors describe the failure without the request.
//!
//! Peers are untrusted: every answer is read with a size limit (a peer that
//! announces or sends more is cut off with [`IicpError::ResponseTooLarge`]
//! before the excess is buffered), and clients that talk to a directory
//! follow no redirect to another origin.

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
        crate::wire::from_json_bytes(&self.body).map_err(|e| IicpError::Decode {
            what: what.to_owned(),
            reason: e.to_string(),
        })
    }
}

/// The largest directory answer [`exchange`] reads: 4 MiB, room for a
/// discover answer at its 50-node maximum with every field filled.
pub const MAX_DIRECTORY_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Sends `req` with a `timeout` and reads the whole answer, at most
/// [`MAX_DIRECTORY_ANSWER_BYTES`]. Failures name only `target`, never the
/// URL or the request.
pub(crate) async fn exchange(
    req: reqwest::RequestBuilder,
    target: &str,
    timeout: Duration,
) -> Result<Reply, IicpError> {
    exchange_limited(req, target, timeout, MAX_DIRECTORY_ANSWER_BYTES).await
}

/// [`exchange`] with its own size limit for the answer.
pub(crate) async fn exchange_limited(
    req: reqwest::RequestBuilder,
    target: &str,
    timeout: Duration,
    limit: usize,
) -> Result<Reply, IicpError> {
    let resp = req
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| transport_error(target, &e, timeout))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = read_limited(resp, target, limit, timeout).await?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// A body read up to a limit ([`read_capped`]).
pub(crate) struct Capped {
    /// The bytes read: all of the body, or its first `limit` bytes.
    pub bytes: bytes::Bytes,
    /// False when the body went on past the limit (the rest was not read).
    pub complete: bool,
}

/// Reads at most `limit` bytes of a body, stopping as soon as it passes the
/// limit: nothing beyond is buffered. The one bounded read every peer
/// answer goes through (directory, node, model server, IGD); callers map
/// the error and decide what an incomplete body means.
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Capped, reqwest::Error> {
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > limit {
            let room = limit - body.len();
            body.extend_from_slice(&chunk[..room]);
            return Ok(Capped {
                bytes: body.freeze(),
                complete: false,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Capped {
        bytes: body.freeze(),
        complete: true,
    })
}

/// Reads a whole body of at most `limit` bytes. A `Content-Length` above the
/// limit is refused before any of the body is read; a body that grows past
/// it is cut off as soon as it does. `waited` is reported on a timeout.
pub(crate) async fn read_limited(
    resp: reqwest::Response,
    target: &str,
    limit: usize,
    waited: Duration,
) -> Result<bytes::Bytes, IicpError> {
    let too_large = || IicpError::ResponseTooLarge {
        target: target.to_owned(),
        limit,
    };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let body = read_capped(resp, limit)
        .await
        .map_err(|e| transport_error(target, &e, waited))?;
    if !body.complete {
        return Err(too_large());
    }
    Ok(body.bytes)
}

/// How long an idle pooled connection is kept: below the 10 s after which
/// our servers (and many others) close an idle keep-alive connection, so a
/// request is not sent on a connection the server is closing.
pub(crate) const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The most redirects a directory call follows.
const MAX_DIRECTORY_REDIRECTS: usize = 3;

/// A client for calls to a directory: redirects are followed only within
/// the origin of the first request (scheme, host and port), at most three
/// times. A directory that answers with a redirect to another host must not
/// be able to send the caller's bearer token, or its trust, elsewhere.
pub(crate) fn directory_client(user_agent: &str) -> Result<reqwest::Client, IicpError> {
    reqwest::Client::builder()
        .user_agent(user_agent)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let same_origin = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if same_origin && attempt.previous().len() <= MAX_DIRECTORY_REDIRECTS {
                attempt.follow()
            } else {
                attempt.error(RedirectRefused)
            }
        }))
        .build()
        .map_err(|e| IicpError::InvalidConfig(format!("HTTP client: {e}")))
}

/// Why a directory redirect was not followed.
#[derive(Debug)]
struct RedirectRefused;

impl std::fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "the directory redirected to another origin (or more than 3 times); not followed",
        )
    }
}

impl std::error::Error for RedirectRefused {}

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

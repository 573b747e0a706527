//! The one pooled HTTP client every backend shares: hyper's connection pool
//! (HTTP/1.1; TLS by rustls with the webpki roots for `https://` engines),
//! with requests built here from URLs parsed once per backend.
//!
//! Not reqwest, which the consumer side keeps: for each request reqwest
//! re-parses the URL twice (its redirect policy and its response), checks
//! proxies and runs a retry layer, which together cost a node more per task
//! than its own task pipeline did (BENCHMARKS.md, "Node cost per task").
//! A backend call follows no redirect and uses no proxy (`HTTP_PROXY` is
//! not read): the engine is the operator's own server, named by its URL.
//!
//! A request has one deadline for the whole exchange: connecting, the
//! answer's head and every read of its body.

use super::error::BackendError;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use http::{HeaderMap, Method, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::time::Instant;

type Pool = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The shared pool: idle connections are kept 90 s, at most 64 per engine.
fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .build(https)
    })
}

/// A URL parsed for the pool, or why it cannot be used.
pub(crate) fn parse_url(url: &str) -> Result<Uri, BackendError> {
    let uri: Uri = url
        .parse()
        .map_err(|_| BackendError::InvalidRequest("the backend URL is not a valid URL".into()))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(uri),
        _ => Err(BackendError::InvalidRequest(
            "the backend URL must be http:// or https:// with a host".into(),
        )),
    }
}

/// One request to an engine, built up like reqwest's builder.
#[derive(Debug)]
pub(crate) struct BackendRequest {
    method: Method,
    uri: Result<Uri, BackendError>,
    headers: HeaderMap,
    body: Bytes,
    timeout: Duration,
}

impl BackendRequest {
    /// `method` at `uri` (a parse failure is reported when sent), with
    /// the node's `User-Agent` and the whole exchange bounded by `timeout`.
    pub fn new(method: Method, uri: Result<Uri, BackendError>, timeout: Duration) -> Self {
        let mut headers = HeaderMap::with_capacity(4);
        headers.insert(USER_AGENT, user_agent());
        Self {
            method,
            uri,
            headers,
            body: Bytes::new(),
            timeout,
        }
    }

    /// `Authorization: Bearer <key>`, marked sensitive.
    pub fn bearer(self, key: &str) -> Self {
        self.sensitive_header(AUTHORIZATION, &format!("Bearer {key}"))
    }

    /// A header whose value is a credential (never logged by hyper).
    pub fn sensitive_header(mut self, name: HeaderName, value: &str) -> Self {
        match HeaderValue::from_str(value) {
            Ok(mut v) => {
                v.set_sensitive(true);
                self.headers.insert(name, v);
            }
            Err(_) => {
                self.uri = Err(BackendError::InvalidRequest(
                    "the API key cannot be sent in an HTTP header".into(),
                ));
            }
        }
        self
    }

    /// A header with a fixed value.
    pub fn header(mut self, name: HeaderName, value: &'static str) -> Self {
        self.headers.insert(name, HeaderValue::from_static(value));
        self
    }

    /// A JSON body (`Content-Type: application/json`).
    pub fn json(mut self, body: &impl Serialize) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => self.body = bytes.into(),
            Err(_) => {
                self.uri = Err(BackendError::InvalidRequest(
                    "the request could not be written as JSON".into(),
                ));
            }
        }
        self.header(CONTENT_TYPE, "application/json")
    }

    /// A body of another type.
    pub fn body(mut self, content_type: HeaderValue, body: Bytes) -> Self {
        self.headers.insert(CONTENT_TYPE, content_type);
        self.body = body;
        self
    }

    /// Sends it and waits for the answer's head.
    pub async fn send(self) -> Result<BackendResponse, BackendError> {
        let timeout_ms = self.timeout.as_millis() as u64;
        let deadline = Instant::now() + self.timeout;
        let mut request = http::Request::new(Full::new(self.body));
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri?;
        *request.headers_mut() = self.headers;
        let response = tokio::time::timeout_at(deadline, pool().request(request))
            .await
            .map_err(|_| BackendError::Timeout(timeout_ms))?
            .map_err(|e| BackendError::Unreachable(crate::outbound::root_cause(&e)))?;
        let (head, body) = response.into_parts();
        Ok(BackendResponse {
            status: head.status,
            headers: head.headers,
            body,
            deadline,
            timeout_ms,
        })
    }
}

fn user_agent() -> HeaderValue {
    HeaderValue::from_static(concat!("iicp-node/", env!("CARGO_PKG_VERSION")))
}

/// An engine's answer whose body is read piece by piece, under the
/// request's deadline.
#[derive(Debug)]
pub(crate) struct BackendResponse {
    pub status: http::StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    deadline: Instant,
    timeout_ms: u64,
}

impl BackendResponse {
    /// The next piece of the body, `None` at its end. Cancel-safe.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, BackendError> {
        loop {
            let frame = tokio::time::timeout_at(self.deadline, self.body.frame())
                .await
                .map_err(|_| BackendError::Timeout(self.timeout_ms))?;
            match frame {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(BackendError::Unreachable(crate::outbound::root_cause(&e)));
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// The body, at most `limit` bytes of it; `complete` is false when
    /// there was more (the rest is not read).
    pub async fn read_capped(mut self, limit: usize) -> Result<(Bytes, bool), BackendError> {
        // Most answers come in one piece: kept as it is, copied only when a
        // second piece arrives.
        let mut first: Option<Bytes> = None;
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            if let Some(piece) = first.take() {
                body.extend_from_slice(&piece);
            }
            let had = body.len();
            if had + chunk.len() > limit {
                body.extend_from_slice(&chunk[..limit - had]);
                return Ok((body.freeze(), false));
            }
            if had == 0 {
                first = Some(chunk);
            } else {
                body.extend_from_slice(&chunk);
            }
        }
        Ok((first.unwrap_or_else(|| body.freeze()), true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_with_a_host_are_taken() {
        assert!(parse_url("http://127.0.0.1:8080/v1/chat/completions").is_ok());
        assert!(parse_url("https://api.anthropic.com/v1/messages").is_ok());
        for bad in [
            "ftp://x/y",
            "/v1/chat",
            "http://",
            "not a url",
            "unix:///tmp/s",
        ] {
            assert!(
                matches!(parse_url(bad), Err(BackendError::InvalidRequest(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_key_that_is_not_a_header_value_fails_the_request_not_the_process() {
        let req = BackendRequest::new(
            Method::GET,
            parse_url("http://127.0.0.1:1/models"),
            Duration::from_secs(1),
        )
        .bearer("line\nbreak");
        assert!(matches!(req.uri, Err(BackendError::InvalidRequest(_))));
        let req = BackendRequest::new(
            Method::GET,
            parse_url("http://127.0.0.1:1/models"),
            Duration::from_secs(1),
        )
        .bearer("sk-ok");
        assert!(req.headers[AUTHORIZATION].is_sensitive());
        assert_eq!(req.headers[AUTHORIZATION], "Bearer sk-ok");
    }
}

//! Reading requests: bodies with JSON errors (size limit, read timeout),
//! the JSON decoding rules (400/422), bearer tokens, the caller's IP.
//!
//! axum's own extractors answer bad input in plain text; these helpers turn
//! every failure into an [`ApiError`], and describe JSON errors without
//! echoing the offending values (a token sent as a number must not come back
//! in the error message).

use super::activity::Activity;
use super::api_error::ApiError;
use crate::secret::Secret;
use axum::RequestExt;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

mod body_error;
mod json;

pub(crate) use body_error::BodyError;
pub(crate) use json::decode_json;

/// What reading a request's body needs from its connection, put in every
/// request's extensions by the accept loop (one entry, one allocation):
/// how long the body may take to arrive (from
/// [`ServerLimits::body_read_timeout`](super::limits::ServerLimits)), and
/// the connection's [`Activity`] (reading the body waits on the client,
/// which the eviction policy must know).
#[derive(Debug, Clone)]
pub(crate) struct BodyReadContext {
    pub timeout: Duration,
    pub activity: Arc<Activity>,
}

/// The body size limit a router enforces (`DefaultBodyLimit`), kept in the
/// request's extensions so that the 413 answer can name it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub usize);

/// The raw request body; a body over the limit, too slow or unreadable is
/// a [`BodyError`] (each a JSON error when answered as is). The body must
/// arrive within the request's [`BodyReadContext`] timeout (when it has one).
pub(crate) struct RawBody(pub Bytes);

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let error = ApiError::new(status, e.code(), e.message());
        match e {
            // The rest of the body is never read.
            BodyError::Timeout(_) => error.close_connection(),
            _ => error,
        }
    }
}

impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = BodyError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let context = req.extensions().get::<BodyReadContext>().cloned();
        let limit = req.extensions().get::<BodyLimit>().copied();
        // The router's `DefaultBodyLimit` applies here; `BodyLimit` names it.
        let body = req.into_limited_body();
        read_body(body, limit, context.as_ref()).await.map(Self)
    }
}

/// Reads a whole request body: over `limit` (when given; a body the router
/// already limits fails the same way) it is [`BodyError::TooLarge`], not
/// arrived within the context's timeout [`BodyError::Timeout`], and the
/// connection counts as waiting on its client while it is read. The
/// extractor [`RawBody`] and routes a connection answers itself
/// (`connection::DirectRoute`) read bodies with this one function.
pub(crate) async fn read_body<B>(
    body: B,
    limit: Option<BodyLimit>,
    context: Option<&BodyReadContext>,
) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    let _reading = context.map(|c| BodyRead::start(c.activity.clone()));
    let read = async {
        match limit {
            Some(BodyLimit(n)) => http_body_util::Limited::new(body, n).collect().await,
            None => body.collect().await.map_err(Into::into),
        }
    };
    let collected = match context.map(|c| c.timeout) {
        Some(t) => tokio::time::timeout(t, read)
            .await
            .map_err(|_| BodyError::Timeout(t))?,
        None => read.await,
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if is_over_limit(&*e) => Err(BodyError::TooLarge(limit.map(|l| l.0))),
        Err(_) => Err(BodyError::Unreadable),
    }
}

/// Whether a body error is, or was caused by, a length limit.
fn is_over_limit(mut e: &(dyn std::error::Error + 'static)) -> bool {
    loop {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        match e.source() {
            Some(source) => e = source,
            None => return false,
        }
    }
}

/// A body read in progress: the connection waits on its client until it is
/// dropped.
struct BodyRead(Arc<Activity>);

impl BodyRead {
    fn start(activity: Arc<Activity>) -> Self {
        activity.body_read_started();
        Self(activity)
    }
}

impl Drop for BodyRead {
    fn drop(&mut self) {
        self.0.body_read_ended();
    }
}

/// [`decode_json`] with its refusal as an [`ApiError`] (`validation_error`).
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    decode_json(body).map_err(|r| {
        let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError::new(status, "validation_error", r.message)
    })
}

/// The bearer token of `Authorization: Bearer …`, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<Secret> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| Secret::new(token))
}

/// The caller's address. Forwarding headers are believed only when the
/// socket peer is one of `trusted_proxies` (an empty list trusts none, so
/// the peer is the caller): then `CF-Connecting-IP`, else the rightmost
/// `X-Forwarded-For` entry that is not itself a trusted proxy, else
/// `X-Real-IP`, else the peer. IPv4-mapped addresses count as IPv4.
pub(crate) fn client_ip(
    headers: &HeaderMap,
    peer: SocketAddr,
    trusted_proxies: &[ipnet::IpNet],
) -> IpAddr {
    let peer_ip = peer.ip().to_canonical();
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer_ip) {
        return peer_ip;
    }
    let single =
        |name: &str| -> Option<IpAddr> { parse_forwarded_ip(headers.get(name)?.to_str().ok()?) };
    single("cf-connecting-ip")
        .or_else(|| forwarded_for(headers, &trusted))
        .or_else(|| single("x-real-ip"))
        .unwrap_or(peer_ip)
}

/// The client of an `X-Forwarded-For` chain (all such headers, in order):
/// walking from the right, the first entry that is not a trusted proxy. An
/// unreadable entry there ends the walk with `None` (the chain cannot be
/// believed past it); a chain of trusted proxies only yields its leftmost.
fn forwarded_for(headers: &HeaderMap, trusted: &dyn Fn(&IpAddr) -> bool) -> Option<IpAddr> {
    let mut entries = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        entries.extend(value.to_str().ok()?.split(',').map(str::trim));
    }
    let mut leftmost = None;
    for entry in entries.iter().rev() {
        let ip = parse_forwarded_ip(entry)?;
        if !trusted(&ip) {
            return Some(ip);
        }
        leftmost = Some(ip);
    }
    leftmost
}

/// One address of a forwarding header: `IP`, `IPv4:port` or `[IPv6]:port`.
fn parse_forwarded_ip(value: &str) -> Option<IpAddr> {
    let value = value.trim();
    value
        .parse::<IpAddr>()
        .ok()
        .or_else(|| value.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::parse_cidr;
    use axum::http::HeaderValue;

    #[test]
    fn json_errors_do_not_echo_values() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            token: String,
        }
        let e = parse_json::<T>(br#"{"token": 12345678}"#).unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(!format!("{e:?}").contains("12345678"));
        let e = parse_json::<T>(b"{not json").unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let e = parse_json::<T>(b"{}").unwrap_err();
        assert!(format!("{e:?}").contains("missing field `token`"));
    }

    #[test]
    fn bearer_and_client_ip() {
        let mut h = HeaderMap::new();
        assert!(bearer(&h).is_none());
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h).unwrap().expose(), "abc");
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(client_ip(&h, peer, &[]).to_string(), "127.0.0.1");
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 10.0.0.1"),
        );
        h.insert("cf-connecting-ip", HeaderValue::from_static("198.51.100.2"));
        assert_eq!(
            client_ip(&h, peer, &[]).to_string(),
            "127.0.0.1",
            "no trusted proxy: the headers are not believed"
        );
        let proxy = [parse_cidr("127.0.0.0/8").unwrap()];
        assert_eq!(client_ip(&h, peer, &proxy).to_string(), "198.51.100.2");
    }

    #[test]
    fn forwarded_for_takes_the_rightmost_untrusted_entry() {
        let proxies = [
            parse_cidr("127.0.0.1").unwrap(),
            parse_cidr("10.0.0.0/8").unwrap(),
        ];
        let peer: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        for (chain, expected) in [
            ("203.0.113.9", "203.0.113.9"),
            ("1.1.1.1, 203.0.113.9, 10.0.0.1", "203.0.113.9"),
            ("spoofed, 203.0.113.9:443", "203.0.113.9"),
            ("1.1.1.1, [2001:db8::1]:80, 10.2.3.4", "2001:db8::1"),
            ("10.0.0.2, 10.0.0.1", "10.0.0.2"),
            ("203.0.113.9, garbage, 10.0.0.1", "127.0.0.1"),
        ] {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", HeaderValue::from_str(chain).unwrap());
            assert_eq!(
                client_ip(&h, peer, &proxies).to_string(),
                expected,
                "{chain}"
            );
        }
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        h.append("x-forwarded-for", HeaderValue::from_static("198.51.100.4"));
        assert_eq!(client_ip(&h, peer, &proxies).to_string(), "198.51.100.4");
        h.clear();
        h.insert("x-real-ip", HeaderValue::from_static("198.51.100.5"));
        assert_eq!(client_ip(&h, peer, &proxies).to_string(), "198.51.100.5");
        let outsider: SocketAddr = "192.0.2.1:1".parse().unwrap();
        assert_eq!(client_ip(&h, outsider, &proxies).to_string(), "192.0.2.1");
    }
}

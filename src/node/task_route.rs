//! `POST /v1/task` over HTTP (PROTOCOL.md §2.3): the body read under the
//! node's limit and read timeout, the headers mapped to an [`Inbound`], both
//! handed to [`Pipeline::run_json`](super::pipeline::Pipeline::run_json),
//! and the typed [`Answer`] serialised once, with CORS.
//!
//! Order of checks: the body (413 over the limit, 408 when it does not
//! arrive in time, with `Connection: close`, 400 when unreadable), then
//! `Content-Type` (415 unless JSON), then the pipeline's.
//!
//! Nearly every request a node gets is this one, so the connection answers
//! it itself ([`TaskRoute`], a [`DirectRoute`]) instead of through axum's
//! routing, middleware and extractors; the router keeps the route (its
//! 405 for other methods, and the same [`answer`] for a request that does
//! reach it).

use super::answer::Answer;
use super::http::{NodeHttp, add_cors};
use super::inbound::Inbound;
use super::task_auth::Credentials;
use crate::server::request::{BodyError, BodyLimit, BodyReadContext, bearer, read_body};
use crate::server::{DirectAnswer, DirectRoute};
use crate::wire::ErrorBody;
use axum::body::{Body, Bytes};
use axum::http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header,
};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

/// The path of the task route.
pub(super) const PATH: &str = "/v1/task";

/// `POST /v1/task`, answered by the connection ahead of the router.
pub(crate) struct TaskRoute(pub Arc<NodeHttp>);

impl DirectRoute for TaskRoute {
    fn matches(&self, req: &Request<Incoming>) -> bool {
        req.method() == Method::POST && req.uri().path() == PATH
    }

    fn answer(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        body: BodyReadContext,
    ) -> DirectAnswer {
        let st = self.0.clone();
        Box::pin(async move {
            let (parts, incoming) = req.into_parts();
            let limit = Some(BodyLimit(st.max_body_bytes));
            let bytes = read_body(incoming, limit, Some(&body)).await;
            answer(&st, Some(peer), &parts.headers, bytes).await
        })
    }
}

/// The answer to one task request whose body was read (or failed to be).
pub(super) async fn answer(
    st: &NodeHttp,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    body: Result<Bytes, BodyError>,
) -> Response<Body> {
    let body = match body {
        Ok(body) => body,
        Err(BodyError::TooLarge(_)) => return into_response(Answer::too_large(st.max_body_bytes)),
        Err(e @ BodyError::Timeout(_)) => {
            // The rest of the body is never read: close the connection.
            let mut response = into_response(Answer::refusal(
                e.status(),
                ErrorBody::new(e.code(), e.message()),
            ));
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
        Err(e @ BodyError::Unreadable) => {
            return into_response(Answer::validation_error(e.status(), e.message()));
        }
    };
    if !is_json(headers) {
        return into_response(Answer::validation_error(
            415,
            "send the task as Content-Type: application/json",
        ));
    }
    into_response(st.pipeline.run_json(&body, inbound(headers, peer)).await)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || mime.ends_with("+json")
        })
}

/// `X-IICP-Consumer-Token`, named once (a lookup by `&str` parses the name
/// on every call).
static CONSUMER_TOKEN: HeaderName = HeaderName::from_static("x-iicp-consumer-token");
/// `traceparent` (W3C trace context).
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The credentials and trace context of a request's headers.
fn inbound(headers: &HeaderMap, peer: Option<SocketAddr>) -> Inbound {
    let header = |name: &HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Inbound {
        credentials: Credentials {
            consumer_token: header(&CONSUMER_TOKEN),
            bearer: bearer(headers),
        },
        traceparent: header(&TRACEPARENT),
        peer,
        partials: None,
        relay_text: true,
    }
}

/// The headers of every answer of this route: JSON, and CORS (added here
/// because this route's answers do not pass the router's CORS layer; a
/// second insert there replaces the same values). Made once and copied
/// per answer, which costs less than inserting each one.
static ANSWER_HEADERS: LazyLock<HeaderMap> = LazyLock::new(|| {
    let mut h = HeaderMap::with_capacity(8);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    add_cors(&mut h);
    h
});

/// The answer as HTTP: its status, the body serialised once as JSON,
/// [`ANSWER_HEADERS`], and `Retry-After` when it has one.
fn into_response(answer: Answer) -> Response<Body> {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(Body::from(answer.to_json()));
    *response.status_mut() = status;
    *response.headers_mut() = ANSWER_HEADERS.clone();
    if let Some(s) = answer.retry_after_s {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    response
}

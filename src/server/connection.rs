//! One accepted connection, from its first byte to its close.
//!
//! [`serve`] is where a connection's protocol is chosen. A server with a
//! [`NativeHandler`] (the node, with the `iicp-tcp` feature) peeks at the
//! first four bytes under the header-read timeout: `IICP` goes to the native
//! handler, anything else to HTTP/1.1, on the same socket (no second hop, so
//! the peer address stays the client's). A peer that sends nothing within
//! the timeout is dropped. Other servers speak HTTP/1.1 only.
//!
//! Each connection reports what it is doing to its [`Activity`] (the
//! accept loop evicts the one that waited longest on its client when at its
//! cap): a request is busy from its head until its answer's body ends,
//! except while its body is read; writes that stall are seen by the
//! [`Tracked`] socket.
//!
//! hyper bounds what one HTTP connection can make the server hold: a request
//! head with more than 100 header fields, or larger than its buffer limit
//! ([`MAX_BUF_BYTES`], checked between reads, so a head that arrives in one
//! read may reach twice that), gets a bare `431` and a close; requests
//! pipelined in one write are answered one after the other, in order, and
//! while an answer waits to be written hyper reads no further (a client
//! that does not read its answers stalls its own connection, which is then
//! evictable, and its unread requests stay in the kernel's socket buffer).

use super::activity::Activity;
use super::limits::ServerLimits;
use super::request::BodyReadContext;
use super::tracked::Tracked;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The four bytes that open a native connection (PROTOCOL.md §7.1).
pub(crate) const NATIVE_MAGIC: &[u8; 4] = b"IICP";
/// Pause between peeks while fewer than four bytes have arrived and they
/// still read as the start of `IICP` (rare: a client's first write is
/// normally a whole frame or a whole request line).
const PEEK_RETRY: Duration = Duration::from_millis(2);
/// hyper's read and write buffer limit per HTTP connection, and so about
/// the largest request head accepted (hyper's default is about 400 KiB; the
/// requests these servers take have heads of a few hundred bytes, and at
/// the default connection cap this bounds buffered heads at 32 to 64 MiB).
pub(crate) const MAX_BUF_BYTES: usize = 64 * 1024;

/// Serves connections that open with the native magic.
pub(crate) trait NativeHandler: Send + Sync + 'static {
    /// Serves one native connection until it closes or `shutdown` is
    /// cancelled (then it closes the session gracefully). It tells
    /// `activity` when a call starts and when the last one in flight ends,
    /// and writes through a [`Tracked`] half.
    fn serve(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        shutdown: CancellationToken,
        activity: Arc<Activity>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// A route a connection answers itself, ahead of the router: the one route
/// a server is busy with (the node's `POST /v1/task`), whose requests then
/// skip axum's routing, layers and extractors (issue 17: they cost about a
/// tenth of a proxied task). Every other request goes to the router, which
/// keeps the same route so that it stays the whole description of the API.
pub(crate) trait DirectRoute: Send + Sync + 'static {
    /// Whether the request is this route's (by its method and path only).
    fn matches(&self, req: &Request<Incoming>) -> bool;

    /// The answer to one request of this route; `peer` is the connection's
    /// peer and `body` what reading the body needs
    /// ([`read_body`](super::request::read_body)).
    fn answer(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        body: BodyReadContext,
    ) -> DirectAnswer;
}

/// The future of a [`DirectRoute`]'s answer.
pub(crate) type DirectAnswer = Pin<Box<dyn Future<Output = Response<axum::body::Body>> + Send>>;

/// What every connection of one server shares.
pub(crate) struct ConnectionContext {
    app: Router,
    direct: Option<Arc<dyn DirectRoute>>,
    limits: ServerLimits,
    http: http1::Builder,
    native: Option<Arc<dyn NativeHandler>>,
}

impl ConnectionContext {
    pub(crate) fn new(
        app: Router,
        limits: ServerLimits,
        native: Option<Arc<dyn NativeHandler>>,
    ) -> Self {
        let mut http = http1::Builder::new();
        // hyper (>= 1.6) restarts this timer whenever it waits for a request
        // head, after each answer too: it is also the idle keep-alive limit.
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(MAX_BUF_BYTES)
            .keep_alive(true);
        Self {
            app,
            direct: None,
            limits,
            http,
            native,
        }
    }

    /// Answers `route`'s requests before the router.
    pub(crate) fn with_direct_route(mut self, route: Arc<dyn DirectRoute>) -> Self {
        self.direct = Some(route);
        self
    }
}

/// Serves one connection until it closes. When `shutdown` is cancelled, the
/// request in progress is finished and the connection closed.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    context: &ConnectionContext,
    shutdown: CancellationToken,
    activity: Arc<Activity>,
) {
    let Some(native) = &context.native else {
        return serve_http(stream, peer, context, shutdown, activity).await;
    };
    match opening(&stream, context.limits.header_read_timeout).await {
        Opening::Native => native.serve(stream, peer, shutdown, activity).await,
        Opening::Other => serve_http(stream, peer, context, shutdown, activity).await,
        Opening::Silent => {
            tracing::debug!("connection sent nothing before the header timeout; dropped");
        }
    }
}

/// What a connection's first bytes say it speaks.
#[derive(Debug, PartialEq)]
enum Opening {
    Native,
    Other,
    /// Nothing (or only a prefix of the magic) before the deadline, or closed.
    Silent,
}

/// Peeks (without consuming) until the first bytes decide: four bytes equal
/// to `IICP`, or any byte that differs from it.
async fn opening(stream: &TcpStream, limit: Duration) -> Opening {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4];
    loop {
        let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await;
        let n = match peeked {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Opening::Silent,
            Ok(Ok(n)) => n,
        };
        if buf[..n] != NATIVE_MAGIC[..n] {
            return Opening::Other;
        }
        if n == NATIVE_MAGIC.len() {
            return Opening::Native;
        }
        if Instant::now() + PEEK_RETRY >= deadline {
            return Opening::Silent;
        }
        tokio::time::sleep(PEEK_RETRY).await;
    }
}

/// HTTP/1.1 through hyper, answered by the context's router.
async fn serve_http(
    stream: TcpStream,
    peer: SocketAddr,
    context: &ConnectionContext,
    shutdown: CancellationToken,
    activity: Arc<Activity>,
) {
    let service = RouterService {
        app: context.app.clone(),
        direct: context.direct.clone(),
        peer,
        body_read_timeout: context.limits.body_read_timeout,
        activity: activity.clone(),
    };
    let io = TokioIo::new(Tracked::new(stream, activity));
    let conn = context.http.serve_connection(io, service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // Timeouts, resets and malformed requests: routine on a public port.
        tracing::debug!(error = %e, "connection closed with an error");
    }
}

/// The router as a hyper service, adding what extractors read from a
/// request's extensions: the peer address (`ConnectInfo<SocketAddr>`), the
/// body read timeout and the connection's activity; requests of the
/// [`DirectRoute`] go to it instead, with the same three. The request is
/// busy from here until its answer's body ends ([`AnswerBody`]).
#[derive(Clone)]
struct RouterService {
    app: Router,
    direct: Option<Arc<dyn DirectRoute>>,
    peer: SocketAddr,
    body_read_timeout: Duration,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for RouterService {
    type Response = Response<AnswerBody>;
    type Error = Infallible;
    type Future = Answering;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        self.activity.request_started();
        let body = BodyReadContext {
            timeout: self.body_read_timeout,
            activity: self.activity.clone(),
        };
        let answer = match &self.direct {
            Some(direct) if direct.matches(&req) => {
                Pending::Direct(direct.answer(req, self.peer, body))
            }
            _ => {
                req.extensions_mut().insert(ConnectInfo(self.peer));
                req.extensions_mut().insert(body);
                // A Router is always ready (axum documents it), so no poll_ready.
                Pending::Router(tower_service::Service::call(&mut self.app.clone(), req))
            }
        };
        Answering {
            answer,
            activity: Some(self.activity.clone()),
        }
    }
}

/// The answer to one request, its body wrapped in an [`AnswerBody`] (the
/// router's future is polled in place, without an allocation).
struct Answering {
    answer: Pending,
    activity: Option<Arc<Activity>>,
}

/// Who is answering a request.
#[allow(clippy::large_enum_variant)] // polled in place: boxing the router's future is the allocation avoided
enum Pending {
    Router(axum::routing::future::RouteFuture<Infallible>),
    Direct(DirectAnswer),
}

impl Future for Answering {
    type Output = Result<Response<AnswerBody>, Infallible>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let response = match &mut self.answer {
            Pending::Router(answer) => {
                let Ok(response) = std::task::ready!(Pin::new(answer).poll(cx));
                response
            }
            Pending::Direct(answer) => std::task::ready!(answer.as_mut().poll(cx)),
        };
        let activity = self.activity.take();
        std::task::Poll::Ready(Ok(response.map(|inner| AnswerBody { inner, activity })))
    }
}

/// An answer's body that marks its connection idle once it has ended (or
/// is dropped unfinished: the connection is closing then).
struct AnswerBody {
    inner: axum::body::Body,
    activity: Option<Arc<Activity>>,
}

impl AnswerBody {
    fn done(&mut self) {
        if let Some(activity) = self.activity.take() {
            activity.idle();
        }
    }
}

impl Body for AnswerBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(poll, std::task::Poll::Ready(None)) {
            self.done();
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AnswerBody {
    fn drop(&mut self) {
        self.done();
    }
}

//! One accepted connection, from its first byte to its close.
//!
//! [`serve`] is where a connection's protocol is chosen. Today every
//! connection speaks HTTP/1.1; the native transport will peek the first
//! four bytes here (under the header-read timeout) and hand connections that
//! start with `IICP` to its own handler, with the same context and shutdown.

use super::limits::ServerLimits;
use super::request::BodyReadTimeout;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// What every connection of one server shares.
pub(crate) struct ConnectionContext {
    app: Router,
    limits: ServerLimits,
    http: http1::Builder,
}

impl ConnectionContext {
    pub(crate) fn new(app: Router, limits: ServerLimits) -> Self {
        let mut http = http1::Builder::new();
        // hyper (>= 1.6) restarts this timer whenever it waits for a request
        // head, after each answer too: it is also the idle keep-alive limit.
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(true);
        Self { app, limits, http }
    }
}

/// Serves one connection until it closes. When `shutdown` is cancelled, the
/// request in progress is finished and the connection closed.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    context: &ConnectionContext,
    shutdown: CancellationToken,
) {
    serve_http(stream, peer, context, shutdown).await;
}

/// HTTP/1.1 through hyper, answered by the context's router.
async fn serve_http(
    stream: TcpStream,
    peer: SocketAddr,
    context: &ConnectionContext,
    shutdown: CancellationToken,
) {
    let service = RouterService {
        app: context.app.clone(),
        peer,
        body_read_timeout: BodyReadTimeout(context.limits.body_read_timeout),
    };
    let conn = context.http.serve_connection(TokioIo::new(stream), service);
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
/// request's extensions: the peer address (`ConnectInfo<SocketAddr>`) and
/// the body read timeout.
#[derive(Clone)]
struct RouterService {
    app: Router,
    peer: SocketAddr,
    body_read_timeout: BodyReadTimeout,
}

impl hyper::service::Service<Request<Incoming>> for RouterService {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(ConnectInfo(self.peer));
        req.extensions_mut().insert(self.body_read_timeout);
        // A Router is always ready (axum documents it), so no poll_ready.
        tower_service::Service::call(&mut self.app.clone(), req)
    }
}

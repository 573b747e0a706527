//! The one pooled HTTP client every backend shares: HTTP/1.1 connections
//! (TLS by rustls with the webpki roots for `https://` engines) kept per
//! engine, with requests built here from URLs parsed once per backend.
//!
//! Not reqwest, which the consumer side keeps: for each request reqwest
//! re-parses the URL twice (its redirect policy and its response), checks
//! proxies and runs a retry layer, which together cost a node more per task
//! than its own task pipeline did (BENCHMARKS.md, "Node cost per task").
//! A backend call follows no redirect and uses no proxy (`HTTP_PROXY` is
//! not read): the engine is the operator's own server, named by its URL.
//!
//! Not hyper-util's pooled client either, which drives every connection
//! from a task of its own: each exchange then wakes that task and is woken
//! back, and the pool's bookkeeping hashes its key twice per request. Here
//! a connection is driven by the task that uses it: the request's task
//! polls the connection beside its own work (sending, the answer's head,
//! each read of the body) and, once the body has been read to its end,
//! parks it in the pool unpolled. At checkout a parked connection is polled
//! once: one the engine closed in the meantime ends there and is dropped.
//! A request that a reused connection never wrote (it closed just then) is
//! sent once more on a new connection; one that was written is never sent
//! twice. A body left unread closes its connection.
//!
//! A request has one deadline for the whole exchange: connecting, the
//! answer's head and every read of its body; one timer keeps it, started
//! with the request and polled beside each of those steps.

use super::beside::{before, driven};
use super::error::BackendError;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderName, HeaderValue, USER_AGENT};
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, Method, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Waker};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

/// A parked connection older than this is closed at the next checkout.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Parked connections kept per engine; more are closed.
const MAX_IDLE_PER_ENGINE: usize = 64;

type Stream = MaybeHttpsStream<TokioIo<TcpStream>>;
type Sender = SendRequest<Full<Bytes>>;
/// Boxed: it holds the TLS state and the read and write buffers, kilobytes
/// that would otherwise be copied each time a connection changes hands.
type Driver = Pin<Box<Connection<Stream, Full<Bytes>>>>;

/// Where a connection goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Engine {
    https: bool,
    authority: Authority,
}

impl Engine {
    fn of(uri: &Uri) -> Result<Self, BackendError> {
        match (uri.scheme_str(), uri.authority()) {
            (Some(scheme @ ("http" | "https")), Some(authority)) => Ok(Self {
                https: scheme == "https",
                authority: authority.clone(),
            }),
            _ => Err(BackendError::InvalidRequest(
                "the backend URL must be http:// or https:// with a host".into(),
            )),
        }
    }
}

/// One connection: the handle requests go through, and the future that
/// does its I/O (`None` once it ended).
struct Link {
    engine: Engine,
    send: Sender,
    conn: Option<Driver>,
}

impl Link {
    /// Whether a parked connection can take a request: polled once, it
    /// reads what arrived meanwhile, and ends if the engine closed it.
    fn alive(&mut self) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        if self.send.is_closed() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        conn.as_mut().poll(&mut cx).is_pending()
    }
}

/// The request's one timer: a deadline, polled beside each step of the
/// exchange and never re-armed.
type Deadline = Pin<Box<Sleep>>;

/// The parked connections of one engine, each with when it was parked.
type Parked = (Engine, Vec<(Link, Instant)>);

/// The parked connections, by engine: a list searched from the front (a
/// node has a handful of engines at most, and comparing two authorities
/// costs less than hashing one).
struct Pool {
    connector: HttpsConnector<HttpConnector>,
    parked: Mutex<Vec<Parked>>,
}

/// The shared pool.
fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(Pool::new)
}

impl Pool {
    /// An empty pool whose connector speaks HTTP and HTTPS (webpki roots).
    fn new() -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Self {
            connector,
            parked: Mutex::default(),
        }
    }

    /// The lists, also after a panic elsewhere (every change is one push or pop).
    fn lock(&self) -> MutexGuard<'_, Vec<Parked>> {
        crate::sync::lock(&self.parked)
    }

    /// The most recently parked live connection to `engine`, if any.
    fn checkout(&self, engine: &Engine) -> Option<Link> {
        loop {
            let (mut link, since) = self.lock().iter_mut().find(|(e, _)| e == engine)?.1.pop()?;
            // Checked outside the lock: the poll may read from the socket.
            if since.elapsed() < IDLE_TIMEOUT && link.alive() {
                return Some(link);
            }
        }
    }

    /// Parks a connection whose last answer was read to its end.
    fn park(&self, link: Link) {
        if link.conn.is_none() || link.send.is_closed() {
            return;
        }
        let mut parked = self.lock();
        // Taken under the lock, so the lists stay in time order.
        let now = Instant::now();
        let index = match parked.iter().position(|(e, _)| *e == link.engine) {
            Some(index) => index,
            None => {
                parked.push((link.engine.clone(), Vec::new()));
                parked.len() - 1
            }
        };
        let list = &mut parked[index].1;
        // Parked in time order (pushed at the back, taken from the back):
        // the idle ones are at the front, and the first fresh one ends them.
        let idle = list
            .iter()
            .take_while(|(_, since)| now.saturating_duration_since(*since) >= IDLE_TIMEOUT)
            .count();
        list.drain(..idle);
        if list.len() < MAX_IDLE_PER_ENGINE {
            list.push((link, now));
        }
    }

    /// A new connection to the engine of `uri`.
    async fn connect(&self, engine: Engine, uri: &Uri) -> Result<Link, BackendError> {
        let stream = self
            .connector
            .clone()
            .call(uri.clone())
            .await
            .map_err(|e| BackendError::Unreachable(crate::outbound::root_cause(&*e)))?;
        let (send, conn) = hyper::client::conn::http1::handshake(stream)
            .await
            .map_err(|e| BackendError::Unreachable(crate::outbound::root_cause(&e)))?;
        Ok(Link {
            engine,
            send,
            conn: Some(Box::pin(conn)),
        })
    }

    /// Sends `request` (origin-form, with its `Host`) to the engine of
    /// `target`: on a parked connection when there is one, else on a new
    /// one; again on a new one when a parked connection closed before
    /// writing it.
    async fn exchange(
        &self,
        target: &Target,
        mut request: http::Request<Full<Bytes>>,
    ) -> Result<(http::Response<Incoming>, Link), BackendError> {
        let mut reused = self.checkout(&target.engine);
        loop {
            let fresh = reused.is_none();
            let mut link = match reused.take() {
                Some(link) => link,
                // Boxed: connecting holds a stream that may be TLS, and
                // this future is moved by every request, most of which
                // take a parked connection.
                None => Box::pin(self.connect(target.engine.clone(), &target.uri)).await?,
            };
            let outcome = match driven(&mut link.conn, link.send.ready()).await {
                Err(e) => Err((e, Some(request))),
                Ok(()) => driven(&mut link.conn, link.send.try_send_request(request))
                    .await
                    .map_err(|mut e| {
                        let unsent = e.take_message();
                        (e.into_error(), unsent)
                    }),
            };
            match outcome {
                Ok(response) => return Ok((response, link)),
                Err((_, Some(unsent))) if !fresh => request = unsent,
                Err((e, _)) => {
                    return Err(BackendError::Unreachable(crate::outbound::root_cause(&e)));
                }
            }
        }
    }
}

/// An engine's URL worked out once per backend, not per request: what the
/// connector dials, which parked connections may carry it, the request
/// target a server is sent and the `Host` header.
#[derive(Debug)]
pub(crate) struct Target {
    uri: Uri,
    engine: Engine,
    /// The path and query alone (origin form).
    origin: Uri,
    host: HeaderValue,
}

/// A URL parsed for the pool, or why it cannot be used. Shared: a request
/// holds a pointer to it, not a copy.
pub(crate) fn parse_url(url: &str) -> Result<Arc<Target>, BackendError> {
    let uri: Uri = url
        .parse()
        .map_err(|_| BackendError::InvalidRequest("the backend URL is not a valid URL".into()))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(Arc::new(Target {
            engine: Engine::of(&uri)?,
            origin: origin_form(&uri),
            host: host(&uri)?,
            uri,
        })),
        _ => Err(BackendError::InvalidRequest(
            "the backend URL must be http:// or https:// with a host".into(),
        )),
    }
}

/// One request to an engine, built up like reqwest's builder.
#[derive(Debug)]
pub(crate) struct BackendRequest {
    method: Method,
    target: Result<Arc<Target>, BackendError>,
    headers: HeaderMap,
    body: Bytes,
    timeout: Duration,
}

impl BackendRequest {
    /// `method` at `target` (a parse failure is reported when sent), with
    /// the node's `User-Agent` and the whole exchange bounded by `timeout`.
    pub fn new(
        method: Method,
        target: Result<Arc<Target>, BackendError>,
        timeout: Duration,
    ) -> Self {
        let mut headers = HeaderMap::with_capacity(4);
        headers.insert(USER_AGENT, user_agent());
        Self {
            method,
            target,
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
                self.target = Err(BackendError::InvalidRequest(
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
                self.target = Err(BackendError::InvalidRequest(
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
        let mut deadline = Box::pin(tokio::time::sleep(self.timeout));
        let target = self.target?;
        let mut request = http::Request::new(Full::new(self.body));
        *request.method_mut() = self.method;
        *request.uri_mut() = target.origin.clone();
        *request.headers_mut() = self.headers;
        request.headers_mut().insert(HOST, target.host.clone());
        let (response, link) = before(&mut deadline, pool().exchange(&target, request))
            .await
            .ok_or(BackendError::Timeout(timeout_ms))??;
        let (head, body) = response.into_parts();
        Ok(BackendResponse {
            status: head.status,
            headers: head.headers,
            body,
            link: Some(link),
            deadline,
            timeout_ms,
        })
    }
}

/// The request target a server is sent: the path and query alone.
fn origin_form(uri: &Uri) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = Some(
        uri.path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    Uri::from_parts(parts).unwrap_or_default()
}

/// `Host`: the host, and the port unless it is the scheme's own (no user
/// name or password, which a URL's authority may hold).
fn host(uri: &Uri) -> Result<HeaderValue, BackendError> {
    let invalid = || BackendError::InvalidRequest("the backend URL's host is not valid".into());
    let default_port = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    // Usually the authority is already the answer: no user name, and a port
    // only when it is not the scheme's own (no formatting per request).
    if let Some(authority) = uri.authority() {
        if !authority.as_str().contains('@') && authority.port_u16() != Some(default_port) {
            return HeaderValue::from_str(authority.as_str()).map_err(|_| invalid());
        }
    }
    let name = uri.host().unwrap_or_default();
    let value = match uri.port_u16() {
        Some(port) if port != default_port => HeaderValue::from_str(&format!("{name}:{port}")),
        _ => HeaderValue::from_str(name),
    };
    value.map_err(|_| invalid())
}

fn user_agent() -> HeaderValue {
    HeaderValue::from_static(concat!("iicp-node/", env!("CARGO_PKG_VERSION")))
}

/// An engine's answer whose body is read piece by piece, under the
/// request's deadline.
pub(crate) struct BackendResponse {
    pub status: http::StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    /// The connection, driven while the body is read, parked at its end.
    link: Option<Link>,
    deadline: Deadline,
    timeout_ms: u64,
}

impl std::fmt::Debug for BackendResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl BackendResponse {
    /// The next piece of the body, `None` at its end. Cancel-safe.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, BackendError> {
        loop {
            let frame = match self.link.as_mut() {
                Some(link) => {
                    before(
                        &mut self.deadline,
                        driven(&mut link.conn, self.body.frame()),
                    )
                    .await
                }
                None => before(&mut self.deadline, self.body.frame()).await,
            }
            .ok_or(BackendError::Timeout(self.timeout_ms))?;
            match frame {
                None => {
                    if let Some(link) = self.link.take() {
                        pool().park(link);
                    }
                    return Ok(None);
                }
                Some(Err(e)) => {
                    self.link = None;
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

    /// What the test engine does with the n-th request on a connection.
    #[derive(Clone, Copy)]
    enum Then {
        /// Answers `ok` and keeps the connection.
        Answer,
        /// Answers with a 64 KiB body and keeps the connection.
        AnswerLong,
        /// Answers `ok`, then closes the connection (an engine dropping an
        /// idle keep-alive connection, announced by nothing).
        AnswerAndClose,
        /// Reads the request and closes without answering.
        Close,
        /// Reads the request and answers nothing until the client closes.
        Stall,
        /// Sends the head and 2 of 10 body bytes, then nothing until the
        /// client closes.
        StallInBody,
    }

    /// A blocking HTTP/1.1 engine on a thread: each connection follows
    /// `script` request by request (the last step repeats).
    struct TestEngine {
        addr: std::net::SocketAddr,
        /// The request heads it read.
        heads: std::sync::Arc<Mutex<Vec<String>>>,
        /// The connections it accepted.
        accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
        /// Told each time it closed a connection.
        closed: std::sync::mpsc::Receiver<()>,
    }

    impl TestEngine {
        fn accepted(&self) -> usize {
            self.accepted.load(std::sync::atomic::Ordering::SeqCst)
        }
        fn requests(&self) -> usize {
            self.heads.lock().unwrap().len()
        }
    }

    fn engine(script: Vec<Then>) -> TestEngine {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = std::sync::Arc::new(Mutex::new(Vec::new()));
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (closed_tx, closed) = std::sync::mpsc::channel();
        let (h, a) = (heads.clone(), accepted.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                a.fetch_add(1, Ordering::SeqCst);
                let (h, script, closed_tx) = (h.clone(), script.clone(), closed_tx.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut writer = stream;
                    for n in 0.. {
                        let mut head = String::new();
                        let mut length = 0;
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return; // the client closed it
                            }
                            if let Some(v) =
                                line.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                length = v.trim().parse().unwrap();
                            }
                            if line == "\r\n" {
                                break;
                            }
                            head.push_str(&line);
                        }
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).unwrap();
                        h.lock().unwrap().push(head);
                        let step = script[n.min(script.len() - 1)];
                        let answer = match step {
                            Then::Close => None,
                            Then::Stall | Then::StallInBody => {
                                if matches!(step, Then::StallInBody) {
                                    let _ = write!(
                                        writer,
                                        "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nok"
                                    );
                                }
                                let _ = reader.read_line(&mut String::new()); // until closed
                                return;
                            }
                            Then::AnswerLong => Some("x".repeat(64 * 1024)),
                            Then::Answer | Then::AnswerAndClose => Some("ok".to_owned()),
                        };
                        if let Some(body) = answer {
                            let _ = write!(
                                writer,
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            );
                        }
                        if matches!(step, Then::Close | Then::AnswerAndClose) {
                            let _ = writer.shutdown(std::net::Shutdown::Both);
                            let _ = closed_tx.send(());
                            return;
                        }
                    }
                });
            }
        });
        TestEngine {
            addr,
            heads,
            accepted,
            closed,
        }
    }

    async fn post(addr: std::net::SocketAddr, path: &str) -> Result<(Bytes, bool), BackendError> {
        BackendRequest::new(
            Method::POST,
            parse_url(&format!("http://{addr}{path}")),
            Duration::from_secs(10),
        )
        .json(&serde_json::json!({"model": "m"}))
        .send()
        .await?
        .read_capped(1024)
        .await
    }

    /// Waits for the engine to close a connection, then lets the runtime
    /// read its sockets' events once (`yield_now` polls the I/O driver).
    async fn closed_by_engine(closed: &std::sync::mpsc::Receiver<()>) {
        while closed.try_recv().is_err() {
            tokio::task::yield_now().await;
        }
        tokio::task::yield_now().await;
    }

    #[tokio::test]
    async fn one_connection_serves_request_after_request_in_origin_form() {
        let e = engine(vec![Then::Answer]);
        for _ in 0..3 {
            let answer = post(e.addr, "/v1/chat/completions?x=1").await.unwrap();
            assert_eq!(answer, (Bytes::from("ok"), true));
        }
        assert_eq!((e.accepted(), e.requests()), (1, 3));
        let head = e.heads.lock().unwrap()[0].to_ascii_lowercase();
        assert!(
            head.starts_with("post /v1/chat/completions?x=1 http/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains(&format!("host: {}\r\n", e.addr)), "{head}");
        assert!(head.contains("user-agent: iicp-node/"), "{head}");
    }

    #[tokio::test]
    async fn parking_closes_the_connections_idle_too_long_and_keeps_the_rest_in_order() {
        let e = engine(vec![Then::Answer]);
        let pool = Pool::new();
        let target = parse_url(&format!("http://{}/", e.addr)).unwrap();
        let mut links = Vec::new();
        for _ in 0..3 {
            links.push(
                pool.connect(target.engine.clone(), &target.uri)
                    .await
                    .unwrap(),
            );
        }
        tokio::time::pause();
        let mut links = links.into_iter();
        pool.park(links.next().unwrap());
        tokio::time::advance(Duration::from_secs(60)).await;
        pool.park(links.next().unwrap());
        tokio::time::advance(Duration::from_secs(31)).await;
        // The first has been idle 91 s, past IDLE_TIMEOUT; the second 31 s.
        pool.park(links.next().unwrap());
        let ages: Vec<Duration> = pool.lock()[0]
            .1
            .iter()
            .map(|(_, since)| since.elapsed())
            .collect();
        assert_eq!(ages, [Duration::from_secs(31), Duration::ZERO]);
    }

    #[tokio::test]
    async fn a_parked_connection_the_engine_closed_is_replaced() {
        let e = engine(vec![Then::AnswerAndClose]);
        assert!(post(e.addr, "/a").await.is_ok());
        closed_by_engine(&e.closed).await;
        assert_eq!(post(e.addr, "/b").await.unwrap().0, Bytes::from("ok"));
        assert_eq!(e.accepted(), 2);
        assert_eq!(e.requests(), 2, "each request sent once");
    }

    #[tokio::test]
    async fn a_request_the_engine_read_is_never_sent_twice() {
        // The first request is answered, the second (on the same, reused
        // connection) read and dropped: it fails, and is not sent again.
        let e = engine(vec![Then::Answer, Then::Close]);
        assert!(post(e.addr, "/a").await.is_ok());
        let err = post(e.addr, "/b").await.unwrap_err();
        assert!(matches!(err, BackendError::Unreachable(_)), "{err:?}");
        assert_eq!((e.accepted(), e.requests()), (1, 2));
    }

    #[tokio::test]
    async fn a_body_left_unread_closes_its_connection() {
        let e = engine(vec![Then::AnswerLong]);
        let (body, complete) = post(e.addr, "/a").await.unwrap();
        assert_eq!((body.len(), complete), (1024, false));
        let (_, complete) = post(e.addr, "/b").await.unwrap();
        assert!(!complete);
        assert_eq!(e.accepted(), 2);
    }

    /// The request's one deadline covers the answer's head and its body.
    #[tokio::test]
    async fn an_engine_that_stalls_before_or_in_the_answer_times_out() {
        let request = |addr| {
            BackendRequest::new(
                Method::POST,
                parse_url(&format!("http://{addr}/v1/chat/completions")),
                Duration::from_secs(1),
            )
        };
        let e = engine(vec![Then::Stall]);
        let err = request(e.addr).send().await.unwrap_err();
        assert!(matches!(err, BackendError::Timeout(1000)), "{err:?}");

        let e = engine(vec![Then::StallInBody]);
        let answer = request(e.addr).send().await.unwrap();
        assert_eq!(answer.status, 200);
        let err = answer.read_capped(1024).await.unwrap_err();
        assert!(matches!(err, BackendError::Timeout(1000)), "{err:?}");
    }

    #[test]
    fn a_key_that_is_not_a_header_value_fails_the_request_not_the_process() {
        let req = BackendRequest::new(
            Method::GET,
            parse_url("http://127.0.0.1:1/models"),
            Duration::from_secs(1),
        )
        .bearer("line\nbreak");
        assert!(matches!(req.target, Err(BackendError::InvalidRequest(_))));
        let req = BackendRequest::new(
            Method::GET,
            parse_url("http://127.0.0.1:1/models"),
            Duration::from_secs(1),
        )
        .bearer("sk-ok");
        assert!(req.headers[AUTHORIZATION].is_sensitive());
        assert_eq!(req.headers[AUTHORIZATION], "Bearer sk-ok");
    }

    #[test]
    fn the_host_header_names_the_host_and_a_port_that_is_not_the_schemes() {
        for (url, expected) in [
            ("http://example.com/v1", "example.com"),
            ("http://example.com:80/v1", "example.com"),
            ("http://example.com:8080/v1", "example.com:8080"),
            ("https://example.com:443/v1", "example.com"),
            ("https://example.com:80/v1", "example.com:80"),
            ("http://user:secret@example.com:8080/v1", "example.com:8080"),
            ("http://user@example.com/v1", "example.com"),
            ("http://[::1]:11434/v1", "[::1]:11434"),
            ("http://127.0.0.1:443/v1", "127.0.0.1:443"),
        ] {
            assert_eq!(parse_url(url).unwrap().host, expected, "{url}");
        }
    }
}

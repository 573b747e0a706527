//! The floor under the node's cost per task (issue 17, scripts/bench/node.sh): the
//! least a process can do that takes an HTTP request and makes one to a backend,
//! with the same hyper pieces and runtime as `iicp-node serve`. No IICP: no
//! envelope, no JSON, no admission, no replay window, no log line. The body goes to
//! the backend as it came and the backend's answer comes back as it went.
//!
//! ```sh
//! proxy_floor PORT BACKEND_URL MODE
//! ```
//!
//! MODE is one of
//! - `fixed`: answers every request itself with a short fixed body (one HTTP leg:
//!   what hyper's server alone costs);
//! - `pooled`: forwards to BACKEND_URL through hyper-util's pooled client, as the
//!   node's backends do (src/backends/client.rs): each backend connection is driven
//!   by a task of its own, so every exchange wakes a second task;
//! - `inline`: forwards over a backend connection owned by the inbound connection
//!   and driven inside its task (one task per exchange, no cross-task wake-up).
//!
//! Not a product: it follows no redirect, checks nothing and reports a failed
//! backend as a bare 502.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: iicp_client::alloc::NodeAllocator = iicp_client::alloc::NodeAllocator;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};

type Pool = Client<HttpConnector, Full<Bytes>>;
type Answer = Response<Full<Bytes>>;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Fixed,
    Pooled,
    Inline,
}

/// One backend connection and the future that drives it.
struct Leg {
    send: SendRequest<Full<Bytes>>,
    conn: Connection<TokioIo<TcpStream>, Full<Bytes>>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, port, backend, mode] = args.as_slice() else {
        eprintln!("usage: proxy_floor PORT BACKEND_URL fixed|pooled|inline");
        std::process::exit(2);
    };
    let mode = match mode.as_str() {
        "fixed" => Mode::Fixed,
        "pooled" => Mode::Pooled,
        "inline" => Mode::Inline,
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    };
    let backend: Uri = backend.parse().expect("BACKEND_URL is a URL");
    let port: u16 = port.parse().expect("PORT is a number");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(serve(port, backend, mode));
}

async fn serve(port: u16, backend: Uri, mode: Mode) {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let pool: Pool = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build(http);
    let backend = Arc::new(backend);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (pool, backend) = (pool.clone(), backend.clone());
        let leg: Arc<Mutex<Option<Leg>>> = Arc::new(Mutex::new(None));
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (pool, backend, leg) = (pool.clone(), backend.clone(), leg.clone());
                async move {
                    let answer = match mode {
                        Mode::Fixed => Ok(fixed()),
                        Mode::Pooled => pooled(&pool, &backend, req).await,
                        Mode::Inline => inline(&leg, &backend, req).await,
                    };
                    Ok::<_, Infallible>(answer.unwrap_or_else(|_| bad_gateway()))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn fixed() -> Answer {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(b"{\"ok\":true}")))
        .expect("a fixed answer")
}

fn bad_gateway() -> Answer {
    let mut answer = Response::new(Full::new(Bytes::new()));
    *answer.status_mut() = StatusCode::BAD_GATEWAY;
    answer
}

/// The request to send on: the same body, to the backend's URL.
async fn outbound(backend: &Uri, req: Request<Incoming>) -> Result<Request<Full<Bytes>>, ()> {
    let body = req.into_body().collect().await.map_err(drop)?.to_bytes();
    Request::post(backend.clone())
        .header(header::HOST, backend.authority().map_or("", |a| a.as_str()))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(drop)
}

fn relay(status: StatusCode, body: Bytes) -> Answer {
    let mut answer = Response::new(Full::new(body));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("a header"),
    );
    answer
}

async fn pooled(pool: &Pool, backend: &Uri, req: Request<Incoming>) -> Result<Answer, ()> {
    let req = outbound(backend, req).await?;
    let (head, body) = pool.request(req).await.map_err(drop)?.into_parts();
    let body = body.collect().await.map_err(drop)?.to_bytes();
    Ok(relay(head.status, body))
}

async fn inline(
    slot: &Mutex<Option<Leg>>,
    backend: &Uri,
    req: Request<Incoming>,
) -> Result<Answer, ()> {
    let req = outbound(backend, req).await?;
    let taken = slot.lock().expect("not poisoned").take();
    let Leg { mut send, mut conn } = match taken {
        Some(leg) if !leg.send.is_closed() => leg,
        _ => connect(backend).await?,
    };
    let exchange = async {
        let (head, body) = send.send_request(req).await.map_err(drop)?.into_parts();
        let body = body.collect().await.map_err(drop)?.to_bytes();
        Ok::<_, ()>((head.status, body))
    };
    // The connection is polled beside the exchange, in this task; it only ends
    // first when the backend closed it.
    let answer = tokio::select! {
        biased;
        done = exchange => done,
        _ = &mut conn => return Err(()),
    }?;
    *slot.lock().expect("not poisoned") = Some(Leg { send, conn });
    Ok(relay(answer.0, answer.1))
}

async fn connect(backend: &Uri) -> Result<Leg, ()> {
    let host = backend.host().ok_or(())?;
    let port = backend.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host, port)).await.map_err(drop)?;
    let _ = stream.set_nodelay(true);
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(drop)?;
    Ok(Leg { send, conn })
}

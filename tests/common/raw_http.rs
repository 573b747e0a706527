//! A hostile client's view of a server: raw TCP, hand-written HTTP/1.1, and
//! bounded reads. Every wait here is bounded by [`SAFETY`], so a server that
//! never answers or never closes fails the test instead of hanging it.

use serde_json::Value;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest any single wait in these helpers may take.
pub const SAFETY: Duration = Duration::from_secs(10);

/// Largest answer read (the servers under test answer in a few KiB).
const MAX_READ: usize = 1024 * 1024;

/// An HTTP answer as read off the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header lines, names lower-cased: `name: value`.
    pub headers: Vec<String>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|h| {
            let (n, v) = h.split_once(':')?;
            (n == name).then(|| v.trim())
        })
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "status {}: body is not JSON: {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Connects to `addr` (panics on failure).
pub async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect")
}

/// Connects to `addr` from the local address `from` (any of 127.0.0.0/8
/// on loopback: many sources for one test). Panics on failure.
pub async fn connect_from(from: std::net::IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = match from {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .expect("socket");
    socket
        .bind(SocketAddr::new(from, 0))
        .expect("bind the source");
    socket.connect(addr).await.expect("connect")
}

/// `GET path` with keep-alive, written in one piece.
pub async fn send_get(stream: &mut TcpStream, path: &str) -> io::Result<()> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await
}

/// `POST path` with `body` as JSON and keep-alive, written in one piece.
pub async fn send_post(stream: &mut TcpStream, path: &str, body: &Value) -> io::Result<()> {
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await
}

/// Reads one answer with a `Content-Length` body. `None` when the
/// connection ends (or resets) before a whole answer, or after [`SAFETY`].
pub async fn read_response(stream: &mut TcpStream) -> Option<RawResponse> {
    tokio::time::timeout(SAFETY, read_response_unbounded(stream))
        .await
        .ok()
        .flatten()
}

async fn read_response_unbounded(stream: &mut TcpStream) -> Option<RawResponse> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_READ || !read_more(stream, &mut buf).await {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<String> = lines
        .map(|l| match l.split_once(':') {
            Some((n, v)) => format!("{}:{v}", n.to_ascii_lowercase()),
            None => l.to_owned(),
        })
        .collect();
    let length: usize = headers
        .iter()
        .find_map(|h| h.strip_prefix("content-length:"))
        .map_or(Some(0), |v| v.trim().parse().ok())?;
    if length > MAX_READ {
        return None;
    }
    let mut body = buf.split_off(head_end + 4);
    while body.len() < length {
        if !read_more(stream, &mut body).await {
            return None;
        }
    }
    body.truncate(length);
    Some(RawResponse {
        status,
        headers,
        body,
    })
}

/// Reads what arrives; false at the end of the stream or on an error.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// Reads until the server closes the connection (end of stream or reset)
/// and returns what arrived before; `None` if it is still open after
/// [`SAFETY`].
pub async fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let all = async {
        let mut buf = Vec::new();
        while buf.len() <= MAX_READ && read_more(stream, &mut buf).await {}
        buf
    };
    tokio::time::timeout(SAFETY, all).await.ok()
}

//! The accept loop's limits, node and directory alike (issue #11 item 2):
//! silent connections and unfinished headers are closed after the header
//! timeout, idle keep-alive connections too, a trickled body gets a JSON 408
//! and a close, connections past the cap are shed at once, and shutdown
//! still closes what is open. Also the 413 message (item 11).
//!
//! Hostile clients are raw TCP sockets; every wait is bounded (SAFETY), so
//! a server without these limits fails here instead of hanging.

mod common;

use common::raw_http::{SAFETY, connect, read_response, read_until_closed, send_get};
use iicp_client::directory::{Directory, DirectoryConfig, RunningDirectory};
use iicp_client::{IicpNode, NodeConfig, RunningNode, ServerLimits, TaskContext, TaskRequest};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The configured timeouts the tests wait out.
const SHORT: Duration = Duration::from_millis(200);
/// Longer than any test runs: this limit must not be what closes a connection.
const LONG: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy)]
enum Kind {
    Node,
    Directory,
}

const KINDS: [Kind; 2] = [Kind::Node, Kind::Directory];

/// A real node (registration skipped) or a real directory on loopback.
enum Server {
    Node(Box<RunningNode>),
    Directory(RunningDirectory),
}

impl Server {
    async fn start(kind: Kind, server_limits: ServerLimits, max_body_bytes: usize) -> Self {
        match kind {
            Kind::Node => {
                let config = NodeConfig {
                    host: "127.0.0.1".into(),
                    port: 0,
                    skip_registration: true,
                    models: vec!["m".into()],
                    max_body_bytes,
                    server_limits,
                    ..NodeConfig::default()
                };
                let node = IicpNode::new(config)
                    .start(|_req: TaskRequest, _ctx: TaskContext| async { Ok(json!({"ok": true})) })
                    .await
                    .expect("node starts");
                Self::Node(Box::new(node))
            }
            Kind::Directory => {
                let config = DirectoryConfig {
                    skip_liveness_check: true,
                    max_body_bytes,
                    server_limits,
                    ..DirectoryConfig::default()
                };
                let dir = Directory::start(config, "127.0.0.1:0".parse().unwrap())
                    .await
                    .expect("directory starts");
                Self::Directory(dir)
            }
        }
    }

    async fn with_limits(kind: Kind, limits: ServerLimits) -> Self {
        Self::start(kind, limits, 64 * 1024).await
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Self::Node(n) => n.local_addr(),
            Self::Directory(d) => d.local_addr(),
        }
    }

    /// A route that reads a JSON body.
    fn body_path(&self) -> &'static str {
        match self {
            Self::Node(_) => "/v1/task",
            Self::Directory(_) => "/v1/register",
        }
    }

    /// Shuts down, failing the test if that does not finish within SAFETY.
    async fn stop(self) {
        let stop = async {
            match self {
                Self::Node(n) => n.shutdown().await,
                Self::Directory(d) => d.shutdown().await,
            }
        };
        tokio::time::timeout(SAFETY, stop)
            .await
            .expect("shutdown finishes");
    }
}

fn limits(header: Duration, body: Duration, max_connections: usize) -> ServerLimits {
    let mut limits = ServerLimits::default();
    limits.header_read_timeout = header;
    limits.body_read_timeout = body;
    limits.max_connections = max_connections;
    limits
}

#[tokio::test]
async fn silent_connections_and_unfinished_headers_are_closed() {
    let cases: [(&str, &[u8]); 2] = [
        ("a silent connection", b""),
        (
            "unfinished headers",
            b"GET /iicp/health HTTP/1.1\r\nHost: test\r\nX-Slow: ",
        ),
    ];
    for kind in KINDS {
        let server = Server::with_limits(kind, limits(SHORT, LONG, 64)).await;
        for (what, sent) in cases {
            let mut stream = connect(server.addr()).await;
            stream.write_all(sent).await.unwrap();
            let got = read_until_closed(&mut stream).await;
            assert!(
                got.is_some(),
                "{kind:?}: {what} is still open {SAFETY:?} after a {SHORT:?} header timeout"
            );
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    for kind in KINDS {
        let server = Server::with_limits(kind, limits(SHORT, LONG, 64)).await;
        let mut stream = connect(server.addr()).await;
        send_get(&mut stream, "/iicp/health").await.unwrap();
        let answer = read_response(&mut stream).await.expect("health answers");
        assert_eq!(answer.status, 200, "{kind:?}");
        assert_ne!(answer.header("connection"), Some("close"), "{kind:?}");
        // The connection stays open for a next request; nobody sends one.
        let got = read_until_closed(&mut stream).await;
        assert_eq!(
            got.as_deref(),
            Some(&b""[..]),
            "{kind:?}: an idle keep-alive connection must be closed (silently) after the header timeout"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_trickled_body_gets_408_json_and_the_connection_closes() {
    for kind in KINDS {
        let server = Server::with_limits(kind, limits(LONG, SHORT, 64)).await;
        let mut stream = connect(server.addr()).await;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
             Content-Length: 100000\r\n\r\n{{",
            server.body_path()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // One byte every 50 ms until the server answers (bounded: 10 s).
        let mut answered = false;
        for _ in 0..200 {
            let mut probe = [0u8; 1];
            let wait = tokio::time::timeout(Duration::from_millis(50), stream.peek(&mut probe));
            if wait.await.is_ok() {
                answered = true;
                break;
            }
            if stream.write_all(b" ").await.is_err() {
                break;
            }
        }
        assert!(answered, "{kind:?}: no answer to a body trickled for 10 s");
        let answer = read_response(&mut stream).await.expect("a whole answer");
        assert_eq!(answer.status, 408, "{kind:?}");
        assert_eq!(
            answer.json()["error"]["code"],
            "request_timeout",
            "{kind:?}"
        );
        assert_eq!(answer.header("connection"), Some("close"), "{kind:?}");
        assert!(
            read_until_closed(&mut stream).await.is_some(),
            "{kind:?}: the connection stays open after the 408"
        );
        server.stop().await;
    }
}

/// True when `GET /iicp/health` on a new connection answers 200.
async fn health_answers(addr: SocketAddr) -> bool {
    let mut stream = connect(addr).await;
    if send_get(&mut stream, "/iicp/health").await.is_err() {
        return false;
    }
    read_response(&mut stream)
        .await
        .is_some_and(|r| r.status == 200)
}

#[tokio::test]
async fn connections_past_the_cap_are_shed_and_slots_come_back() {
    const CAP: usize = 8;
    for kind in KINDS {
        let server = Server::with_limits(kind, limits(LONG, LONG, CAP)).await;
        let addr = server.addr();
        // CAP silent connections, each of which holds a slot (accepted in
        // order, before the next one).
        let mut held = Vec::new();
        for _ in 0..CAP {
            held.push(connect(addr).await);
        }
        let mut extra = connect(addr).await;
        let got = read_until_closed(&mut extra)
            .await
            .unwrap_or_else(|| panic!("{kind:?}: connection {} is not shed", CAP + 1));
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 503 "), "{kind:?}: {text:?}");
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        let body: serde_json::Value = serde_json::from_str(body).expect("JSON 503 body");
        assert_eq!(body["error"]["code"], "IICP-E005", "{kind:?}");
        drop(held);
        let mut recovered = false;
        for _ in 0..100 {
            if health_answers(addr).await {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            recovered,
            "{kind:?}: closed connections never gave back their slots"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn shutdown_closes_idle_and_silent_connections() {
    for kind in KINDS {
        let server = Server::with_limits(kind, limits(LONG, LONG, 64)).await;
        let mut silent = connect(server.addr()).await;
        let mut idle = connect(server.addr()).await;
        send_get(&mut idle, "/iicp/health").await.unwrap();
        assert_eq!(read_response(&mut idle).await.expect("health").status, 200);
        server.stop().await;
        for (what, stream) in [("silent", &mut silent), ("idle", &mut idle)] {
            assert!(
                read_until_closed(stream).await.is_some(),
                "{kind:?}: a {what} connection outlives shutdown"
            );
        }
    }
}

#[tokio::test]
async fn an_oversized_body_gets_413_naming_the_limit() {
    for kind in KINDS {
        let server = Server::start(kind, ServerLimits::default(), 1024).await;
        let url = format!("http://{}{}", server.addr(), server.body_path());
        let body = json!({"padding": "x".repeat(4096)});
        let resp = reqwest::Client::new()
            .post(url)
            .json(&body)
            .send()
            .await
            .expect("answer");
        let (status, body) = common::read(resp).await;
        assert_eq!(status, 413, "{kind:?}");
        assert_eq!(body["error"]["code"], "payload_too_large", "{kind:?}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("1024 bytes") && !message.contains("directory"),
            "{kind:?}: {message}"
        );
        server.stop().await;
    }
}

/// A running `iicp-node` server (stopped with SIGTERM when dropped).
struct Binary {
    child: std::process::Child,
    addr: SocketAddr,
    _home: tempfile::TempDir,
}

impl Binary {
    /// Starts `iicp-node <args>` with `env` and reads its address off the
    /// startup line (the word after `on`).
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        use std::io::{BufRead, BufReader};
        let home = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_iicp-node"))
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .env("IICP_HOME", home.path())
            .env_remove("IICP_DIRECTORY_SIGNING_KEY")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("binary starts");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let line = stderr
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("serving on") || l.contains("listening on"))
            .expect("a startup line");
        let addr = line
            .split_whitespace()
            .skip_while(|w| *w != "on")
            .nth(1)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("an address in {line:?}"));
        Self {
            child,
            addr,
            _home: home,
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_binary_takes_the_limits_from_flags_and_environment() {
    let cases: [&[&str]; 2] = [
        &["directory", "--listen", "127.0.0.1:0"],
        &[
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--skip-registration",
            "--backend-type",
            "echo",
            "--no-cx",
        ],
    ];
    for args in cases {
        let args = [args, &["--header-timeout-ms", "1000"]].concat();
        let server = Binary::start(&args, &[("IICP_MAX_CONNECTIONS", "1")]);
        let mut held = connect(server.addr).await;
        let mut extra = connect(server.addr).await;
        let shed = read_until_closed(&mut extra)
            .await
            .expect("the second is shed");
        assert!(
            String::from_utf8_lossy(&shed).starts_with("HTTP/1.1 503 "),
            "{}: IICP_MAX_CONNECTIONS=1 is applied",
            args[0]
        );
        assert!(
            read_until_closed(&mut held).await.is_some(),
            "{}: --header-timeout-ms closes the silent connection",
            args[0]
        );
    }
}

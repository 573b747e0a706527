//! The accept loop's limits, node and directory alike (issue #11 item 2):
//! silent connections and unfinished headers are closed after the header
//! timeout, idle keep-alive connections too, a trickled body gets a JSON 408
//! and a close, at the cap the connection waiting longest on its client
//! gives way (and a new one is shed only when every connection is busy),
//! and shutdown still closes what is open. Also the 413 message (item 11).
//! The attacks themselves, with a normal task during each: `hostile_clients.rs`.
//!
//! Hostile clients are raw TCP sockets; every wait is bounded (SAFETY), so
//! a server without these limits fails here instead of hanging.

mod common;

use common::raw_http::{SAFETY, connect, read_response, read_until_closed, send_get, send_post};
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
async fn at_the_cap_the_connection_waiting_longest_gives_way_and_slots_come_back() {
    const CAP: usize = 8;
    for kind in KINDS {
        let server = Server::with_limits(kind, limits(LONG, LONG, CAP)).await;
        let addr = server.addr();
        // CAP silent connections, each of which holds a slot (accepted in
        // order, before the next one): the first has waited longest.
        let mut held = Vec::new();
        for _ in 0..CAP {
            held.push(connect(addr).await);
        }
        assert!(
            health_answers(addr).await,
            "{kind:?}: a new client at the cap is served"
        );
        let got = read_until_closed(&mut held[0]).await;
        assert_eq!(
            got.as_deref(),
            Some(&b""[..]),
            "{kind:?}: the oldest silent connection is closed (without an answer) to make room"
        );
        drop(held);
        // The slots come back: CAP new connections are all open at once,
        // each answered twice (none evicted another).
        let mut burst = Vec::new();
        for _ in 0..CAP {
            let mut stream = connect(addr).await;
            send_get(&mut stream, "/iicp/health").await.unwrap();
            let status = read_response(&mut stream).await.map(|r| r.status);
            assert_eq!(status, Some(200), "{kind:?}: burst connection");
            burst.push(stream);
        }
        for stream in &mut burst {
            send_get(stream, "/iicp/health").await.unwrap();
            let status = read_response(stream).await.map(|r| r.status);
            assert_eq!(status, Some(200), "{kind:?}: a burst connection was closed");
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn when_every_connection_is_busy_a_new_one_is_shed_with_503() {
    const CAP: usize = 4;
    let (release, gate) = tokio::sync::watch::channel(false);
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<()>();
    let config = NodeConfig {
        host: "127.0.0.1".into(),
        port: 0,
        skip_registration: true,
        models: vec!["m".into()],
        max_concurrent: 2 * CAP as u32,
        server_limits: limits(LONG, LONG, CAP),
        ..NodeConfig::default()
    };
    let node = IicpNode::new(config)
        .start(move |_req: TaskRequest, _ctx: TaskContext| {
            let mut gate = gate.clone();
            let started = started_tx.clone();
            async move {
                let _ = started.send(());
                let _ = gate.wait_for(|open| *open).await;
                Ok(json!({"ok": true}))
            }
        })
        .await
        .expect("node starts");
    let addr = node.local_addr();
    // CAP tasks in flight, one per connection: every connection is busy.
    let mut busy = Vec::new();
    for _ in 0..CAP {
        let mut stream = connect(addr).await;
        let task = json!({"task_id": uuid::Uuid::new_v4().to_string(),
            "intent": "urn:iicp:intent:llm:chat:v1", "payload": {"text": "hi"}});
        send_post(&mut stream, "/v1/task", &task).await.unwrap();
        busy.push(stream);
    }
    for _ in 0..CAP {
        let began = tokio::time::timeout(SAFETY, started.recv()).await;
        assert!(matches!(began, Ok(Some(()))), "a task did not start");
    }
    let mut extra = connect(addr).await;
    let got = read_until_closed(&mut extra)
        .await
        .expect("the new connection is shed at once");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 503 "), "{text:?}");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    let body: serde_json::Value = serde_json::from_str(body).expect("JSON 503 body");
    assert_eq!(body["error"]["code"], "IICP-E005");
    // The busy ones were not evicted: each gets its answer.
    release.send(true).unwrap();
    for stream in &mut busy {
        let status = read_response(stream).await.map(|r| r.status);
        assert_eq!(status, Some(200), "a busy connection lost its task");
    }
    tokio::time::timeout(SAFETY, node.shutdown())
        .await
        .expect("shutdown finishes");
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
        // --header-timeout-ms: a silent connection is closed by it.
        let short = [args, &["--header-timeout-ms", "1000"]].concat();
        let server = Binary::start(&short, &[]);
        let mut silent = connect(server.addr).await;
        assert!(
            read_until_closed(&mut silent).await.is_some(),
            "{}: --header-timeout-ms closes the silent connection",
            args[0]
        );
        drop(server);
        // IICP_MAX_CONNECTIONS=1: a second client evicts the first (the
        // header timeout is far longer than the test waits).
        let long = [args, &["--header-timeout-ms", "600000"]].concat();
        let server = Binary::start(&long, &[("IICP_MAX_CONNECTIONS", "1")]);
        let mut held = connect(server.addr).await;
        assert!(
            health_answers(server.addr).await,
            "{}: the second client is served",
            args[0]
        );
        assert!(
            read_until_closed(&mut held).await.is_some(),
            "{}: IICP_MAX_CONNECTIONS=1 is applied: the first gives way",
            args[0]
        );
    }
}

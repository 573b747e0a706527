//! The directory on PostgreSQL (`--db postgres://…`, issue 19, first
//! increment): the real binary against a real server. Each test makes a
//! database of its own and drops it afterwards.
//!
//! Ignored by default: they need a server. `IICP_TEST_POSTGRES_URL` names
//! a role that may create databases; `.ci/run` starts a private cluster
//! (`scripts/postgres.sh start DIR` prints such a URL) and runs them with
//! `cargo test --test directory_postgres -- --ignored`.

mod common;

use common::node_bin::{directory_command, directory_process, free_port};
use common::watch::{Watched, run_bounded};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// The server the tests use (panics with what to do when it is not set).
fn server_url() -> url::Url {
    let raw = std::env::var("IICP_TEST_POSTGRES_URL").expect(
        "IICP_TEST_POSTGRES_URL: a postgres:// URL of a role that may create databases \
         (bash scripts/postgres.sh start DIR prints one; .ci/run does it)",
    );
    let url = url::Url::parse(&raw).expect("IICP_TEST_POSTGRES_URL is a URL");
    if let Some(pw) = url.password() {
        common::logs::secret(pw);
    }
    url
}

/// A database of one test's own, dropped when the value is.
struct TestDb {
    url: url::Url,
    name: String,
}

async fn admin(url: &url::Url) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url.as_str(), tokio_postgres::NoTls)
        .await
        .expect("connect to the test server");
    tokio::spawn(conn);
    client
}

impl TestDb {
    async fn new() -> Self {
        let server = server_url();
        let name = format!("iicp_t_{}", uuid::Uuid::new_v4().simple());
        admin(&server)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let mut url = server;
        url.set_path(&name);
        Self { url, name }
    }

    /// The URL of this database through `addr` instead of the server.
    fn via(&self, addr: std::net::SocketAddr) -> String {
        let mut url = self.url.clone();
        url.set_port(Some(addr.port())).unwrap();
        url.to_string()
    }

    fn server_addr(&self) -> String {
        format!(
            "{}:{}",
            self.url.host_str().unwrap(),
            self.url.port().unwrap_or(5432)
        )
    }

    async fn client(&self) -> tokio_postgres::Client {
        admin(&self.url).await
    }

    /// `SELECT version, count(*) FROM schema_migrations`.
    async fn migrations(&self) -> Vec<(i32, i64)> {
        self.client()
            .await
            .query(
                "SELECT version, count(*) FROM schema_migrations GROUP BY version ORDER BY version",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    async fn node_ids(&self) -> Vec<String> {
        self.client()
            .await
            .query("SELECT node_id FROM nodes ORDER BY node_id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let mut server = self.url.clone();
        server.set_path("postgres");
        let drop_sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // A runtime of its own: Drop may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(server.as_str(), tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client.batch_execute(&drop_sql).await;
                }
            });
        })
        .join();
    }
}

async fn get(base: &str, path: &str) -> Value {
    reqwest::get(format!("{base}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn post(base: &str, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    common::read(req.send().await.unwrap()).await
}

/// A registered node: what it needs to heartbeat.
struct Node {
    id: String,
    token: String,
    key: iicp_client::Secret,
    challenge: Option<String>,
}

impl Node {
    async fn register(base: &str) -> Self {
        let (status, ack) = post(
            base,
            "/v1/register",
            &common::registration("http://127.0.0.1:9", &["m"]),
            None,
        )
        .await;
        assert_eq!(status, 201, "{ack}");
        Self {
            id: ack["node_id"].as_str().unwrap().to_owned(),
            token: ack["node_token"].as_str().unwrap().to_owned(),
            key: iicp_client::Secret::new(ack["node_hmac_key"].as_str().unwrap_or_default()),
            challenge: None,
        }
    }

    /// One heartbeat, answering the last challenge; the status.
    async fn beat(&mut self, base: &str) -> u16 {
        let mut beat = json!({"node_id": self.id});
        if let Some(c) = &self.challenge {
            beat["challenge_response"] = json!(iicp_client::wire::heartbeat::challenge_response(
                &self.key, c
            ));
        }
        let (status, pong) = post(base, "/v1/heartbeat", &beat, Some(&self.token)).await;
        if status == 200 {
            self.challenge = pong["challenge"].as_str().map(str::to_owned);
        }
        status
    }
}

async fn discovered(base: &str) -> Vec<String> {
    let listed = get(base, &format!("/v1/discover?intent={}", common::CHAT)).await;
    listed["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_id"].as_str().unwrap().to_owned())
        .collect()
}

fn db_args(url: &str) -> Vec<&str> {
    vec!["--db", url, "--skip-liveness-check"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: IICP_TEST_POSTGRES_URL (.ci/run)"]
async fn a_restart_on_the_same_database_keeps_the_node_and_migrates_once() {
    let db = TestDb::new().await;
    let url = db.url.to_string();
    let port = free_port();
    let mut first = directory_process(port, &db_args(&url));
    let started = first.wait_for("listening on", Duration::from_secs(1));
    let mut shown = db.url.clone();
    shown.set_password(Some("***")).unwrap();
    assert!(
        started.contains(&format!("state PostgreSQL {shown} (0 nodes restored)")),
        "the startup line names the database without its password: {started}"
    );
    assert_eq!(first.count("PostgreSQL migration applied"), 1);
    let root = format!("http://127.0.0.1:{port}");
    let base = format!("{root}/api");
    assert_eq!(get(&root, "/iicp/health").await["persistence"], "postgres");
    let mut node = Node::register(&base).await;
    for _ in 0..2 {
        assert_eq!(node.beat(&base).await, 200);
    }
    assert_eq!(first.terminate(Duration::from_secs(30)), Some(0));
    assert_eq!(db.node_ids().await, [node.id.clone()]);

    let port = free_port();
    let mut second = directory_process(port, &db_args(&url));
    let started = second.wait_for("listening on", Duration::from_secs(1));
    assert!(started.contains("(1 nodes restored)"), "{started}");
    assert_eq!(
        second.count("PostgreSQL migration applied"),
        0,
        "{:#?}",
        second.lines()
    );
    let base = format!("http://127.0.0.1:{port}/api");
    assert_eq!(
        node.beat(&base).await,
        200,
        "the token still heartbeats after the restart"
    );
    assert_eq!(discovered(&base).await, [node.id.clone()]);
    assert_eq!(second.terminate(Duration::from_secs(30)), Some(0));
    assert_eq!(db.migrations().await, [(1, 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: IICP_TEST_POSTGRES_URL (.ci/run)"]
async fn two_directories_started_at_once_on_an_empty_database_both_start() {
    let db = TestDb::new().await;
    let url = db.url.to_string();
    let (a, b) = (free_port(), free_port());
    let mut first = Watched::start(directory_command(a, &db_args(&url)));
    let mut second = Watched::start(directory_command(b, &db_args(&url)));
    first.wait_for("listening on", Duration::from_secs(30));
    second.wait_for("listening on", Duration::from_secs(30));
    let applied =
        first.count("PostgreSQL migration applied") + second.count("PostgreSQL migration applied");
    assert_eq!(applied, 1, "one of them migrates");
    for port in [a, b] {
        let health = get(&format!("http://127.0.0.1:{port}"), "/iicp/health").await;
        assert_eq!(health["persistence"], "postgres");
    }
    assert_eq!(first.terminate(Duration::from_secs(30)), Some(0));
    assert_eq!(second.terminate(Duration::from_secs(30)), Some(0));
    assert_eq!(db.migrations().await, [(1, 1)]);
}

/// Runs the directory on `url` and checks that it refuses to start: exit
/// 1, one `iicp-node:` line naming the database (without its password) and
/// `cause`.
fn refuses_to_start(case: &str, url: &str, shown: &str, cause: &str) {
    let cmd = directory_command(free_port(), &["--db", url]);
    let out = run_bounded(cmd, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{case}: exit 1\n{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("iicp-node: "))
        .collect();
    assert_eq!(errors.len(), 1, "{case}: one error line\n{stderr}");
    assert!(
        errors[0].contains(&format!("cannot open directory database {shown}: "))
            && errors[0].contains(cause),
        "{case}: the line names {shown} and {cause:?}: {}",
        errors[0]
    );
    common::logs::assert_no_leaks(case, &stderr);
    assert!(!stderr.contains("panicked"), "{case}: {stderr}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: IICP_TEST_POSTGRES_URL (.ci/run)"]
async fn an_unreachable_or_refusing_database_refuses_the_start_in_one_line() {
    let db = TestDb::new().await;
    let closed = free_port();
    let password = common::logs::secret("not-the-password-1234");
    refuses_to_start(
        "nothing listens",
        &format!("postgres://iicp_ci:{password}@127.0.0.1:{closed}/x"),
        &format!("postgres://iicp_ci:***@127.0.0.1:{closed}/x"),
        "error connecting to server: Connection refused",
    );
    let mut wrong = db.url.clone();
    wrong.set_password(Some(&password)).unwrap();
    let mut shown = db.url.clone();
    shown.set_password(Some("***")).unwrap();
    refuses_to_start(
        "wrong password",
        wrong.as_str(),
        shown.as_str(),
        "password authentication failed for user \"iicp_ci\"",
    );
    let mut tls = db.url.clone();
    tls.set_query(Some("sslmode=require"));
    let mut shown = tls.clone();
    shown.set_password(Some("***")).unwrap();
    refuses_to_start(
        "TLS asked for",
        tls.as_str(),
        shown.as_str(),
        "sslmode=require is not supported",
    );
}

/// A TCP forwarder to the database that a test can cut (every connection
/// closed, new ones closed at once) and restore: the database "stopped"
/// without stopping the server other tests share.
struct Cable {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Cable {
    async fn to(server: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (up2, links2) = (up.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let server = server.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(server).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                links2.lock().unwrap().push(link.abort_handle());
            }
        });
        Self { addr, up, links }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: IICP_TEST_POSTGRES_URL (.ci/run)"]
async fn a_database_lost_while_running() {
    let db = TestDb::new().await;
    let cable = Cable::to(db.server_addr()).await;
    let url = db.via(cable.addr);
    let port = free_port();
    let mut cmd = directory_command(port, &db_args(&url));
    cmd.env("RUST_LOG", "info,iicp_client::directory::store=debug");
    let mut directory = Watched::start(cmd);
    directory.wait_for("listening on", Duration::from_secs(30));
    let root = format!("http://127.0.0.1:{port}");
    let base = format!("{root}/api");
    assert_eq!(get(&root, "/iicp/health").await["persistence"], "postgres");

    cable.cut();
    let mut node = Node::register(&base).await;
    for _ in 0..3 {
        assert_eq!(node.beat(&base).await, 200, "heartbeats are answered");
    }
    assert_eq!(discovered(&base).await, [node.id.clone()]);
    directory.wait_for("directory store write failed;", Duration::from_secs(30));
    assert_eq!(
        get(&root, "/iicp/health").await["persistence"],
        "memory (postgres writes failing)"
    );
    directory.wait_for(
        "directory store write failed again",
        Duration::from_secs(30),
    );
    assert_eq!(
        directory.count("directory store write failed;"),
        1,
        "said once: {:#?}",
        directory.lines()
    );
    assert!(db.node_ids().await.is_empty());

    cable.restore();
    directory.wait_for(
        "directory store writes succeed again",
        Duration::from_secs(30),
    );
    assert_eq!(get(&root, "/iicp/health").await["persistence"], "postgres");
    assert_eq!(db.node_ids().await, [node.id.clone()], "caught up");
    assert_eq!(directory.terminate(Duration::from_secs(30)), Some(0));
    let lines = directory.lines().join("\n");
    assert!(!lines.contains("panicked"), "{lines}");
}

//! A PostgreSQL server for the directory's tests (`directory_postgres`,
//! `directory_replicas`): a database of each test's own on the server of
//! `IICP_TEST_POSTGRES_URL`, a private cluster a test may stop and start
//! ([`Cluster`]), a cable to the database a test can cut ([`Cable`]), and a
//! node's register and heartbeat calls.

use super::{get_at, post_at};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};

/// The server the tests use (panics with what to do when it is not set).
pub fn server_url() -> url::Url {
    let raw = std::env::var("IICP_TEST_POSTGRES_URL").expect(
        "IICP_TEST_POSTGRES_URL: a postgres:// URL of a role that may create databases \
         (bash scripts/postgres.sh start DIR prints one; .ci/run does it)",
    );
    let url = url::Url::parse(&raw).expect("IICP_TEST_POSTGRES_URL is a URL");
    if let Some(pw) = url.password() {
        super::logs::secret(pw);
    }
    url
}

/// A database of one test's own, dropped when the value is.
pub struct TestDb {
    pub url: url::Url,
    name: String,
}

pub async fn admin(url: &url::Url) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url.as_str(), tokio_postgres::NoTls)
        .await
        .expect("connect to the test server");
    tokio::spawn(conn);
    client
}

impl TestDb {
    pub async fn new() -> Self {
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
    pub fn via(&self, addr: std::net::SocketAddr) -> String {
        let mut url = self.url.clone();
        url.set_port(Some(addr.port())).unwrap();
        url.to_string()
    }

    pub fn server_addr(&self) -> String {
        format!(
            "{}:{}",
            self.url.host_str().unwrap(),
            self.url.port().unwrap_or(5432)
        )
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        admin(&self.url).await
    }

    /// `SELECT version, count(*) FROM schema_migrations`.
    pub async fn migrations(&self) -> Vec<(i32, i64)> {
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

    pub async fn node_ids(&self) -> Vec<String> {
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

/// A registered node: what it needs to heartbeat.
pub struct Node {
    pub id: String,
    pub token: String,
    pub key: iicp_client::Secret,
    pub challenge: Option<String>,
}

impl Node {
    pub async fn register(base: &str) -> Self {
        let (status, ack) = post_at(
            base,
            "/v1/register",
            &super::registration("http://127.0.0.1:9", &["m"]),
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
    pub async fn beat(&mut self, base: &str) -> u16 {
        self.beat_with(base, json!({})).await.0
    }

    /// One heartbeat with the fields of `extra` (an object) besides the
    /// node id and the challenge's answer; the status and the PONG.
    pub async fn beat_with(&mut self, base: &str, extra: Value) -> (u16, Value) {
        let mut beat = json!({"node_id": self.id});
        if let Some(c) = &self.challenge {
            beat["challenge_response"] = json!(iicp_client::wire::heartbeat::challenge_response(
                &self.key, c
            ));
        }
        if let (Some(beat), Value::Object(extra)) = (beat.as_object_mut(), extra) {
            beat.extend(extra);
        }
        let (status, pong) = post_at(base, "/v1/heartbeat", &beat, Some(&self.token)).await;
        if status == 200 {
            self.challenge = pong["challenge"].as_str().map(str::to_owned);
        }
        (status, pong)
    }
}

pub async fn discovered(base: &str) -> Vec<String> {
    let listed = get_at(base, &format!("/v1/discover?intent={}", super::CHAT)).await;
    listed["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_id"].as_str().unwrap().to_owned())
        .collect()
}

pub fn db_args(url: &str) -> Vec<&str> {
    vec!["--db", url, "--skip-liveness-check"]
}

/// A TCP forwarder to the database that a test can cut (every connection
/// closed, new ones closed at once) and restore: the database "stopped"
/// without stopping the server other tests share.
pub struct Cable {
    pub addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Cable {
    pub async fn to(server: String) -> Self {
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

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// A private PostgreSQL cluster of one test (`scripts/postgres.sh`), which
/// it may stop and start again: the database really lost. Removed on drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    /// `postgres://iicp_ci:PASSWORD@127.0.0.1:PORT/iicp_ci`.
    pub url: String,
}

fn postgres_sh(args: &[&str]) -> std::process::Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postgres.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .args(args)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "postgres.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Cluster {
    /// A new cluster on a free port (a few seconds: initdb).
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = postgres_sh(&["start", dir.path().to_str().unwrap()]);
        let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let parsed = url::Url::parse(&url).expect("postgres.sh prints a URL");
        if let Some(pw) = parsed.password() {
            super::logs::secret(pw);
        }
        Self { dir, url }
    }

    /// Stops the server (fast shutdown: connections are closed).
    pub fn pause(&self) {
        postgres_sh(&["pause", self.dir.path().to_str().unwrap()]);
    }

    /// Starts it again on the same port.
    pub fn resume(&self) {
        postgres_sh(&["resume", self.dir.path().to_str().unwrap()]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postgres.sh"))
            .args(["stop", self.dir.path().to_str().unwrap()])
            .output();
    }
}

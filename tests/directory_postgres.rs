//! The directory on PostgreSQL (`--db postgres://…`, issue 19): one
//! directory, the real binary against a real server (several replicas on
//! one database: `directory_replicas.rs`). Each test makes a database of
//! its own and drops it afterwards.
//!
//! Ignored by default: they need a server. `IICP_TEST_POSTGRES_URL` names
//! a role that may create databases; `.ci/run` starts a private cluster
//! (`scripts/postgres.sh start DIR` prints such a URL) and runs them with
//! `cargo test --test directory_postgres -- --ignored`.

mod common;

use common::node_bin::{directory_command, directory_process, free_port};
use common::postgres::{Cable, Node, TestDb, db_args, discovered};
use common::watch::{Watched, run_bounded};
use common::{get_at, post_at};
use serde_json::json;
use std::time::Duration;

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
    assert_eq!(first.count("PostgreSQL migration applied"), 2);
    let root = format!("http://127.0.0.1:{port}");
    let base = format!("{root}/api");
    assert_eq!(
        get_at(&root, "/iicp/health").await["persistence"],
        "postgres"
    );
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
    assert_eq!(
        second.count("already exists"),
        0,
        "no server NOTICE about the existing schema table: {:#?}",
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
    assert_eq!(db.migrations().await, [(1, 1), (2, 1)]);
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
    assert_eq!(applied, 2, "one of them applies each migration once");
    for port in [a, b] {
        let health = get_at(&format!("http://127.0.0.1:{port}"), "/iicp/health").await;
        assert_eq!(health["persistence"], "postgres");
    }
    assert_eq!(first.terminate(Duration::from_secs(30)), Some(0));
    assert_eq!(second.terminate(Duration::from_secs(30)), Some(0));
    assert_eq!(db.migrations().await, [(1, 1), (2, 1)]);
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
    assert_eq!(
        get_at(&root, "/iicp/health").await["persistence"],
        "postgres"
    );
    let mut node = Node::register(&base).await;
    assert_eq!(node.beat(&base).await, 200);

    cable.cut();
    // Writes are refused while the database is away, in the directory's
    // error shape; discover answers from the cache.
    for _ in 0..3 {
        let beat = json!({"node_id": node.id});
        let (status, body) = post_at(&base, "/v1/heartbeat", &beat, Some(&node.token)).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
        assert!(body["error"]["retry_after"].as_u64().is_some(), "{body}");
    }
    let (status, body) = post_at(
        &base,
        "/v1/register",
        &common::registration("http://127.0.0.1:9", &["m"]),
        None,
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("database_unavailable")),
        "{body}"
    );
    assert_eq!(discovered(&base).await, [node.id.clone()]);
    directory.wait_for("directory database unreachable", Duration::from_secs(30));
    assert_eq!(
        directory.count("directory database unreachable"),
        1,
        "said once: {:#?}",
        directory.lines()
    );
    let health = get_at(&root, "/iicp/health").await;
    assert!(
        health["persistence"]
            .as_str()
            .unwrap()
            .starts_with("postgres (database unreachable"),
        "{health}"
    );

    cable.restore();
    // It recovers by itself: the heartbeat that was refused is taken again.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while node.beat(&base).await != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:#?}",
            directory.lines()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    directory.wait_for(
        "directory database reachable again",
        Duration::from_secs(30),
    );
    // Health says `postgres` once the cache's connection is back too.
    while get_at(&root, "/iicp/health").await["persistence"] != "postgres" {
        assert!(
            std::time::Instant::now() < deadline,
            "{:#?}",
            directory.lines()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(db.node_ids().await, [node.id.clone()]);
    assert_eq!(directory.terminate(Duration::from_secs(30)), Some(0));
    let lines = directory.lines().join("\n");
    assert!(!lines.contains("panicked"), "{lines}");
}

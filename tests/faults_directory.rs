//! Faults of the directory under a running node (issue 18): the directory
//! is down when the node starts, restarts with empty state, answers 500 to
//! everything, or accepts connections and never answers. Through all of it
//! the node serves tasks, re-registers by itself once a real directory is
//! back, and logs one line per change of state, not one per attempt.
//!
//! The node and the directory are the real `iicp-node` binary; the broken
//! directories are Python processes (`common::fake_http`) on the same port
//! the real one takes over, killed with SIGKILL so no connection survives
//! them. The node logs its directory link at debug, so the test counts the
//! attempts (the debug repeats) against the `warn` lines.

mod common;

use common::fake_http::{failing_directory, printed, silent_server};
use common::node_bin::{directory_process, free_port, serve_command};
use common::python::wait_for;
use common::watch::Watched;
use serde_json::{Value, json};
use std::time::Duration;

/// The lines of the link's states (node/directory_link.rs).
const UNREACHABLE: &str = "directory unreachable: registration failed";
const ANSWERS_500: &str = "directory answering HTTP 500: registration failed";
const NO_ANSWER: &str = "directory not answering in time: registration failed";
const HEARTBEAT_FAILED: &str = "heartbeat failed; serving tasks";
const REPEAT: &str = "directory call failed again";
const REGISTERED_AFTER: &str = "registered with the directory after";
const FORGOTTEN: &str = "the directory no longer knows this node";
/// Any `warn` line of the link.
const LINK_WARN: &str = "WARN iicp_client::node::directory_link";

/// A node (echo backend) registering with the directory on `dir_port`,
/// its link logged at debug; returns once it serves.
fn start_node(dir_port: u16) -> (Watched, tempfile::TempDir, u16) {
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let directory = format!("http://127.0.0.1:{dir_port}/api");
    let mut cmd = serve_command(
        home.path(),
        port,
        &[
            "--directory-url",
            &directory,
            "--backend-type",
            "echo",
            "--no-cx",
            "--auto-detect-nat",
            "false",
        ],
    );
    cmd.env("RUST_LOG", "info,iicp_client::node::directory_link=debug");
    let mut node = Watched::start(cmd);
    node.wait_for("iicp-node serving on", Duration::from_secs(60));
    (node, home, port)
}

/// A real, empty directory on `port` (heartbeats every 500 ms).
fn start_directory(port: u16) -> Watched {
    directory_process(port, &["--heartbeat-ms", "500"])
}

/// The node on `port` answers a chat task with a success.
async fn serves_a_task(port: u16, when: &str) {
    let task = json!({"intent": common::CHAT,
        "payload": {"model": "echo", "messages": [{"role": "user",
            "content": common::logs::secret("PAYLOAD-faults-directory-0c41")}]}});
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/task"))
        .json(&task)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{when}: the node does not answer: {e}"));
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("success")),
        "{when}: {body}"
    );
}

/// Whether the directory on `dir_port` lists the node on `node_port`.
async fn listed(dir_port: u16, node_port: u16) -> bool {
    let url = format!(
        "http://127.0.0.1:{dir_port}/api/v1/discover?intent={}&limit=50",
        common::CHAT
    );
    let Ok(resp) = reqwest::get(&url).await else {
        return false;
    };
    let body: Value = resp.json().await.unwrap_or_default();
    let endpoint = format!("http://127.0.0.1:{node_port}");
    body["nodes"]
        .as_array()
        .is_some_and(|nodes| nodes.iter().any(|n| n["endpoint"] == endpoint.as_str()))
}

/// Waits (bounded) until the directory lists the node.
async fn wait_listed(dir_port: u16, node: &mut Watched, node_port: u16, limit: Duration) {
    let context = node.lines().join("\n");
    wait_for(
        "discover to list the node",
        limit,
        || context.clone(),
        async || listed(dir_port, node_port).await.then_some(()),
    )
    .await;
}

#[tokio::test]
async fn directory_down_at_start_then_up_then_restarted_empty() {
    let dir_port = free_port();
    let (mut node, _home, port) = start_node(dir_port);
    assert!(
        node.count("not registered yet") == 1,
        "the startup line says the node is not registered: {:#?}",
        node.lines()
    );
    serves_a_task(port, "directory down").await;

    let mut directory = start_directory(dir_port);
    wait_listed(dir_port, &mut node, port, Duration::from_secs(60)).await;
    serves_a_task(port, "registered").await;
    let attempts = node.count(UNREACHABLE) + node.count(REPEAT);
    assert!(attempts >= 3, "{:#?}", node.lines());
    assert_eq!(node.count(UNREACHABLE), 1, "{:#?}", node.lines());
    assert_eq!(node.count(REGISTERED_AFTER), 1, "{:#?}", node.lines());

    // A crash and a restart with empty state: the heartbeat is refused and
    // the node registers again by itself.
    directory.kill();
    let _directory = start_directory(dir_port);
    node.wait_for(FORGOTTEN, Duration::from_secs(60));
    wait_listed(dir_port, &mut node, port, Duration::from_secs(60)).await;
    serves_a_task(port, "registered again").await;
    let lines = node.lines().to_vec();
    let count = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(count(FORGOTTEN), 1, "{lines:#?}");
    assert!(count(HEARTBEAT_FAILED) <= 1, "{lines:#?}");
    assert_eq!(
        count(LINK_WARN),
        1 + count(HEARTBEAT_FAILED) + count(FORGOTTEN),
        "one warn line per state change: {lines:#?}"
    );
    assert_eq!(node.terminate(Duration::from_secs(30)), Some(0));
}

#[tokio::test]
async fn a_directory_answering_500_then_silent_gets_one_line_each_and_the_node_recovers() {
    let dir_port = free_port();
    let mut failing = failing_directory(dir_port).await;
    let (mut node, _home, port) = start_node(dir_port);
    serves_a_task(port, "directory answering 500").await;
    let hits = failing.wait_for("three registrations", Duration::from_secs(60), async || {
        let n = printed(&failing, "hit");
        (n >= 3).then_some(n)
    });
    let hits = hits.await;
    failing.kill();

    // Accepts, never answers: each attempt ends at the call's time limit.
    let silent = silent_server(dir_port).await;
    node.wait_for(NO_ANSWER, Duration::from_secs(90));
    assert!(printed(&silent, "accepted") >= 1, "{}", silent.logs());
    serves_a_task(port, "directory silent").await;
    drop(silent);

    let _directory = start_directory(dir_port);
    wait_listed(dir_port, &mut node, port, Duration::from_secs(90)).await;
    serves_a_task(port, "registered").await;
    let lines = node.lines().to_vec();
    let count = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
    assert!(
        count(ANSWERS_500) + count(REPEAT) >= hits.min(3),
        "every attempt is seen at debug: {lines:#?}"
    );
    assert_eq!(count(ANSWERS_500), 1, "{lines:#?}");
    assert_eq!(count(NO_ANSWER), 1, "{lines:#?}");
    assert_eq!(count(REGISTERED_AFTER), 1, "{lines:#?}");
    // An attempt in the moment between two stand-ins finds no one there:
    // that is one more state, said once.
    assert!(count(UNREACHABLE) <= 2, "{lines:#?}");
    assert_eq!(
        count(LINK_WARN),
        2 + count(UNREACHABLE),
        "one warn line per state change: {lines:#?}"
    );
    assert_eq!(node.terminate(Duration::from_secs(30)), Some(0));
}

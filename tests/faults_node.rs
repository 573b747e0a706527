//! A node killed mid-task (issue 18): two nodes are registered, the task
//! lands on one of them and is held there by its backend, that node is
//! SIGKILLed, and the client's one call returns the other node's answer,
//! within the call's deadline. Once over HTTP, once over the native
//! transport (`prefer_native`).
//!
//! Both nodes are the real binary in front of one Python backend
//! (`common::fake_http`) that stalls the first task it gets for 120 s and
//! answers every later one at once, so whichever node the client tries
//! first holds the task, and the other one answers the retry. The test
//! finds the holder by its `active_jobs` and kills it.

mod common;

use common::fake_http::{Stall, chat_backend, printed};
use common::node_bin::{directory_process, free_port, serve_command};
use common::python::wait_for;
use common::watch::Watched;
use iicp_client::{ChatMessage, ChatOptions, ClientConfig, IicpClient};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The client's one deadline: generous, so a slow machine does not fail
/// the test; the bound checked is that the answer comes before it.
const DEADLINE: Duration = Duration::from_secs(60);

/// A node in front of the backend on `backend_port`, registered with the
/// directory on `dir_port`.
struct Node {
    proc: Watched,
    port: u16,
    id: String,
    _home: tempfile::TempDir,
}

fn start_node(dir_port: u16, backend_port: u16) -> Node {
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let directory = format!("http://127.0.0.1:{dir_port}/api");
    let backend = format!("http://127.0.0.1:{backend_port}/v1");
    let mut proc = Watched::start(serve_command(
        home.path(),
        port,
        &[
            "--directory-url",
            &directory,
            "--backend-type",
            "openai_compat",
            "--backend-url",
            &backend,
            "--model",
            "m",
            "--auto-detect-nat",
            "false",
        ],
    ));
    let line = proc.wait_for("iicp-node serving on", Duration::from_secs(60));
    let id = line
        .split("registered as ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("not registered: {line}"))
        .to_owned();
    Node {
        proc,
        port,
        id,
        _home: home,
    }
}

async fn active_jobs(port: u16) -> u64 {
    let health: Value = reqwest::get(format!("http://127.0.0.1:{port}/iicp/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    health["active_jobs"].as_u64().unwrap_or(0)
}

/// The directory's entries for the chat intent.
async fn listed(dir_port: u16) -> Vec<Value> {
    common::python::discovered(&format!("http://127.0.0.1:{dir_port}/api")).await
}

async fn killed_mid_task_the_other_node_answers(native: bool) {
    let dir_port = free_port();
    let _directory = directory_process(dir_port, &[]);
    let backend_port = free_port();
    let backend = chat_backend(backend_port, Stall::FirstTask).await;
    let mut nodes = [
        start_node(dir_port, backend_port),
        start_node(dir_port, backend_port),
    ];
    let entries = wait_for(
        "both nodes listed",
        Duration::from_secs(60),
        String::new,
        async || {
            let entries = listed(dir_port).await;
            (entries.len() == 2).then_some(entries)
        },
    )
    .await;
    if native {
        for e in &entries {
            let te = e["transport_endpoint"].as_str().unwrap_or_default();
            assert!(te.starts_with("iicp://"), "a native endpoint: {e}");
        }
    }

    let client = IicpClient::builder(ClientConfig {
        directory_url: format!("http://127.0.0.1:{dir_port}/api"),
        timeout_ms: DEADLINE.as_millis() as u64,
        ..Default::default()
    })
    .allow_private_nodes(true)
    .prefer_native(native)
    .build()
    .unwrap();
    let started = Instant::now();
    let call = tokio::spawn(async move {
        let options = ChatOptions {
            model: Some("m".into()),
            ..Default::default()
        };
        client
            .chat(
                vec![ChatMessage::user(common::logs::secret(
                    "PAYLOAD-faults-node-77b0",
                ))],
                Some(options),
            )
            .await
    });

    // The node that holds the task: its backend call is in flight.
    let (a, b) = (nodes[0].port, nodes[1].port);
    let holder = wait_for(
        "a node holding the task",
        Duration::from_secs(30),
        || backend.logs(),
        async || {
            if printed(&backend, "task") == 0 {
                return None;
            }
            match (active_jobs(a).await, active_jobs(b).await) {
                (1, 0) => Some(0),
                (0, 1) => Some(1),
                _ => None,
            }
        },
    )
    .await;
    nodes[holder].proc.kill();
    let survivor = &nodes[1 - holder];

    let reply = tokio::time::timeout(DEADLINE + Duration::from_secs(30), call)
        .await
        .expect("the client's call ends (its deadline is bounded)")
        .unwrap()
        .unwrap_or_else(|e| panic!("the call failed instead of failing over: {e}"));
    let took = started.elapsed();
    assert_eq!(reply.text(), "fine");
    assert_eq!(
        reply.node_id.as_deref(),
        Some(survivor.id.as_str()),
        "the survivor answered"
    );
    assert!(took < DEADLINE, "answered within the deadline: {took:?}");
    assert_eq!(
        printed(&backend, "task"),
        2,
        "one task per node: {}",
        backend.logs()
    );
    println!(
        "failover over {}: answered by the survivor {took:?} after the call started",
        if native { "native" } else { "HTTP" }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_task_over_http_the_client_fails_over_within_its_deadline() {
    killed_mid_task_the_other_node_answers(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_task_over_native_the_client_fails_over_within_its_deadline() {
    killed_mid_task_the_other_node_answers(true).await;
}

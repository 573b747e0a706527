//! Faults of the model server under a running node (issue 18): the backend
//! process is killed with tasks in flight, stays away, then comes back on
//! the same port. The node is the real binary, the backend a real process
//! (`common::fake_http::chat_backend`, a small Python HTTP server speaking
//! the OpenAI chat API, stalling tasks that start with "slow"), killed with
//! SIGKILL so its connections break as they would in a crash.

mod common;

use common::fake_http::{Stall, chat_backend};
use common::node_bin::{NodeProcess, free_port};
use serde_json::{Value, json};
use std::time::Duration;

/// Task texts; neither may reach the node's log.
const HELLO: &str = "hello PAYLOAD-7e3";
const SLOW: &str = "slow PAYLOAD-7e3";

/// The node's log says nothing of what the tasks carried.
fn assert_no_payload(lines: &[String]) {
    common::logs::secret("PAYLOAD-7e3");
    common::logs::assert_no_leaks("the node", &lines.join("\n"));
}

fn task(content: &str, timeout_ms: u64) -> Value {
    json!({"intent": common::CHAT,
           "payload": {"model": "m", "messages": [{"role": "user", "content": content}]},
           "constraints": {"timeout_ms": timeout_ms}})
}

async fn post(node: &str, content: &str) -> (u16, Value) {
    post_within(node, content, 120_000).await
}

async fn post_within(node: &str, content: &str, timeout_ms: u64) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{node}/v1/task"))
        .json(&task(content, timeout_ms))
        .send()
        .await
        .expect("the node answers");
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn active_jobs(node: &str) -> u64 {
    let health: Value = reqwest::get(format!("{node}/iicp/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    health["active_jobs"].as_u64().unwrap()
}

fn assert_backend_error(status: u16, body: &Value, when: &str) {
    assert_eq!(status, 502, "{when}: {body}");
    assert_eq!(body["status"], "error", "{when}: {body}");
    assert_eq!(body["error"]["code"], "backend_error", "{when}: {body}");
}

/// The node binary in front of the backend on `port`.
fn node_for(port: u16) -> NodeProcess {
    let backend_url = format!("http://127.0.0.1:{port}/v1");
    NodeProcess::start(&[
        "--skip-registration",
        "--no-cx",
        "--auto-detect-nat",
        "false",
        "--backend-type",
        "openai_compat",
        "--backend-url",
        &backend_url,
        "--model",
        "m",
        "--max-concurrent",
        "8",
    ])
}

#[tokio::test]
async fn backend_killed_under_load_then_back_without_a_node_restart() {
    let port = free_port();
    let mut backend = chat_backend(port, Stall::SlowPrefix).await;
    let node = node_for(port);
    let url = format!("http://{}", node.addr());
    let (status, body) = post(&url, HELLO).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("success")),
        "{body}"
    );

    // Six tasks the backend holds, then the backend dies under them.
    let in_flight: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { post(&url, SLOW).await })
        })
        .collect();
    for _ in 0..400 {
        if active_jobs(&url).await == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(active_jobs(&url).await, 6, "six tasks running");
    backend.kill();
    for handle in in_flight {
        let (status, body) = handle.await.unwrap();
        assert_backend_error(status, &body, "a task in flight when the backend died");
    }
    assert_eq!(active_jobs(&url).await, 0, "every admission slot came back");

    // Away: new tasks fail the same way, at once.
    let (status, body) = post(&url, HELLO).await;
    assert_backend_error(status, &body, "a task while the backend is down");

    // Back on the same port: the same node serves again.
    let _backend = chat_backend(port, Stall::SlowPrefix).await;
    let (status, body) = post(&url, HELLO).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["choices"][0]["message"]["content"], "fine");
    let (code, lines) = node.terminate();
    assert_eq!(code, Some(0), "{lines:#?}");
    assert_no_payload(&lines);
}

/// A backend that never answers: each task gets 504 `task_timeout` at its
/// own deadline (not the backend's 120 s), its slot comes back, and the node
/// goes on serving.
#[tokio::test]
async fn a_stuck_backend_meets_the_task_deadline_and_the_slots_return() {
    let port = free_port();
    let _backend = chat_backend(port, Stall::SlowPrefix).await;
    let node = node_for(port);
    let url = format!("http://{}", node.addr());
    let stuck: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { post_within(&url, SLOW, 1_500).await })
        })
        .collect();
    for handle in stuck {
        let (status, body) = handle.await.unwrap();
        assert_eq!(status, 504, "{body}");
        assert_eq!(body["status"], "timeout", "{body}");
        assert_eq!(body["error"]["code"], "task_timeout", "{body}");
    }
    assert_eq!(active_jobs(&url).await, 0, "every admission slot came back");
    let (status, body) = post(&url, HELLO).await;
    assert_eq!(status, 200, "{body}");
    let (code, lines) = node.terminate();
    assert_eq!(code, Some(0), "{lines:#?}");
    assert_no_payload(&lines);
}

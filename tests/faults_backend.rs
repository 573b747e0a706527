//! Faults of the model server under a running node (issue 18): the backend
//! process is killed with tasks in flight, stays away, then comes back on
//! the same port. The node is the real binary, the backend a real process
//! (a small Python HTTP server speaking the OpenAI chat API), killed with
//! SIGKILL so its connections break as they would in a crash.

mod common;

use common::node_bin::{NodeProcess, free_port};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An OpenAI-style chat server: answers at once, or after 60 s when the
/// last message says "slow" (a task the kill catches in flight).
const BACKEND: &str = r#"
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Chat(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def send_json(self, value):
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.send_json({"object": "list", "data": [{"id": "m", "object": "model"}]})
    def do_POST(self):
        task = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if task["messages"][-1]["content"].startswith("slow"):
            time.sleep(60)
        self.send_json({"id": "c", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "fine"}}]})

ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Chat).serve_forever()
"#;

/// Task texts; neither may reach the node's log.
const HELLO: &str = "hello PAYLOAD-7e3";
const SLOW: &str = "slow PAYLOAD-7e3";

/// The node's log says nothing of what the tasks carried.
fn assert_no_payload(lines: &[String]) {
    for line in lines {
        assert!(
            !line.contains("PAYLOAD-7e3"),
            "a payload in the log: {line}"
        );
    }
}

struct Backend(Child);

impl Backend {
    /// Starts the server on `port` and waits until it answers.
    async fn start(port: u16) -> Self {
        // Owned at once: dropped (killed and reaped) if it never answers.
        let backend = Self(
            Command::new("python3")
                .args(["-c", BACKEND, &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 runs"),
        );
        let url = format!("http://127.0.0.1:{port}/v1/models");
        for _ in 0..200 {
            if reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return backend;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the fake backend did not start on {port}");
    }

    /// SIGKILL: its open connections break mid-answer.
    fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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
    let backend = Backend::start(port).await;
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
    let _backend = Backend::start(port).await;
    let (status, body) = post(&url, HELLO).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["choices"][0]["message"]["content"], "fine");
    let (code, lines) = node.terminate();
    assert_eq!(code, Some(0), "{lines:#?}");
    assert_no_payload(&lines);
}

/// A backend that never answers: each task gets 504 `task_timeout` at its
/// own deadline (not the backend's 60 s), its slot comes back, and the node
/// goes on serving.
#[tokio::test]
async fn a_stuck_backend_meets_the_task_deadline_and_the_slots_return() {
    let port = free_port();
    let _backend = Backend::start(port).await;
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

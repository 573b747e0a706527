//! The real `iicp-node serve` binary with the echo demo backend: it
//! registers, answers, and on SIGTERM deregisters and exits 0.

mod common;

use common::node::Transport;
use common::node_bin::NodeProcess;
use common::{CHAT, Harness};
use std::process::Command;

/// POSTs a plaintext chat task with `text` to the binary.
async fn task(node: &NodeProcess, text: &str) -> (u16, serde_json::Value) {
    let task = serde_json::json!({"intent": CHAT, "payload": {"messages": [{"role": "user", "content": text}]}});
    let reply = Transport::Http.send(node.addr(), task, &[]).await;
    (reply.status.expect("HTTP has a status"), reply.body)
}

// Multi-threaded: the test blocks a thread reading the child's output while
// the in-process directory must keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_registers_answers_and_deregisters_on_sigterm() {
    let h = Harness::start(iicp_client::directory::DirectoryConfig::default()).await;
    let node = NodeProcess::start(&[
        "--backend-type",
        "echo",
        "--directory-url",
        &h.base,
        "--region",
        "eu-central",
    ]);
    let line = node.startup_line().to_owned();
    assert!(
        line.contains(&format!("127.0.0.1:{}", node.port)),
        "where it listens: {line}"
    );
    assert!(
        line.contains("registered as "),
        "what it registered as: {line}"
    );
    assert!(line.contains("backend echo"), "which backend: {line}");
    assert!(
        line.ends_with("— 1 worker thread"),
        "one runtime thread by default: {line}"
    );

    let ids = h.discover_ids(&format!("intent={CHAT}")).await;
    assert_eq!(ids.len(), 1, "the node is discoverable");
    let (_, reply) = task(&node, "ping").await;
    assert_eq!(
        reply["result"]["choices"][0]["message"]["content"],
        "echo: ping"
    );

    let (code, lines) = node.terminate();
    assert_eq!(code, Some(0), "SIGTERM is a clean exit");
    assert!(
        h.discover_ids(&format!("intent={CHAT}")).await.is_empty(),
        "deregistered"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("deregistered from the directory"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_in_front_of_an_unreachable_backend_answers_502() {
    let dead = common::dead_endpoint().await;
    let node = NodeProcess::start(&[
        "--skip-registration",
        "--backend-type",
        "llamacpp",
        "--backend-url",
        &format!("{dead}/v1"),
        "--model",
        "m",
        "--backend-api-key",
        "KEY-never-logged-1357",
        "--workers",
        "3",
    ]);
    let line = node.startup_line().to_owned();
    assert!(
        line.contains("backend llamacpp at http://127.0.0.1:"),
        "{line}"
    );
    assert!(line.ends_with("— 3 worker threads"), "--workers: {line}");
    let (status, body) = task(&node, "x").await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["code"], "backend_error");
    let (code, seen) = node.terminate();
    assert_eq!(code, Some(0));
    assert!(
        !seen.join("\n").contains("KEY-never-logged-1357"),
        "the API key is never logged"
    );
}

/// Runs `iicp-node chat` to the end; returns (exit code, stdout, stderr).
fn chat_cli(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iicp-node"));
    cmd.arg("chat").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_in_token_mode_answers_401_and_chat_gets_in_with_a_consumer_token() {
    let h = Harness::without_probe().await;
    let node = NodeProcess::start(&[
        "--backend-type",
        "echo",
        "--directory-url",
        &h.base,
        "--task-auth",
        "token",
    ]);
    assert!(
        node.startup_line().contains("task auth token"),
        "{}",
        node.startup_line()
    );
    let (status, body) = task(&node, "x").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");

    // A consumer that runs its own registered node holds a directory token.
    let mut me = common::registration("http://10.7.7.7:9484", &["x"]);
    me["node_id"] = serde_json::json!("consumer-node");
    let ack = h.register(&me).await;
    let my_token = ack["node_token"].as_str().unwrap().to_owned();
    let base = h.base.clone();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        chat_cli(
            &["ping", "--directory-url", &base],
            &[("IICP_NODE_TOKEN", &my_token)],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_eq!(stdout.trim(), "echo: ping");

    let base = h.base.clone();
    let (code, _, stderr) =
        tokio::task::spawn_blocking(move || chat_cli(&["ping", "--directory-url", &base], &[]))
            .await
            .unwrap();
    assert_ne!(code, Some(0));
    assert!(stderr.contains("unauthorized"), "{stderr}");

    let (code, _) = node.terminate();
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_skips_keyless_nodes_unless_plaintext_is_allowed() {
    let h = Harness::without_probe().await;
    let node = common::test_node::TestNode::start(vec![common::test_node::Reply::Echo]).await;
    h.register(&common::registration(&node.endpoint(), &["m"]))
        .await;
    let base = h.base.clone();
    let (code, _, stderr) =
        tokio::task::spawn_blocking(move || chat_cli(&["ping", "--directory-url", &base], &[]))
            .await
            .unwrap();
    assert_ne!(code, Some(0));
    assert!(stderr.contains("IICP-CX-REQUIRED"), "{stderr}");
    assert!(stderr.contains("IICP_CX_ALLOW_PLAINTEXT=1"), "{stderr}");
    assert_eq!(node.hits(), 0);

    let base = h.base.clone();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        chat_cli(
            &["ping", "--directory-url", &base],
            &[("IICP_CX_ALLOW_PLAINTEXT", "1")],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.trim(), "echo: ping");
    assert_eq!(node.hits(), 1);
}

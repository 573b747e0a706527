//! `cargo run --example quickstart` against a local mesh named by
//! `IICP_DIRECTORY_URL`, as the example's docs say.

mod common;

use common::test_node::{Reply, TestNode};
use common::{Harness, registration_cx};
use iicp_client::cx::CxKeyPair;
use std::path::PathBuf;

/// `target/<profile>/examples/<name>`, beside this test's `deps/` folder
/// (`cargo test` builds the examples).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        bin.exists(),
        "cargo test builds examples: {}",
        bin.display()
    );
    bin
}

#[tokio::test]
async fn quickstart_example_chats_through_a_local_directory() {
    let h = Harness::without_probe().await;
    let key = CxKeyPair::generate();
    let node = TestNode::start_cx(vec![Reply::Echo], key.clone()).await;
    h.register(&registration_cx(&node.endpoint(), &["m"], &key))
        .await;
    let bin = example("quickstart");
    let out = tokio::process::Command::new(&bin)
        .env("IICP_DIRECTORY_URL", &h.base)
        .env("IICP_PROXY_ALLOW_LOOPBACK_NODES", "1")
        .env("IICP_PROMPT", "ping from the example")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "echo: ping from the example");

    // Without the opt-in the loopback node is refused, with a clear error.
    let out = tokio::process::Command::new(&bin)
        .env("IICP_DIRECTORY_URL", &h.base)
        .env_remove("IICP_PROXY_ALLOW_LOOPBACK_NODES")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("IICP_PROXY_ALLOW_LOOPBACK_NODES"));
}

#[tokio::test]
async fn library_tour_example_runs_every_step() {
    let bin = example("library_tour");
    let out = tokio::process::Command::new(&bin)
        .env_remove("IICP_PROXY_ALLOW_LOOPBACK_NODES")
        .env_remove("IICP_CX_ALLOW_PLAINTEXT")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "chat: you said: hello",
        "submit: \"3 words\"",
        "Protocol { validation_error, 400 }",
        "Protocol { handler_error, 500 }",
        "NoAvailableNode",
        "InvalidIntent",
        "InvalidConfig",
        "shut down cleanly",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}

//! The official Python `anthropic` package, unchanged, against the real
//! `iicp-node proxy` in front of a local mesh
//! (scripts/interop/proxy_sdk_anthropic.py): `messages.create`,
//! `messages.stream` (the text reassembled equals the plain answer's, the
//! final message has a stop reason), and a model no node serves raising
//! `anthropic.NotFoundError`.
//!
//! Run: `IICP_PROXY_SDK_PYTHON=/tmp/proxy-sdk/bin/python cargo test --test
//! proxy_sdk_anthropic -- --ignored`.

mod common;

use common::proxy::ProxyMesh;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// Runs the script with the SDK venv's python; its one JSON line.
async fn run_script(base_url: String) -> Value {
    let python = std::env::var("IICP_PROXY_SDK_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .expect("IICP_PROXY_SDK_PYTHON: the python of a venv with scripts/interop/proxy-sdk-requirements.txt");
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/interop/proxy_sdk_anthropic.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(["--base-url", &base_url])
            .env("PYTHONUNBUFFERED", "1")
            .output()
            .expect("python starts")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the script failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

async fn check(mesh: &ProxyMesh, real_stream: bool) {
    let v = run_script(mesh.proxy.base()).await;
    let plain = &v["plain"];
    assert_eq!(plain["text"], "echo: hello from the anthropic sdk", "{v}");
    assert_eq!(plain["type"], "message");
    assert_eq!(plain["role"], "assistant");
    assert_eq!(plain["model"], "echo");
    assert_eq!(plain["stop_reason"], "end_turn");
    assert!(plain["id"].as_str().unwrap().starts_with("msg_"));
    assert!(plain["output_tokens"].as_u64().unwrap() > 0);

    let stream = &v["stream"];
    assert_eq!(stream["text_stream"], plain["text"], "{v}");
    assert_eq!(stream["final_text"], plain["text"], "{v}");
    assert_eq!(stream["final_stop_reason"], "end_turn", "{v}");
    assert!(stream["final_output_tokens"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(
        stream["final_input_tokens"], plain["input_tokens"],
        "the input count from message_delta: {v}"
    );
    let types: Vec<&str> = stream["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(types.first(), Some(&"message_start"), "{v}");
    assert!(types.contains(&"content_block_stop"), "{v}");
    assert_eq!(types.last(), Some(&"message_stop"), "{v}");
    if real_stream {
        assert!(stream["text_pieces"].as_u64().unwrap() > 1, "{v}");
    }

    assert_eq!(v["error"]["raised"], "NotFoundError", "{v}");
    assert_eq!(v["error"]["status"], 404, "{v}");
    assert_eq!(v["error"]["type"], "not_found_error", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs IICP_PROXY_SDK_PYTHON (a venv with scripts/interop/proxy-sdk-requirements.txt)"]
async fn the_anthropic_sdk_unchanged() {
    let mesh = ProxyMesh::echo(&[], &[]).await;
    check(&mesh, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs IICP_PROXY_SDK_PYTHON (a venv with scripts/interop/proxy-sdk-requirements.txt)"]
async fn the_anthropic_sdk_streaming_token_by_token() {
    // A node without a CX key, a proxy that allows plaintext: real partials.
    let mesh = ProxyMesh::echo(&["--no-cx"], &["--allow-plaintext"]).await;
    check(&mesh, true).await;
}

//! The official OpenAI Python SDK (PyPI `openai`, pinned in
//! scripts/interop/proxy-sdk-requirements.txt, used unchanged: only the base
//! URL and a dummy API key differ) against the real `iicp-node proxy` in
//! front of a local mesh. `scripts/interop/proxy_sdk_openai.py` makes the
//! calls and prints one JSON line of what it saw; the assertions are here.
//!
//! - an echo mesh: the model list, chat plain and streamed (the streamed
//!   text is the plain text exactly, with a finish reason and usage), a model
//!   no node serves (`openai.NotFoundError`), a bad request; once sealed
//!   (IICP-CX: the stream is one chunk) and once in plaintext (the echo node
//!   streams word by word);
//! - a mesh in front of the real llama.cpp server (`scripts/llama-server.sh`):
//!   chat plain and streamed for real (several chunks), a text completion,
//!   and embeddings as base64 (the SDK's default) and as floats.
//!
//! Ignored by default: `IICP_PROXY_SDK_PYTHON=/tmp/proxy-sdk/bin/python
//! cargo test --test proxy_sdk_openai -- --ignored --test-threads 1` (the
//! llama test also needs `bash scripts/llama-server.sh setup`). CI runs both.

mod common;

use common::Harness;
use common::llama::{EMBEDDING_WIDTH, LlamaServer, MODEL};
use common::node_bin::NodeProcess;
use common::proxy::{ProxyMesh, ProxyProcess};
use serde_json::Value;
use std::time::Duration;

const CHAT: &str = "urn:iicp:intent:llm:chat:v1";
const COMPLETION: &str = "urn:iicp:intent:llm:completion:v1";
const EMBEDDING: &str = "urn:iicp:intent:llm:embedding:v1";

/// Runs the SDK script against `openai_base` with `args`; its JSON line.
/// Panics with the script's stderr and the proxy's log when it fails.
async fn sdk(openai_base: &str, args: &[&str], proxy: &ProxyProcess) -> Value {
    let python = match std::env::var_os("IICP_PROXY_SDK_PYTHON") {
        Some(p) if !p.is_empty() => p,
        _ => panic!(
            "IICP_PROXY_SDK_PYTHON is not set: point it at the python of a venv with \
             scripts/interop/proxy-sdk-requirements.txt installed"
        ),
    };
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/interop/proxy_sdk_openai.py"
    );
    let run = tokio::process::Command::new(python)
        .arg(script)
        .args(["--base-url", openai_base])
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .unwrap_or_else(|_| panic!("the SDK script ran over 300 s\nproxy:\n{}", proxy.log()))
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the SDK script failed: {}\nstdout: {stdout}\nproxy:\n{}",
        String::from_utf8_lossy(&out.stderr),
        proxy.log()
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON line ({e}): {stdout}"))
}

fn ids(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect()
}

/// What both echo meshes answer alike.
fn assert_echo(out: &Value) {
    assert!(ids(&out["models"]).contains(&"echo"), "{out}");
    let plain = &out["plain"];
    assert_eq!(plain["text"], "echo: hello from the openai sdk", "{out}");
    assert_eq!(plain["finish_reason"], "stop");
    assert_eq!(plain["model"], "echo");
    assert!(plain["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let streamed = &out["streamed"];
    assert_eq!(
        streamed["text"], plain["text"],
        "the streamed text reassembled is the plain text exactly: {out}"
    );
    assert_eq!(streamed["finish_reasons"], serde_json::json!(["stop"]));
    assert_eq!(streamed["ids"], 1, "one id for every chunk");
    assert!(
        streamed["usage"]["total_tokens"].as_u64().unwrap() > 0,
        "include_usage gives a usage chunk: {out}"
    );

    assert_eq!(out["retrieved"], "echo", "models.retrieve: {out}");
    for case in [
        "unknown_model",
        "unknown_model_streamed",
        "retrieve_unknown",
    ] {
        let e = &out[case];
        assert_eq!(e["class"], "NotFoundError", "{case}: {out}");
        assert_eq!(e["not_found"], true);
        assert_eq!(e["status"], 404);
        assert_eq!(e["code"], "model_not_found");
    }
    assert_eq!(out["bad_request"]["class"], "BadRequestError", "{out}");
    assert_eq!(out["bad_request"]["status"], 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs IICP_PROXY_SDK_PYTHON (a venv with scripts/interop/proxy-sdk-requirements.txt)"]
async fn the_openai_sdk_against_an_echo_mesh_sealed() {
    let mesh = ProxyMesh::echo(&[], &[]).await;
    let out = sdk(&mesh.proxy.openai_base(), &["--mode", "echo"], &mesh.proxy).await;
    assert_echo(&out);
    // Sealed with IICP-CX, a chat is not streamed: one content chunk.
    assert_eq!(out["streamed"]["content_chunks"], 1, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs IICP_PROXY_SDK_PYTHON (a venv with scripts/interop/proxy-sdk-requirements.txt)"]
async fn the_openai_sdk_against_an_echo_mesh_in_plaintext_streams_word_by_word() {
    let mesh = ProxyMesh::echo(&["--no-cx"], &["--allow-plaintext"]).await;
    let out = sdk(&mesh.proxy.openai_base(), &["--mode", "echo"], &mesh.proxy).await;
    assert_echo(&out);
    // "echo: hello from the openai sdk": one chunk per word.
    assert_eq!(out["streamed"]["content_chunks"], 6, "{out}");
}

/// A directory, the llama.cpp server, a node per intent in front of it
/// (chat in plaintext so that it streams; completion and embedding with a
/// CX key, so those go sealed), and the proxy with `--allow-plaintext`.
struct LlamaMesh {
    proxy: ProxyProcess,
    _nodes: Vec<NodeProcess>,
    _directory: Harness,
    _server: LlamaServer,
}

impl LlamaMesh {
    async fn start() -> Self {
        let server = tokio::task::spawn_blocking(LlamaServer::start)
            .await
            .unwrap();
        let directory = Harness::start(Default::default()).await;
        let mut nodes = Vec::new();
        for (intent, cx) in [(CHAT, false), (COMPLETION, true), (EMBEDDING, true)] {
            let mut args: Vec<String> = [
                "--directory-url",
                &directory.base,
                "--backend-type",
                "llamacpp",
                "--backend-url",
                &server.url,
                "--intent",
                intent,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if !cx {
                args.push("--no-cx".into());
            }
            nodes.push(
                tokio::task::spawn_blocking(move || {
                    NodeProcess::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
                })
                .await
                .unwrap(),
            );
        }
        for intent in [CHAT, COMPLETION, EMBEDDING] {
            directory.wait_listed(intent).await;
        }
        let base = directory.base.clone();
        let proxy =
            tokio::task::spawn_blocking(move || ProxyProcess::start(&base, &["--allow-plaintext"]))
                .await
                .unwrap();
        Self {
            proxy,
            _nodes: nodes,
            _directory: directory,
            _server: server,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs IICP_PROXY_SDK_PYTHON (a venv with scripts/interop/proxy-sdk-requirements.txt) and the llama.cpp test server (bash scripts/llama-server.sh setup)"]
async fn the_openai_sdk_against_a_mesh_in_front_of_llama_cpp() {
    let mesh = LlamaMesh::start().await;
    let out = sdk(
        &mesh.proxy.openai_base(),
        &["--mode", "llama", "--model", MODEL],
        &mesh.proxy,
    )
    .await;
    assert!(ids(&out["models"]).contains(&MODEL), "{out}");

    let plain = &out["plain"];
    assert_eq!(plain["finish_reason"], "length", "{out}");
    assert_eq!(
        plain["usage"]["completion_tokens"], 200,
        "max_tokens reached the model"
    );
    assert!(!plain["text"].as_str().unwrap().is_empty());
    assert_eq!(plain["model"], MODEL);

    let streamed = &out["streamed"];
    assert!(
        streamed["content_chunks"].as_u64().unwrap() > 1,
        "a real stream, not one buffered chunk: {out}"
    );
    assert_eq!(
        streamed["text"], plain["text"],
        "greedy decoding: the chunks reassembled are the plain answer: {out}"
    );
    assert_eq!(streamed["finish_reasons"], serde_json::json!(["length"]));
    assert_eq!(streamed["ids"], 1);

    let completion = &out["completion"];
    assert_eq!(completion["object"], "text_completion", "{out}");
    assert_eq!(completion["finish_reason"], "length");
    assert!(completion["text"].is_string());

    let e = &out["embeddings"];
    assert_eq!(e["asked_encoding"], "base64", "the SDK's default: {out}");
    assert_eq!(e["wire_is_base64"], true);
    assert_eq!(e["default_count"], 3, "one vector per input");
    assert_eq!(e["default_indexes"], serde_json::json!([0, 1, 2]));
    assert_eq!(e["float_count"], 3);
    for widths in ["default_widths", "float_widths"] {
        assert_eq!(
            e[widths],
            serde_json::json!([EMBEDDING_WIDTH, EMBEDDING_WIDTH, EMBEDDING_WIDTH]),
            "{widths}: {out}"
        );
    }
    assert_eq!(e["default_equals_wire"], true, "the SDK decoded our base64");
    assert_eq!(
        e["float_equals_base64"], true,
        "floats and base64 carry the same f32s: {e}"
    );
    assert_eq!(e["distinct"], 3, "different texts, different vectors");
    assert_eq!(e["single_count"], 1);
    assert_eq!(e["single_width"], EMBEDDING_WIDTH);
    assert!(
        e["single_vs_first_max_diff"].as_f64().unwrap() < 1e-3,
        "one input alone embeds as it does in a batch: {e}"
    );
    assert_eq!(e["model"], MODEL);
}

//! `iicp-node proxy` with the official `ollama` Python package
//! (scripts/interop/proxy_sdk_ollama.py, the package unchanged but for the
//! host): chat plain and streamed, generate plain and streamed, `list()`,
//! and a model no node serves as `ollama.ResponseError` with status 404.
//!
//! Needs `IICP_PROXY_SDK_PYTHON`, a venv with
//! scripts/interop/proxy-sdk-requirements.txt:
//! `IICP_PROXY_SDK_PYTHON=/tmp/proxy-sdk/bin/python cargo test --test proxy_sdk_ollama -- --ignored`.

mod common;

use common::proxy::ProxyMesh;
use serde_json::Value;

/// Runs the script against `base` and returns its JSON line.
async fn run_script(base: String) -> Value {
    let python = std::env::var("IICP_PROXY_SDK_PYTHON")
        .expect("IICP_PROXY_SDK_PYTHON: a venv with scripts/interop/proxy-sdk-requirements.txt");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/interop/proxy_sdk_ollama.py"
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .args([script, "--base-url", &base])
            .env_remove("OLLAMA_HOST")
            .env_remove("OLLAMA_API_KEY")
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the script failed:\n{stderr}\n{stdout}"
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn assert_done(what: &str, v: &Value) {
    assert_eq!(v["done"], true, "{what}: {v}");
    assert_eq!(v["done_reason"], "stop", "{what}: {v}");
    assert!(
        v["eval_count"].as_u64().is_some_and(|n| n > 0),
        "{what}: {v}"
    );
    assert!(v["total_duration"].is_u64(), "{what}: {v}");
    assert_eq!(v["model"], "echo", "{what}: {v}");
}

async fn check(mesh: &ProxyMesh, streams_for_real: bool) {
    let r = run_script(mesh.proxy.base()).await;
    let expected = "echo: hello from the ollama package";
    assert_eq!(r["chat"]["content"], expected, "{r}");
    assert_eq!(r["chat"]["role"], "assistant");
    assert_done("chat", &r["chat"]);

    let s = &r["chat_stream"];
    assert_eq!(s["content"], r["chat"]["content"], "streamed == plain: {r}");
    assert_done("chat_stream", s);
    let pieces = s["pieces"].as_u64().unwrap();
    if streams_for_real {
        assert!(pieces > 2, "several pieces then done: {s}");
    } else {
        assert_eq!(pieces, 2, "one buffered piece then done: {s}");
    }
    let flags = s["done_flags"].as_array().unwrap();
    assert!(flags[..flags.len() - 1].iter().all(|f| f == false), "{s}");

    assert_eq!(
        r["generate"]["response"], "echo: why is the sky blue",
        "{r}"
    );
    assert_done("generate", &r["generate"]);
    assert_eq!(r["generate_stream"]["response"], "echo: stream this", "{r}");
    assert_done("generate_stream", &r["generate_stream"]);

    assert!(
        r["models"].as_array().unwrap().iter().any(|m| m == "echo"),
        "{r}"
    );
    for what in ["missing", "missing_stream"] {
        let e = &r[what];
        assert_eq!(e["type"], "ResponseError", "{what}: {e}");
        assert_eq!(e["status"], 404, "{what}: {e}");
        assert!(
            e["error"].as_str().unwrap().contains("no-node-serves-this"),
            "{what}: {e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs IICP_PROXY_SDK_PYTHON (a venv with scripts/interop/proxy-sdk-requirements.txt)"]
async fn the_ollama_package_works_through_the_proxy() {
    let mesh = ProxyMesh::echo(&[], &[]).await;
    check(&mesh, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs IICP_PROXY_SDK_PYTHON (a venv with scripts/interop/proxy-sdk-requirements.txt)"]
async fn the_ollama_package_reads_a_real_token_stream() {
    let mesh = ProxyMesh::echo(&["--no-cx"], &["--allow-plaintext"]).await;
    check(&mesh, cfg!(feature = "iicp-tcp")).await;
}

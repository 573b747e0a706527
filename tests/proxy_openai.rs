//! `iicp-node proxy`, OpenAI dialect, over raw HTTP against the real binary
//! in front of a local mesh: chat (plain and streamed), the model list,
//! errors in OpenAI's shape, and the proxy's `/metrics`.

mod common;

use common::proxy::ProxyMesh;
use serde_json::{Value, json};

async fn post(url: String, body: Value) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_plain_and_streamed_through_the_binary() {
    let mesh = ProxyMesh::echo(&[], &[]).await;
    let base = mesh.proxy.openai_base();
    let (status, body) = post(
        format!("{base}/chat/completions"),
        json!({"model": "auto", "messages": [{"role": "user", "content": "hello mesh"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "echo: hello mesh");
    assert_eq!(v["model"], "echo");

    let (status, body) = post(
        format!("{base}/chat/completions"),
        json!({"model": "echo", "stream": true, "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "stream me"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let events: Vec<&str> = body
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .expect("every event is a data line")
        })
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "echo: stream me");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    let ids: std::collections::BTreeSet<_> = chunks.iter().map(|c| c["id"].to_string()).collect();
    assert_eq!(ids.len(), 1, "one id per completion");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop"),
        "a finish reason"
    );
    assert!(
        chunks.last().unwrap()["usage"]["total_tokens"]
            .as_u64()
            .is_some(),
        "the usage chunk comes last when asked for"
    );

    let models: Value = reqwest::get(format!("{base}/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "echo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_come_back_in_openai_shape() {
    let mesh = ProxyMesh::echo(&[], &[]).await;
    let base = mesh.proxy.openai_base();
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "a model no node serves",
            json!({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}),
            404,
            "model_not_found",
        ),
        (
            "no messages",
            json!({"model": "auto"}),
            400,
            "invalid_request",
        ),
        (
            "stream is not a boolean",
            json!({"stream": "yes", "messages": [{"role": "user", "content": "x"}]}),
            400,
            "invalid_request",
        ),
        (
            "max_tokens below 1",
            json!({"max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}),
            400,
            "invalid_request",
        ),
    ];
    for (what, body, status, code) in cases {
        let (got, text) = post(format!("{base}/chat/completions"), body).await;
        assert_eq!(got, status, "{what}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"]["code"], code, "{what}: {text}");
        assert!(v["error"]["message"].is_string(), "{what}");
        assert!(v["error"]["type"].is_string(), "{what}");
    }
    let r = reqwest::Client::new()
        .post(format!("{base}/chat/completions"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");

    let r = reqwest::get(format!("{base}/nothing-here")).await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_public_bind_unless_allowed() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iicp-node"))
        .args(["proxy", "--host", "0.0.0.0", "--port", "0"])
        .args(["--directory-url", "http://127.0.0.1:9/api"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(stderr.contains("--allow-remote"), "{stderr}");
}

//! `iicp-node proxy`, Anthropic dialect, over raw HTTP against the real
//! binary in front of a local mesh: `POST /v1/messages` plain and streamed
//! (the event names in Anthropic's order, the text reassembled), the
//! request translation seen in the echo backend's answer, and errors in
//! Anthropic's shape.

mod common;

use common::proxy::ProxyMesh;
use serde_json::{Value, json};

async fn post(url: String, body: Value) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(url)
        .header("x-api-key", "unused")
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    if body["stream"] == true && status == 200 {
        assert_eq!(r.headers()["content-type"], "text/event-stream");
    }
    (status, r.text().await.unwrap())
}

/// (event name, data) of each Server-Sent Event.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = None;
            let mut data = None;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(d).unwrap());
                }
            }
            (
                name.unwrap_or_else(|| panic!("an event without a name: {e}")),
                data.unwrap_or_else(|| panic!("an event without data: {e}")),
            )
        })
        .collect()
}

/// Checks a streamed answer's event sequence; returns the text and the
/// number of text deltas.
fn check_stream(body: &str) -> (String, usize) {
    let events = events(body);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let deltas = names
        .iter()
        .filter(|n| **n == "content_block_delta")
        .count();
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(std::iter::repeat_n("content_block_delta", deltas));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected, "{body}");
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str(), "{body}");
    }
    let start = &events[0].1["message"];
    assert_eq!(start["role"], "assistant");
    assert_eq!(start["content"], json!([]));
    assert!(start["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert!(
        delta["usage"]["output_tokens"].as_u64().unwrap() > 0,
        "{body}"
    );
    let text = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    (text, deltas)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_plain_and_streamed_through_the_binary() {
    // A node without a CX key and a proxy that allows plaintext: the node's
    // native endpoint streams word by word.
    let mesh = ProxyMesh::echo(&["--no-cx"], &["--allow-plaintext"]).await;
    let url = format!("{}/v1/messages", mesh.proxy.base());
    let (status, body) = post(
        url.clone(),
        json!({"model": "auto", "max_tokens": 32,
               "messages": [{"role": "user", "content": "hello mesh"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "echo");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "echo: hello mesh"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0);

    let (status, body) = post(
        url,
        json!({"model": "echo", "stream": true,
               "messages": [{"role": "user", "content": "stream me please"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (text, deltas) = check_stream(&body);
    assert_eq!(text, "echo: stream me please");
    assert!(deltas > 1, "streamed for real: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_stream_is_one_delta_and_the_translation_reaches_the_node() {
    // Without --allow-plaintext the answer is CX-sealed and buffered: one
    // delta, the same sequence of events.
    let mesh = ProxyMesh::echo(&[], &[]).await;
    let url = format!("{}/v1/messages", mesh.proxy.base());
    let (status, body) = post(
        url.clone(),
        json!({"model": "auto", "stream": true, "max_tokens": 16,
               "messages": [{"role": "user", "content": "one piece"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(check_stream(&body), ("echo: one piece".to_owned(), 1));

    // System blocks, a history, and text + image blocks: the echo backend
    // answers the last user message's text parts, joined.
    let (status, body) = post(
        url,
        json!({
            "model": "echo", "max_tokens": 64, "top_k": 3, "metadata": {"user_id": "u1"},
            "system": [{"type": "text", "text": "You are terse."}],
            "stop_sequences": ["STOP"], "temperature": 0.2,
            "messages": [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "look at "},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                 "data": "iVBORw0KGgo="}},
                    {"type": "text", "text": "this"},
                ]},
            ],
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["content"][0]["text"], "echo: look at this");
    // The system prompt and the history were words the node counted.
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() >= 4, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_come_back_in_anthropic_shape() {
    let mesh = ProxyMesh::echo(&[], &[]).await;
    let base = mesh.proxy.base();
    let url = format!("{base}/v1/messages");
    let user = json!([{"role": "user", "content": "x"}]);
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "a model no node serves",
            json!({"model": "claude-9", "max_tokens": 8, "messages": user}),
            404,
            "not_found_error",
        ),
        (
            "a model no node serves, streamed",
            json!({"model": "claude-9", "stream": true, "messages": user}),
            404,
            "not_found_error",
        ),
        (
            "no messages",
            json!({"model": "auto", "max_tokens": 8}),
            400,
            "invalid_request_error",
        ),
        (
            "a tool_result block",
            json!({"messages": [{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t", "content": "42"}]}]}),
            400,
            "invalid_request_error",
        ),
        (
            "max_tokens below 1",
            json!({"max_tokens": 0, "messages": user}),
            400,
            "invalid_request_error",
        ),
        (
            "stream is not a boolean",
            json!({"stream": "yes", "messages": user}),
            400,
            "invalid_request_error",
        ),
        (
            "a system role in messages",
            json!({"messages": [{"role": "system", "content": "x"}]}),
            400,
            "invalid_request_error",
        ),
    ];
    for (what, body, status, kind) in cases {
        let (got, text) = post(url.clone(), body).await;
        assert_eq!(got, status, "{what}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "error", "{what}: {text}");
        assert_eq!(v["error"]["type"], kind, "{what}: {text}");
        assert!(v["error"]["message"].is_string(), "{what}");
    }

    let r = reqwest::Client::new()
        .post(&url)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");

    // Paths under /v1/messages answer in Anthropic's shape too.
    let r = reqwest::Client::new()
        .post(format!("{url}/count_tokens"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "not_found_error");
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 405);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");

    // The requests were counted under the anthropic dialect.
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("dialect=\"anthropic\"") && l.contains("outcome=\"invalid\"")),
        "{metrics}"
    );
}

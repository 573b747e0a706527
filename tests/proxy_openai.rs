//! `iicp-node proxy`, OpenAI dialect, over raw HTTP against the real binary
//! in front of a local mesh: chat (plain and streamed), the model list,
//! errors in OpenAI's shape; embeddings (floats and base64, exact) and text
//! completions against in-process nodes with fixed answers; and a streamed
//! chat the caller drops after its first chunk, cancelled on the node and
//! counted as cancelled in both the node's and the proxy's `/metrics`.

mod common;

use base64::Engine as _;
use common::Harness;
use common::proxy::{ProxyMesh, ProxyProcess};
use iicp_client::node::handler_fn;
use iicp_client::{HandlerError, IicpNode, NodeConfig, RunningNode, TaskHandler};
use serde_json::{Value, json};

const COMPLETION: &str = "urn:iicp:intent:llm:completion:v1";
const EMBEDDING: &str = "urn:iicp:intent:llm:embedding:v1";

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

/// An in-process directory, one in-process node (no CX key: the proxy
/// runs with `--allow-plaintext`, so chats stream) and the proxy binary.
struct LocalMesh {
    proxy: ProxyProcess,
    node: RunningNode,
    _directory: Harness,
}

impl LocalMesh {
    /// A node serving `intent` with `model` through `handler`, registered
    /// before the proxy starts.
    async fn start(intent: &str, model: &str, handler: impl TaskHandler) -> Self {
        let directory = Harness::start(Default::default()).await;
        let node = IicpNode::new(NodeConfig {
            intent: intent.into(),
            models: vec![model.into()],
            confidentiality: false,
            ..NodeConfig::local(&directory.base)
        })
        .start(handler)
        .await
        .expect("the node starts");
        node.registered().await.expect("the node registers");
        let base = directory.base.clone();
        let proxy =
            tokio::task::spawn_blocking(move || ProxyProcess::start(&base, &["--allow-plaintext"]))
                .await
                .unwrap();
        Self {
            proxy,
            node,
            _directory: directory,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.proxy.openai_base())
    }

    async fn shutdown(self) {
        self.node.shutdown().await;
    }
}

/// The vector the embedding node answers for input `i`: values exact in
/// `f32` and values that are not (0.1, 1e-7), so a lossy encoding shows.
fn vector(i: usize) -> Vec<f64> {
    vec![i as f64 + 0.5, -1.25, 0.1, 1e-7, -3.0e38, 0.0, 123_456.79]
}

/// Answers an embedding task with [`vector`]s, one per input, in reverse
/// order (with their indexes, which the client sorts by); one vector short
/// when an input is `short`; refuses a payload that still carries the
/// gateway's own `encoding_format`.
fn embedding_node() -> impl TaskHandler {
    handler_fn(|req: iicp_client::TaskRequest, _ctx| async move {
        let p = &req.payload;
        if p.get("encoding_format").is_some() {
            return Err(HandlerError::invalid("encoding_format reached the node"));
        }
        let mut n = match &p["input"] {
            Value::Array(items) if items.iter().all(Value::is_number) => 1,
            Value::Array(items) => items.len(),
            _ => 1,
        };
        if p["input"].to_string().contains("short") {
            n -= 1;
        }
        let data: Vec<Value> = (0..n)
            .rev()
            .map(|i| json!({"object": "embedding", "index": i, "embedding": vector(i)}))
            .collect();
        Ok(json!({"object": "list", "data": data, "model": "emb-m",
                  "usage": {"prompt_tokens": 3, "total_tokens": 3}}))
    })
}

/// Answers a completion task with `completed: <prompt>` and echoes the
/// model the payload named (none when the gateway took "auto" out).
fn completion_node() -> impl TaskHandler {
    handler_fn(|req: iicp_client::TaskRequest, _ctx| async move {
        let p = &req.payload;
        let prompt = match &p["prompt"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Ok(
            json!({"id": "cmpl-fixed", "object": "text_completion", "created": 7,
                  "model": p.get("model").cloned().unwrap_or(json!("text-m")),
                  "choices": [{"index": 0, "text": format!("completed: {prompt}"),
                               "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_as_floats_and_base64_exactly_and_their_errors() {
    let mesh = LocalMesh::start(EMBEDDING, "emb-m", embedding_node()).await;
    let url = mesh.url("/embeddings");
    let exact = |i: usize| -> Vec<f32> { vector(i).iter().map(|x| *x as f32).collect() };

    for (input, n) in [
        (json!("one text"), 1),
        (json!(["a", "b", "c"]), 3),
        (json!([1, 2, 3]), 1),
        (json!([[1, 2], [3]]), 2),
    ] {
        // Floats (the default of the API, and asked for by name).
        for format in [None, Some("float")] {
            let mut body = json!({"model": "emb-m", "input": input});
            if let Some(f) = format {
                body["encoding_format"] = json!(f);
            }
            let (status, text) = post(url.clone(), body).await;
            assert_eq!(status, 200, "{input} {format:?}: {text}");
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["object"], "list");
            assert_eq!(v["model"], "emb-m");
            assert_eq!(v["usage"]["total_tokens"], 3);
            let data = v["data"].as_array().unwrap();
            assert_eq!(data.len(), n, "one vector per input: {input}");
            for (i, d) in data.iter().enumerate() {
                assert_eq!(d["object"], "embedding");
                assert_eq!(d["index"], i, "in input order");
                let got: Vec<f32> = d["embedding"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect();
                assert_eq!(got, exact(i), "{input}");
            }
        }
        // Base64: little-endian f32s, bit for bit.
        let (status, text) = post(
            url.clone(),
            json!({"model": "auto", "input": input, "encoding_format": "base64"}),
        )
        .await;
        assert_eq!(status, 200, "{input} base64: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        let data = v["data"].as_array().unwrap();
        assert_eq!(data.len(), n);
        for (i, d) in data.iter().enumerate() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(d["embedding"].as_str().expect("a base64 string"))
                .unwrap();
            assert_eq!(bytes.len(), 4 * vector(i).len());
            let got: Vec<u32> = bytes
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let want: Vec<u32> = exact(i).iter().map(|x| x.to_bits()).collect();
            assert_eq!(got, want, "{input}: the round trip is exact");
        }
    }

    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "no input",
            json!({"model": "emb-m"}),
            400,
            "invalid_request",
        ),
        (
            "an empty input",
            json!({"input": []}),
            400,
            "invalid_request",
        ),
        ("a number", json!({"input": 5}), 400, "invalid_request"),
        (
            "an array of objects",
            json!({"input": [{"a": 1}]}),
            400,
            "invalid_request",
        ),
        (
            "an unknown encoding",
            json!({"input": "x", "encoding_format": "binary"}),
            400,
            "invalid_request",
        ),
        (
            "a model that is not a string",
            json!({"input": "x", "model": 3}),
            400,
            "invalid_request",
        ),
        (
            "a model no node serves",
            json!({"input": "x", "model": "nobody-embeds-this"}),
            404,
            "model_not_found",
        ),
        (
            "a node that answers fewer vectors than inputs",
            json!({"input": ["a", "short"]}),
            502,
            "decode_error",
        ),
    ];
    for (what, body, status, code) in cases {
        let (got, text) = post(url.clone(), body).await;
        assert_eq!(got, status, "{what}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"]["code"], code, "{what}: {text}");
        assert!(v["error"]["message"].is_string(), "{what}");
    }
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_plain_streamed_and_their_errors() {
    let mesh = LocalMesh::start(COMPLETION, "text-m", completion_node()).await;
    let url = mesh.url("/completions");

    let (status, text) = post(
        url.clone(),
        json!({"model": "text-m", "prompt": "Once upon", "max_tokens": 5}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "completed: Once upon");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["model"], "text-m", "the named model reached the node");
    assert_eq!(v["id"], "cmpl-fixed");
    assert_eq!(v["usage"]["total_tokens"], 3);

    // "auto" is taken out: the node's backend picks its own model.
    let (status, text) = post(url.clone(), json!({"model": "auto", "prompt": "x"})).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["model"], "text-m");

    // Streamed: the whole completion as one event, then [DONE].
    let r = reqwest::Client::new()
        .post(&url)
        .json(&json!({"prompt": "streamed", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let body = r.text().await.unwrap();
    let events: Vec<&str> = body
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").expect("data events only"))
        .collect();
    assert_eq!(events.len(), 2, "{body}");
    assert_eq!(events[1], "[DONE]");
    let event: Value = serde_json::from_str(events[0]).unwrap();
    assert_eq!(event["choices"][0]["text"], "completed: streamed");

    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "no prompt",
            json!({"model": "text-m"}),
            400,
            "invalid_request",
        ),
        (
            "a numeric prompt",
            json!({"prompt": 7}),
            400,
            "invalid_request",
        ),
        (
            "max_tokens below 1",
            json!({"prompt": "x", "max_tokens": 0}),
            400,
            "invalid_request",
        ),
        (
            "stream is not a boolean",
            json!({"prompt": "x", "stream": "yes"}),
            400,
            "invalid_request",
        ),
        (
            "a model no node serves",
            json!({"prompt": "x", "model": "nobody-completes"}),
            404,
            "model_not_found",
        ),
    ];
    for (what, body, status, code) in cases {
        let (got, text) = post(url.clone(), body).await;
        assert_eq!(got, status, "{what}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"]["code"], code, "{what}: {text}");
    }
    // Not JSON at all.
    let r = reqwest::Client::new()
        .post(&url)
        .body("prompt=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    mesh.shutdown().await;
}

/// Cancellation needs a node that streams: the native transport.
#[cfg(feature = "iicp-tcp")]
mod cancellation {
    use super::*;
    use common::CHAT;
    use prometheus_parse::{Scrape, Value as Metric};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    /// GETs `url` and parses it as Prometheus text.
    async fn scrape(url: &str) -> Scrape {
        let text = reqwest::get(url).await.unwrap().text().await.unwrap();
        Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text")
    }

    /// The sample `name` whose labels include `labels`; 0 when there is none
    /// yet (a labelled family makes its series on first use).
    fn sample(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<f64> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => *v,
                other => panic!("{name}: not a single value: {other:?}"),
            })
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?}: several series match");
        found.first().copied().unwrap_or(0.0)
    }

    /// Polls `check` every 20 ms for up to 10 s.
    async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
        for _ in 0..500 {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{what} did not happen within 10 s");
    }

    /// A chat that streams word by word: two words quickly, or, once `slow`
    /// is set, 1000 words 20 ms apart. Counts the handlers that ran to their
    /// end in `finished`.
    fn slow_chat(slow: Arc<AtomicBool>, finished: Arc<AtomicUsize>) -> impl TaskHandler {
        handler_fn(move |_req: iicp_client::TaskRequest, ctx| {
            let finished = finished.clone();
            let (words, pause) = if slow.load(Ordering::SeqCst) {
                (1000, Duration::from_millis(20))
            } else {
                (2, Duration::from_millis(1))
            };
            async move {
                let mut text = String::new();
                for i in 0..words {
                    let piece = format!("w{i} ");
                    if let Some(partials) = &ctx.partials {
                        let chunk = json!({"id": "chatcmpl-slow", "object": "chat.completion.chunk",
                            "model": "slow-m",
                            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]});
                        if !partials.send(chunk).await {
                            return Err(HandlerError::backend("the consumer went away"));
                        }
                    }
                    text += &piece;
                    tokio::time::sleep(pause).await;
                }
                finished.fetch_add(1, Ordering::SeqCst);
                Ok(
                    json!({"id": "chatcmpl-slow", "object": "chat.completion", "model": "slow-m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": words, "total_tokens": words + 1}}),
                )
            }
        })
    }

    /// A streamed chat the HTTP client drops after its first chunk: the proxy
    /// drops its stream, the native connection closes, the node aborts the
    /// handler. Both `/metrics` show it as cancelled; a stream read to its end
    /// first shows as success. No timing assertion: bounded polls only.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_dropped_after_its_first_chunk_is_cancelled_on_the_node() {
        let finished = Arc::new(AtomicUsize::new(0));
        let slow = Arc::new(AtomicBool::new(false));
        let handler = slow_chat(slow.clone(), finished.clone());
        let mesh = LocalMesh::start(CHAT, "slow-m", handler).await;
        let node_metrics = format!("{}/metrics", mesh.node.endpoint());
        let proxy_metrics = format!("{}/metrics", mesh.proxy.base());
        let node_tasks = |outcome: &'static str, class: &'static str| {
            move |s: &Scrape| {
                sample(
                    s,
                    "iicp_node_tasks_total",
                    &[
                        ("intent", CHAT),
                        ("outcome", outcome),
                        ("status_class", class),
                    ],
                )
            }
        };
        let proxy_chats = |outcome: &'static str| {
            move |s: &Scrape| {
                sample(
                    s,
                    "iicp_proxy_requests_total",
                    &[
                        ("dialect", "openai"),
                        ("endpoint", "chat"),
                        ("outcome", outcome),
                    ],
                )
            }
        };
        let (node_ok, node_cancelled) = (
            node_tasks("success", "2xx"),
            node_tasks("cancelled", "none"),
        );
        let (proxy_ok, proxy_cancelled) = (proxy_chats("success"), proxy_chats("cancelled"));
        let node0 = scrape(&node_metrics).await;
        let proxy0 = scrape(&proxy_metrics).await;
        let body = json!({"model": "slow-m", "stream": true,
                          "messages": [{"role": "user", "content": "go"}]});

        // A stream read to its end: success on both sides.
        let (status, text) = post(mesh.url("/chat/completions"), body.clone()).await;
        assert_eq!(status, 200, "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert!(text.contains("w0 ") && text.contains("w1 "), "{text}");
        wait_until("the node to count the streamed task", async || {
            node_ok(&scrape(&node_metrics).await) == node_ok(&node0) + 1.0
        })
        .await;
        let proxy1 = scrape(&proxy_metrics).await;
        assert_eq!(proxy_ok(&proxy1), proxy_ok(&proxy0) + 1.0);
        assert_eq!(finished.load(Ordering::SeqCst), 1);

        // A stream dropped after its first chunk.
        slow.store(true, Ordering::SeqCst);
        let http = reqwest::Client::new();
        let mut r = http
            .post(mesh.url("/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let first = r.chunk().await.unwrap().expect("a first chunk");
        let first = String::from_utf8_lossy(&first);
        assert!(first.starts_with("data: {"), "{first}");
        assert!(first.contains("\"w0 \""), "{first}");
        let open = scrape(&proxy_metrics).await;
        assert_eq!(sample(&open, "iicp_proxy_streams_open", &[]), 1.0);
        drop(r);
        drop(http);

        wait_until("the node to count the task as cancelled", async || {
            node_cancelled(&scrape(&node_metrics).await) == node_cancelled(&node0) + 1.0
        })
        .await;
        wait_until("the proxy to count the request as cancelled", async || {
            proxy_cancelled(&scrape(&proxy_metrics).await) == proxy_cancelled(&proxy0) + 1.0
        })
        .await;
        let node2 = scrape(&node_metrics).await;
        let proxy2 = scrape(&proxy_metrics).await;
        assert_eq!(node_ok(&node2), node_ok(&node0) + 1.0, "no second success");
        assert_eq!(sample(&node2, "iicp_node_tasks_active", &[]), 0.0);
        assert_eq!(proxy_ok(&proxy2), proxy_ok(&proxy0) + 1.0);
        assert_eq!(sample(&proxy2, "iicp_proxy_streams_open", &[]), 0.0);
        assert_eq!(
            finished.load(Ordering::SeqCst),
            1,
            "the slow handler was aborted, not run to its end"
        );
        mesh.shutdown().await;
    }
}

/// A young mesh: the directory hides nodes in probation (fewer than 100
/// completed tasks) from `qos=interactive`, which the gateway asks first;
/// it then asks at `batch` and the chat is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_in_probation_still_answers_through_the_gateway() {
    let config = iicp_client::directory::DirectoryConfig {
        enforce_probation: true,
        ..Default::default()
    };
    let mesh = ProxyMesh::start_with(config, &["--backend-type", "echo"], &[]).await;
    let interactive = mesh
        .directory
        .discover_ids(&format!("intent={}&qos=interactive", common::CHAT))
        .await;
    assert!(
        interactive.is_empty(),
        "the node is in probation: {interactive:?}"
    );
    let (status, body) = post(
        format!("{}/chat/completions", mesh.proxy.openai_base()),
        json!({"model": "echo", "messages": [{"role": "user", "content": "young mesh"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "echo: young mesh");
}

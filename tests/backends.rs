//! Backends against small local HTTP servers that record the exact request
//! and answer in the upstream API's shape: the OpenAI-compatible engines
//! (paths, model fill-in, auth header, audio, errors) and the Anthropic
//! translation (every header and field). The real llama.cpp server is
//! exercised in `backends_llamacpp.rs`.

mod common;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine;
use iicp_client::backends::{self, BackendError, BackendKind, BackendOptions};
use iicp_client::wire::BackendFlavour;
use iicp_client::{IicpNode, NodeConfig, Secret};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

const CHAT: &str = "urn:iicp:intent:llm:chat:v1";

#[derive(Clone, Debug)]
struct Seen {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request")
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.last().body).unwrap()
    }
    /// The body of the last request to `path`.
    fn json_to(&self, path: &str) -> Value {
        let seen = self.seen.lock().unwrap();
        let last = seen
            .iter()
            .rev()
            .find(|s| s.path == path)
            .expect("a request to that path");
        serde_json::from_slice(&last.body).unwrap()
    }
}

/// What the fake answers with status 500 (plus the key it was sent): a
/// stand-in for an internal detail that must not reach a consumer.
const INTERNAL_ERROR: &str = "upstream pool http://10.9.8.7:7000/internal/shard-3 exhausted";

/// An OpenAI-style server: `/v1/models`, chat, completions, embeddings,
/// moderations, audio; model `bad-model` gets a 404 with the key echoed, a
/// first message `FAIL-500` a 500 with an internal URL and the key echoed.
async fn openai_fake() -> (String, Fake, tokio::task::JoinHandle<()>) {
    let fake = Fake::default();
    let app = Router::new()
        .route("/{*path}", any(openai_route))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), fake, task)
}

async fn openai_route(
    State(f): State<Fake>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    f.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        headers: headers.clone(),
        body: body.clone(),
    });
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if req["model"] == "bad-model" {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        return (
            StatusCode::NOT_FOUND,
            format!("model not found (you sent {auth})"),
        )
            .into_response();
    }
    if req["messages"][0]["content"] == "FAIL-500" {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{INTERNAL_ERROR} (request had {auth})\n\u{1b}[31mFORGED log line"),
        )
            .into_response();
    }
    let model = req["model"].clone();
    let body = match path.as_str() {
        "/v1/models" => json!({"object": "list", "data": [
            {"id": "alpha", "object": "model", "owned_by": "vllm"},
            {"id": "beta-vision", "object": "model", "owned_by": "vllm"}]}),
        "/v1/chat/completions" => json!({"id": "c1", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi from fake"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}}),
        "/v1/completions" => json!({"id": "t1", "object": "text_completion", "model": model,
            "choices": [{"index": 0, "text": "and so on", "finish_reason": "length"}]}),
        "/v1/embeddings" => {
            json!({"object": "list", "model": model, "data": [{"index": 0, "embedding": [0.1, 0.2]}]})
        }
        "/v1/moderations" => json!({"id": "m", "results": [{"flagged": false}]}),
        "/v1/audio/speech" => {
            return ([("content-type", "audio/wav")], vec![1u8, 2, 3, 4]).into_response();
        }
        "/v1/audio/transcriptions" => {
            let text = String::from_utf8_lossy(&body);
            let ok = text.contains("name=\"file\"")
                && text.contains("name=\"model\"")
                && text.contains("RIFF");
            json!({"text": if ok { "multipart ok" } else { "bad multipart" }})
        }
        _ => return (StatusCode::NOT_FOUND, "no such route").into_response(),
    };
    axum::Json(body).into_response()
}

fn opts(base: &str, key: Option<&str>, model: Option<&str>) -> BackendOptions {
    BackendOptions {
        base_url: Some(base.to_owned()),
        api_key: key.map(Secret::new),
        model: model.map(str::to_owned),
        ..Default::default()
    }
}

#[tokio::test]
async fn openai_compat_maps_intents_fills_the_model_and_sends_bearer_only_with_a_key() {
    let (base, fake, _t) = openai_fake().await;
    let b = backends::build(
        BackendKind::OpenaiCompat,
        opts(&base, Some("sk-test"), Some("alpha")),
    );
    let chat = b
        .invoke(
            CHAT,
            &json!({"messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
        .unwrap();
    assert_eq!(chat["choices"][0]["message"]["content"], "hi from fake");
    let seen = fake.last();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.headers["authorization"], "Bearer sk-test");
    assert_eq!(
        fake.json()["model"],
        "alpha",
        "the configured model fills in"
    );

    for (intent, path) in [
        ("urn:iicp:intent:llm:completion:v1", "/v1/completions"),
        ("urn:iicp:intent:llm:embedding:v1", "/v1/embeddings"),
        ("urn:iicp:intent:safety:moderate:v1", "/v1/moderations"),
    ] {
        b.invoke(
            intent,
            &json!({"input": "x", "prompt": "x", "model": "own"}),
        )
        .await
        .unwrap();
        assert_eq!(fake.last().path, path);
        assert_eq!(fake.json()["model"], "own", "the task's model wins");
    }
    let unsupported = b
        .invoke("urn:iicp:intent:code:lint:v1", &json!({}))
        .await
        .unwrap_err();
    assert!(matches!(unsupported, BackendError::Unsupported(_)));

    let keyless = backends::build(BackendKind::Llamacpp, opts(&base, None, Some("alpha")));
    keyless
        .invoke(CHAT, &json!({"messages": []}))
        .await
        .unwrap();
    assert!(
        fake.last().headers.get("authorization").is_none(),
        "no key, no Authorization header"
    );
    let no_model = backends::build(BackendKind::Vllm, opts(&base, None, None));
    let before = fake.seen.lock().unwrap().len();
    let err = no_model
        .invoke(CHAT, &json!({"messages": []}))
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::InvalidRequest(_)), "{err}");
    assert_eq!(
        fake.seen.lock().unwrap().len(),
        before,
        "nothing sent without a model"
    );
}

#[tokio::test]
async fn audio_goes_as_multipart_and_comes_back_as_base64() {
    let (base, _fake, _t) = openai_fake().await;
    let b = backends::build(
        BackendKind::OpenaiCompat,
        opts(&base, None, Some("whisper")),
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let wav = b64.encode(b"RIFF....WAVEfmt ");
    let t = b
        .invoke(
            "urn:iicp:intent:audio:transcribe:v1",
            &json!({"audio": wav, "language": "en"}),
        )
        .await
        .unwrap();
    assert_eq!(t["text"], "multipart ok");
    let s = b
        .invoke(
            "urn:iicp:intent:audio:speech:v1",
            &json!({"input": "hello", "voice": "a"}),
        )
        .await
        .unwrap();
    assert_eq!(s["audio"], b64.encode([1u8, 2, 3, 4]));
    assert_eq!(s["content_type"], "audio/wav");
    let err = b
        .invoke(
            "urn:iicp:intent:audio:transcribe:v1",
            &json!({"audio": "%%%"}),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::InvalidRequest(_)));
}

#[tokio::test]
async fn upstream_errors_are_typed_generic_and_keyless() {
    let (base, _fake, _t) = openai_fake().await;
    let b = backends::build(
        BackendKind::OpenaiCompat,
        opts(&base, Some("sk-secret-42"), None),
    );
    match b
        .invoke(CHAT, &json!({"model": "bad-model", "messages": []}))
        .await
        .unwrap_err()
    {
        e @ BackendError::Upstream { .. } => {
            assert_eq!(
                e.to_string(),
                "the backend answered HTTP 404",
                "the body stays out of the message"
            );
            let BackendError::Upstream { detail, .. } = e else {
                unreachable!()
            };
            assert!(detail.contains("model not found"), "kept for the log");
            assert!(
                !detail.contains("sk-secret-42"),
                "the echoed key is scrubbed: {detail}"
            );
        }
        other => panic!("expected an upstream error, got {other:?}"),
    }
    let dead = common::dead_endpoint().await;
    let b = backends::build(
        BackendKind::OpenaiCompat,
        opts(&format!("{dead}/v1"), None, Some("m")),
    );
    assert!(matches!(
        b.invoke(CHAT, &json!({"messages": []})).await.unwrap_err(),
        BackendError::Unreachable(_)
    ));
}

#[tokio::test]
async fn probe_lists_models_and_detects_the_flavour() {
    let (base, _fake, _t) = openai_fake().await;
    let (models, flavour) = backends::build(BackendKind::OpenaiCompat, opts(&base, None, None))
        .probe()
        .await
        .unwrap();
    assert_eq!(models, vec!["alpha", "beta-vision"]);
    assert_eq!(flavour, BackendFlavour::Vllm, "owned_by: vllm");
}

#[tokio::test]
async fn the_seed_invoke_helpers_return_the_consumer_envelope() {
    let (base, _fake, _t) = openai_fake().await;
    let o = opts(&base, None, Some("alpha"));
    let payload = json!({"messages": [{"role": "user", "content": "hi"}]});
    let v = backends::invoke_backend("openai_compat", &o, CHAT, &payload)
        .await
        .unwrap();
    assert_eq!(
        v["result"]["choices"][0]["message"]["content"],
        "hi from fake"
    );
    let v = backends::openai_compat::invoke(&o, CHAT, &payload)
        .await
        .unwrap();
    assert!(v["result"]["choices"].is_array());
    let err = backends::invoke_backend("skynet", &o, CHAT, &payload)
        .await
        .unwrap_err();
    assert!(err.contains("unknown backend type"), "{err}");
    // The seed's handler body: unwrap the envelope, fall back to an error_code object.
    let bad = opts(
        &format!("{}/v1", common::dead_endpoint().await),
        None,
        Some("m"),
    );
    let v = backends::invoke_backend("openai_compat", &bad, CHAT, &payload)
        .await
        .unwrap_or_else(|e| serde_json::json!({"error_code": 500, "error_message": e}));
    let inner = v.get("result").cloned().unwrap_or(v);
    assert_eq!(inner["error_code"], 500);
}

/// A Messages API stand-in that checks every header and field it relies on.
async fn anthropic_fake() -> (String, Fake) {
    let fake = Fake::default();
    let app = Router::new()
        .route("/{*path}", any(anthropic_route))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), fake)
}

async fn anthropic_route(
    State(f): State<Fake>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    f.seen.lock().unwrap().push(Seen {
        path: uri.path().to_owned(),
        headers: headers.clone(),
        body: body.clone(),
    });
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some("ak-test") {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}))).into_response();
    }
    if headers
        .get("anthropic-version")
        .and_then(|v| v.to_str().ok())
        != Some("2023-06-01")
    {
        return (StatusCode::BAD_REQUEST, "anthropic-version missing").into_response();
    }
    if uri.path() == "/v1/models" {
        return axum::Json(json!({"data": [{"id": "claude-test-1", "type": "model"}]}))
            .into_response();
    }
    let req: Value = serde_json::from_slice(&body).unwrap();
    if req.get("max_tokens").is_none() || req.get("model").is_none() {
        return (StatusCode::BAD_REQUEST, "max_tokens and model are required").into_response();
    }
    axum::Json(json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": req["model"],
        "content": [{"type": "text", "text": "Claude says hi"}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 12, "output_tokens": 4}
    }))
    .into_response()
}

#[tokio::test]
async fn anthropic_requests_and_replies_translate() {
    let (base, fake) = anthropic_fake().await;
    let b = backends::build(
        BackendKind::Anthropic,
        opts(&base, Some("ak-test"), Some("claude-test-1")),
    );
    let reply = b
        .invoke(
            CHAT,
            &json!({"messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": [{"type": "text", "text": "Look"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]}
            ], "stop": ["\n\n"], "temperature": 0.5}),
        )
        .await
        .unwrap();
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["choices"][0]["message"]["content"], "Claude says hi");
    assert_eq!(reply["choices"][0]["finish_reason"], "stop");
    assert_eq!(reply["usage"]["total_tokens"], 16);
    let seen = fake.last();
    assert_eq!(seen.path, "/v1/messages");
    assert!(
        seen.headers.get("authorization").is_none(),
        "the key goes as x-api-key only"
    );
    let sent = fake.json();
    assert_eq!(sent["system"], "You are terse.");
    assert_eq!(sent["max_tokens"], 4096);
    assert_eq!(sent["stop_sequences"], json!(["\n\n"]));
    assert_eq!(sent["temperature"], 0.5);
    assert_eq!(
        sent["messages"][0]["content"][1]["source"],
        json!({"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"})
    );

    let (models, flavour) = b.probe().await.unwrap();
    assert_eq!(
        (models, flavour),
        (vec!["claude-test-1".to_owned()], BackendFlavour::Anthropic)
    );

    let wrong_key = backends::build(
        BackendKind::Anthropic,
        opts(&base, Some("nope"), Some("claude-test-1")),
    );
    let err = wrong_key
        .invoke(CHAT, &json!({"messages": []}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackendError::Upstream { status: 401, .. }),
        "{err}"
    );
    assert!(!err.to_string().contains("nope"));
    let other = b
        .invoke("urn:iicp:intent:llm:embedding:v1", &json!({}))
        .await
        .unwrap_err();
    assert!(matches!(other, BackendError::Unsupported(_)));
}

#[tokio::test]
async fn a_node_serves_through_a_backend_and_reports_its_models() {
    let (base, fake, backend_task) = openai_fake().await;
    let h = common::Harness::start(iicp_client::directory::DirectoryConfig {
        heartbeat_interval: std::time::Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let proxy = common::test_node::RecordingProxy::start(h.base.trim_end_matches("/api")).await;
    let node = IicpNode::new(NodeConfig {
        directory_url: proxy.url.clone(),
        host: "127.0.0.1".into(),
        port: 0,
        ..Default::default()
    })
    .start_backend(backends::build(
        BackendKind::OpenaiCompat,
        opts(&base, None, Some("alpha")),
    ))
    .await
    .unwrap();
    node.registered().await.unwrap();
    let reg = proxy.to("/v1/register")[0].request.clone();
    assert_eq!(reg["backend"], "vllm", "the flavour the probe found");
    let caps = reg["capabilities"].as_array().unwrap();
    assert_eq!(
        caps.len(),
        2,
        "text and vision models are separate capabilities"
    );
    assert_eq!(caps[1]["models"], json!(["beta-vision"]));
    assert_eq!(caps[1]["input_modalities"], json!(["text", "image"]));

    let post = |body: Value| {
        let url = format!("{}/v1/task", node.endpoint());
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = post(
        json!({"intent": CHAT, "payload": {"messages": [{"role": "user", "content": "x"}]},
                                     "constraints": {"max_tokens": 7}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["result"]["choices"][0]["message"]["content"],
        "hi from fake"
    );
    assert_eq!(body["model_used"], "alpha");
    assert_eq!(
        fake.json_to("/v1/chat/completions")["max_tokens"],
        7,
        "constraints.max_tokens reaches the backend"
    );

    let (status, body) = post(json!({"intent": CHAT, "payload": {
        "messages": [{"role": "user", "content": "FAIL-500"}]}}))
    .await;
    assert_eq!(
        (
            status,
            body["status"].as_str(),
            body["error"]["code"].as_str()
        ),
        (502, Some("error"), Some("backend_error"))
    );

    // health_models follow the backend: all models while it runs, none once it is gone.
    for _ in 0..100 {
        if proxy
            .to("/v1/heartbeat")
            .iter()
            .any(|b| b.request["health_models"] == json!(["alpha", "beta-vision"]))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        proxy
            .to("/v1/heartbeat")
            .iter()
            .any(|b| b.request["health_models"] == json!(["alpha", "beta-vision"]))
    );
    backend_task.abort();
    let _ = backend_task.await;
    let (status, body) = post(json!({"intent": CHAT, "payload": {"messages": []}})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("backend_error")),
        "a killed backend is a 502"
    );
    for _ in 0..100 {
        if proxy
            .to("/v1/heartbeat")
            .last()
            .is_some_and(|b| b.request["health_models"] == json!([]))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        proxy.to("/v1/heartbeat").last().unwrap().request["health_models"],
        json!([])
    );
    assert!(
        h.discover_ids(&format!("intent={CHAT}")).await.is_empty(),
        "hidden while its backend is down"
    );
    node.shutdown().await;
}

/// A node in front of `backend` (no directory), with `config` for the rest.
async fn node_over(
    backend: Arc<dyn backends::Backend>,
    config: NodeConfig,
) -> iicp_client::RunningNode {
    IicpNode::new(NodeConfig {
        host: "127.0.0.1".into(),
        port: 0,
        skip_registration: true,
        ..config
    })
    .start_backend(backend)
    .await
    .unwrap()
}

/// POSTs a task; returns the status, the JSON answer and its raw text.
async fn post_task(node: &iicp_client::RunningNode, task: &Value) -> (u16, Value, String) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/task", node.endpoint()))
        .json(task)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap(), text)
}

fn chat_task(payload: Value, constraints: Value) -> Value {
    let mut t = json!({"intent": CHAT, "payload": payload});
    if !constraints.is_null() {
        t["constraints"] = constraints;
    }
    t
}

/// Issue #11 item 4: a consumer cannot pick a model the node never
/// advertised, nor raise max_tokens / n above the operator's limits.
#[tokio::test]
async fn a_node_sends_only_advertised_models_and_clamped_costs_to_an_openai_backend() {
    let (base, fake, _t) = openai_fake().await;
    let node = node_over(
        backends::build(
            BackendKind::OpenaiCompat,
            BackendOptions {
                max_choices: 4, // the node's limits are lower and win
                ..opts(&base, Some("sk-op"), None)
            },
        ),
        NodeConfig {
            max_tokens: 100,
            max_choices: 2,
            ..Default::default()
        },
    )
    .await;
    let hi = json!([{"role": "user", "content": "hi"}]);
    // (payload, constraints) → what the backend must receive.
    let served = [
        (
            json!({"messages": hi, "max_tokens": 1_000_000, "max_completion_tokens": 999_999,
                   "n": 8, "best_of": 9}),
            Value::Null,
            json!({"model": "alpha", "max_tokens": 100, "max_completion_tokens": 100,
                   "n": 2, "best_of": 2}),
        ),
        (
            json!({"messages": hi}),
            json!({"max_tokens": 1_000_000, "model": "beta-vision"}),
            json!({"model": "beta-vision", "max_tokens": 100}),
        ),
        (
            json!({"messages": hi, "model": "alpha", "max_tokens": 7, "n": 1}),
            json!({"max_tokens": 1_000_000}),
            json!({"model": "alpha", "max_tokens": 7, "n": 1}),
        ),
    ];
    for (payload, constraints, want) in served {
        let (status, body, _) = post_task(&node, &chat_task(payload.clone(), constraints)).await;
        assert_eq!(status, 200, "{payload}: {body}");
        let sent = fake.json_to("/v1/chat/completions");
        for (field, value) in want.as_object().unwrap() {
            assert_eq!(&sent[field], value, "{field} for {payload}: sent {sent}");
        }
    }

    let before = fake.seen.lock().unwrap().len();
    for (payload, constraints) in [
        (
            json!({"messages": hi, "model": "gpt-4-expensive", "max_tokens": 1_000_000}),
            Value::Null,
        ),
        (json!({"messages": hi}), json!({"model": "gpt-4-expensive"})),
    ] {
        let (status, body, text) = post_task(&node, &chat_task(payload, constraints)).await;
        assert_eq!(
            (
                status,
                body["status"].as_str(),
                body["error"]["code"].as_str()
            ),
            (404, Some("error"), Some("IICP-E029")),
            "{body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("alpha") && message.contains("beta-vision"),
            "names the models served: {message}"
        );
        assert!(
            !text.contains("gpt-4-expensive"),
            "the asked model is not echoed"
        );
    }
    let (status, body, _) = post_task(
        &node,
        &chat_task(
            json!({"messages": hi, "max_tokens": "1000000"}),
            Value::Null,
        ),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("validation_error")),
        "a string max_tokens is refused, not passed to a lenient server"
    );
    assert_eq!(
        fake.seen.lock().unwrap().len(),
        before,
        "no refused task reached the backend"
    );
    node.shutdown().await;
}

/// Issue #11 item 4, Anthropic: the same rules, and `max_tokens` (which
/// Anthropic requires) becomes the operator's limit when the task sets none.
/// Also the backend-level limit that the seed's `invoke_backend` applies.
#[tokio::test]
async fn anthropic_and_the_seed_helper_get_clamped_max_tokens() {
    let (base, fake) = anthropic_fake().await;
    let node = node_over(
        backends::build(
            BackendKind::Anthropic,
            opts(&base, Some("ak-test"), Some("claude-test-1")),
        ),
        NodeConfig {
            models: vec!["claude-test-1".into()],
            max_tokens: 1000,
            ..Default::default()
        },
    )
    .await;
    let hi = json!([{"role": "user", "content": "hi"}]);
    for (payload, constraints, want) in [
        (
            json!({"messages": hi, "max_tokens": 1_000_000}),
            Value::Null,
            1000,
        ),
        (
            json!({"messages": hi}),
            json!({"max_tokens": 1_000_000}),
            1000,
        ),
        (json!({"messages": hi}), Value::Null, 1000),
        (json!({"messages": hi, "max_tokens": 5}), Value::Null, 5),
    ] {
        let (status, body, _) = post_task(&node, &chat_task(payload.clone(), constraints)).await;
        assert_eq!(status, 200, "{payload}: {body}");
        let sent = fake.json_to("/v1/messages");
        assert_eq!(sent["max_tokens"], want, "{payload}");
        assert_eq!(sent["model"], "claude-test-1");
    }
    let before = fake.seen.lock().unwrap().len();
    let (status, body, _) = post_task(
        &node,
        &chat_task(
            json!({"messages": hi, "model": "claude-opus-expensive"}),
            Value::Null,
        ),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("IICP-E029"))
    );
    assert_eq!(fake.seen.lock().unwrap().len(), before);
    node.shutdown().await;

    // Without a node: the backend options' own limit (default 4096).
    let seed = BackendOptions {
        max_tokens: 50,
        ..opts(&base, Some("ak-test"), Some("claude-test-1"))
    };
    backends::invoke_backend(
        "anthropic",
        &seed,
        CHAT,
        &json!({"messages": hi, "max_tokens": 1_000_000}),
    )
    .await
    .unwrap();
    assert_eq!(fake.json_to("/v1/messages")["max_tokens"], 50);
    let (openai_base, openai, _t) = openai_fake().await;
    backends::invoke_backend(
        "openai_compat",
        &opts(&openai_base, None, Some("alpha")),
        CHAT,
        &json!({"messages": hi, "max_tokens": 1_000_000, "n": 4}),
    )
    .await
    .unwrap();
    let sent = openai.json_to("/v1/chat/completions");
    assert_eq!(
        (sent["max_tokens"].as_u64(), sent["n"].as_u64()),
        (
            Some(backends::DEFAULT_MAX_TOKENS),
            Some(backends::DEFAULT_MAX_CHOICES)
        )
    );
}

/// Issue #11 item 9: a backend's error body (internal URL, echoed API key,
/// a forged log line) never reaches the consumer; the operator's log gets
/// it scrubbed.
#[tokio::test]
async fn backend_error_text_stays_in_the_operators_log() {
    let (captured, _guard) = common::logs::capture();
    let (base, _fake, _t) = openai_fake().await;
    let key = "sk-operator-secret-42";
    let node = node_over(
        backends::build(
            BackendKind::OpenaiCompat,
            opts(&base, Some(key), Some("alpha")),
        ),
        NodeConfig::default(),
    )
    .await;
    let failing = json!({"messages": [{"role": "user", "content": "FAIL-500"}]});
    let (status, body, text) = post_task(&node, &chat_task(failing.clone(), Value::Null)).await;
    assert_eq!(
        (
            status,
            body["status"].as_str(),
            body["error"]["code"].as_str()
        ),
        (502, Some("error"), Some("backend_error"))
    );
    assert_eq!(body["error"]["message"], "the backend answered HTTP 500");
    for secret in ["10.9.8.7", "internal", key, "FORGED"] {
        assert!(
            !text.contains(secret),
            "`{secret}` reached the consumer: {text}"
        );
    }
    let seed = backends::invoke_backend(
        "openai_compat",
        &opts(&base, Some(key), Some("alpha")),
        CHAT,
        &failing,
    )
    .await
    .unwrap_err();
    assert_eq!(seed, "the backend answered HTTP 500");
    node.shutdown().await;

    let logs = captured.text();
    assert!(
        logs.contains(INTERNAL_ERROR),
        "the operator sees the detail: {logs}"
    );
    assert!(
        !logs.contains(key),
        "the key is scrubbed from the log: {logs}"
    );
    assert!(
        !logs.contains('\u{1b}') && !logs.contains("\nFORGED"),
        "control characters are escaped: {logs}"
    );
}

/// What the consumer should read for an engine's answer.
enum Reads {
    /// A success whose result is the engine's answer parsed (or `Some`
    /// other value, for an envelope the node unwraps).
    Result(Option<Value>),
    /// 502 `backend_error`.
    BackendError,
}

/// An engine's JSON answer over every buffered transport: HTTP relays the
/// text as the engine sent it (not parsed and written again), native frames
/// carry it as a value, and both read as the answer parsed. (A lifecycle
/// CALL asks the engine for a stream: `backends_llamacpp.rs`.) Text that cannot be
/// relayed as it is (not an object, not JSON, escapes of UTF-16
/// surrogates, an envelope already) takes the parsed path, and answers as
/// before: unwrapped, or 502 `backend_error`.
#[tokio::test]
async fn an_engines_json_answer_reaches_the_consumer_as_sent() {
    // The engine answers each chat with the text of its first message.
    let app = Router::new().route(
        "/{*path}",
        any(|uri: Uri, body: Bytes| async move {
            if uri.path() == "/v1/models" {
                let list = json!({"object": "list", "data": [{"id": "m", "object": "model"}]});
                return axum::Json(list).into_response();
            }
            let req: Value = serde_json::from_slice(&body).unwrap_or_default();
            match req["messages"][0]["content"].as_str() {
                Some(text) => {
                    ([("content-type", "application/json")], text.to_owned()).into_response()
                }
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let backend = backends::build(BackendKind::OpenaiCompat, opts(&base, None, Some("m")));
    let node = node_over(backend, NodeConfig::default()).await;
    let addr: std::net::SocketAddr = node
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .unwrap();

    let pretty = "{\n  \"id\": \"c\",\n  \"model\": \"m\",\n  \"choices\": [{\"message\": \
        {\"role\": \"assistant\", \"content\": \"h\u{e9}llo \\\"q\\\" \\u00e9\"}}],\n  \
        \"usage\": {\"total_tokens\": 6},\n  \"x\": [1, 2.5e3, null, {}]\n}\n";
    let parsed = |text: &str| Reads::Result(Some(serde_json::from_str(text).unwrap()));
    let cases = [
        (pretty, parsed(pretty)),
        (
            r#"{"a":"\ud83d\ude00"}"#,
            Reads::Result(Some(json!({"a": "😀"}))),
        ),
        (
            r#"{"result":{"a":1}}"#,
            Reads::Result(Some(json!({"a": 1}))),
        ),
        ("[1,2]", Reads::Result(Some(json!([1, 2])))),
        (r#"{"a":"\ud800"}"#, Reads::BackendError),
        ("not json", Reads::BackendError),
        (r#"{"a":1} {"b":2}"#, Reads::BackendError),
    ];
    let transports = [
        common::node::Transport::Http,
        #[cfg(feature = "iicp-tcp")]
        common::node::Transport::NativeBuffered,
    ];
    for transport in transports {
        for (text, reads) in &cases {
            let task = chat_task(
                json!({"messages": [{"role": "user", "content": text}]}),
                Value::Null,
            );
            let reply = transport.send(addr, task, &[]).await;
            let case = format!("{transport:?} {text:?}: {}", reply.body);
            match reads {
                Reads::Result(result) => {
                    assert_eq!(reply.code, None, "{case}");
                    assert_eq!(reply.status.unwrap_or(200), 200, "{case}");
                    assert_eq!(Some(&reply.body["result"]), result.as_ref(), "{case}");
                }
                Reads::BackendError => {
                    assert_eq!(reply.code.as_deref(), Some("backend_error"), "{case}");
                    assert_eq!(reply.status.unwrap_or(502), 502, "{case}");
                }
            }
        }
        let reply = transport
            .send(
                addr,
                chat_task(
                    json!({"messages": [{"role": "user", "content": pretty}]}),
                    Value::Null,
                ),
                &[],
            )
            .await;
        if transport.carries_details() {
            assert_eq!(reply.body["model_used"], "m");
            assert!(
                reply.text.contains(pretty),
                "relayed as sent: {}",
                reply.text
            );
        }
        if transport.carries_metrics() {
            assert_eq!(reply.body["metrics"]["tokens_used"], 6, "{}", reply.body);
        }
    }
    node.shutdown().await;
}

//! The `llamacpp` and `openai_compat` backends, and a whole mesh, against a
//! real llama.cpp server (llama-cpp-python) running a tiny random model we
//! generate (`scripts/make_tiny_gguf.py`). Each test starts its own server
//! with `scripts/llama-server.sh` (about a second, once set up).
//!
//! Ignored by default because they need that server built:
//! `bash scripts/llama-server.sh setup`, then `cargo test --test
//! backends_llamacpp -- --ignored`. CI (`.ci/run`) does both.
//!
//! The model's text is random; the tests assert structure, counts,
//! `finish_reason` and repeatability, never the words.

mod common;

use common::llama::{EMBEDDING_WIDTH, LlamaServer, MODEL};
use common::{CHAT, Harness};
use iicp_client::backends::{self, BackendError, BackendKind};
use iicp_client::wire::BackendFlavour;
use iicp_client::{ChatMessage, ChatOptions, ClientConfig, IicpClient, IicpNode, NodeConfig};
use serde_json::{Value, json};
use std::process::Command;

fn chat_payload(text: &str, max_tokens: u64) -> Value {
    json!({"messages": [{"role": "user", "content": text}], "max_tokens": max_tokens,
           "temperature": 0, "seed": 7})
}

#[tokio::test]
#[ignore = "needs the llama.cpp test server (bash scripts/llama-server.sh setup)"]
async fn chat_completion_and_embedding_through_both_engines() {
    let server = LlamaServer::start();
    // vLLM speaks the same API; without a GPU its backend is tested against llama.cpp.
    for kind in [
        BackendKind::Llamacpp,
        BackendKind::OpenaiCompat,
        BackendKind::Vllm,
    ] {
        let b = server.backend(kind, Some(MODEL));
        let first = b.invoke(CHAT, &chat_payload("hello", 8)).await.unwrap();
        let choice = &first["choices"][0];
        assert_eq!(
            choice["finish_reason"], "length",
            "{kind}: stops at max_tokens"
        );
        assert_eq!(first["usage"]["completion_tokens"], 8, "{kind}");
        assert!(
            choice["message"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        );
        let again = b.invoke(CHAT, &chat_payload("hello", 8)).await.unwrap();
        assert_eq!(
            again["choices"][0]["message"]["content"], choice["message"]["content"],
            "temperature 0 + seed repeats"
        );

        let text = b
            .invoke(
                "urn:iicp:intent:llm:completion:v1",
                &json!({"prompt": "Once", "max_tokens": 5, "temperature": 0}),
            )
            .await
            .unwrap();
        assert_eq!(text["choices"][0]["finish_reason"], "length");
        assert!(text["choices"][0]["text"].is_string());

        let emb = b
            .invoke(
                "urn:iicp:intent:llm:embedding:v1",
                &json!({"input": ["a cat", "a dog"]}),
            )
            .await
            .unwrap();
        let data = emb["data"].as_array().unwrap();
        assert_eq!(data.len(), 2, "one vector per input (mean pooling)");
        assert_eq!(
            data[0]["embedding"].as_array().unwrap().len(),
            EMBEDDING_WIDTH,
            "the model's embedding width"
        );
    }
}

#[tokio::test]
#[ignore = "needs the llama.cpp test server (bash scripts/llama-server.sh setup)"]
async fn model_discovery_and_flavour() {
    let server = LlamaServer::start();
    let (models, flavour) = server
        .backend(BackendKind::Llamacpp, None)
        .probe()
        .await
        .unwrap();
    assert_eq!(models, vec![MODEL.to_owned()]);
    assert_eq!(flavour, BackendFlavour::Llamacpp);
}

#[tokio::test]
#[ignore = "needs the llama.cpp test server (bash scripts/llama-server.sh setup)"]
async fn error_paths_no_model_too_long_and_killed_server() {
    let server = LlamaServer::start();
    let no_model = server.backend(BackendKind::Llamacpp, None);
    let err = no_model
        .invoke(CHAT, &chat_payload("hi", 4))
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::InvalidRequest(_)), "{err}");

    // The tiny model has a 256-token context: a longer prompt is an upstream 400.
    let b = server.backend(BackendKind::Llamacpp, Some(MODEL));
    let long = "word ".repeat(600);
    match b.invoke(CHAT, &chat_payload(&long, 4)).await.unwrap_err() {
        BackendError::Upstream { status, detail } => {
            assert_eq!(status, 400);
            assert!(detail.chars().count() <= backends::MAX_UPSTREAM_TEXT + 1);
        }
        other => panic!("expected an upstream error, got {other:?}"),
    }

    // A node in front of the server answers 502 once the server is gone.
    let node = IicpNode::new(NodeConfig {
        host: "127.0.0.1".into(),
        port: 0,
        skip_registration: true,
        ..Default::default()
    })
    .start_backend(server.backend(BackendKind::Llamacpp, Some(MODEL)))
    .await
    .unwrap();
    let post = || async {
        let r = reqwest::Client::new()
            .post(format!("{}/v1/task", node.endpoint()))
            .json(&json!({"intent": CHAT, "payload": chat_payload("hi", 4)}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(post().await.0, 200);
    server.stop();
    let (status, body) = post().await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("backend_error")),
        "{body}"
    );
    node.shutdown().await;
}

#[tokio::test]
#[ignore = "needs the llama.cpp test server (bash scripts/llama-server.sh setup)"]
async fn a_mesh_with_a_real_model_answers_a_chat() {
    let server = LlamaServer::start();
    let h = Harness::start(iicp_client::directory::DirectoryConfig {
        heartbeat_interval: std::time::Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let node = IicpNode::new(NodeConfig {
        directory_url: h.base.clone(),
        host: "127.0.0.1".into(),
        port: 0,
        ..Default::default()
    })
    .start_backend(server.backend(BackendKind::Llamacpp, None))
    .await
    .unwrap();
    node.registered().await.unwrap();
    let (_, found) = h
        .get(&format!("/v1/node/{}", node.node_id().unwrap()))
        .await;
    assert_eq!(found["backend"], "llamacpp");
    assert_eq!(
        found["models"],
        json!([MODEL]),
        "the probed model is advertised"
    );

    let client = IicpClient::builder(ClientConfig {
        directory_url: h.base.clone(),
        ..Default::default()
    })
    .allow_private_nodes(true)
    .build()
    .unwrap();
    let reply = client
        .chat(
            vec![ChatMessage::user("hello")],
            Some(ChatOptions {
                max_tokens: Some(6),
                temperature: Some(0.0),
                model: Some(MODEL.into()),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(reply.choices[0].finish_reason.as_deref(), Some("length"));
    assert!(!reply.text().is_empty());
    assert_eq!(reply.node_id, node.node_id());
    assert_eq!(
        reply.usage.unwrap().completion_tokens,
        6,
        "max_tokens reached the model"
    );
    node.shutdown().await;
}

#[test]
#[ignore = "needs the llama.cpp test server (bash scripts/llama-server.sh setup)"]
fn the_cli_chats_with_the_tiny_model_through_a_local_directory() {
    let server = LlamaServer::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let h = rt.block_on(Harness::start(Default::default()));
    let spare = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = spare.local_addr().unwrap().port();
    drop(spare);
    let bin = env!("CARGO_BIN_EXE_iicp-node");
    let home = tempfile::tempdir().unwrap(); // this test's IICP_HOME, removed afterwards
    let mut node = Command::new(bin)
        .args([
            "serve",
            "--backend-type",
            "llamacpp",
            "--backend-url",
            &server.url,
            "--host",
            "127.0.0.1",
        ])
        .args(["--port", &port.to_string(), "--directory-url", &h.base])
        .env("IICP_HOME", home.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Keep draining the node's log so it never writes into a closed pipe.
    use std::io::{BufRead, BufReader};
    let stderr = node.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if l.contains("iicp-node serving on") {
                let _ = tx.send(l);
            }
        }
    });
    let line = rx.recv().expect("startup line");
    assert!(line.contains("registered as"), "{line}");
    let out = Command::new(bin)
        .args([
            "chat",
            "hello",
            "--directory-url",
            &h.base,
            "--max-tokens",
            "5",
            "--json",
        ])
        .output()
        .unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status();
    let _ = node.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["choices"][0]["finish_reason"], "length");
    assert!(
        reply["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    drop(rt);
}

/// Issue 13: a streamed native CALL to a node in front of the real model:
/// the model's text arrives as `chat.completion.chunk` partials, in order,
/// and joined they are exactly the whole answer's text.
#[cfg(feature = "iicp-tcp")]
#[tokio::test]
#[ignore = "needs the llama.cpp test server (bash scripts/llama-server.sh setup)"]
async fn a_native_stream_carries_the_models_text_piece_by_piece() {
    use iicp_client::transport::{LifecycleEvent, NativeClient, NativeOptions};
    let server = LlamaServer::start();
    let node = IicpNode::new(NodeConfig {
        host: "127.0.0.1".into(),
        port: 0,
        skip_registration: true,
        ..Default::default()
    })
    .start_backend(server.backend(BackendKind::Llamacpp, None))
    .await
    .unwrap();
    let c = NativeClient::connect(
        &format!("iicp://{}", node.local_addr()),
        NativeOptions::default(),
    )
    .await
    .unwrap();
    let payload = json!({"messages": [{"role": "user", "content": "tell me a story"}],
        "max_tokens": 200, "temperature": 0.0});
    let mut rx = c.stream(CHAT, payload, "llama-stream-1").await.unwrap();
    let mut partial_text = String::new();
    let mut partials = 0;
    let last = loop {
        let step = rx.recv().await.expect("a step").expect("not an error");
        if step.is_final {
            break step;
        }
        assert_eq!(step.event, LifecycleEvent::Partial);
        assert_eq!(step.sequence, partials);
        let chunk = step.result.unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        partial_text += chunk["choices"][0]["delta"]["content"]
            .as_str()
            .unwrap_or_default();
        partials += 1;
    };
    assert_eq!(last.event, LifecycleEvent::Completed);
    assert_eq!(last.sequence, partials);
    let answer = last.result.unwrap();
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(partials >= 1, "no partial before the answer");
    assert!(!text.is_empty());
    assert_eq!(partial_text, text, "the partials are the answer, in order");
    assert_eq!(answer["model"], MODEL);
    // llama-cpp-python ignores `stream_options.include_usage`: no usage
    // chunk, so the answer has none (rather than a guessed count).
    if let Some(usage) = answer.get("usage") {
        assert_eq!(usage["completion_tokens"], 200);
    }
    assert_eq!(answer["choices"][0]["finish_reason"], "length");
    node.shutdown().await;
}

/// Issue 16: `IicpClient::chat_stream()` through a registered node in front
/// of the real model: chunks come before the end, in order, and joined they
/// are exactly the whole answer's text (asserted by the order of events,
/// not by time). The node serves plaintext (no CX key): a sealed chat is
/// never streamed.
#[cfg(feature = "iicp-tcp")]
#[tokio::test]
#[ignore = "needs the llama.cpp test server (bash scripts/llama-server.sh setup)"]
async fn chat_stream_through_a_real_node_yields_chunks_before_the_end() {
    use futures_util::StreamExt;
    use iicp_client::ChatStreamEvent;
    let server = LlamaServer::start();
    // The default heartbeat interval: llama-cpp-python interrupts a
    // generation when another request (a model probe) comes in.
    let h = Harness::start(Default::default()).await;
    let node = IicpNode::new(NodeConfig {
        directory_url: h.base.clone(),
        host: "127.0.0.1".into(),
        port: 0,
        confidentiality: false,
        ..Default::default()
    })
    .start_backend(server.backend(BackendKind::Llamacpp, None))
    .await
    .unwrap();
    node.registered().await.unwrap();
    let client = IicpClient::builder(ClientConfig {
        directory_url: h.base.clone(),
        ..Default::default()
    })
    .allow_private_nodes(true)
    .allow_plaintext(true)
    .build()
    .unwrap();
    let mut stream = client
        .chat_stream(
            vec![ChatMessage::user("tell me a story")],
            Some(ChatOptions {
                max_tokens: Some(48),
                temperature: Some(0.0),
                model: Some(MODEL.into()),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    // The order of events: chunk, chunk, …, Done.
    let mut events = Vec::new();
    let mut text = String::new();
    let end = loop {
        match stream.next().await.expect("an item").expect("no error") {
            ChatStreamEvent::Chunk(chunk) => {
                text += chunk.text();
                events.push("chunk");
            }
            ChatStreamEvent::Done(end) => break end,
        }
    };
    assert!(stream.next().await.is_none());
    assert!(end.streamed, "the node streamed natively");
    assert!(
        events.len() >= 2,
        "more than the one chunk of a buffered answer: {events:?}"
    );
    assert_eq!(text, end.response.text(), "the chunks are the answer");
    assert!(!text.is_empty());
    assert_eq!(end.finish_reason.as_deref(), Some("length"));
    assert_eq!(end.response.node_id, node.node_id());
    node.shutdown().await;
}

/// Issue 16: `IicpClient::embed()` through a node in front of the real
/// llama.cpp server (its `/v1/embeddings`): one vector per input, each of
/// the model's width.
#[tokio::test]
#[ignore = "needs the llama.cpp test server (bash scripts/llama-server.sh setup)"]
async fn embed_through_a_node_returns_vectors_of_the_models_width() {
    let server = LlamaServer::start();
    let h = Harness::start(iicp_client::directory::DirectoryConfig {
        heartbeat_interval: std::time::Duration::from_millis(200),
        enforce_probation: true,
        ..Default::default()
    })
    .await;
    let node = IicpNode::new(NodeConfig {
        directory_url: h.base.clone(),
        host: "127.0.0.1".into(),
        port: 0,
        intent: iicp_client::IntentUrn::LLM_EMBEDDING_V1.into(),
        ..Default::default()
    })
    .start_backend(server.backend(BackendKind::Llamacpp, Some(MODEL)))
    .await
    .unwrap();
    node.registered().await.unwrap();
    let client = IicpClient::builder(ClientConfig {
        directory_url: h.base.clone(),
        ..Default::default()
    })
    .allow_private_nodes(true)
    .build()
    .unwrap();
    let one = client.embed("a cat", None).await.unwrap();
    assert_eq!(one.data.len(), 1);
    assert_eq!(
        one.data[0].embedding.len(),
        EMBEDDING_WIDTH,
        "the model's embedding width"
    );
    assert!(one.data[0].embedding.iter().all(|x| x.is_finite()));
    assert_eq!(one.node_id, node.node_id());
    let two = client
        .embed(
            ["a cat", "a dog"],
            Some(iicp_client::EmbedOptions {
                model: Some(MODEL.into()),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    let vectors = two.vectors();
    assert_eq!(vectors.len(), 2);
    assert!(vectors.iter().all(|v| v.len() == EMBEDDING_WIDTH));
    assert_ne!(vectors[0], vectors[1], "different texts, different vectors");
    node.shutdown().await;
}

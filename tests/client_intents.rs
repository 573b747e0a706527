//! The typed calls beyond `chat()` and the probation fallback (issue 16),
//! against our local directory and in-process nodes on loopback:
//! - a directory with `enforce_probation` hides a fresh node from
//!   `qos=interactive`; `chat()` (no QoS given) asks again at `batch`,
//!   says so in a debug line, and is served; a caller who asks for
//!   `interactive` explicitly gets "no node";
//! - `embed()` and `complete()` send OpenAI-shaped payloads under their
//!   intents and read the fixed answers of a node's handler.

mod common;

use common::{CHAT, Harness};
use iicp_client::directory::DirectoryConfig;
use iicp_client::wire::intent::{LLM_COMPLETION_V1, LLM_EMBEDDING_V1};
use iicp_client::{
    ChatMessage, ChatOptions, ClientConfig, EmbedOptions, IicpClient, IicpError, IicpNode,
    NodeConfig, Qos, RunningNode, TaskContext, TaskRequest,
};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the handler saw: (intent, payload, qos).
type Seen = Arc<Mutex<Vec<(String, Value, Option<Qos>)>>>;

/// A node on loopback registered at `dir` for `intent` with model `model`;
/// its handler records each task and answers in the intent's OpenAI shape.
async fn node(dir: &str, intent: &str, model: &str, seen: Seen) -> RunningNode {
    let node = IicpNode::new(NodeConfig {
        directory_url: dir.to_owned(),
        host: "127.0.0.1".into(),
        port: 0,
        intent: intent.to_owned(),
        models: vec![model.to_owned()],
        ..NodeConfig::default()
    })
    .start(move |req: TaskRequest, ctx: TaskContext| {
        let seen = seen.clone();
        async move {
            seen.lock()
                .unwrap()
                .push((req.intent.to_string(), req.payload.clone(), ctx.qos));
            Ok(match req.intent.as_str() {
                LLM_EMBEDDING_V1 => {
                    let n = req.payload["input"].as_array().map_or(1, Vec::len);
                    let data: Vec<Value> = (0..n)
                        .map(|i| {
                            json!({"object": "embedding", "index": i,
                                        "embedding": [i as f64, 0.25, -0.5]})
                        })
                        .collect();
                    json!({"object": "list", "model": "e-model", "data": data,
                           "usage": {"prompt_tokens": 2, "total_tokens": 2}})
                }
                LLM_COMPLETION_V1 => json!({
                    "id": "cmpl-1", "object": "text_completion", "created": 1, "model": "c-model",
                    "choices": [{"index": 0, "text": " upon a time", "finish_reason": "length"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}
                }),
                _ => json!({
                    "id": "chat-1", "object": "chat.completion", "created": 1, "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
                                 "finish_reason": "stop"}]
                }),
            })
        }
    })
    .await
    .expect("the node starts");
    tokio::time::timeout(Duration::from_secs(10), node.registered())
        .await
        .expect("registers in time")
        .expect("registers");
    node
}

fn client(h: &Harness) -> IicpClient {
    IicpClient::builder(ClientConfig {
        directory_url: h.base.clone(),
        timeout_ms: 10_000,
        ..Default::default()
    })
    .allow_private_nodes(true)
    .retry_base_ms(1)
    .build()
    .unwrap()
}

async fn probation_directory() -> Harness {
    Harness::start(DirectoryConfig {
        enforce_probation: true,
        heartbeat_interval: Duration::from_millis(200),
        ..DirectoryConfig::default()
    })
    .await
}

#[tokio::test]
async fn a_fresh_node_is_hidden_from_interactive_but_chat_reaches_it_at_batch() {
    let (logs, _guard) = common::logs::capture();
    let h = probation_directory().await;
    let seen = Seen::default();
    let n = node(&h.base, CHAT, "m", seen.clone()).await;
    let id = n.node_id().unwrap();
    let q = |qos: &str| format!("intent={CHAT}&qos={qos}");
    assert!(
        h.discover_ids(&q("interactive")).await.is_empty(),
        "the directory hides a node in probation from interactive"
    );
    assert_eq!(h.discover_ids(&q("batch")).await, vec![id.clone()]);

    let c = client(&h);
    let reply = c.chat(vec![ChatMessage::user("hi")], None).await.unwrap();
    assert_eq!(reply.text(), "hello");
    assert_eq!(reply.node_id.as_deref(), Some(id.as_str()));
    let text = logs.text();
    assert!(
        text.contains("DEBUG")
            && text.contains("asking again at the fallback class")
            && text.contains("fallback=batch"),
        "the fallback is logged at debug level: {text}"
    );
    assert_eq!(
        seen.lock().unwrap()[0].2,
        Some(Qos::Batch),
        "the task carries the class it was routed by"
    );

    // The gateway's entry point does the same for a task it built.
    let task = TaskRequest::new(
        iicp_client::IntentUrn::LLM_CHAT_V1,
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    );
    let answer = c.submit_interactive(task, None).await.unwrap();
    assert_eq!(
        answer.result.unwrap()["choices"][0]["message"]["content"],
        "hello"
    );

    // An explicit class is the caller's: no second try.
    let err = c
        .chat(
            vec![ChatMessage::user("hi")],
            Some(ChatOptions {
                qos: Some(Qos::Interactive),
                ..Default::default()
            }),
        )
        .await
        .unwrap_err();
    match &err {
        IicpError::NoAvailableNode {
            last: None, reason, ..
        } => {
            assert!(reason.contains("qos=interactive"), "{reason}")
        }
        other => panic!("expected no node, got {other:?}"),
    }
    let mut task = TaskRequest::new(
        iicp_client::IntentUrn::LLM_CHAT_V1,
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    );
    task.constraints = Some(iicp_client::wire::TaskConstraints {
        qos: Some(Qos::Interactive),
        ..Default::default()
    });
    assert!(matches!(
        c.submit_interactive(task.clone(), None).await.unwrap_err(),
        IicpError::NoAvailableNode { last: None, .. }
    ));
    assert!(matches!(
        c.submit(task).await.unwrap_err(),
        IicpError::NoAvailableNode { last: None, .. }
    ));
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "only the two fallback calls ran"
    );
    n.shutdown().await;
}

#[tokio::test]
async fn without_probation_chat_stays_interactive() {
    let h = Harness::start(DirectoryConfig {
        heartbeat_interval: Duration::from_millis(200),
        ..DirectoryConfig::default()
    })
    .await;
    let seen = Seen::default();
    let n = node(&h.base, CHAT, "m", seen.clone()).await;
    let reply = client(&h)
        .chat(vec![ChatMessage::user("hi")], None)
        .await
        .unwrap();
    assert_eq!(reply.text(), "hello");
    assert_eq!(seen.lock().unwrap()[0].2, Some(Qos::Interactive));
    n.shutdown().await;
}

#[tokio::test]
async fn embed_sends_an_openai_request_and_reads_the_vectors() {
    let h = probation_directory().await;
    let seen = Seen::default();
    let n = node(&h.base, LLM_EMBEDDING_V1, "e-model", seen.clone()).await;
    let c = client(&h);

    let one = c.embed("a cat", None).await.unwrap();
    assert_eq!(one.data.len(), 1);
    assert_eq!(one.data[0].embedding, vec![0.0, 0.25, -0.5]);
    assert_eq!(one.model, "e-model");
    assert_eq!(one.node_id, n.node_id());
    assert_eq!(one.usage.as_ref().unwrap().total_tokens, 2);

    let two = c
        .embed(
            ["a cat", "a dog"],
            Some(EmbedOptions {
                model: Some("e-model".into()),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        two.vectors(),
        vec![&[0.0f32, 0.25, -0.5][..], &[1.0, 0.25, -0.5][..]]
    );

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].0, LLM_EMBEDDING_V1);
    assert_eq!(seen[0].1, json!({"input": "a cat"}));
    assert_eq!(
        seen[1].1,
        json!({"input": ["a cat", "a dog"], "model": "e-model"})
    );
    assert_eq!(
        seen[0].2,
        Some(Qos::Batch),
        "the probation fallback applies to embed too"
    );

    let err = c.embed(Vec::<String>::new(), None).await.unwrap_err();
    assert_eq!(err.code(), "invalid_config");
    n.shutdown().await;
}

#[tokio::test]
async fn complete_sends_a_prompt_and_reads_the_text() {
    let h = probation_directory().await;
    let seen = Seen::default();
    let n = node(&h.base, LLM_COMPLETION_V1, "c-model", seen.clone()).await;
    let r = client(&h)
        .complete(
            "Once",
            Some(ChatOptions {
                max_tokens: Some(3),
                temperature: Some(0.0),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(r.text(), " upon a time");
    assert_eq!(r.choices[0].finish_reason.as_deref(), Some("length"));
    assert_eq!(r.usage.unwrap().completion_tokens, 3);
    assert_eq!(r.node_id, n.node_id());
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].0, LLM_COMPLETION_V1);
    assert_eq!(
        seen[0].1,
        json!({"prompt": "Once", "max_tokens": 3, "temperature": 0.0})
    );
    n.shutdown().await;
}

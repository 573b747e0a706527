//! `IicpClient::chat_stream()` against the real local directory and our node
//! on loopback: a node with a native endpoint streams its handler's partials
//! word by word as `chat.completion.chunk`s that add up exactly to the final
//! answer; a node without native, and a CX-sealed task, give the whole
//! answer as one chunk; a node that is dead or fails before its first chunk
//! is failed over; and dropping the stream cancels the handler on the node.

#![cfg(feature = "iicp-tcp")]

mod common;

use common::node::{local_config, start_node};
use common::{Harness, dead_endpoint, registration, registration_cx};
use futures_util::StreamExt;
use iicp_client::cx::CxKeyPair;
use iicp_client::node::handler_fn;
use iicp_client::{
    ChatMessage, ChatStream, ChatStreamEnd, ChatStreamEvent, ClientConfig, HandlerError,
    IicpClient, NodeConfig, RunningNode,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

const WORDS: &str = "the quick brown fox jumps over the lazy dog";

/// The text of the last message of a chat payload.
fn last_text(payload: &Value) -> String {
    payload["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn chunk(text: &str) -> Value {
    json!({"id": "chatcmpl-echo", "object": "chat.completion.chunk", "created": 1,
           "model": "m", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
}

fn completion(text: &str) -> Value {
    json!({"id": "chatcmpl-echo", "object": "chat.completion", "created": 1, "model": "m",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18}})
}

/// Echoes the last message back, word by word as chunks when the node gives
/// it a partial sink, and counts its calls.
fn echo(calls: Arc<AtomicUsize>) -> impl iicp_client::node::TaskHandler {
    handler_fn(move |req, ctx| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let text = last_text(&req.payload);
            if let Some(partials) = ctx.partials {
                let words: Vec<&str> = text.split(' ').collect();
                for (i, word) in words.iter().enumerate() {
                    let piece = if i + 1 < words.len() {
                        format!("{word} ")
                    } else {
                        (*word).to_owned()
                    };
                    assert!(partials.send(chunk(&piece)).await);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            Ok(completion(&text))
        }
    })
}

/// Registers `id` at `h` with this HTTP endpoint, native endpoint and key.
async fn list(h: &Harness, id: &str, http: &str, native: Option<&str>, key: Option<&CxKeyPair>) {
    let mut body = match key {
        Some(k) => registration_cx(http, &["m"], k),
        None => registration(http, &["m"]),
    };
    body["node_id"] = json!(id);
    if let Some(native) = native {
        body["transport_endpoint"] = json!(native);
    }
    h.register(&body).await;
}

fn client(h: &Harness, allow_plaintext: bool) -> IicpClient {
    IicpClient::builder(ClientConfig {
        directory_url: h.base.clone(),
        timeout_ms: 10_000,
        ..Default::default()
    })
    .allow_private_nodes(true)
    .allow_plaintext(allow_plaintext)
    .retry_base_ms(1)
    .discovery_cache(false)
    .build()
    .unwrap()
}

fn native_of(node: &RunningNode) -> String {
    format!("iicp://{}", node.local_addr())
}

/// Every event of a stream, which must end with `Done`.
async fn drain(mut stream: ChatStream) -> (Vec<String>, Vec<Option<String>>, ChatStreamEnd) {
    let mut texts = Vec::new();
    let mut finishes = Vec::new();
    while let Some(event) = stream.next().await {
        match event.expect("no error in the stream") {
            ChatStreamEvent::Chunk(c) => {
                assert_eq!(c.object, "chat.completion.chunk");
                texts.push(c.text().to_owned());
                finishes.push(c.choices.first().and_then(|c| c.finish_reason.clone()));
            }
            ChatStreamEvent::Done(end) => {
                assert!(stream.next().await.is_none(), "nothing after Done");
                return (texts, finishes, *end);
            }
        }
    }
    panic!("the stream ended without Done");
}

fn ask() -> Vec<ChatMessage> {
    vec![ChatMessage::user(WORDS)]
}

#[tokio::test]
async fn a_native_node_streams_chunks_that_add_up_to_the_final_answer() {
    let calls = Arc::new(AtomicUsize::new(0));
    let node = start_node(local_config(), echo(calls.clone())).await;
    let h = Harness::without_probe().await;
    list(
        &h,
        "n-native",
        node.endpoint(),
        Some(&native_of(&node)),
        None,
    )
    .await;

    let stream = client(&h, true).chat_stream(ask(), None).await.unwrap();
    let (texts, finishes, end) = drain(stream).await;

    assert!(end.streamed);
    assert_eq!(texts.concat(), WORDS, "reassembled exactly");
    let words: Vec<String> = WORDS.split(' ').map(|w| w.to_owned()).collect::<Vec<_>>();
    // In order: every word arrives as its own chunk, in the handler's order
    // (then one last chunk carries the finish reason).
    let streamed: Vec<String> = texts.iter().map(|t| t.trim_end().to_owned()).collect();
    assert_eq!(&streamed[..words.len()], &words[..]);
    assert_eq!(finishes.last().unwrap().as_deref(), Some("stop"));
    assert!(finishes[..finishes.len() - 1].iter().all(Option::is_none));
    assert_eq!(end.finish_reason.as_deref(), Some("stop"));
    assert_eq!(end.usage.as_ref().map(|u| u.total_tokens), Some(18));
    assert_eq!(end.response.text(), WORDS);
    assert_eq!(end.response.node_id.as_deref(), Some("n-native"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    node.shutdown().await;
}

#[tokio::test]
async fn a_node_without_native_gives_one_chunk_with_the_whole_text() {
    let calls = Arc::new(AtomicUsize::new(0));
    let node = start_node(
        NodeConfig {
            native_transport: false,
            ..local_config()
        },
        echo(calls.clone()),
    )
    .await;
    let h = Harness::without_probe().await;
    list(&h, "n-http", node.endpoint(), None, None).await;

    let stream = client(&h, true).chat_stream(ask(), None).await.unwrap();
    let (texts, finishes, end) = drain(stream).await;
    assert_eq!(texts, [WORDS]);
    assert_eq!(finishes, [Some("stop".to_owned())]);
    assert!(!end.streamed);
    assert_eq!(end.response.node_id.as_deref(), Some("n-http"));
    node.shutdown().await;
}

#[tokio::test]
async fn a_sealed_chat_is_not_streamed_and_comes_as_one_chunk() {
    let key = CxKeyPair::generate();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cx.key"), hex::encode(key.secret_bytes())).unwrap();
    let node = start_node(
        NodeConfig {
            confidentiality: true,
            cx_key_file: Some(dir.path().join("cx.key")),
            ..local_config()
        },
        echo(Arc::default()),
    )
    .await;
    let h = Harness::without_probe().await;
    list(
        &h,
        "n-cx",
        node.endpoint(),
        Some(&native_of(&node)),
        Some(&key),
    )
    .await;

    let stream = client(&h, false).chat_stream(ask(), None).await.unwrap();
    let (texts, _, end) = drain(stream).await;
    assert_eq!(texts, [WORDS]);
    assert!(!end.streamed);
    node.shutdown().await;
}

#[tokio::test]
async fn a_dead_node_or_one_failing_before_its_first_chunk_is_failed_over() {
    let calls = Arc::new(AtomicUsize::new(0));
    let live = start_node(local_config(), echo(calls.clone())).await;
    let failed = Arc::new(AtomicUsize::new(0));
    let seen = failed.clone();
    let failing = start_node(
        local_config(),
        handler_fn(move |_req, _ctx| {
            seen.fetch_add(1, Ordering::SeqCst);
            async { Err::<Value, _>(HandlerError::new(502, "backend_error", "no model")) }
        }),
    )
    .await;

    // Equal scores order nodes by id: the dead one first.
    let h = Harness::without_probe().await;
    let dead = dead_endpoint().await;
    let dead_native = dead.replace("http://", "iicp://");
    list(&h, "a-dead", &dead, Some(&dead_native), None).await;
    list(&h, "b-live", live.endpoint(), Some(&native_of(&live)), None).await;
    let (texts, _, end) = drain(client(&h, true).chat_stream(ask(), None).await.unwrap()).await;
    assert_eq!(texts.concat(), WORDS);
    assert_eq!(end.response.node_id.as_deref(), Some("b-live"));
    assert!(end.streamed);

    let h = Harness::without_probe().await;
    list(
        &h,
        "a-failing",
        failing.endpoint(),
        Some(&native_of(&failing)),
        None,
    )
    .await;
    list(&h, "b-live", live.endpoint(), Some(&native_of(&live)), None).await;
    let (texts, _, end) = drain(client(&h, true).chat_stream(ask(), None).await.unwrap()).await;
    assert_eq!(texts.concat(), WORDS);
    assert_eq!(end.response.node_id.as_deref(), Some("b-live"));
    assert_eq!(
        failed.load(Ordering::SeqCst),
        1,
        "the failing node was tried"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    live.shutdown().await;
    failing.shutdown().await;
}

/// Sets its flag when dropped: the handler's future was dropped (aborted).
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn dropping_the_stream_cancels_the_handler_on_the_node() {
    let dropped = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let (flag, done) = (dropped.clone(), finished.clone());
    let node = start_node(
        NodeConfig {
            default_task_timeout: Duration::from_secs(120),
            ..local_config()
        },
        handler_fn(move |_req, ctx| {
            let guard = DropFlag(flag.clone());
            let done = done.clone();
            async move {
                let _guard = guard;
                let partials = ctx.partials.expect("a streaming call");
                partials.send(chunk("first ")).await;
                // Slow: far more than the test waits, unless cancelled.
                for _ in 0..1200 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    // A gone reader is not a reason to stop here: only
                    // an abort ends this handler early.
                    let _ = partials.send(chunk("more ")).await;
                }
                done.store(true, Ordering::SeqCst);
                Ok(completion("never"))
            }
        }),
    )
    .await;
    let h = Harness::without_probe().await;
    list(&h, "n-slow", node.endpoint(), Some(&native_of(&node)), None).await;

    let client = IicpClient::builder(ClientConfig {
        directory_url: h.base.clone(),
        timeout_ms: 120_000,
        ..Default::default()
    })
    .allow_private_nodes(true)
    .allow_plaintext(true)
    .build()
    .unwrap();
    let mut stream = client.chat_stream(ask(), None).await.unwrap();
    match stream.next().await {
        Some(Ok(ChatStreamEvent::Chunk(c))) => assert_eq!(c.text(), "first "),
        other => panic!("expected the first chunk, got {other:?}"),
    }
    assert!(!dropped.load(Ordering::SeqCst));
    drop(stream);

    // Bounded wait, no timing assertion.
    for _ in 0..500 {
        if dropped.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        dropped.load(Ordering::SeqCst),
        "the handler was not aborted within 10 s of the drop"
    );
    assert!(
        !finished.load(Ordering::SeqCst),
        "the handler ran to its end instead of being aborted"
    );
    node.shutdown().await;
}

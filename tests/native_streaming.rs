//! Streamed answers over the native transport (PROTOCOL.md §7.1 lifecycle):
//! a handler's partial results reach the consumer as `partial` steps in
//! order, then the whole result as `completed`; only a streaming CALL gets
//! a partial sink (HTTP and buffered CALLs do not); a backend streams from
//! its model server (`stream: true`) and passes chunks on; and a consumer
//! that goes away cancels the handler and closes the model server call.

#![cfg(feature = "iicp-tcp")]

mod common;

use common::node::{local_config, post_task, start_node};
use iicp_client::backends::{self, BackendKind, BackendOptions};
use iicp_client::node::handler_fn;
use iicp_client::transport::{LifecycleEvent, NativeClient, StreamStep};
use iicp_client::{IicpNode, NodeConfig, RunningNode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

const CHAT: &str = "urn:iicp:intent:llm:chat:v1";

/// The steps of one streamed call as they came, up to the final one or the
/// first error (which is the last element then).
async fn outcome(
    c: &NativeClient,
    payload: Value,
    task_id: &str,
) -> Vec<iicp_client::Result<StreamStep>> {
    let mut rx = c.stream(CHAT, payload, task_id).await.expect("sent");
    let mut out = Vec::new();
    while let Some(step) = rx.recv().await {
        let end = step.as_ref().map_or(true, |s| s.is_final);
        out.push(step);
        if end {
            break;
        }
    }
    out
}

/// All steps of one streamed call, up to the final one; each must be Ok.
async fn steps(c: &NativeClient, payload: Value, task_id: &str) -> Vec<StreamStep> {
    outcome(c, payload, task_id)
        .await
        .into_iter()
        .map(|step| step.expect("a step"))
        .collect()
}

#[tokio::test]
async fn partials_arrive_in_order_then_the_whole_result_and_only_when_streaming() {
    let node = start_node(
        local_config(),
        handler_fn(|_req, ctx| async move {
            let Some(partials) = ctx.partials else {
                return Ok(json!({"streamed": false}));
            };
            for n in 0..3 {
                assert!(partials.send(json!({"piece": n})).await);
            }
            Ok(json!({"streamed": true}))
        }),
    )
    .await;
    let c = common::native::connect(&node).await;

    let got = steps(&c, json!({}), "stream-1").await;
    let events: Vec<_> = got.iter().map(|s| s.event).collect();
    assert_eq!(
        events,
        [
            LifecycleEvent::Partial,
            LifecycleEvent::Partial,
            LifecycleEvent::Partial,
            LifecycleEvent::Completed
        ]
    );
    assert_eq!(
        got.iter().map(|s| s.sequence).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    for (n, step) in got[..3].iter().enumerate() {
        assert_eq!(step.result, Some(json!({"piece": n})));
        assert!(!step.is_final);
    }
    assert_eq!(got[3].result, Some(json!({"streamed": true})));

    // A buffered CALL and an HTTP task get the whole answer only.
    assert_eq!(
        c.call(CHAT, json!({})).await.unwrap(),
        json!({"streamed": false})
    );
    let posted = post_task(
        node.endpoint(),
        &json!({"intent": CHAT, "payload": {}}),
        &[],
    )
    .await;
    assert_eq!(posted.body["result"], json!({"streamed": false}));
    node.shutdown().await;
}

/// Sets its flag when dropped: the handler's future was dropped (aborted).
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

async fn wait_for(flag: &AtomicBool, what: &str) {
    for _ in 0..500 {
        if flag.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} did not happen within 10 s");
}

#[tokio::test]
async fn a_consumer_that_leaves_cancels_the_running_handler() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    let node = start_node(
        NodeConfig {
            default_task_timeout: Duration::from_secs(120),
            ..local_config()
        },
        handler_fn(move |_req, ctx| {
            let guard = DropFlag(flag.clone());
            async move {
                let _guard = guard;
                if let Some(p) = ctx.partials {
                    p.send(json!({"started": true})).await;
                }
                // A long model call that pays no attention to the sink.
                tokio::time::sleep(Duration::from_secs(100)).await;
                Ok(json!({}))
            }
        }),
    )
    .await;
    let c = common::native::connect(&node).await;
    let mut rx = c.stream(CHAT, json!({}), "leaving-1").await.expect("sent");
    let first = rx.recv().await.unwrap().unwrap();
    assert_eq!(first.event, LifecycleEvent::Partial);
    assert!(!dropped.load(Ordering::SeqCst));
    drop(rx);
    c.close().await;
    wait_for(&dropped, "the handler's cancellation").await;
    node.shutdown().await;
}

/// What the test's model server saw.
struct Seen {
    request: Value,
    /// Fires when the node closed the streamed answer's connection.
    closed: oneshot::Receiver<()>,
}

/// A loopback OpenAI-style server: `GET /v1/models` lists model `m`; a
/// chat is answered with a stream of `words` (one chunk each), then as
/// `ending` says: a finish and a usage chunk, or the stream stays open with
/// a keep-alive comment every 20 ms until the node closes the connection, or
/// it is cut. It is the test's observer of what the backend asks for
/// and of when it hangs up; it reports the first chat only.
async fn sse_server(
    words: &'static [&'static str],
    ending: Ending,
) -> (String, oneshot::Receiver<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let (seen_tx, seen_rx) = oneshot::channel();
    let seen_tx = Arc::new(std::sync::Mutex::new(Some(seen_tx)));
    tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            tokio::spawn(answer(sock, words, ending, seen_tx.clone()));
        }
    });
    (url, seen_rx)
}

type SeenSlot = Arc<std::sync::Mutex<Option<oneshot::Sender<Seen>>>>;

/// How the model server's stream ends after its words.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ending {
    /// A finish chunk, a usage chunk and `[DONE]`: a whole answer.
    Whole,
    /// Open, with keep-alives, until the node hangs up.
    Hold,
    /// `[DONE]` without a finish reason, as llama-cpp-python ends a stream
    /// it interrupts when another request arrives.
    DoneWithoutFinish,
    /// The connection closes mid-answer: no finish, no `[DONE]`.
    Cut,
}

/// Reads one request: (request line, body).
async fn read_request(sock: &mut tokio::net::TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let body_start = loop {
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the request ended early");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..body_start]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buf.len() < body_start + length {
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await.unwrap();
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = head.lines().next().unwrap_or_default().to_owned();
    (line, buf[body_start..].to_vec())
}

async fn answer(
    mut sock: tokio::net::TcpStream,
    words: &'static [&'static str],
    ending: Ending,
    seen: SeenSlot,
) {
    let (line, body) = read_request(&mut sock).await;
    if line.starts_with("get ") {
        let list = json!({"object": "list", "data": [{"id": "m", "object": "model"}]}).to_string();
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{list}",
            list.len()
        );
        let _ = sock.write_all(reply.as_bytes()).await;
        return;
    }
    let request: Value = serde_json::from_slice(&body).unwrap();
    let (closed_tx, closed) = oneshot::channel();
    if let Some(tx) = seen.lock().unwrap().take() {
        let _ = tx.send(Seen { request, closed });
    }
    let mut out = String::from(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n",
    );
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    out += &chunk(json!({"role": "assistant", "content": ""}), Value::Null);
    for w in words {
        out += &chunk(json!({"content": w}), Value::Null);
    }
    let hold = ending == Ending::Hold;
    if ending == Ending::DoneWithoutFinish {
        out += "data: [DONE]\n\n";
    }
    if ending == Ending::Whole {
        out += &chunk(json!({}), json!("stop"));
        out += &format!(
            "data: {}\n\ndata: [DONE]\n\n",
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m", "choices": [],
                "usage": {"prompt_tokens": 2, "completion_tokens": words.len(), "total_tokens": 2 + words.len()}})
        );
    }
    // No Content-Length: the answer ends when the connection does.
    if sock.write_all(out.as_bytes()).await.is_err() || !hold {
        let _ = sock.shutdown().await;
        return;
    }
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if sock.write_all(b": keep-alive\n\n").await.is_err() {
            let _ = closed_tx.send(());
            return;
        }
    }
}

async fn backend_node(url: String) -> RunningNode {
    IicpNode::new(NodeConfig {
        host: "127.0.0.1".into(),
        port: 0,
        default_task_timeout: Duration::from_secs(120),
        ..local_config()
    })
    .start_backend(backends::build(
        BackendKind::OpenaiCompat,
        BackendOptions {
            base_url: Some(url),
            model: Some("m".into()),
            ..Default::default()
        },
    ))
    .await
    .expect("the node starts")
}

#[tokio::test]
async fn a_backend_streams_chunks_from_its_model_server_and_returns_the_whole_answer() {
    const WORDS: &[&str] = &["Once", " upon", " a", " time"];
    let (url, seen) = sse_server(WORDS, Ending::Whole).await;
    let node = backend_node(url).await;
    let c = common::native::connect(&node).await;
    let got = steps(
        &c,
        json!({"messages": [{"role": "user", "content": "hi"}]}),
        "tale-1",
    )
    .await;

    let seen = seen.await.unwrap();
    assert_eq!(seen.request["stream"], true);
    assert_eq!(seen.request["stream_options"]["include_usage"], true);
    assert_eq!(seen.request["model"], "m");

    let (last, partials) = got.split_last().unwrap();
    assert_eq!(last.event, LifecycleEvent::Completed);
    assert!(!partials.is_empty());
    let mut text = String::new();
    for p in partials {
        assert_eq!(p.event, LifecycleEvent::Partial);
        let chunk = p.result.as_ref().unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        text += chunk["choices"][0]["delta"]["content"]
            .as_str()
            .unwrap_or("");
    }
    assert_eq!(
        text, "Once upon a time",
        "the partials carry the text in order"
    );
    let answer = last.result.as_ref().unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Once upon a time"
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(answer["usage"]["completion_tokens"], 4);
    node.shutdown().await;
}

/// A model server that stops before the answer's finish reason: the words
/// already streamed stay streamed, but the task ends `failed` with a
/// backend error, never `completed` with the cut text as the whole answer.
#[tokio::test]
async fn a_stream_cut_before_its_finish_reason_fails_the_task() {
    for ending in [Ending::DoneWithoutFinish, Ending::Cut] {
        let (url, _seen) = sse_server(&["Once", " upon"], ending).await;
        let node = backend_node(url).await;
        let c = common::native::connect(&node).await;
        let mut got = outcome(
            &c,
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            "cut-1",
        )
        .await;
        let end = got.pop();
        let text: String = got
            .iter()
            .filter_map(|step| step.as_ref().ok())
            .filter(|step| step.event == LifecycleEvent::Partial)
            .filter_map(|step| step.result.as_ref()?["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Once upon", "{ending:?}: the words came through");
        let end = format!("{:?}", end.expect("the stream has an end"));
        assert!(
            !end.contains("Completed"),
            "{ending:?}: a cut answer is not completed: {end}"
        );
        assert!(
            end.contains("backend_error") || end.contains("Failed"),
            "{ending:?}: the task fails as a backend error: {end}"
        );
        node.shutdown().await;
    }
}

#[tokio::test]
async fn a_consumer_that_leaves_closes_the_model_server_call() {
    let (url, seen) = sse_server(&["still", " going"], Ending::Hold).await;
    let node = backend_node(url).await;
    let c = common::native::connect(&node).await;
    let mut rx = c
        .stream(
            CHAT,
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            "leave-2",
        )
        .await
        .expect("sent");
    let first = rx.recv().await.unwrap().unwrap();
    assert_eq!(first.event, LifecycleEvent::Partial);
    let seen = seen.await.unwrap();
    drop(rx);
    c.close().await;
    tokio::time::timeout(Duration::from_secs(10), seen.closed)
        .await
        .expect("the node closed the model server's connection within 10 s")
        .expect("the server saw the close");
    node.shutdown().await;
}

/// A confidential (CX) task gets no partial sink even when streamed: a
/// partial would travel in plaintext. The answer still comes, whole.
#[tokio::test]
async fn a_confidential_task_is_not_streamed_in_plaintext() {
    let dir = common::Harness::without_probe().await;
    let node = start_node(
        NodeConfig {
            directory_url: dir.base.clone(),
            skip_registration: false,
            ..local_config()
        },
        handler_fn(|req, ctx| async move {
            if let Some(p) = ctx.partials {
                p.send(json!({"leak": req.payload})).await;
            }
            Ok(json!({"streamed": false}))
        }),
    )
    .await;
    let id = node.registered().await.expect("registered");
    let (_, info) = dir.get(&format!("/v1/node/{id}")).await;
    let key: iicp_client::wire::CxPublicKey =
        serde_json::from_value(info["cx_public_key"].clone()).expect("a CX key");
    let public = iicp_client::cx::public_key_bytes(&key).unwrap();
    let task_id = "cx-stream-1";
    let (conf, _ss) = iicp_client::cx::seal_request(
        &public,
        task_id,
        CHAT,
        br#"{"messages":[{"role":"user","content":"secret"}]}"#,
    );
    let c = common::native::connect(&node).await;
    let got = steps(&c, json!({"iicp_conf": conf}), task_id).await;
    assert_eq!(got.len(), 1, "no partial step: {got:?}");
    assert_eq!(got[0].event, LifecycleEvent::Completed);
    assert_eq!(got[0].result, Some(json!({"streamed": false})));
    node.shutdown().await;
}

//! `IicpClient` against hostile peers on loopback (issue 11, items 5 and
//! 10): a directory that lists more nodes than asked for, answers without
//! end or redirects elsewhere, and a node whose answer has no end. The
//! client must stay within what it asked for and never read without bound.

mod common;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use common::test_node::{Reply, TestNode};
use common::{CHAT, Harness};
use iicp_client::{ChatMessage, ClientConfig, DiscoverOptions, IicpClient, IicpError};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn client_for(directory_url: String) -> IicpClient {
    IicpClient::builder(ClientConfig {
        directory_url,
        timeout_ms: 10_000,
        ..Default::default()
    })
    .allow_private_nodes(true)
    .allow_plaintext(true)
    .retry_base_ms(5)
    .max_response_bytes(64 * 1024)
    .build()
    .unwrap()
}

/// A discover answer listing `n` nodes.
fn node_list(n: usize) -> Value {
    let nodes: Vec<Value> = (0..n)
        .map(|i| {
            json!({"node_id": format!("n{i:05}"), "endpoint": format!("http://127.0.0.1:{}", 1000 + i),
                   "score": 0.5, "available": true, "region": ""})
        })
        .collect();
    json!({"nodes": nodes, "count": n})
}

/// A directory that answers every discover with `answer`.
async fn directory_answering(answer: Value) -> String {
    let answer = Arc::new(answer);
    let app = Router::new().route(
        "/api/v1/discover",
        get(move || {
            let answer = answer.clone();
            async move { axum::Json((*answer).clone()) }
        }),
    );
    let (addr, _task) = common::serve(app).await;
    format!("http://{addr}/api")
}

#[tokio::test]
async fn discover_keeps_only_as_many_nodes_as_it_asked_for() {
    let url = directory_answering(node_list(500)).await;
    let client = client_for(url);
    let list = client.discover(CHAT, None, None).await.unwrap();
    assert_eq!(list.nodes.len(), 10, "the default limit is 10");
    assert_eq!(list.nodes[9].node_id, "n00009", "in the directory's order");
    let list = client
        .discover(
            CHAT,
            Some(DiscoverOptions {
                limit: Some(3),
                ..Default::default()
            }),
            None,
        )
        .await
        .unwrap();
    assert_eq!(list.nodes.len(), 3);
    assert_eq!(list.count, 3);
}

#[tokio::test]
async fn a_discover_answer_over_the_limit_is_not_read() {
    // About 6 MiB of nodes: more than any directory answer may be.
    let url = directory_answering(node_list(60_000)).await;
    let err = client_for(url)
        .discover(CHAT, None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, IicpError::ResponseTooLarge { .. }), "{err:?}");
    assert_eq!(err.code(), "response_too_large");
}

/// A server whose every answer is a redirect to `location`.
async fn redirecting_to(status: StatusCode, location: String) -> String {
    let app = Router::new().fallback(move || {
        let location = location.clone();
        async move { (status, [(header::LOCATION, location)]).into_response() }
    });
    let (addr, _task) = common::serve(app).await;
    format!("http://{addr}/api")
}

#[tokio::test]
async fn the_directory_is_not_followed_to_another_origin() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let elsewhere = Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { axum::Json(node_list(1)) }
    });
    let (other, _task) = common::serve(elsewhere).await;
    for status in [StatusCode::FOUND, StatusCode::TEMPORARY_REDIRECT] {
        let url = redirecting_to(
            status,
            format!("http://{other}/api/v1/discover?intent={CHAT}"),
        )
        .await;
        let err = client_for(url)
            .discover(CHAT, None, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, IicpError::Transport { .. }),
            "{status}: {err:?}"
        );
        assert!(err.to_string().contains("another origin"), "{err}");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "no request reached the other origin"
    );
}

#[tokio::test]
async fn a_redirect_within_the_directory_is_followed() {
    // `/old/v1/discover` moved to `/api/v1/discover` on the same server.
    let app = Router::new()
        .route(
            "/old/v1/discover",
            get(|| async {
                let to = format!("/api/v1/discover?intent={CHAT}");
                (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)]).into_response()
            }),
        )
        .route(
            "/api/v1/discover",
            get(|| async { axum::Json(node_list(2)) }),
        );
    let (addr, _task) = common::serve(app).await;
    let list = client_for(format!("http://{addr}/old"))
        .discover(CHAT, None, None)
        .await
        .unwrap();
    assert_eq!(list.nodes.len(), 2);
}

fn hello() -> Vec<ChatMessage> {
    vec![ChatMessage::user("hello")]
}

/// Registers `endpoint` as `node_id` at `h`.
async fn add(h: &Harness, node_id: &str, endpoint: &str) {
    let mut body = common::registration(endpoint, &["echo-model"]);
    body["node_id"] = json!(node_id);
    h.register(&body).await;
}

#[tokio::test]
async fn a_node_answer_over_the_limit_is_not_read_and_the_next_node_serves() {
    let h = Harness::without_probe().await;
    let huge = "x".repeat(1024 * 1024);
    let big = TestNode::start(vec![Reply::Status(
        200,
        json!({"task_id": "t", "status": "success",
               "result": {"choices": [{"message": {"role": "assistant", "content": huge}}]}}),
        None,
    )])
    .await;
    let good = TestNode::start(vec![Reply::Echo]).await;
    add(&h, "a-big", &big.endpoint()).await;
    add(&h, "b-good", &good.endpoint()).await;
    let reply = client_for(h.base.clone())
        .chat(hello(), None)
        .await
        .unwrap();
    assert_eq!(big.hits(), 1);
    assert_eq!(reply.node_id.as_deref(), Some("b-good"));

    // Alone, the big node's answer is refused with a code that says why.
    let alone = Harness::without_probe().await;
    add(&alone, "a-big", &big.endpoint()).await;
    let err = client_for(alone.base.clone())
        .chat(hello(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("response_too_large"), "{err}");
}

/// A node that answers every connection with a chunked 200 whose body never
/// ends (until the client hangs up, or 64 MiB at most).
async fn endless_node() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = sock.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                            transfer-encoding: chunked\r\n\r\n";
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
                for _ in 0..1024 {
                    if sock.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                    counter.fetch_add(64 * 1024, Ordering::SeqCst);
                }
            });
        }
    });
    (format!("http://{addr}"), sent)
}

#[tokio::test]
async fn an_endless_node_answer_is_cut_off() {
    let h = Harness::without_probe().await;
    let (endpoint, sent) = endless_node().await;
    add(&h, "endless", &endpoint).await;
    let err = client_for(h.base.clone())
        .chat(hello(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("response_too_large"), "{err}");
    assert!(
        sent.load(Ordering::SeqCst) < 64 * 1024 * 1024,
        "the client hung up long before the end"
    );
}

#[tokio::test]
async fn an_oversized_consumer_token_is_not_read_or_forwarded() {
    let node = TestNode::start(vec![Reply::Echo]).await;
    let listed = node_list_at(&node.endpoint());
    let app = Router::new()
        .route(
            "/api/v1/discover",
            get(move || async move { axum::Json(listed) }),
        )
        .route(
            "/api/v1/consumer-token",
            axum::routing::post(|| async {
                let token = "t".repeat(1024 * 1024);
                (
                    StatusCode::CREATED,
                    axum::Json(json!({"token": token, "expires_at": u32::MAX})),
                )
            }),
        );
    let (addr, _task) = common::serve(app).await;
    let client = IicpClient::builder(ClientConfig {
        directory_url: format!("http://{addr}/api"),
        node_token: Some("my-node-token".into()),
        ..Default::default()
    })
    .allow_private_nodes(true)
    .allow_plaintext(true)
    .build()
    .unwrap();
    client.chat(hello(), None).await.unwrap();
    let seen = &node.seen()[0];
    assert_eq!(seen.consumer_token, None, "a 1 MiB token is not read");
    assert_eq!(seen.authorization, None);
}

/// A discover answer listing one node at `endpoint`.
fn node_list_at(endpoint: &str) -> Value {
    json!({"nodes": [{"node_id": "n1", "endpoint": endpoint, "score": 0.5,
                      "available": true, "region": ""}], "count": 1})
}

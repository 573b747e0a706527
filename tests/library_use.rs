//! The SDK as a library user meets it (issue 12): configuration checked at
//! start, registration that can fail visibly, handlers written as closures
//! with `?`, the `embed` naming rule announced, and a handle that stops the
//! node when dropped.

mod common;

use common::{CHAT, Harness, dead_endpoint};
use iicp_client::node::handler_fn;
use iicp_client::{HandlerError, IicpError, IicpNode, NodeConfig};
use serde_json::{Value, json};
use std::time::Duration;

/// Starts a node with `config` and a handler that answers `{}`.
async fn start(config: NodeConfig) -> iicp_client::Result<iicp_client::RunningNode> {
    IicpNode::new(config)
        .start(handler_fn(|_req, _ctx| async { Ok(json!({})) }))
        .await
}

async fn post_task(endpoint: &str, payload: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{endpoint}/v1/task"))
        .json(&json!({"task_id": uuid::Uuid::new_v4().to_string(), "intent": CHAT, "payload": payload}))
        .send()
        .await
        .unwrap();
    common::read(resp).await
}

#[tokio::test]
async fn a_config_that_cannot_work_is_refused_at_start() {
    for (config, says) in [
        (NodeConfig::local("not a url"), "directory_url"),
        (
            NodeConfig {
                intent: "chat".into(),
                ..NodeConfig::local("http://127.0.0.1:1/api")
            },
            "intent",
        ),
        (
            NodeConfig {
                endpoint: "http://127.0.0.1:9/x?admin=1".into(),
                ..NodeConfig::local("http://127.0.0.1:1/api")
            },
            "endpoint",
        ),
    ] {
        let err = start(config).await.unwrap_err();
        assert!(
            matches!(
                err,
                IicpError::InvalidConfig(_) | IicpError::InvalidIntent(_)
            ),
            "{says}: {err:?}"
        );
        assert!(err.to_string().contains(says), "{says}: {err}");
    }
}

#[tokio::test]
async fn registration_against_a_dead_directory_fails_visibly() {
    let dead = format!("{}/api", dead_endpoint().await);
    let node = start(NodeConfig::local(dead))
        .await
        .expect("a directory that is down does not stop the node from serving");
    let err = node
        .registered_within(Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(matches!(err, IicpError::Timeout { .. }), "{err:?}");
    assert!(
        err.to_string().contains("could not reach"),
        "the cause is named: {err}"
    );
    // It serves meanwhile.
    let (status, _) = post_task(&format!("http://{}", node.local_addr()), json!({})).await;
    assert_eq!(status, 200);
    node.shutdown().await;

    let unregistered = start(NodeConfig {
        skip_registration: true,
        ..NodeConfig::local("")
    })
    .await
    .unwrap();
    let err = unregistered
        .registered_within(Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, IicpError::InvalidConfig(_)), "{err:?}");
}

#[tokio::test]
async fn a_closure_handler_uses_question_mark_and_keeps_internal_text_local() {
    let h = Harness::without_probe().await;
    let node = IicpNode::new(NodeConfig::local(h.base.clone()))
        .start(handler_fn(|req, ctx| async move {
            let text = req.payload["json"]
                .as_str()
                .ok_or_else(|| HandlerError::invalid("payload.json is required"))?;
            let parsed: Value = serde_json::from_str(text)?;
            let n = parsed["n"]
                .as_str()
                .unwrap_or_default()
                .parse::<u32>()
                .map_err(HandlerError::internal)?;
            Ok(json!({"task": ctx.task_id, "double": n * 2}))
        }))
        .await
        .unwrap();
    let endpoint = format!("http://{}", node.local_addr());
    let (status, body) = post_task(&endpoint, json!({"json": "{\"n\": \"21\"}"})).await;
    assert_eq!((status, body["result"]["double"].clone()), (200, json!(42)));
    let (status, body) = post_task(&endpoint, json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("validation_error"))
    );
    for (payload, hidden) in [
        (json!({"json": "{not json"}), "key must be a string"),
        (json!({"json": "{\"n\": \"x\"}"}), "invalid digit"),
    ] {
        let (status, body) = post_task(&endpoint, payload).await;
        assert_eq!(status, 500, "{body}");
        assert_eq!(body["error"]["code"], "handler_error");
        assert!(!body.to_string().contains(hidden), "{body}");
    }
    node.shutdown().await;
}

#[tokio::test]
async fn an_embed_model_moved_off_the_configured_intent_is_announced() {
    let (logs, _guard) = common::logs::capture();
    let h = Harness::without_probe().await;
    let node = start(NodeConfig {
        models: vec!["embedder-chat-7b".into()],
        ..NodeConfig::local(h.base.clone())
    })
    .await
    .unwrap();
    let id = node
        .registered_within(Duration::from_secs(10))
        .await
        .unwrap();
    let text = logs.text();
    assert!(
        text.contains("embedder-chat-7b") && text.contains("urn:iicp:intent:llm:embedding:v1"),
        "{text}"
    );
    let embedding = h
        .discover_ids("intent=urn:iicp:intent:llm:embedding:v1")
        .await;
    assert_eq!(embedding, vec![id]);
    node.shutdown().await;
}

#[tokio::test]
async fn dropping_the_handle_stops_and_deregisters_the_node() {
    let h = Harness::without_probe().await;
    let node = start(NodeConfig::local(h.base.clone())).await.unwrap();
    let id = node
        .registered_within(Duration::from_secs(10))
        .await
        .unwrap();
    let addr = node.local_addr();
    assert_eq!(
        h.discover_ids(&format!("intent={CHAT}")).await,
        vec![id.clone()]
    );
    drop(node);
    // The lifecycle deregisters in the background: wait for it, bounded.
    let mut listed = true;
    for _ in 0..100 {
        listed = !h.discover_ids(&format!("intent={CHAT}")).await.is_empty();
        if !listed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !listed,
        "node {id} is still listed after its handle was dropped"
    );
    let (status, _) = h.get(&format!("/v1/node/{id}")).await;
    assert_eq!(status, 404, "deregistered, not merely expired");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

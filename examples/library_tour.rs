//! The SDK as a library, end to end on this machine, with nothing but this
//! crate: an in-process directory, two nodes serving different intents with
//! handlers written as closures, then `discover`, `chat` and `submit`, every
//! failure matched by its `IicpError` variant, and a clean shutdown.
//!
//! ```sh
//! cargo run --example library_tour
//! ```
//!
//! Everything listens on 127.0.0.1 ports chosen by the OS; nothing leaves
//! the machine. It prints one line per step and exits 0 when every step
//! behaved as described.

use iicp_client::directory::{Directory, DirectoryConfig};
use iicp_client::node::handler_fn;
use iicp_client::{
    ChatMessage, ClientConfig, HandlerError, IicpClient, IicpError, IicpNode, IntentUrn,
    NodeConfig, TaskRequest,
};
use serde_json::json;
use std::time::Duration;

/// A custom intent, as a vendor would define one.
const SUMMARIZE: &str = "urn:iicp:intent:x.acme:summarize:v1";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. A directory in this process (local mode: loopback nodes are fine).
    let directory = Directory::start(DirectoryConfig::default(), "127.0.0.1:0".parse()?).await?;
    let directory_url = directory.url();
    println!("directory at {directory_url}");

    // 2. A chat node. Its handler returns the *inner* result; `?` turns a
    //    JSON error into a 500 whose text stays in this node's log.
    let chat_node = IicpNode::new(NodeConfig {
        models: vec!["tour-chat".into()],
        ..NodeConfig::local(directory_url.clone())
    })
    .start(handler_fn(|req, _ctx| async move {
        let messages: Vec<ChatMessage> = serde_json::from_value(req.payload["messages"].clone())?;
        let last = messages
            .last()
            .map(|m| m.content.text())
            .unwrap_or_default();
        if last.contains("fail please") {
            return Err(HandlerError::new(500, "handler_error", "asked to fail"));
        }
        Ok(json!({"choices": [{"index": 0, "finish_reason": "stop",
                  "message": {"role": "assistant", "content": format!("you said: {last}")}}]}))
    }))
    .await?;

    // 3. A node for a custom intent, configured with the builder.
    let summarize_node = IicpNode::new(
        NodeConfig::builder()
            .directory_url(directory_url.clone())
            .host("127.0.0.1")
            .port(0u16)
            .intent(SUMMARIZE)
            .build()?,
    )
    .start(handler_fn(|req, ctx| async move {
        let text = req.payload["text"]
            .as_str()
            .ok_or_else(|| HandlerError::invalid("payload.text is required"))?;
        let words = text.split_whitespace().count();
        Ok(json!({"summary": format!("{words} words"), "task_id": ctx.task_id}))
    }))
    .await?;

    let limit = Duration::from_secs(10);
    let chat_id = chat_node.registered_within(limit).await?;
    let summarize_id = summarize_node.registered_within(limit).await?;
    println!("registered: chat node {chat_id}, summarize node {summarize_id}");

    // 4. A client for this directory. Loopback nodes are refused by default
    //    (discovered endpoints are untrusted); this mesh is all loopback.
    let client = IicpClient::builder(ClientConfig {
        directory_url: directory_url.clone(),
        timeout_ms: 10_000,
        ..Default::default()
    })
    .allow_private_nodes(true)
    .build()?;

    // 5. Discover, with a typed intent or a string.
    let chat_nodes = client.discover(IntentUrn::LLM_CHAT_V1, None, None).await?;
    let summarize_nodes = client.discover(SUMMARIZE, None, None).await?;
    assert_eq!(chat_nodes.nodes[0].node_id, chat_id);
    assert_eq!(summarize_nodes.nodes[0].node_id, summarize_id);
    println!(
        "discover: {} chat node(s), {} summarize node(s)",
        chat_nodes.nodes.len(),
        summarize_nodes.nodes.len()
    );

    // 6. Chat (encrypted to the node's IICP-CX key, as every task is).
    let reply = client.chat(vec![ChatMessage::user("hello")], None).await?;
    assert_eq!(reply.text(), "you said: hello");
    println!("chat: {}", reply.text());

    // 7. Submit a task for any intent.
    let task = TaskRequest::new(
        IntentUrn::parse(SUMMARIZE)?,
        json!({"text": "one two three"}),
    );
    let answer = client.submit(task).await?;
    let summary = answer.result.as_ref().map(|r| r["summary"].clone());
    assert_eq!(summary, Some(json!("3 words")));
    println!("submit: {}", summary.unwrap_or_default());

    // 8. Failures, each by its variant.
    //    The node refused the payload: its own error, code and status.
    let bad = TaskRequest::new(IntentUrn::parse(SUMMARIZE)?, json!({}));
    match client.submit(bad).await {
        Err(IicpError::Protocol { code, status, .. }) => {
            assert_eq!((code.as_str(), status), ("validation_error", 400));
            println!("error: a refused payload is Protocol {{ {code}, {status} }}");
        }
        other => return Err(format!("expected Protocol, got {other:?}").into()),
    }
    //    The only node failed with a 500: that node's Protocol error too.
    match client
        .chat(vec![ChatMessage::user("fail please")], None)
        .await
    {
        Err(IicpError::Protocol { code, status, .. }) => {
            assert_eq!((code.as_str(), status), ("handler_error", 500));
            println!("error: a failing handler is Protocol {{ {code}, {status} }}");
        }
        other => return Err(format!("expected Protocol, got {other:?}").into()),
    }
    //    Nobody serves the intent: NoAvailableNode, with no node to blame.
    let nobody = TaskRequest::new(
        IntentUrn::parse("urn:iicp:intent:x.acme:translate:v1")?,
        json!({}),
    );
    match client.submit(nobody).await {
        Err(IicpError::NoAvailableNode { last: None, .. }) => {
            println!("error: an intent nobody serves is NoAvailableNode");
        }
        other => return Err(format!("expected NoAvailableNode, got {other:?}").into()),
    }
    //    A malformed intent never leaves the process.
    match client
        .discover("urn:iicp:intent:Not Valid", None, None)
        .await
    {
        Err(IicpError::InvalidIntent(e)) => println!("error: InvalidIntent ({e})"),
        other => return Err(format!("expected InvalidIntent, got {other:?}").into()),
    }
    //    A configuration that cannot work is refused before anything runs.
    match IicpClient::new(ClientConfig {
        timeout_ms: 500_000,
        ..Default::default()
    }) {
        Err(IicpError::InvalidConfig(why)) => println!("error: InvalidConfig ({why})"),
        other => return Err(format!("expected InvalidConfig, got {other:?}").into()),
    }

    // 9. Clean shutdown: nodes drain and deregister, then the directory stops.
    chat_node.shutdown().await;
    summarize_node.shutdown().await;
    let left = client.discover(IntentUrn::LLM_CHAT_V1, None, None).await?;
    assert!(left.nodes.is_empty(), "a shut-down node deregisters");
    directory.shutdown().await;
    println!("shut down cleanly");
    Ok(())
}

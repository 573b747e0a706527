//! The consumer snippets of the product description, as written, run
//! against a local mesh (directory + HTTP nodes on loopback). Only the
//! directory URL differs: tests never reach the public directory.

mod common;

use common::test_node::{Reply, TestNode};
use common::{Harness, registration, registration_cx};
use iicp_client::cx::CxKeyPair;
use iicp_client::{ChatMessage, ChatOptions, ClientConfig, IicpClient};
use serde_json::json;

async fn local_client(h: &Harness) -> IicpClient {
    IicpClient::builder(ClientConfig {
        directory_url: h.base.clone(),
        ..ClientConfig::default()
    })
    .allow_private_nodes(true)
    .build()
    .unwrap()
}

#[tokio::test]
async fn quickstart_chat() -> iicp_client::Result<()> {
    let h = Harness::without_probe().await;
    let key = CxKeyPair::generate();
    let node = TestNode::start_cx(vec![Reply::Echo], key.clone()).await;
    h.register(&registration_cx(&node.endpoint(), &["m"], &key))
        .await;
    let client = local_client(&h).await;
    // --- seed snippet ---
    let reply = client
        .chat(
            vec![
                ChatMessage {
                    role: "system".into(),
                    content: "You are a helpful assistant.".into(),
                },
                ChatMessage {
                    role: "user".into(),
                    content: "What is IICP?".into(),
                },
            ],
            Some(ChatOptions {
                timeout_ms: Some(30_000),
                ..Default::default()
            }),
        )
        .await?;
    println!("{}", reply.choices[0].message.content);
    // --- end ---
    assert_eq!(
        reply.choices[0].message.content.to_string(),
        "echo: What is IICP?"
    );
    Ok(())
}

#[tokio::test]
async fn discover_then_take_the_first_node() -> iicp_client::Result<()> {
    let h = Harness::without_probe().await;
    let ack = h
        .register(&registration("http://10.0.0.7:9484", &["m"]))
        .await;
    let client = local_client(&h).await;
    // --- seed snippet ---
    let nodes = client
        .discover("urn:iicp:intent:llm:chat:v1", None, None)
        .await?;
    let node = nodes.nodes.into_iter().next().expect("no nodes available");
    // --- end ---
    assert_eq!(node.node_id, ack["node_id"].as_str().unwrap());
    Ok(())
}

#[tokio::test]
async fn client_config_literal() {
    // --- seed snippet ---
    use iicp_client::ClientConfig;
    let config = ClientConfig {
        directory_url: "https://iicp.network/api".into(), // IICP directory
        timeout_ms: 30_000,                               // max 120 000 (SDK-04)
        region: Some("eu-central".into()),                // prefer nodes in region
        node_token: None,                                 // optional auth token
    };
    // --- end ---
    let defaults = ClientConfig::default();
    assert_eq!(defaults.directory_url, "https://iicp.network/api");
    assert_eq!(defaults.timeout_ms, 30_000);
    assert_eq!((defaults.region, defaults.node_token), (None, None));
    assert!(IicpClient::new(config).is_ok());
}

#[tokio::test]
async fn discover_with_options() -> iicp_client::Result<()> {
    let h = Harness::without_probe().await;
    // A seasoned node (reputation 0.7) with the model, and two that miss a filter.
    let mut good = registration("http://10.0.0.1:9484", &["phi3:mini"]);
    good["region"] = json!("eu-central");
    let ack = h.register(&good).await;
    for batch in ["b1", "b2"] {
        h.heartbeat(
            &ack,
            json!({"metrics": {"tasks_success": 10}, "metrics_batch_id": batch}),
        )
        .await;
    }
    h.register(&registration("http://10.0.0.2:9484", &["phi3:mini"]))
        .await; // reputation 0.5
    h.register(&registration("http://10.0.0.3:9484", &["llama3"]))
        .await;
    let client = local_client(&h).await;
    // --- seed snippet ---
    use iicp_client::DiscoverOptions;
    let nodes = client
        .discover(
            "urn:iicp:intent:llm:chat:v1",
            Some(DiscoverOptions {
                region: Some("eu-central".into()),
                model: Some("phi3:mini".into()),
                min_reputation: Some(0.7),
                limit: Some(5),
            }),
            None, // optional W3C traceparent
        )
        .await?;
    // --- end ---
    let ids: Vec<&str> = nodes.nodes.iter().map(|n| n.node_id.as_str()).collect();
    assert_eq!(ids, vec![ack["node_id"].as_str().unwrap()]);
    Ok(())
}

#[tokio::test]
async fn matching_on_protocol_errors() {
    let h = Harness::without_probe().await;
    let key = CxKeyPair::generate();
    let node = TestNode::start_cx(
        vec![Reply::Status(
            403,
            json!({"error": {"code": "forbidden", "message": "not for you"}}),
            None,
        )],
        key.clone(),
    )
    .await;
    h.register(&registration_cx(&node.endpoint(), &["m"], &key))
        .await;
    let client = local_client(&h).await;
    let request = iicp_client::TaskRequest::new(
        "urn:iicp:intent:llm:chat:v1".parse().unwrap(),
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    );
    let mut arm = String::new();
    // --- seed snippet (with the arms recorded) ---
    use iicp_client::IicpError;
    match client.submit(request).await {
        Ok(resp) => println!("{:?}", resp),
        Err(IicpError::Protocol {
            code,
            message,
            status,
        }) => {
            eprintln!("[{code}] {message} (HTTP {status})");
            arm = format!("[{code}] {message} (HTTP {status})");
        }
        Err(e) => eprintln!("Error: {e}"),
    }
    // --- end ---
    assert_eq!(arm, "[forbidden] not for you (HTTP 403)");
}

#[tokio::test]
async fn node_config_literal_with_relay_fields() {
    // --- seed snippet ---
    use iicp_client::{IicpNode, NodeConfig};
    let node = IicpNode::new(NodeConfig {
        endpoint: "http://relay.example.com:8020".into(),
        intent: "urn:iicp:intent:llm:chat:v1".into(),
        relay_capable: true, // accept RELAY_BIND on TCP 9485 (requires iicp-tcp)
        relay_accept_port: 9485,
        enable_mesh: true, // advertise relay_capable=true in gossip
        ..Default::default()
    });
    // --- end ---
    let c = node.config();
    assert_eq!(c.endpoint, "http://relay.example.com:8020");
    assert!(c.relay_capable && c.enable_mesh);
    assert_eq!((c.relay_accept_port, c.port), (9485, 9484));
}

#[tokio::test]
async fn consumer_and_provider_in_one_process() -> iicp_client::Result<()> {
    use iicp_client::{HandlerError, IicpNode, NodeConfig, TaskContext, TaskRequest};
    let h = Harness::without_probe().await;
    let node = IicpNode::new(NodeConfig {
        directory_url: h.base.clone(),
        host: "127.0.0.1".into(),
        port: 0,
        models: vec!["in-process".into()],
        ..Default::default()
    })
    .start(|req: TaskRequest, _ctx: TaskContext| async move {
        let question = req.payload["messages"][1]["content"].as_str().unwrap_or_default().to_owned();
        // The inner result: serve() wraps it in the envelope.
        Ok::<_, HandlerError>(json!({
            "object": "chat.completion", "model": "in-process",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("you asked: {question}")},
                         "finish_reason": "stop"}]
        }))
    })
    .await?;
    node.registered().await.expect("registered");
    let client = local_client(&h).await;
    let reply = client
        .chat(
            vec![
                ChatMessage {
                    role: "system".into(),
                    content: "You are a helpful assistant.".into(),
                },
                ChatMessage {
                    role: "user".into(),
                    content: "What is IICP?".into(),
                },
            ],
            Some(ChatOptions {
                timeout_ms: Some(30_000),
                ..Default::default()
            }),
        )
        .await?;
    assert_eq!(
        reply.choices[0].message.content.to_string(),
        "you asked: What is IICP?"
    );
    assert_eq!(reply.node_id, node.node_id());
    assert_eq!(reply.model, "in-process");
    node.shutdown().await;
    Ok(())
}

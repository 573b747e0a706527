//! Tokens and payloads never reach a log line (SDK-06): every tracing event
//! at TRACE level is captured while a client chats through the directory to a
//! node, including failing attempts, and searched for the secrets.

mod common;

use common::logs::capture;
use common::test_node::{RecordingProxy, Reply, TestNode};
use common::{Harness, registration};
use iicp_client::{
    ChatMessage, ClientConfig, IicpClient, IicpNode, NodeConfig, TaskContext, TaskRequest,
};
use serde_json::json;

#[tokio::test]
async fn client_and_directory_log_no_token_or_payload() {
    let (captured, _guard) = capture();

    let h = Harness::without_probe().await;
    let flaky = TestNode::start(vec![
        Reply::Status(
            503,
            json!({"error": {"code": "IICP-E005", "message": "busy"}}),
            None,
        ),
        Reply::Echo,
    ])
    .await;
    let broken = TestNode::start(vec![Reply::Status(
        502,
        json!({"error": {"code": "backend_error"}}),
        None,
    )])
    .await;
    let mut first = registration(&broken.endpoint(), &["m"]);
    first["node_id"] = json!("a-broken");
    h.register(&first).await;
    let mut second = registration(&flaky.endpoint(), &["m"]);
    second["node_id"] = json!("b-flaky");
    let ack = h.register(&second).await;
    h.heartbeat(&ack, json!({})).await;

    let client = IicpClient::builder(ClientConfig {
        directory_url: h.base.clone(),
        node_token: Some("TOKEN-sekrit-4711".into()),
        ..Default::default()
    })
    .allow_private_nodes(true)
    .allow_plaintext(true)
    .retry_base_ms(1)
    .build()
    .unwrap();
    let reply = client
        .chat(vec![ChatMessage::user("PAYLOAD-confidential-0815")], None)
        .await
        .unwrap();
    assert!(
        reply.text().contains("PAYLOAD-confidential-0815"),
        "the node did get the payload"
    );

    let logs = captured.text();
    assert!(
        logs.contains("node registered"),
        "logging was captured: {logs}"
    );
    assert!(
        logs.contains("trying the next"),
        "the failover was logged: {logs}"
    );
    for secret in [
        "TOKEN-sekrit-4711",
        "PAYLOAD-confidential-0815",
        ack["node_token"].as_str().unwrap(),
        ack["node_hmac_key"].as_str().unwrap(),
    ] {
        assert!(
            !logs.contains(secret),
            "`{secret}` leaked into the logs:\n{logs}"
        );
    }
}

#[tokio::test]
async fn node_logs_task_spans_but_no_payload_or_token() {
    let (captured, _guard) = capture();
    let h = Harness::start(iicp_client::directory::DirectoryConfig {
        heartbeat_interval: std::time::Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let proxy = RecordingProxy::start(h.base.trim_end_matches("/api")).await;
    let node = IicpNode::new(NodeConfig {
        directory_url: proxy.url.clone(),
        host: "127.0.0.1".into(),
        port: 0,
        models: vec!["m".into()],
        ..Default::default()
    })
    .start(|req: TaskRequest, _ctx: TaskContext| async move { Ok(json!({"seen": req.payload})) })
    .await
    .unwrap();
    node.registered().await.unwrap();
    let task_id = uuid::Uuid::new_v4().to_string();
    let resp: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v1/task", node.endpoint()))
        .json(&json!({"task_id": task_id, "intent": common::CHAT,
                      "payload": {"messages": [{"role": "user", "content": "PAYLOAD-node-secret-1234"}]},
                      "auth": {"node_token": "AUTH-token-9876"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["status"], "success");
    for _ in 0..100 {
        if proxy.to("/v1/heartbeat").len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    node.shutdown().await;

    let ack = proxy.to("/v1/register")[0].response.clone();
    let logs = captured.text();
    assert!(
        logs.contains("iicp.task.execute") && logs.contains(&task_id),
        "task span logged: {logs}"
    );
    assert!(logs.contains("deregistered from the directory"), "{logs}");
    for secret in [
        "PAYLOAD-node-secret-1234",
        "AUTH-token-9876",
        ack["node_token"].as_str().unwrap(),
        ack["node_hmac_key"].as_str().unwrap(),
    ] {
        assert!(
            !logs.contains(secret),
            "`{secret}` leaked into the logs:\n{logs}"
        );
    }
}

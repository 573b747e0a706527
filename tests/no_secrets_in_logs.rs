//! Tokens and payloads never reach a log line (SDK-06): every tracing event
//! at TRACE level is captured while a client chats through the directory to a
//! node, including failing attempts, and searched for the secrets.

mod common;

use common::test_node::{Reply, TestNode};
use common::{Harness, registration};
use iicp_client::{ChatMessage, ClientConfig, IicpClient};
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn client_and_directory_log_no_token_or_payload() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

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

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
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

//! Who may submit a task (PROTOCOL.md §2.4), end to end on loopback: our
//! directory signs consumer tokens, our node in `token` mode checks them
//! (or its own token) and answers 401 `unauthorized` otherwise; in `open`
//! mode anyone may submit. Our client fetches consumer tokens by itself.

mod common;

use common::{CHAT, Harness, registration};
use iicp_client::directory::DirectoryConfig;
use iicp_client::node::TaskAuthMode;
use iicp_client::token::{ConsumerClaims, DEFAULT_ISSUER, DirectorySigningKey};
use iicp_client::{
    ChatMessage, ClientConfig, IicpClient, IicpNode, NodeConfig, RunningNode, TaskContext,
    TaskRequest,
};
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

const SEED: [u8; 32] = [42; 32];

/// A directory with a known signing key, a node in `mode` registered with
/// it, and a second registration (the consumer) holding its own token.
struct Mesh {
    h: Harness,
    node: RunningNode,
    node_id: String,
    consumer_id: String,
    consumer_token: String,
}

impl Mesh {
    async fn start(mode: TaskAuthMode) -> Self {
        let h = Harness::start(DirectoryConfig {
            skip_liveness_check: true,
            signing_key: Some(DirectorySigningKey::from_seed(SEED)),
            ..DirectoryConfig::default()
        })
        .await;
        let node = IicpNode::new(NodeConfig {
            directory_url: h.base.clone(),
            host: "127.0.0.1".into(),
            port: 0,
            models: vec!["m".into()],
            task_auth: mode,
            ..Default::default()
        })
        .start(|_req: TaskRequest, _ctx: TaskContext| async move {
            Ok(json!({
                "ok": true,
                "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "served"}, "finish_reason": "stop"}],
            }))
        })
        .await
        .unwrap();
        let node_id = node.registered().await.unwrap();
        let mut consumer = registration("http://10.1.2.3:9484", &["other"]);
        consumer["node_id"] = json!("consumer-node");
        let ack = h.register(&consumer).await;
        Self {
            node_id,
            consumer_id: ack["node_id"].as_str().unwrap().to_owned(),
            consumer_token: ack["node_token"].as_str().unwrap().to_owned(),
            h,
            node,
        }
    }

    /// POSTs a plaintext task with extra headers and `auth`.
    async fn task(&self, headers: &[(&str, &str)], auth: Option<Value>) -> (u16, Value) {
        let mut body = json!({
            "task_id": uuid::Uuid::new_v4().to_string(),
            "intent": CHAT,
            "payload": {"messages": [{"role": "user", "content": "hi"}]},
        });
        if let Some(auth) = auth {
            body["auth"] = auth;
        }
        let mut req = self
            .h
            .http
            .post(format!("{}/v1/task", self.node.endpoint()))
            .json(&body);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        common::read(req.send().await.unwrap()).await
    }

    /// A consumer token from the directory, as a client would get it.
    async fn consumer_token_for(&self, target: &str) -> String {
        let resp = self
            .h
            .http
            .post(self.h.url("/v1/consumer-token"))
            .bearer_auth(&self.consumer_token)
            .header("X-Node-Id", &self.consumer_id)
            .json(&json!({"target_node_id": target, "intent": CHAT}))
            .send()
            .await
            .unwrap();
        let (status, body) = common::read(resp).await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    fn signed(&self, aud: &str, intent: &str, iat: u64) -> String {
        DirectorySigningKey::from_seed(SEED).sign_consumer_token(&ConsumerClaims::new(
            DEFAULT_ISSUER,
            &self.consumer_id,
            aud,
            intent,
            iat,
        ))
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn assert_unauthorized((status, body): (u16, Value), why: &str) {
    assert_eq!(status, 401, "{why}: {body}");
    assert_eq!(body["error"]["code"], "unauthorized", "{why}: {body}");
}

#[tokio::test]
async fn token_mode_refuses_tasks_without_a_valid_credential() {
    let m = Mesh::start(TaskAuthMode::Token).await;
    assert_unauthorized(m.task(&[], None).await, "no credential");
    let (status, body) = m
        .task(&[], Some(json!({"node_token": "guessed-token"})))
        .await;
    assert_unauthorized((status, body.clone()), "a wrong node token");
    assert!(!body.to_string().contains("guessed-token"), "{body}");
    assert_unauthorized(
        m.task(&[("Authorization", "Bearer guessed-token")], None)
            .await,
        "a wrong bearer",
    );
    // The consumer's own directory token is not this node's token.
    assert_unauthorized(
        m.task(&[], Some(json!({"node_token": m.consumer_token})))
            .await,
        "another node's token",
    );
}

#[tokio::test]
async fn token_mode_accepts_the_nodes_own_token_in_every_spelling() {
    let m = Mesh::start(TaskAuthMode::Token).await;
    let own = m.node.node_token().expect("registered").expose().to_owned();
    let (status, body) = m.task(&[], Some(json!({"node_token": own}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["ok"], true);
    let (status, _) = m.task(&[], Some(json!({"token": own}))).await;
    assert_eq!(status, 200, "the older `auth.token` spelling");
    let bearer = format!("Bearer {own}");
    let (status, _) = m.task(&[("Authorization", &bearer)], None).await;
    assert_eq!(status, 200, "Authorization: Bearer");
}

#[tokio::test]
async fn token_mode_accepts_a_consumer_token_from_our_directory() {
    let m = Mesh::start(TaskAuthMode::Token).await;
    let token = m.consumer_token_for(&m.node_id).await;
    let (status, body) = m.task(&[("X-IICP-Consumer-Token", &token)], None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
}

#[tokio::test]
async fn token_mode_refuses_expired_wrong_audience_wrong_intent_and_forged_tokens() {
    let m = Mesh::start(TaskAuthMode::Token).await;
    // A token the directory issued for another node.
    let elsewhere = m.consumer_token_for(&m.consumer_id).await;
    assert_unauthorized(
        m.task(&[("X-IICP-Consumer-Token", &elsewhere)], None).await,
        "wrong audience",
    );
    let expired = m.signed(&m.node_id, CHAT, now() - 300 - 11);
    let (status, body) = m.task(&[("X-IICP-Consumer-Token", &expired)], None).await;
    assert_unauthorized((status, body.clone()), "expired beyond the grace");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
    let in_grace = m.signed(&m.node_id, CHAT, now() - 300 - 5);
    let (status, _) = m.task(&[("X-IICP-Consumer-Token", &in_grace)], None).await;
    assert_eq!(status, 200, "within the 10 s grace");
    let embedding = m.signed(&m.node_id, "urn:iicp:intent:llm:embedding:v1", now());
    assert_unauthorized(
        m.task(&[("X-IICP-Consumer-Token", &embedding)], None).await,
        "another intent",
    );
    let wildcard = m.signed(&m.node_id, "*", now());
    let (status, _) = m.task(&[("X-IICP-Consumer-Token", &wildcard)], None).await;
    assert_eq!(status, 200, "`*` covers every intent");
    let forged = DirectorySigningKey::from_seed([1; 32]).sign_consumer_token(&ConsumerClaims::new(
        DEFAULT_ISSUER,
        "x",
        &m.node_id,
        CHAT,
        now(),
    ));
    assert_unauthorized(
        m.task(&[("X-IICP-Consumer-Token", &forged)], None).await,
        "signed by another key",
    );
}

#[tokio::test]
async fn open_mode_accepts_anyone_and_any_consumer_token() {
    let m = Mesh::start(TaskAuthMode::Open).await;
    let (status, body) = m.task(&[], None).await;
    assert_eq!(status, 200, "{body}");
    let token = m.consumer_token_for(&m.node_id).await;
    let (status, _) = m.task(&[("X-IICP-Consumer-Token", &token)], None).await;
    assert_eq!(status, 200);
    let expired = m.signed(&m.node_id, CHAT, 1);
    let (status, _) = m.task(&[("X-IICP-Consumer-Token", &expired)], None).await;
    assert_eq!(status, 200, "open mode does not turn bad tokens away");
}

#[tokio::test]
async fn our_client_fetches_a_consumer_token_with_its_node_token() {
    let m = Mesh::start(TaskAuthMode::Token).await;
    let client = |token: &str| {
        IicpClient::builder(ClientConfig {
            directory_url: m.h.base.clone(),
            timeout_ms: 10_000,
            node_token: Some(token.into()),
            ..Default::default()
        })
        .allow_private_nodes(true)
        .build()
        .unwrap()
    };
    let reply = client(&m.consumer_token)
        .chat(vec![ChatMessage::user("hi")], None)
        .await
        .unwrap();
    assert_eq!(reply.node_id.as_deref(), Some(m.node_id.as_str()));

    // A token the directory does not know buys no consumer token; the task
    // then goes without a credential and the node refuses it.
    let err = client("not-a-directory-token")
        .chat(vec![ChatMessage::user("hi")], None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert_eq!(err.code(), "unauthorized");
}

//! Who may submit a task (PROTOCOL.md §2.4), end to end on loopback: our
//! directory signs consumer tokens, our node in `token` mode checks them
//! (or its own token) and answers 401 `unauthorized` otherwise; in `open`
//! mode anyone may submit. Our client fetches consumer tokens by itself.

mod common;

use common::node::{Reply, Transport, start_node};
use common::{CHAT, Harness, registration};
use iicp_client::directory::DirectoryConfig;
use iicp_client::node::TaskAuthMode;
use iicp_client::token::{ConsumerClaims, DEFAULT_ISSUER, DirectorySigningKey};
use iicp_client::{
    ChatMessage, ClientConfig, IicpClient, NodeConfig, RunningNode, TaskContext, TaskRequest,
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
        let node = start_node(
            NodeConfig {
                directory_url: h.base.clone(),
                models: vec!["m".into()],
                task_auth: mode,
                ..Default::default()
            },
            |_req: TaskRequest, _ctx: TaskContext| async move {
                Ok(json!({
                    "ok": true,
                    "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "served"}, "finish_reason": "stop"}],
                }))
            },
        )
        .await;
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

    /// Sends a plaintext task with extra headers and `auth` over `transport`.
    async fn task(
        &self,
        transport: Transport,
        headers: &[(&str, &str)],
        auth: Option<Value>,
    ) -> Reply {
        let mut body = json!({
            "task_id": uuid::Uuid::new_v4().to_string(),
            "intent": CHAT,
            "payload": {"messages": [{"role": "user", "content": "hi"}]},
        });
        if let Some(auth) = auth {
            body["auth"] = auth;
        }
        transport.send(self.node.local_addr(), body, headers).await
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

/// One case: the headers and `auth` a task goes with, the status it gets
/// and why.
type Case<'a> = (&'a str, Vec<(&'a str, String)>, Option<Value>, u16);

/// Runs every case over every transport; a 401 must be `unauthorized`
/// (and a success has no error code). Returns the answer bodies of each
/// transport, case by case, for further checks.
async fn run(m: &Mesh, cases: &[Case<'_>]) -> Vec<Vec<Value>> {
    let mut all = Vec::new();
    for &transport in Transport::ALL {
        let mut bodies = Vec::new();
        for (why, headers, auth, status) in cases {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let reply = m.task(transport, &headers, auth.clone()).await;
            let code = (*status == 401).then_some("unauthorized");
            reply.assert_is(*status, code, format!("{transport:?}, {why}"));
            bodies.push(reply.body);
        }
        all.push(bodies);
    }
    all
}

/// The consumer-token header with `token`.
fn consumer(token: &str) -> Vec<(&'static str, String)> {
    vec![("X-IICP-Consumer-Token", token.to_owned())]
}

#[tokio::test]
async fn token_mode_refuses_tasks_without_a_valid_credential() {
    let m = Mesh::start(TaskAuthMode::Token).await;
    let answers = run(
        &m,
        &[
            ("no credential", vec![], None, 401),
            (
                "a wrong node token",
                vec![],
                Some(json!({"node_token": "guessed-token"})),
                401,
            ),
            (
                "a wrong bearer",
                vec![("Authorization", "Bearer guessed-token".into())],
                None,
                401,
            ),
            // The consumer's own directory token is not this node's token.
            (
                "another node's token",
                vec![],
                Some(json!({"node_token": m.consumer_token})),
                401,
            ),
        ],
    )
    .await;
    for bodies in answers {
        assert!(
            !bodies[1].to_string().contains("guessed-token"),
            "{}",
            bodies[1]
        );
        assert!(
            !bodies[2].to_string().contains("guessed-token"),
            "{}",
            bodies[2]
        );
    }
}

#[tokio::test]
async fn token_mode_accepts_the_nodes_own_token_in_every_spelling() {
    let m = Mesh::start(TaskAuthMode::Token).await;
    let own = m.node.node_token().expect("registered").expose().to_owned();
    let answers = run(
        &m,
        &[
            (
                "auth.node_token",
                vec![],
                Some(json!({"node_token": own})),
                200,
            ),
            (
                "the older `auth.token` spelling",
                vec![],
                Some(json!({"token": own})),
                200,
            ),
            (
                "Authorization: Bearer",
                vec![("Authorization", format!("Bearer {own}"))],
                None,
                200,
            ),
        ],
    )
    .await;
    for bodies in answers {
        assert_eq!(bodies[0]["result"]["ok"], true);
    }
}

#[tokio::test]
async fn token_mode_accepts_a_consumer_token_from_our_directory() {
    let m = Mesh::start(TaskAuthMode::Token).await;
    let token = m.consumer_token_for(&m.node_id).await;
    for bodies in run(&m, &[("a consumer token", consumer(&token), None, 200)]).await {
        assert_eq!(bodies[0]["status"], "success");
    }
}

#[tokio::test]
async fn token_mode_refuses_expired_wrong_audience_wrong_intent_and_forged_tokens() {
    let m = Mesh::start(TaskAuthMode::Token).await;
    // A token the directory issued for another node.
    let elsewhere = m.consumer_token_for(&m.consumer_id).await;
    let expired = m.signed(&m.node_id, CHAT, now() - 300 - 11);
    let in_grace = m.signed(&m.node_id, CHAT, now() - 300 - 5);
    let embedding = m.signed(&m.node_id, "urn:iicp:intent:llm:embedding:v1", now());
    let wildcard = m.signed(&m.node_id, "*", now());
    let forged = DirectorySigningKey::from_seed([1; 32]).sign_consumer_token(&ConsumerClaims::new(
        DEFAULT_ISSUER,
        "x",
        &m.node_id,
        CHAT,
        now(),
    ));
    let answers = run(
        &m,
        &[
            ("wrong audience", consumer(&elsewhere), None, 401),
            ("expired beyond the grace", consumer(&expired), None, 401),
            ("within the 10 s grace", consumer(&in_grace), None, 200),
            ("another intent", consumer(&embedding), None, 401),
            ("`*` covers every intent", consumer(&wildcard), None, 200),
            ("signed by another key", consumer(&forged), None, 401),
        ],
    )
    .await;
    for bodies in answers {
        let message = bodies[1]["error"]["message"].as_str().unwrap();
        assert!(message.contains("expired"), "{}", bodies[1]);
    }
}

#[tokio::test]
async fn open_mode_accepts_anyone_and_any_consumer_token() {
    let m = Mesh::start(TaskAuthMode::Open).await;
    let token = m.consumer_token_for(&m.node_id).await;
    let expired = m.signed(&m.node_id, CHAT, 1);
    run(
        &m,
        &[
            ("no credential", vec![], None, 200),
            ("a consumer token", consumer(&token), None, 200),
            (
                "open mode does not turn bad tokens away",
                consumer(&expired),
                None,
                200,
            ),
        ],
    )
    .await;
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

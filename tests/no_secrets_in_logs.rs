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

/// The binaries at TRACE, through the faults and attacks of issue 18: a
/// directory (restarted empty halfway) behind a recording proxy, a node in
/// `token` task-auth mode with gossip signing and a CX key, in front of a
/// backend that is stalled and then killed; tasks over HTTP, native frames
/// and sealed CX from the library client; refused registrations and
/// heartbeats carrying tokens; heads and bodies carrying credentials and
/// payloads that never finish or do not parse. Every line any of them
/// printed is searched for every payload, token, key and HMAC involved
/// (`common::logs::assert_no_leaks`), and for anything shaped like one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binaries_at_trace_log_no_secret_through_faults_and_attacks() {
    use common::fake_http::{Stall, chat_backend};
    use common::logs::{assert_no_leaks, secret};
    use common::node_bin::{directory_command, free_port, serve_command};
    use common::watch::Watched;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    let trace = |mut cmd: std::process::Command| {
        cmd.env("RUST_LOG", "trace");
        Watched::start(cmd)
    };
    let (client_log, _guard) = capture();
    let dir_port = free_port();
    let start_directory = || {
        let mut d = trace(directory_command(dir_port, &["--heartbeat-ms", "300"]));
        d.wait_for("listening on", Duration::from_secs(30));
        d
    };
    let mut directory = start_directory();
    let proxy = RecordingProxy::start(&format!("http://127.0.0.1:{dir_port}")).await;
    let backend_port = free_port();
    let mut backend = chat_backend(backend_port, Stall::SlowPrefix).await;
    let home = tempfile::tempdir().unwrap();
    let node_port = free_port();
    let hmac = secret("GOSSIP-hmac-key-3f9a1c");
    let mut node = trace(serve_command(
        home.path(),
        node_port,
        &[
            "--directory-url",
            &proxy.url,
            "--backend-type",
            "openai_compat",
            "--backend-url",
            &format!("http://127.0.0.1:{backend_port}/v1"),
            "--model",
            "m",
            "--auto-detect-nat",
            "false",
            "--task-auth",
            "token",
            "--enable-mesh",
            "--node-hmac-key",
            &hmac,
        ],
    ));
    node.wait_for("iicp-node serving on", Duration::from_secs(60));
    let node_url = format!("http://127.0.0.1:{node_port}");
    let wait_heartbeats = |n: usize| {
        let proxy = &proxy;
        async move {
            for _ in 0..500 {
                if proxy.to("/v1/heartbeat").len() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("no heartbeat {n}: {:?}", proxy.requests());
        }
    };
    wait_heartbeats(2).await;
    let ack = proxy.to("/v1/register")[0].response.clone();
    let token = secret(ack["node_token"].as_str().expect("a node token"));
    secret(ack["node_hmac_key"].as_str().expect("an HMAC key"));
    let cx_key = std::fs::read_to_string(home.path().join("cx_x25519.key")).unwrap();
    secret(cx_key.trim());
    let http = reqwest::Client::new();

    // 1. A task over HTTP with the node's token: served.
    let words = secret("PAYLOAD-trace-http-6b1d");
    let task = |content: &str, timeout_ms: u64| {
        json!({"intent": common::CHAT, "auth": {"node_token": token},
               "constraints": {"timeout_ms": timeout_ms},
               "payload": {"model": "m", "messages": [{"role": "user", "content": content}]}})
    };
    let answer: serde_json::Value = http
        .post(format!("{node_url}/v1/task"))
        .json(&task(&words, 30_000))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["status"], "success", "{answer}");

    // 2. A task without the token, carrying a wrong one as a bearer: 401.
    let wrong = secret("WRONG-bearer-token-55c0e");
    let refused = http
        .post(format!("{node_url}/v1/task"))
        .bearer_auth(&wrong)
        .json(&json!({"intent": common::CHAT,
                      "payload": {"messages": [{"role": "user", "content": words}]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // 3. Over native frames, the token in INIT (a build with native frames).
    #[cfg(feature = "iicp-tcp")]
    {
        let native_words = secret("PAYLOAD-trace-native-c27e");
        let mut options = iicp_client::transport::NativeOptions::default();
        options.node_token = Some(token.clone().into());
        let native = iicp_client::transport::NativeClient::connect(
            &format!("127.0.0.1:{node_port}"),
            options,
        )
        .await
        .expect("a native session");
        let result = native
            .call(
                common::CHAT,
                json!({"model": "m", "messages": [{"role": "user", "content": native_words}]}),
            )
            .await
            .expect("a native answer");
        assert!(result["choices"].is_array(), "{result}");
        drop(native);
    }

    // 4. Sealed (IICP-CX) by the library client, logging at TRACE here.
    let sealed_words = secret("PAYLOAD-trace-sealed-0e88");
    let client = IicpClient::builder(ClientConfig {
        directory_url: proxy.url.clone(),
        node_token: Some(token.clone().into()),
        ..Default::default()
    })
    .allow_private_nodes(true)
    .build()
    .unwrap();
    let reply = client
        .chat(vec![ChatMessage::user(sealed_words.clone())], None)
        .await
        .expect("a sealed chat");
    assert_eq!(reply.text(), "fine");

    // 5. A stalled backend meets the task deadline: 504.
    let slow_words = secret("slow PAYLOAD-trace-stalled-a4f3");
    let late = http
        .post(format!("{node_url}/v1/task"))
        .json(&task(&slow_words, 1_000))
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 504);

    // 6. Hostile heads and bodies: a credential in a head that never ends, a
    //    payload in a body cut short, a body that is not JSON, garbage where
    //    a native INIT belongs.
    let bearer = secret("HOSTILE-bearer-9d0b2e");
    let cut_words = secret("PAYLOAD-trace-cut-body-713a");
    let bad_json = secret("PAYLOAD-trace-bad-json-2c5f");
    let node_addr: std::net::SocketAddr = ([127, 0, 0, 1], node_port).into();
    for raw in [
        format!(
            "POST /v1/task HTTP/1.1\r\nHost: n\r\nAuthorization: Bearer {bearer}\r\nX-Api-Key: {bearer}\r\n"
        ),
        format!(
            "POST /v1/task HTTP/1.1\r\nHost: n\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{{\"payload\":\"{cut_words}"
        ),
        format!(
            "POST /v1/task HTTP/1.1\r\nHost: n\r\nContent-Type: application/json\r\nAuthorization: Bearer {bearer}\r\nContent-Length: {}\r\n\r\n{{\"payload\": {bad_json}",
            bad_json.len() + 12
        ),
        format!("IICP\u{1}\u{0}{bearer}{cut_words}"),
    ] {
        let mut s = tokio::net::TcpStream::connect(node_addr).await.unwrap();
        s.write_all(raw.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(s);
    }

    // 7. Refusals at the directory: a registration with a stale token and a
    //    bad field, a heartbeat with a wrong token.
    let stale = secret("STALE-node-token-8e21f4");
    let (status, _) = common::read(
        http.post(format!("http://127.0.0.1:{dir_port}/api/v1/register"))
            .json(
                &json!({"endpoint": "ftp://nowhere", "current_node_token": stale,
                          "capabilities": []}),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status / 100, 4);
    let (status, _) = common::read(
        http.post(format!("http://127.0.0.1:{dir_port}/api/v1/heartbeat"))
            .bearer_auth(&stale)
            .json(&json!({"node_id": ack["node_id"], "node_token": stale}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);

    // 8. The backend killed: 502.
    backend.kill();
    let broken = http
        .post(format!("{node_url}/v1/task"))
        .json(&task(&words, 30_000))
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 502);

    // 9. The directory restarted empty: the node registers again (a new
    //    token and HMAC key), and its heartbeats carry them.
    let beats = proxy.to("/v1/heartbeat").len();
    directory.kill();
    let audit_first = directory.output().join("\n");
    let mut directory = start_directory();
    for _ in 0..1_000 {
        if proxy
            .to("/v1/register")
            .iter()
            .filter(|e| e.status == 201)
            .count()
            >= 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_heartbeats(beats + 3).await;
    for exchange in proxy.exchanges() {
        for key in ["node_token", "node_hmac_key", "proxy_token"] {
            if let Some(v) = exchange.response[key].as_str() {
                secret(v);
            }
        }
        if let Some(v) = exchange.request["challenge_response"].as_str() {
            secret(v);
        }
    }
    assert!(
        proxy
            .to("/v1/register")
            .iter()
            .filter(|e| e.status == 201)
            .count()
            >= 2,
        "registered again: {:?}",
        proxy.requests()
    );

    node.stop(Duration::from_secs(15));
    directory.stop(Duration::from_secs(15));
    let node_log = node.output().join("\n");
    let directory_log = directory.output().join("\n");
    assert!(
        node_log.contains("TRACE") && node_log.contains("iicp.task.execute"),
        "the node logged at TRACE, task spans included"
    );
    assert!(directory_log.contains("TRACE") && audit_first.contains("registration refused"));
    assert_no_leaks("the first directory", &audit_first);
    assert_no_leaks("the second directory", &directory_log);
    assert_no_leaks("the node", &node_log);
    assert_no_leaks("the library client", &client_log.text());
}

/// The audit itself: what it must find and what it must let through.
#[test]
fn the_audit_finds_secrets_tokens_and_bearer_credentials() {
    use common::logs::{leaks, secret};
    let token = "a".repeat(24) + &"0123456789abcdef".repeat(3);
    secret("PAYLOAD-audit-self-test");
    for (line, found) in [
        ("task done in 12 ms", false),
        (
            "trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7",
            false,
        ),
        (
            "signing key generated, public key 185ed6e9562ff36a72c9ac138ac7e5157c8d8fb9de2af1cce5750ff8b1cb81a0",
            false,
        ),
        (&format!("registered, token {token}"), true),
        ("content: PAYLOAD-audit-self-test", true),
        ("header Authorization: Bearer abc.def", true),
        ("Bearer  (none)", false),
    ] {
        assert_eq!(!leaks(line).is_empty(), found, "{line}: {:?}", leaks(line));
    }
}

//! The relay server (PROTOCOL.md §7.2) of a relay-capable node, driven by
//! hand: workers speak frames over a `TcpStream` (or the long-poll HTTP
//! routes), consumers POST to `/v1/relay-for/{worker_id}/v1/task`.
//! Everything on loopback, in-process.
#![cfg(feature = "iicp-tcp")]

mod common;

use common::relay::{HandWorker, chat_task, code, get_json, post_json, start_relay};
use iicp_client::token::{DirectorySigningKey, RelayTicketClaims};
use iicp_client::transport::{CloseReason, Frame, Init, kind};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The refusal of a bind of a worker id whose session is alive.
const ALIVE: &str = "worker_id already bound to an alive session";

/// A RELAY_ACK refusal reason, as [`HandWorker::refusal`] gives it.
fn refused(reason: &str) -> Option<String> {
    Some(reason.to_owned())
}

/// The RELAY_ACK refuses a bind it could not read.
fn assert_malformed(ack: &iicp_client::transport::RelayAck) {
    assert!(
        ack.reason
            .as_deref()
            .is_some_and(|r| r.starts_with("malformed bind: ")),
        "{ack:?}"
    );
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn a_bound_worker_answers_consumers_through_the_relay() {
    let relay = start_relay(|_| {}).await;
    let mut worker = HandWorker::connect(relay.accept).await;
    let ack = worker.bind("w-1", None).await;
    assert!(ack.is_ok(), "{ack:?}");
    assert_eq!(ack.worker_id.as_deref(), Some("w-1"));
    assert_eq!(ack.relay_http_port, Some(relay.node.local_addr().port()));
    worker.ping().await;

    // A complete answer passes through untouched, with the consumer's whole
    // envelope (CX fields included) forwarded as it came, its bearer token
    // in key 11, its trace id in key 13 and the seconds left in key 6.
    let mut task = chat_task("hello", Some(5_000));
    task["iicp_conf"] = json!({"version": 1, "ciphertext": "opaque"});
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let consumer = relay.consumer(
        "w-1",
        task.clone(),
        vec![
            ("authorization", "Bearer consumer-secret".into()),
            ("traceparent", traceparent.into()),
        ],
    );
    let call = worker.next_call().await;
    assert_eq!(call.payload, task, "the envelope is forwarded whole");
    assert_eq!(
        call.auth_token.as_ref().unwrap().expose(),
        "consumer-secret"
    );
    assert_eq!(
        hex::encode(call.trace_id.unwrap()),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let left = call.timeout.expect("key 6");
    assert!(
        left <= Duration::from_secs(5) && left > Duration::from_secs(1),
        "{left:?}"
    );
    let sealed = json!({"task_id": task["task_id"], "status": "encrypted",
        "iicp_conf_resp": {"ciphertext": "sealed-by-the-worker"}});
    worker.answer(&call, sealed.clone(), None).await;
    assert_eq!(consumer.await.unwrap(), (200, sealed));

    // The worker's status passes through with its body.
    let consumer = relay.consumer("w-1", chat_task("x", None), vec![]);
    let call = worker.next_call().await;
    let refusal = json!({"error": {"code": "unauthorized", "message": "a token is required"}});
    worker.answer(&call, refusal.clone(), Some(401)).await;
    assert_eq!(consumer.await.unwrap(), (401, refusal));

    // A raw value (what the Python worker sends) is merged into a completed
    // task, as the reference relays merge it.
    let task = chat_task("raw", None);
    let consumer = relay.consumer("w-1", task.clone(), vec![]);
    let call = worker.next_call().await;
    worker
        .answer(&call, json!({"result": {"text": "raw answer"}}), None)
        .await;
    let (status, body) = consumer.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"task_id": task["task_id"], "status": "completed",
               "result": {"text": "raw answer"}, "node_id": "w-1"})
    );

    // POST /v1/relay {target_node_id, task} reaches the same worker.
    let url = relay.url("/v1/relay");
    let body = json!({"target_node_id": "w-1", "task": chat_task("via /v1/relay", None)});
    let consumer = tokio::spawn(async move { post_json(&url, &body, vec![]).await });
    let call = worker.next_call().await;
    worker.answer_success(&call, json!("r")).await;
    assert_eq!(
        consumer.await.unwrap(),
        (200, json!({"status": "success", "result": "r"}))
    );

    // Several calls in flight are matched by call id, answered out of order.
    let a = relay.consumer("w-1", chat_task("a", None), vec![]);
    let first = worker.next_call().await;
    let b = relay.consumer("w-1", chat_task("b", None), vec![]);
    let second = worker.next_call().await;
    worker.answer_success(&second, json!("b")).await;
    worker.answer_success(&first, json!("a")).await;
    assert_eq!(a.await.unwrap().1["result"], "a");
    assert_eq!(b.await.unwrap().1["result"], "b");

    // The relay's own /v1/task is still its own.
    let (status, body) = post_json(&relay.url("/v1/task"), &chat_task("own", None), vec![]).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"], json!({"relay_itself": true}));
    relay.node.shutdown().await;
}

#[tokio::test]
async fn health_under_the_prefix_and_unknown_workers() {
    let relay = start_relay(|_| {}).await;
    let _worker = HandWorker::bound(relay.accept, "w-h")
        .await
        .serve_echo("w-h");
    let (status, health) = get_json(&relay.url("/v1/relay-for/w-h/iicp/health"), None).await;
    assert_eq!(status, 200);
    assert_eq!(health["node_id"], "w-h");
    assert_eq!(health["via_relay"], true);
    assert_eq!(health["models"], json!(["hand-model"]));

    // An unknown worker is 404 IICP-E030 on every route; /v1/relay without a
    // target is 422.
    let unknown = [
        get_json(&relay.url("/v1/relay-for/nobody/iicp/health"), None).await,
        relay.task("nobody", chat_task("x", None)).await,
        post_json(
            &relay.url("/v1/relay"),
            &json!({"target_node_id": "nobody", "task": chat_task("x", None)}),
            vec![],
        )
        .await,
    ];
    for (route, (status, body)) in unknown.iter().enumerate() {
        assert_eq!(
            (*status, code(body)),
            (404, "IICP-E030"),
            "#{route}: {body}"
        );
    }
    let (status, body) = post_json(&relay.url("/v1/relay"), &json!({"task": {}}), vec![]).await;
    assert_eq!(status, 422, "{body}");

    // Bodies: not JSON is 400, over max_body_bytes 413 (both JSON errors).
    let resp = reqwest::Client::new()
        .post(relay.url("/v1/relay-for/w-h/v1/task"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    relay.node.shutdown().await;

    let small = start_relay(|c| c.max_body_bytes = 1024).await;
    let _worker = HandWorker::bound(small.accept, "w-s")
        .await
        .serve_echo("w-s");
    let (status, body) = small.task("w-s", chat_task(&"x".repeat(4096), None)).await;
    assert_eq!((status, code(&body)), (413, "payload_too_large"));
    small.node.shutdown().await;
}

#[tokio::test]
async fn a_worker_that_leaves_mid_call_gives_502() {
    let relay = start_relay(|_| {}).await;
    let mut worker = HandWorker::bound(relay.accept, "w-gone").await;
    let consumer = relay.consumer("w-gone", chat_task("x", None), vec![]);
    let _call = worker.next_call().await;
    drop(worker);
    let (status, body) = consumer.await.unwrap();
    assert_eq!((status, code(&body)), (502, "IICP-E031"), "{body}");
    let (status, _) = get_json(&relay.url("/v1/relay-for/w-gone/iicp/health"), None).await;
    assert_eq!(status, 404, "the session is gone");
    relay.node.shutdown().await;
}

#[tokio::test]
async fn a_worker_that_never_answers_gives_504_and_frees_the_call() {
    // One call in flight per worker: a call not forgotten after its 504
    // would make the next one 429.
    let relay = start_relay(|c| c.relay_limits.max_pending_calls = 1).await;
    let mut worker = HandWorker::bound(relay.accept, "w-mute").await;
    let started = Instant::now();
    let consumer = relay.consumer("w-mute", chat_task("x", Some(400)), vec![]);
    let ignored = worker.next_call().await;
    let (status, body) = consumer.await.unwrap();
    assert_eq!((status, code(&body)), (504, "task_timeout"), "{body}");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "not before the task's deadline"
    );
    // The late answer to the forgotten call is dropped; a new call works.
    worker.answer_success(&ignored, json!("late")).await;
    let consumer = relay.consumer("w-mute", chat_task("y", None), vec![]);
    let call = worker.next_call().await;
    worker.answer_success(&call, json!("on time")).await;
    assert_eq!(consumer.await.unwrap().1["result"], "on time");
    relay.node.shutdown().await;
}

#[tokio::test]
async fn the_session_cap_refuses_new_workers_until_one_leaves() {
    let relay = start_relay(|c| c.relay_limits.max_sessions = 2).await;
    let a = HandWorker::bound(relay.accept, "cap-a").await;
    let _b = HandWorker::bound(relay.accept, "cap-b").await;
    assert_eq!(
        HandWorker::refusal(relay.accept, "cap-c", None).await,
        refused("relay at session capacity")
    );
    drop(a);
    // The relay notices a's end of stream; then c fits.
    HandWorker::bound_once_free(relay.accept, "cap-c", None).await;
    relay.node.shutdown().await;
}

#[tokio::test]
async fn binds_are_rate_limited_per_source_and_rebinds_are_exempt() {
    let relay = start_relay(|c| c.relay_limits.binds_per_window = 3).await;
    let mut workers = Vec::new();
    for id in ["r-1", "r-2", "r-3"] {
        workers.push(HandWorker::bound(relay.accept, id).await);
    }
    assert_eq!(
        HandWorker::refusal(relay.accept, "r-4", None).await,
        refused("relay_bind_rate_limited")
    );
    // r-1 reconnects from the same address: a rebind, not a new bind. Until
    // the relay sees the old connection end, it is alive.
    drop(workers.remove(0));
    HandWorker::bound_once_free(relay.accept, "r-1", Some(ALIVE)).await;
    relay.node.shutdown().await;
}

#[tokio::test]
async fn an_alive_session_is_never_displaced_but_a_dead_one_is_replaced() {
    let relay = start_relay(|c| c.relay_limits.silence_timeout = Duration::from_millis(800)).await;
    let mut first = HandWorker::bound(relay.accept, "w-d").await;
    assert_eq!(
        HandWorker::refusal(relay.accept, "w-d", None).await,
        refused(ALIVE)
    );
    // The first still serves.
    let consumer = relay.consumer("w-d", chat_task("x", None), vec![]);
    let call = first.next_call().await;
    first.answer_success(&call, json!("first")).await;
    assert_eq!(consumer.await.unwrap().1["result"], "first");

    // Silent for longer than the silence timeout: dead, replaced by a new bind.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let second = HandWorker::bound(relay.accept, "w-d").await;
    let _serving = second.serve_echo("second");
    let close = first.close().await.expect("the dead session gets a CLOSE");
    assert!(
        matches!(
            close.reason,
            Some(CloseReason::IdleTimeout | CloseReason::Graceful)
        ),
        "{close:?}"
    );
    let (status, body) = relay.task("w-d", chat_task("y", None)).await;
    assert_eq!(
        (status, &body["result"]["worker"]),
        (200, &json!("second")),
        "{body}"
    );
    relay.node.shutdown().await;
}

#[tokio::test]
async fn bind_tickets_are_checked_when_required() {
    let key = DirectorySigningKey::generate();
    let relay = start_relay(|c| {
        c.relay_require_bind_ticket = true;
        c.relay_bind_ticket_public_key = Some(key.public_key().to_hex());
        c.node_id = Some("relay-1".into());
    })
    .await;
    let iss = "https://iicp.network";
    let ticket = |claims: &RelayTicketClaims| key.sign_relay_ticket(claims);

    assert_eq!(
        HandWorker::refusal(relay.accept, "t-1", None).await,
        refused("relay bind ticket required")
    );

    let other = DirectorySigningKey::generate();
    let forged = other.sign_relay_ticket(&RelayTicketClaims::new(iss, "t-1", "*", now()));
    let cases = [
        ("bad signature", forged),
        (
            "wrong sub",
            ticket(&RelayTicketClaims::new(iss, "someone-else", "*", now())),
        ),
        (
            "wrong aud",
            ticket(&RelayTicketClaims::new(iss, "t-1", "relay-2", now())),
        ),
        (
            "expired",
            ticket(&RelayTicketClaims::new(iss, "t-1", "*", now() - 600)),
        ),
        ("garbage", "not-a-ticket".to_owned()),
    ];
    for (what, bad) in cases {
        assert_eq!(
            HandWorker::refusal(relay.accept, "t-1", Some(&bad)).await,
            refused("relay bind ticket invalid"),
            "{what}"
        );
    }

    // A good ticket (for this relay or any) binds once; its replay is refused.
    let good = ticket(&RelayTicketClaims::new(iss, "t-1", "relay-1", now()));
    let (w, ack) = HandWorker::try_bind(relay.accept, "t-1", Some(&good)).await;
    assert!(ack.is_ok());
    drop(w);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        HandWorker::refusal(relay.accept, "t-1", Some(&good)).await,
        refused("relay bind ticket replayed")
    );
    let any = ticket(&RelayTicketClaims::new(iss, "t-1", "*", now()));
    let (_w, ack) = HandWorker::try_bind(relay.accept, "t-1", Some(&any)).await;
    assert!(ack.is_ok());

    // Long-poll binds meet the same checks: 401 / 409 IICP-E040.
    let url = relay.url("/v1/relay/bind");
    let (status, body) = post_json(&url, &json!({"worker_id": "t-2"}), vec![]).await;
    assert_eq!((status, code(&body)), (401, "IICP-E040"));
    let t2 = ticket(&RelayTicketClaims::new(iss, "t-2", "*", now()));
    let (status, _) = post_json(
        &url,
        &json!({"worker_id": "t-2", "bind_ticket": t2}),
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = post_json(
        &url,
        &json!({"worker_id": "t-3", "bind_ticket": t2}),
        vec![],
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (401, "IICP-E040"),
        "t-2's ticket for t-3"
    );
    relay.node.shutdown().await;
}

#[tokio::test]
async fn the_directory_key_is_fetched_when_tickets_are_required() {
    let key = DirectorySigningKey::generate();
    let dir = iicp_client::directory::Directory::start(
        iicp_client::directory::DirectoryConfig {
            signing_key: Some(key.clone()),
            ..Default::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir_url = dir.url();
    let relay = start_relay(|c| {
        c.relay_require_bind_ticket = true;
        c.directory_url = dir_url;
    })
    .await;
    let good = key.sign_relay_ticket(&RelayTicketClaims::new(
        "https://iicp.network",
        "f-1",
        "*",
        now(),
    ));
    let (_w, ack) = HandWorker::try_bind(relay.accept, "f-1", Some(&good)).await;
    assert!(ack.is_ok());
    relay.node.shutdown().await;
    dir.shutdown().await;
}

#[tokio::test]
async fn garbage_before_or_in_the_bind_is_refused_and_the_relay_keeps_serving() {
    let relay = start_relay(|_| {}).await;
    // RELAY_BIND that is not CBOR, and one with the wrong types.
    for payload in [b"\xff\xfe not cbor".to_vec(), {
        let mut p = Vec::new();
        ciborium::into_writer(
            &ciborium::Value::Map(vec![(1.into(), ciborium::Value::Array(vec![]))]),
            &mut p,
        )
        .unwrap();
        p
    }] {
        let mut w = HandWorker::connect(relay.accept).await;
        w.send(Frame::new(kind::RELAY_BIND, payload)).await;
        let ack = w.ack().await;
        assert!(!ack.is_ok());
        assert_malformed(&ack);
        assert!(w.next_frame().await.is_none(), "then the connection closes");
    }
    // No worker id, and one that cannot be a path segment.
    for id in ["", "../../etc"] {
        assert_malformed(&HandWorker::try_bind(relay.accept, id, None).await.1);
    }
    // A CALL before the bind: CLOSE protocol_error.
    let mut w = HandWorker::connect(relay.accept).await;
    w.send(iicp_client::transport::Call::default().to_frame())
        .await;
    let close = w.close().await.expect("CLOSE");
    assert_eq!(close.reason, Some(CloseReason::ProtocolError));
    // Not IICP at all, and a frame too large for the limit.
    let mut raw = TcpStream::connect(relay.accept).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut w = HandWorker::connect(relay.accept).await;
    let mut huge = Vec::from(*b"IICP\x01\x0b\x00\x00");
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    w.framed.get_mut().write_all(&huge).await.unwrap();
    let close = w.close().await.expect("CLOSE");
    assert_eq!(close.reason, Some(CloseReason::FrameTooLarge));
    // INIT that never comes: CLOSE protocol_error after the init timeout.
    let short = start_relay(|c| c.native_limits.init_timeout = Duration::from_millis(300)).await;
    let stream = TcpStream::connect(short.accept).await.unwrap();
    let mut silent = HandWorker {
        framed: tokio_util::codec::Framed::new(stream, iicp_client::transport::FrameCodec::new()),
    };
    assert_eq!(
        silent.close().await.unwrap().reason,
        Some(CloseReason::ProtocolError)
    );
    short.node.shutdown().await;

    // A real worker still binds and serves.
    let _w = HandWorker::bound(relay.accept, "after-garbage")
        .await
        .serve_echo("g");
    let (status, _) = relay.task("after-garbage", chat_task("x", None)).await;
    assert_eq!(status, 200);
    relay.node.shutdown().await;
}

#[tokio::test]
async fn a_thousand_idle_connections_do_not_keep_a_worker_out() {
    let relay = start_relay(|_| {}).await;
    let mut idle = Vec::new();
    for i in 0..1_000 {
        let mut stream = TcpStream::connect(relay.accept).await.expect("connect");
        if i % 2 == 0 {
            // Half of them say INIT, then nothing.
            let frame = Init::with_version(1).to_frame();
            let mut bytes = bytes::BytesMut::new();
            tokio_util::codec::Encoder::encode(
                &mut iicp_client::transport::FrameCodec::new(),
                frame,
                &mut bytes,
            )
            .unwrap();
            stream.write_all(&bytes).await.unwrap();
        }
        idle.push(stream);
    }
    let _w = HandWorker::bound(relay.accept, "real")
        .await
        .serve_echo("real");
    let (status, body) = relay.task("real", chat_task("x", None)).await;
    assert_eq!(status, 200, "{body}");
    drop(idle);
    relay.node.shutdown().await;
}

#[tokio::test]
async fn long_poll_workers_bind_pull_answer_and_unbind() {
    let relay = start_relay(|c| c.relay_limits.poll_timeout = Duration::from_millis(500)).await;
    let bind = relay.url("/v1/relay/bind");
    let (status, bound) = post_json(
        &bind,
        &json!({"worker_id": "p-1", "intent": "urn:iicp:intent:llm:chat:v1", "models": ["pm"]}),
        vec![],
    )
    .await;
    assert_eq!(status, 200, "{bound}");
    assert_eq!(bound["poll_timeout_s"], 1);
    assert_eq!(bound["worker_endpoint_path"], "/v1/relay-for/p-1");
    let token = bound["session_token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 64);

    // An alive long-poll session is not displaced either.
    let (status, body) = post_json(&bind, &json!({"worker_id": "p-1"}), vec![]).await;
    assert_eq!((status, code(&body)), (409, "IICP-E038"));

    let pull = relay.url("/v1/relay/pull");
    let bearer = vec![("authorization", format!("Bearer {token}"))];
    let (status, _) = get_json(&pull, Some(&token)).await;
    assert_eq!(status, 204, "no work yet");
    let (status, body) = get_json(&pull, Some("wrong-token")).await;
    assert_eq!((status, code(&body)), (401, "IICP-E021"));

    let task = chat_task("poll me", None);
    let consumer = relay.consumer("p-1", task.clone(), vec![]);
    let (status, call) = get_json(&pull, Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(call["task"], task);
    let result = json!({"status": "success", "result": {"text": "polled"}});
    let (status, _) = post_json(
        &relay.url("/v1/relay/result"),
        &json!({"call_id": call["call_id"], "result": result}),
        bearer.clone(),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(consumer.await.unwrap(), (200, result));

    let (status, health) = get_json(&relay.url("/v1/relay-for/p-1/iicp/health"), None).await;
    assert_eq!((status, &health["models"]), (200, &json!(["pm"])));

    let (status, _) = post_json(&relay.url("/v1/relay/unbind"), &json!({}), bearer).await;
    assert_eq!(status, 204);
    let (status, _) = relay.task("p-1", chat_task("x", None)).await;
    assert_eq!(status, 404);
    let (status, _) = get_json(&pull, Some(&token)).await;
    assert_eq!(status, 401, "the token died with the session");
    relay.node.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_worker_sessions_gracefully() {
    let relay = start_relay(|_| {}).await;
    let mut worker = HandWorker::bound(relay.accept, "w-s").await;
    let accept = relay.accept;
    relay.node.shutdown().await;
    let close = worker.close().await.expect("CLOSE");
    assert_eq!(close.reason, Some(CloseReason::Graceful));
    assert!(
        TcpStream::connect(accept).await.is_err(),
        "the accept port is closed"
    );
}

#[tokio::test]
async fn binds_are_logged_with_worker_and_source_but_never_payloads_or_tokens() {
    let (logs, _guard) = common::logs::capture();
    let key = DirectorySigningKey::generate();
    let relay =
        start_relay(|c| c.relay_bind_ticket_public_key = Some(key.public_key().to_hex())).await;
    let ticket = key.sign_relay_ticket(&RelayTicketClaims::new(
        "https://iicp.network",
        "w-log",
        "*",
        now(),
    ));
    let (mut worker, ack) = HandWorker::try_bind(relay.accept, "w-log", Some(&ticket)).await;
    assert!(ack.is_ok());
    let consumer = relay.consumer(
        "w-log",
        chat_task("PROMPT-SECRET-TEXT", None),
        vec![("authorization", "Bearer BEARER-SECRET-TOKEN".into())],
    );
    let call = worker.next_call().await;
    worker
        .answer_success(&call, json!("ANSWER-SECRET-TEXT"))
        .await;
    assert_eq!(consumer.await.unwrap().0, 200);
    let (_, bound) = post_json(
        &relay.url("/v1/relay/bind"),
        &json!({"worker_id": "p-log"}),
        vec![],
    )
    .await;
    let session_token = bound["session_token"].as_str().unwrap().to_owned();
    drop(worker);
    tokio::time::sleep(Duration::from_millis(200)).await;
    relay.node.shutdown().await;

    let text = logs.text();
    for secret in [
        "PROMPT-SECRET-TEXT",
        "BEARER-SECRET-TOKEN",
        "ANSWER-SECRET-TEXT",
        ticket.as_str(),
        ticket.split('.').next().unwrap(),
        session_token.as_str(),
    ] {
        assert!(!text.contains(secret), "logged a secret: {secret}\n{text}");
    }
    assert!(text.contains("relay: worker bound"), "{text}");
    assert!(
        text.contains("w-log") && text.contains("127.0.0.1"),
        "{text}"
    );
    assert!(text.contains("relay: worker unbound"), "{text}");
}

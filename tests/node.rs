//! `IicpNode` with the real local directory on loopback: registration,
//! heartbeats and challenges, self-healing, admission, replay, deadlines,
//! envelopes and bad input.

mod common;

use common::CHAT;
use common::node::{Body, Transport, post_raw, post_task, start_node};
use common::test_node::RecordingProxy;
use iicp_client::directory::{Directory, DirectoryConfig, RunningDirectory};
use iicp_client::{HandlerError, IicpNode, NodeConfig, RunningNode, TaskContext, TaskRequest};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Bounded wait for a condition that other tasks make true.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gave up waiting for: {what}");
}

fn fast_directory() -> DirectoryConfig {
    DirectoryConfig {
        heartbeat_interval: Duration::from_millis(100),
        ..DirectoryConfig::default()
    }
}

fn node_config(directory_url: &str) -> NodeConfig {
    NodeConfig {
        directory_url: directory_url.to_owned(),
        host: "127.0.0.1".into(),
        port: 0,
        models: vec!["test-model".into()],
        ..NodeConfig::default()
    }
}

/// A handler steered by the payload: `block` waits for the test's gate,
/// `sleep_ms`, `panic`, `fail`, `wrap` (returns an already-wrapped result).
fn handler(gate: Arc<Semaphore>) -> impl iicp_client::TaskHandler {
    move |req: TaskRequest, _ctx: TaskContext| {
        let gate = gate.clone();
        async move {
            let p = req.payload.clone();
            if p["block"] == true {
                gate.acquire().await.unwrap().forget();
            }
            if let Some(ms) = p["sleep_ms"].as_u64() {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if p["panic"] == true {
                panic!("a handler bug");
            }
            if let Some(msg) = p["fail"].as_str() {
                return Err(HandlerError::backend(msg));
            }
            if p["wrap"] == true {
                return Ok(json!({"result": {"answer": 42, "model": "test-model"}}));
            }
            Ok(json!({"answer": 42, "model": "test-model", "usage": {"total_tokens": 9}}))
        }
    }
}

async fn discover_ids(dir_url: &str) -> Vec<String> {
    let body: Value = reqwest::get(format!("{dir_url}/v1/discover?intent={CHAT}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_id"].as_str().unwrap().to_owned())
        .collect()
}

/// POSTs `body` as JSON; (status, JSON answer).
async fn post(node: &RunningNode, body: Value) -> (u16, Value) {
    let posted = post_task(node.endpoint(), &body, &[]).await;
    (posted.status, posted.body)
}

fn task(payload: Value) -> Value {
    json!({"task_id": uuid::Uuid::new_v4().to_string(), "intent": CHAT, "payload": payload})
}

struct Mesh {
    dir: RunningDirectory,
    proxy: RecordingProxy,
}

async fn mesh() -> Mesh {
    let dir = Directory::start(fast_directory(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let proxy = RecordingProxy::start(dir.url().trim_end_matches("/api")).await;
    Mesh { dir, proxy }
}

#[tokio::test]
async fn registers_heartbeats_with_challenge_answers_and_deregisters() {
    let m = mesh().await;
    let node = IicpNode::new(node_config(&m.proxy.url))
        .start(handler(Arc::new(Semaphore::new(0))))
        .await
        .unwrap();
    let id = node.registered().await.expect("registers");
    assert!(
        discover_ids(&m.dir.url()).await.contains(&id),
        "discoverable once registered"
    );

    eventually("four heartbeats", || async {
        m.proxy.to("/v1/heartbeat").len() >= 4
    })
    .await;
    let beats = m.proxy.to("/v1/heartbeat");
    assert!(
        beats.iter().all(|b| b.status == 200),
        "every heartbeat accepted"
    );
    assert!(
        beats[0].request.get("challenge_response").is_none(),
        "nothing to answer yet"
    );
    for pair in beats.windows(2) {
        let answer = pair[1].request["challenge_response"]
            .as_str()
            .expect("later beats answer");
        assert_eq!(answer.len(), 64);
        assert!(pair[0].response["challenge"].is_string());
    }
    let first = &beats[0].request;
    assert_eq!(first["node_id"], id);
    assert_eq!(first["health_models"], json!(["test-model"]));
    assert_eq!(first["available"], true);
    let reg = &m.proxy.to("/v1/register")[0].request;
    assert_eq!(reg["capabilities"][0]["intent"], CHAT);
    assert_eq!(reg["capabilities"][0]["input_modalities"], json!(["text"]));
    assert_eq!(reg["limits"]["max_concurrent"], 4);
    assert_eq!(reg["sdk_language"], "rust");
    assert_eq!(
        m.proxy.to("/v1/register").len(),
        1,
        "no re-registration while healthy"
    );

    node.shutdown().await;
    let dereg = m
        .proxy
        .exchanges()
        .into_iter()
        .rfind(|e| e.method == "DELETE")
        .expect("deregistered");
    assert_eq!(dereg.status, 200);
    assert!(discover_ids(&m.dir.url()).await.is_empty());
}

#[tokio::test]
async fn metrics_reach_the_directory_once() {
    let m = mesh().await;
    let node = IicpNode::new(node_config(&m.proxy.url))
        .start(handler(Arc::new(Semaphore::new(0))))
        .await
        .unwrap();
    node.registered().await.unwrap();
    for _ in 0..3 {
        assert_eq!(post(&node, task(json!({}))).await.0, 200);
    }
    assert_eq!(post(&node, task(json!({"fail": "down"}))).await.0, 502);
    // Heartbeats run every 100 ms, so the outcomes may be spread over several
    // batches. Summed over distinct batch ids (a resent batch keeps its id),
    // the directory must see each outcome exactly once, and accept each batch.
    let totals = || {
        let mut seen = std::collections::BTreeMap::new();
        for beat in m.proxy.to("/v1/heartbeat") {
            if let Some(id) = beat.request["metrics_batch_id"].as_str() {
                assert!(
                    beat.request["metrics"].is_object(),
                    "a batch id comes with metrics"
                );
                assert_eq!(
                    beat.response["metrics_batch_accepted"], id,
                    "the directory acknowledges it"
                );
                let metrics = &beat.request["metrics"];
                seen.insert(
                    id.to_owned(),
                    (
                        metrics["tasks_success"].as_u64().unwrap(),
                        metrics["tasks_failed"].as_u64().unwrap(),
                    ),
                );
            }
        }
        seen.values()
            .fold((0, 0), |(s, f), (bs, bf)| (s + bs, f + bf))
    };
    eventually("all four outcomes reported", || async {
        totals() == (3, 1)
    })
    .await;
    // A few more beats: nothing is reported twice.
    let beats = m.proxy.to("/v1/heartbeat").len();
    eventually("two more heartbeats", || async {
        m.proxy.to("/v1/heartbeat").len() >= beats + 2
    })
    .await;
    assert_eq!(totals(), (3, 1));
    node.shutdown().await;
}

#[tokio::test]
async fn comes_back_after_the_directory_restarts_empty() {
    let dir = Directory::start(fast_directory(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = dir.local_addr();
    let url = dir.url();
    let node = IicpNode::new(node_config(&url))
        .start(handler(Arc::new(Semaphore::new(0))))
        .await
        .unwrap();
    let id = node.registered().await.unwrap();
    dir.shutdown().await;
    let dir = Directory::start(fast_directory(), addr).await.unwrap();
    assert!(
        discover_ids(&url).await.is_empty(),
        "the new directory starts empty"
    );
    eventually("the node to be listed again", || async {
        discover_ids(&url).await == vec![id.clone()]
    })
    .await;
    node.shutdown().await;
    dir.shutdown().await;
}

#[tokio::test]
async fn serves_while_the_directory_is_down_and_registers_when_it_comes_up() {
    let spare = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = spare.local_addr().unwrap();
    drop(spare);
    let url = format!("http://{addr}/api");
    let node = IicpNode::new(node_config(&url))
        .start(handler(Arc::new(Semaphore::new(0))))
        .await
        .unwrap();
    let (status, body) = post(&node, task(json!({}))).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("success")),
        "serving before registration"
    );
    assert!(node.node_id().is_none());
    let dir = Directory::start(fast_directory(), addr).await.unwrap();
    let id = tokio::time::timeout(Duration::from_secs(60), node.registered())
        .await
        .expect("registers once the directory is up")
        .unwrap();
    assert_eq!(discover_ids(&url).await, vec![id]);
    node.shutdown().await;
    dir.shutdown().await;
}

/// A port P with P and P+1 free, below the kernel's ephemeral range
/// (32768+), so no `bind(0)` elsewhere in the suite can take P or P+1 between
/// this check and the nodes binding them.
fn free_pair_below_ephemeral_range() -> u16 {
    let start = 20_000 + (std::process::id() % 5_000) as u16 * 2;
    (start..30_000)
        .step_by(2)
        .find(|&p| {
            std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
        })
        .expect("a free pair of ports below 30000")
}

#[tokio::test]
async fn two_nodes_on_one_port_number_get_consecutive_ports() {
    assert_eq!(NodeConfig::default().port, 9484);
    let port = free_pair_below_ephemeral_range();
    let cfg = NodeConfig {
        port,
        skip_registration: true,
        ..node_config("http://127.0.0.1:9/api")
    };
    let a = IicpNode::new(cfg.clone())
        .start(handler(Arc::new(Semaphore::new(0))))
        .await
        .unwrap();
    let b = IicpNode::new(cfg.clone())
        .start(handler(Arc::new(Semaphore::new(0))))
        .await
        .unwrap();
    assert_eq!(a.local_addr().port(), port);
    assert_eq!(b.local_addr().port(), port + 1);
    assert_eq!(b.endpoint(), format!("http://127.0.0.1:{}", port + 1));
    // An explicit endpoint pins the port: no auto-increment.
    let pinned = NodeConfig {
        endpoint: format!("http://127.0.0.1:{port}"),
        ..cfg
    };
    assert!(
        IicpNode::new(pinned)
            .start(handler(Arc::new(Semaphore::new(0))))
            .await
            .is_err()
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// A node that does not register, with the test handler.
async fn local_node(cfg: NodeConfig, gate: Arc<Semaphore>) -> RunningNode {
    start_node(
        NodeConfig {
            skip_registration: true,
            ..cfg
        },
        handler(gate),
    )
    .await
}

#[tokio::test]
async fn full_node_refuses_batch_tasks_with_429_and_recovers() {
    let gate = Arc::new(Semaphore::new(0));
    let cfg = NodeConfig {
        max_concurrent: 1,
        ..node_config("http://127.0.0.1:9/api")
    };
    let node = local_node(cfg, gate.clone()).await;
    let addr = node.local_addr();
    let health_url = format!("{}/iicp/health", node.endpoint());
    for &transport in Transport::ALL {
        let busy = tokio::spawn(transport.send(addr, task(json!({"block": true})), &[]));
        eventually("the first task to hold the slot", || async {
            let h: Value = reqwest::get(&health_url)
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            h["active_jobs"] == 1
        })
        .await;
        let mut t = task(json!({}));
        t["constraints"] = json!({"qos": "batch"});
        let reply = transport.send(addr, t, &[]).await;
        let body = &reply.body;
        reply.assert_is(429, Some("IICP-E021"), format!("{transport:?}"));
        assert_eq!(body["error"]["message"], "capacity_exceeded");
        if transport.carries_details() {
            assert_eq!(body["error"]["qos_class"], "batch");
            assert_eq!(body["error"]["retry_after_ms"], 2000);
            assert_eq!(reply.retry_after_s, Some(2), "{transport:?}: Retry-After");
        }
        gate.add_permits(1);
        busy.await.unwrap().assert_ok(format!("{transport:?}"));
        transport
            .send(addr, task(json!({})), &[])
            .await
            .assert_ok(format!("{transport:?}: the slot is free again"));
    }
    node.shutdown().await;
}

#[tokio::test]
async fn replays_timeouts_and_panics() {
    let cfg = NodeConfig {
        max_concurrent: 1,
        ..node_config("http://127.0.0.1:9/api")
    };
    let node = local_node(cfg, Arc::new(Semaphore::new(0))).await;
    let addr = node.local_addr();
    for &transport in Transport::ALL {
        let send = |t: Value| transport.send(addr, t, &[]);
        let t = task(json!({}));
        send(t.clone()).await.assert_ok(format!("{transport:?}"));
        if transport.carries_task_id() {
            send(t).await.assert_is(
                409,
                Some("IICP-E010"),
                format!("{transport:?}: a task id again"),
            );
        }

        let mut with_nonce = task(json!({}));
        with_nonce["nonce"] = json!(uuid::Uuid::new_v4().simple().to_string());
        send(with_nonce.clone())
            .await
            .assert_ok(format!("{transport:?}: a nonce"));
        with_nonce["task_id"] = json!(uuid::Uuid::new_v4().to_string());
        send(with_nonce).await.assert_is(
            409,
            Some("IICP-E011"),
            format!("{transport:?}: a nonce again"),
        );

        let mut slow = task(json!({"sleep_ms": 60_000}));
        slow["constraints"] = json!({"timeout_ms": 200});
        let reply = send(slow).await;
        reply.assert_is(504, Some("task_timeout"), format!("{transport:?}"));
        if transport.carries_details() {
            assert_eq!(reply.body["status"], "timeout");
        }
        send(task(json!({})))
            .await
            .assert_ok(format!("{transport:?}: the timed-out task freed its slot"));

        send(task(json!({"panic": true}))).await.assert_is(
            500,
            Some("handler_error"),
            format!("{transport:?}"),
        );
        send(task(json!({})))
            .await
            .assert_ok(format!("{transport:?}: the panicked task freed its slot"));
    }
    node.shutdown().await;
}

#[tokio::test]
async fn envelopes_are_spec_complete_and_wrapped_once() {
    let node = local_node(
        node_config("http://127.0.0.1:9/api"),
        Arc::new(Semaphore::new(0)),
    )
    .await;
    let addr = node.local_addr();
    for &transport in Transport::ALL {
        let t = task(json!({}));
        let reply = transport.send(addr, &t, &[]).await;
        let body = &reply.body;
        reply.assert_ok(format!("{transport:?}"));
        if transport.carries_task_id() {
            assert_eq!(body["task_id"], t["task_id"], "{transport:?}");
        }
        assert_eq!(body["status"], "success", "{transport:?}");
        assert_eq!(body["result"]["answer"], 42, "{transport:?}");
        if transport.carries_details() {
            assert_eq!(body["model_used"], "test-model");
            assert_eq!(body["generated_by_ai"], true);
        }
        if transport.carries_metrics() {
            assert!(body["metrics"]["latency_ms"].is_u64(), "{transport:?}");
            assert_eq!(body["metrics"]["tokens_used"], 9, "{transport:?}");
        }

        let reply = transport.send(addr, task(json!({"wrap": true})), &[]).await;
        assert_eq!(
            reply.body["result"],
            json!({"answer": 42, "model": "test-model"}),
            "{transport:?}: not double-wrapped"
        );

        let reply = transport
            .send(addr, task(json!({"fail": "model server down"})), &[])
            .await;
        reply.assert_is(502, Some("backend_error"), format!("{transport:?}"));
        assert_eq!(
            reply.body["error"],
            json!({"code": "backend_error", "message": "model server down"}),
            "{transport:?}"
        );
        if transport.carries_details() {
            assert_eq!(reply.body["status"], "error");
            assert_eq!(reply.body["generated_by_ai"], false);
        }
    }
    node.shutdown().await;
}

/// A bad-input case: what, the task, status, code, and whether the case
/// applies to a transport.
type BadInput = (&'static str, Body, u16, &'static str, fn(Transport) -> bool);

#[tokio::test]
async fn bad_input_gets_a_json_refusal_with_its_status_and_code() {
    let node = local_node(
        NodeConfig {
            max_body_bytes: 2048,
            ..node_config("http://127.0.0.1:9/api")
        },
        Arc::new(Semaphore::new(0)),
    )
    .await;
    let json_ct = "application/json";
    let raw = |bytes: &[u8], content_type| Body::Raw {
        bytes: bytes.to_vec(),
        content_type,
    };
    let always = |_: Transport| true;
    let oversize = Body::Json(task(json!({"text": "x".repeat(4096)})));
    // (what, task, status, code, whether the case applies to a transport)
    let cases: [BadInput; 6] = [
        (
            "malformed JSON",
            raw(b"{oops", json_ct),
            400,
            "validation_error",
            always,
        ),
        (
            "a task sent as text/plain",
            raw(task(json!({})).to_string().as_bytes(), "text/plain"),
            415,
            "validation_error",
            Transport::has_content_type,
        ),
        (
            "no intent",
            Body::Json(json!({"payload": {}})),
            422,
            "validation_error",
            always,
        ),
        (
            "an intent URN that breaks the grammar",
            Body::Json(json!({"intent": "urn:iicp:intent:Chat:v1", "payload": {}})),
            422,
            "validation_error",
            always,
        ),
        (
            "an intent the node does not serve",
            Body::Json(json!({"intent": "urn:iicp:intent:llm:completion:v1", "payload": {}})),
            422,
            "unknown_intent",
            always,
        ),
        (
            "a task over the size limit",
            oversize.clone(),
            413,
            "payload_too_large",
            Transport::answers_oversize_tasks,
        ),
    ];
    for &transport in Transport::ALL {
        for (what, body, status, code, applies) in cases.iter().cloned() {
            if !applies(transport) {
                continue;
            }
            let reply = transport.send(node.local_addr(), body, &[]).await;
            reply.assert_is(status, Some(code), format!("{transport:?}, {what}"));
        }
        if !transport.answers_oversize_tasks() {
            let reply = transport
                .send(node.local_addr(), oversize.clone(), &[])
                .await;
            assert_eq!(
                reply.closed.as_deref(),
                Some("frame_too_large"),
                "{transport:?}: a task over the size limit: {reply:?}"
            );
        }
        transport
            .send(node.local_addr(), task(json!({})), &[])
            .await
            .assert_ok(format!("{transport:?}: the node still serves"));
    }
    node.shutdown().await;
}

#[tokio::test]
async fn other_routes_answer_json_and_every_answer_has_cors() {
    let node = local_node(
        node_config("http://127.0.0.1:9/api"),
        Arc::new(Semaphore::new(0)),
    )
    .await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/task", node.endpoint());
    let r = http
        .get(format!("{}/nope", node.endpoint()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );

    let r = http
        .request(reqwest::Method::OPTIONS, &url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(r.headers()["access-control-max-age"], "86400");
    let r = http
        .get(format!("{}/iicp/health", node.endpoint()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let h: Value = r.json().await.unwrap();
    assert_eq!(
        (h["status"].as_str(), h["max_concurrent"].as_u64()),
        (Some("ok"), Some(4))
    );
    // A refusal has CORS and its content type too.
    let refused = post_raw(node.endpoint(), b"{oops".to_vec(), "application/json", &[]).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.headers["access-control-allow-origin"], "*");
    assert_eq!(
        refused.headers["access-control-allow-methods"],
        "GET, POST, OPTIONS"
    );
    assert!(
        refused.headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("X-IICP-Consumer-Token")
    );
    assert_eq!(refused.headers["content-type"], "application/json");
    // The connection answers POST /v1/task itself; other methods on the
    // path still reach the router's route: 405, JSON, CORS.
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "method_not_allowed"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn shutdown_finishes_running_tasks_then_deregisters() {
    let gate = Arc::new(Semaphore::new(0));
    let m = mesh().await;
    let node = IicpNode::new(node_config(&m.proxy.url))
        .start(handler(gate.clone()))
        .await
        .unwrap();
    node.registered().await.unwrap();
    let endpoint = node.endpoint().to_owned();
    let running = tokio::spawn({
        let endpoint = endpoint.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{endpoint}/v1/task"))
                .json(&task(json!({"block": true})))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let health = format!("{endpoint}/iicp/health");
    eventually("the task to start", || async {
        let h: Value = reqwest::get(&health).await.unwrap().json().await.unwrap();
        h["active_jobs"] == 1
    })
    .await;
    let stopping = tokio::spawn(node.shutdown());
    gate.add_permits(1);
    assert_eq!(running.await.unwrap(), 200, "the running task finished");
    stopping.await.unwrap();
    assert!(
        discover_ids(&m.dir.url()).await.is_empty(),
        "deregistered after draining"
    );
}

#[tokio::test]
async fn the_default_host_accepts_ipv4_clients() {
    let cfg = NodeConfig {
        port: 0,
        skip_registration: true,
        ..NodeConfig::default()
    };
    assert_eq!(cfg.host, "::");
    let node = IicpNode::new(cfg)
        .start(handler(Arc::new(Semaphore::new(0))))
        .await
        .unwrap();
    let port = node.local_addr().port();
    let resp = reqwest::get(format!("http://127.0.0.1:{port}/iicp/health"))
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "an IPv4 client reaches the `::` listener"
    );
    assert_eq!(node.endpoint(), format!("http://127.0.0.1:{port}"));
    node.shutdown().await;
}

#[tokio::test]
async fn the_trace_id_and_qos_reach_the_handler_over_every_transport() {
    let node = start_node(
        common::node::local_config(),
        |_req: TaskRequest, ctx: TaskContext| async move {
            let trace_id = ctx
                .traceparent
                .as_deref()
                .and_then(|t| t.split('-').nth(1))
                .map(str::to_owned);
            Ok(json!({"trace_id": trace_id, "qos": ctx.qos.map(|q| q.to_string())}))
        },
    )
    .await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    for &transport in Transport::ALL {
        let mut t = json!({"intent": CHAT, "payload": {}, "constraints": {"qos": "batch"}});
        t["task_id"] = json!(uuid::Uuid::new_v4().to_string());
        let reply = transport
            .send(node.local_addr(), t, &[("traceparent", &traceparent)])
            .await;
        reply.assert_ok(format!("{transport:?}"));
        assert_eq!(
            reply.body["result"],
            json!({"trace_id": trace_id, "qos": "batch"}),
            "{transport:?}"
        );
    }
    node.shutdown().await;
}

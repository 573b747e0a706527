//! `GET /metrics` on the node and the directory: Prometheus text format
//! 0.0.4, read back with a Prometheus text parser (`prometheus-parse`), the
//! counters moving by exactly what the test did, and no label (nor any line)
//! carrying a payload, a token or a node id.

mod common;

use common::CHAT;
use common::node::{local_config, post_task, start_node};
use iicp_client::directory::DirectoryConfig;
use iicp_client::node::{HandlerError, handler_fn};
use iicp_client::{NodeConfig, RunningNode};
use prometheus_parse::{Scrape, Value as Metric};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Marks a payload and a token: neither may show up in a scrape.
const SECRET_PAYLOAD: &str = "SECRET-PAYLOAD-7f3a";
const SECRET_TOKEN: &str = "SECRET-TOKEN-91c2";

/// A scrape: the raw text and the parsed samples.
struct Scraped {
    text: String,
    scrape: Scrape,
}

impl Scraped {
    /// The value of the sample `name` whose labels include `labels`; 0 when
    /// there is none (a labelled family creates its series on first use).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<f64> = self
            .scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => *v,
                other => panic!("{name}: not a single value: {other:?}"),
            })
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?}: several series match");
        found.first().copied().unwrap_or(0.0)
    }

    /// Every label value of every sample.
    fn label_values(&self) -> Vec<String> {
        self.scrape
            .samples
            .iter()
            .flat_map(|s| s.labels.values().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// Nothing secret in the labels, nor anywhere in the text.
    fn assert_leaks_none(&self, secrets: &[&str]) {
        for secret in secrets {
            assert!(
                !self.text.contains(secret),
                "{secret} in a scrape:\n{}",
                self.text
            );
            for v in self.label_values() {
                assert!(!v.contains(secret), "{secret} in label value {v}");
            }
        }
    }
}

/// GETs `url` and parses it as Prometheus text (asserting 200 and the
/// text format's content type).
async fn scrape(url: &str) -> Scraped {
    let r = reqwest::get(url).await.expect("scraped");
    assert_eq!(r.status(), 200, "{url}");
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        ct.starts_with("text/plain; version=0.0.4"),
        "content type {ct}"
    );
    let text = r.text().await.unwrap();
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text");
    assert!(!scrape.samples.is_empty(), "no samples:\n{text}");
    Scraped { text, scrape }
}

async fn node_scrape(node: &RunningNode) -> Scraped {
    scrape(&format!("{}/metrics", node.endpoint())).await
}

/// A handler driven by `payload.mode`: `ok`, `fail` (a backend error) or
/// `block` (answers once `gate` gives a permit).
fn handler(gate: Arc<Semaphore>) -> impl iicp_client::TaskHandler {
    handler_fn(move |req: iicp_client::TaskRequest, _ctx| {
        let gate = gate.clone();
        async move {
            match req.payload["mode"].as_str() {
                Some("fail") => Err(HandlerError::backend("the model server went away")),
                Some("block") => {
                    gate.acquire().await.unwrap().forget();
                    Ok(json!({"done": true}))
                }
                _ => Ok(json!({"done": true})),
            }
        }
    })
}

/// Asserts a 200 success envelope.
fn ok(posted: common::node::Posted, what: &str) {
    assert_eq!(posted.status, 200, "{what}: {}", posted.text);
    assert_eq!(posted.body["status"], "success", "{what}");
}

fn task(mode: &str) -> Value {
    json!({"intent": CHAT, "payload": {"mode": mode, "note": SECRET_PAYLOAD}})
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} did not happen within 10 s");
}

const TASKS: &str = "iicp_node_tasks_total";

#[tokio::test]
async fn node_counts_tasks_by_intent_and_outcome() {
    let gate = Arc::new(Semaphore::new(0));
    let node = start_node(
        NodeConfig {
            max_concurrent: 1,
            ..local_config()
        },
        handler(gate.clone()),
    )
    .await;
    let before = node_scrape(&node).await;
    // Every served intent's series exist from the start, at zero.
    assert_eq!(
        before.get(
            TASKS,
            &[
                ("intent", CHAT),
                ("outcome", "success"),
                ("status_class", "2xx")
            ]
        ),
        0.0
    );
    assert!(
        before.text.contains(&format!(
            "{TASKS}{{intent=\"{CHAT}\",outcome=\"success\",status_class=\"2xx\"}} 0"
        )),
        "{}",
        before.text
    );
    let auth = [("x-iicp-consumer-token", SECRET_TOKEN)];

    // Two successes, a handler (backend) error.
    for _ in 0..2 {
        ok(post_task(node.endpoint(), &task("ok"), &auth).await, "ok");
    }
    let failed = post_task(node.endpoint(), &task("fail"), &auth).await;
    assert_eq!(failed.status, 502, "{}", failed.text);
    // An intent the node does not serve: refused, counted as `other`.
    let mut unknown = task("ok");
    unknown["intent"] = json!("urn:iicp:intent:secret:unserved:v1");
    let refused = post_task(node.endpoint(), &unknown, &auth).await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    // Bytes that are not a task: refused before the intent is known.
    let garbage =
        common::node::post_raw(node.endpoint(), b"{oops".to_vec(), "application/json", &[]).await;
    assert_eq!(garbage.status, 400);
    // A CX failure: an encrypted task to a node without a CX key.
    let mut sealed = json!({"intent": CHAT, "iicp_conf": {"version": 1}});
    sealed["iicp_conf"]["ciphertext"] = json!(SECRET_PAYLOAD);
    let cx = post_task(node.endpoint(), &sealed, &auth).await;
    assert_eq!(cx.status, 400, "{}", cx.text);
    assert_eq!(cx.body["error"]["code"], "IICP-CX-02");

    // The node is full: a batch task is refused (429), an interactive one waits.
    let busy = {
        let endpoint = node.endpoint().to_owned();
        tokio::spawn(async move { post_task(&endpoint, &task("block"), &[]).await })
    };
    wait_until("the blocking task to hold the slot", async || {
        node_scrape(&node).await.get("iicp_node_tasks_active", &[]) == 1.0
    })
    .await;
    let mut batch = task("ok");
    batch["constraints"] = json!({"qos": "batch"});
    let full = post_task(node.endpoint(), &batch, &auth).await;
    assert_eq!(full.status, 429, "{}", full.text);
    let waiting = {
        let endpoint = node.endpoint().to_owned();
        let mut interactive = task("ok");
        interactive["constraints"] = json!({"qos": "interactive"});
        tokio::spawn(async move { post_task(&endpoint, &interactive, &[]).await })
    };
    wait_until("the interactive task to wait for a slot", async || {
        node_scrape(&node)
            .await
            .get("iicp_node_admission_waits_total", &[])
            == 1.0
    })
    .await;
    gate.add_permits(1);
    ok(busy.await.unwrap(), "the blocking task");
    ok(waiting.await.unwrap(), "the waiting task");

    let after = node_scrape(&node).await;
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let tasks = |intent: &str, outcome: &str, class: &str| {
        delta(
            TASKS,
            &[
                ("intent", intent),
                ("outcome", outcome),
                ("status_class", class),
            ],
        )
    };
    assert_eq!(tasks(CHAT, "success", "2xx"), 4.0, "{}", after.text);
    assert_eq!(tasks(CHAT, "error", "5xx"), 1.0);
    assert_eq!(tasks(CHAT, "error", "4xx"), 0.0);
    assert_eq!(tasks(CHAT, "timeout", "5xx"), 0.0);
    // The CX failure and the 429.
    assert_eq!(tasks(CHAT, "refused", "4xx"), 2.0);
    // The unserved intent and the bytes that were no task.
    assert_eq!(tasks("other", "refused", "4xx"), 2.0);
    assert_eq!(tasks(CHAT, "cancelled", "none"), 0.0);
    assert_eq!(delta("iicp_node_admission_refusals_total", &[]), 1.0);
    assert_eq!(delta("iicp_node_admission_waits_total", &[]), 1.0);
    assert_eq!(delta("iicp_node_backend_errors_total", &[]), 1.0);
    assert_eq!(
        delta("iicp_node_cx_failures_total", &[("code", "IICP-CX-02")]),
        1.0
    );
    // The handler ran five times (four successes, one error).
    assert_eq!(
        delta("iicp_node_task_duration_seconds_count", &[("intent", CHAT)]),
        5.0
    );
    assert_eq!(after.get("iicp_node_tasks_active", &[]), 0.0);
    assert_eq!(after.get("iicp_node_max_concurrent", &[]), 1.0);
    // Only the served intent and `other` are label values for `intent`.
    for s in &after.scrape.samples {
        if let Some(intent) = s.labels.get("intent") {
            assert!(intent == CHAT || intent == "other", "intent label {intent}");
        }
    }
    after.assert_leaks_none(&[SECRET_PAYLOAD, SECRET_TOKEN, "unserved"]);
    node.shutdown().await;
}

#[tokio::test]
async fn two_nodes_in_one_process_count_apart() {
    let a = start_node(local_config(), handler(Arc::new(Semaphore::new(0)))).await;
    let b = start_node(local_config(), handler(Arc::new(Semaphore::new(0)))).await;
    ok(post_task(a.endpoint(), &task("ok"), &[]).await, "a");
    let labels = [
        ("intent", CHAT),
        ("outcome", "success"),
        ("status_class", "2xx"),
    ];
    assert_eq!(node_scrape(&a).await.get(TASKS, &labels), 1.0);
    assert_eq!(node_scrape(&b).await.get(TASKS, &labels), 0.0);
    a.shutdown().await;
    b.shutdown().await;
}

/// A consumer that leaves while the handler runs: the handler is aborted
/// and the task counts as `cancelled`.
#[cfg(feature = "iicp-tcp")]
#[tokio::test]
async fn a_consumer_that_leaves_counts_as_cancelled() {
    let node = start_node(
        NodeConfig {
            default_task_timeout: Duration::from_secs(120),
            ..local_config()
        },
        handler_fn(|_req, ctx| async move {
            if let Some(p) = ctx.partials {
                p.send(json!({"started": true})).await;
            }
            tokio::time::sleep(Duration::from_secs(100)).await;
            Ok(json!({}))
        }),
    )
    .await;
    let c = common::native::connect(&node).await;
    let mut rx = c
        .stream(CHAT, json!({"note": SECRET_PAYLOAD}), "leaving-1")
        .await
        .expect("sent");
    rx.recv().await.unwrap().unwrap();
    drop(rx);
    c.close().await;
    let cancelled = [
        ("intent", CHAT),
        ("outcome", "cancelled"),
        ("status_class", "none"),
    ];
    wait_until("the task to count as cancelled", async || {
        node_scrape(&node).await.get(TASKS, &cancelled) == 1.0
    })
    .await;
    let after = node_scrape(&node).await;
    assert_eq!(after.get("iicp_node_tasks_active", &[]), 0.0);
    assert_eq!(
        after.get(
            TASKS,
            &[
                ("intent", CHAT),
                ("outcome", "success"),
                ("status_class", "2xx")
            ]
        ),
        0.0
    );
    after.assert_leaks_none(&[SECRET_PAYLOAD, "leaving-1"]);
    node.shutdown().await;
}

const REQUESTS: &str = "iicp_directory_requests_total";

#[tokio::test]
async fn directory_counts_lifecycle_and_discover_requests() {
    let dir = common::Harness::start(DirectoryConfig {
        skip_liveness_check: true,
        register_rate_limit: 2,
        ..DirectoryConfig::default()
    })
    .await;
    let url = format!("http://{}/metrics", dir.dir.local_addr());
    let before = scrape(&url).await;
    assert_eq!(before.get("iicp_directory_registered_nodes", &[]), 0.0);

    let one = dir
        .register(&common::registration("http://10.0.0.1:9484", &["m"]))
        .await;
    let two = dir
        .register(&common::registration("http://10.0.0.2:9484", &["m"]))
        .await;
    // The third registration from this address in a minute: 429.
    let (status, _) = dir
        .post(
            "/v1/register",
            &common::registration("http://10.0.0.3:9484", &["m"]),
            None,
        )
        .await;
    assert_eq!(status, 429);
    let (status, pong) = dir.heartbeat(&one, json!({})).await;
    assert_eq!(status, 200, "{pong}");
    let (status, _) = dir
        .post(
            "/v1/heartbeat",
            &json!({"node_id": one["node_id"]}),
            Some(SECRET_TOKEN),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(dir.discover_ids(&format!("intent={CHAT}")).await.len(), 2);
    // Served under /v1 as well as /api/v1; both count.
    let r = reqwest::get(format!(
        "http://{}/v1/discover?intent=urn:iicp:intent:secret:asked:v1",
        dir.dir.local_addr()
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _) = dir.get("/v1/discover").await;
    assert_eq!(status, 422, "no intent");
    let token = two["node_token"].as_str().unwrap();
    let (status, _) = dir
        .delete(
            "/v1/register",
            &json!({"node_id": two["node_id"]}),
            Some(token),
        )
        .await;
    assert_eq!(status, 200);

    let after = scrape(&url).await;
    let delta = |route: &str, class: &str| {
        let labels = [("route", route), ("status_class", class)];
        after.get(REQUESTS, &labels) - before.get(REQUESTS, &labels)
    };
    assert_eq!(delta("register", "2xx"), 2.0, "{}", after.text);
    assert_eq!(delta("register", "4xx"), 1.0);
    assert_eq!(delta("heartbeat", "2xx"), 1.0);
    assert_eq!(delta("heartbeat", "4xx"), 1.0);
    assert_eq!(delta("discover", "2xx"), 2.0);
    assert_eq!(delta("discover", "4xx"), 1.0);
    assert_eq!(delta("deregister", "2xx"), 1.0);
    assert_eq!(delta("deregister", "4xx"), 0.0);
    assert_eq!(
        after.get("iicp_directory_rate_limited_total", &[])
            - before.get("iicp_directory_rate_limited_total", &[]),
        1.0
    );
    assert_eq!(
        after.get("iicp_directory_discover_duration_seconds_count", &[])
            - before.get("iicp_directory_discover_duration_seconds_count", &[]),
        3.0
    );
    assert_eq!(after.get("iicp_directory_registered_nodes", &[]), 1.0);
    assert_eq!(after.get("iicp_directory_live_nodes", &[]), 1.0);
    let secrets: Vec<&str> = [&one, &two]
        .iter()
        .flat_map(|ack| {
            ["node_id", "node_token", "node_hmac_key"]
                .map(|k| ack[k].as_str().unwrap_or("absent-field"))
        })
        .chain([SECRET_TOKEN, "10.0.0.1", "secret:asked"])
        .collect();
    after.assert_leaks_none(&secrets);
}

/// A relay-capable node counts the tasks it forwards to bound workers (a
/// task for an unknown worker is not forwarded).
#[cfg(feature = "iicp-tcp")]
#[tokio::test]
async fn a_relay_counts_forwarded_tasks() {
    use common::relay::{HandWorker, chat_task, start_relay};
    let relay = start_relay(|_| {}).await;
    let worker = HandWorker::bound(relay.accept, "w-1").await;
    let serving = worker.serve_echo("w-1");
    let (status, body) = relay.task("w-1", chat_task(SECRET_PAYLOAD, None)).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = relay.task("w-unknown", chat_task("x", None)).await;
    assert_eq!(status, 404);
    let after = node_scrape(&relay.node).await;
    assert_eq!(after.get("iicp_node_relay_forwarded_total", &[]), 1.0);
    after.assert_leaks_none(&[SECRET_PAYLOAD, "w-1", "w-unknown"]);
    serving.abort();
    relay.node.shutdown().await;
}

//! Task ids and nonces (issue #11 item 6): their rules are the pipeline's
//! first step (an over-long or control-character id is refused and never
//! reaches a log line), and a full replay window refuses new tasks with 503
//! instead of forgetting ids, so a flood of fillers cannot let a replay pass.

mod common;

use common::CHAT;
use iicp_client::{IicpNode, NodeConfig, RunningNode, TaskContext, TaskRequest};
use serde_json::{Value, json};

async fn node(replay_window_entries: usize) -> RunningNode {
    IicpNode::new(NodeConfig {
        host: "127.0.0.1".into(),
        port: 0,
        skip_registration: true,
        models: vec!["m".into()],
        replay_window_entries,
        ..NodeConfig::default()
    })
    .start(|_req: TaskRequest, _ctx: TaskContext| async move { Ok(json!({"ok": true})) })
    .await
    .unwrap()
}

/// POSTs a task; returns the status, the JSON answer, its raw text and
/// the Retry-After header.
async fn post(node: &RunningNode, task: &Value) -> (u16, Value, String, Option<String>) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/task", node.endpoint()))
        .json(task)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap(),
        text,
        retry_after,
    )
}

fn task(task_id: &str, nonce: Option<&str>) -> Value {
    let mut t = json!({"task_id": task_id, "intent": CHAT, "payload": {"messages": []}});
    if let Some(n) = nonce {
        t["nonce"] = json!(n);
    }
    t
}

#[tokio::test]
async fn bad_task_ids_and_nonces_are_refused_and_never_logged() {
    let (captured, _guard) = common::logs::capture();
    let node = node(1000).await;
    // (value, a piece of it that must appear nowhere)
    let megabyte = "M".repeat(1 << 20);
    let bad = [
        (megabyte.as_str(), "MMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMM"),
        (&*"LONG".repeat(33), "LONGLONGLONG"),
        (
            "ok\n2026-01-01T00:00:00Z  INFO forged: operator logged in",
            "forged: operator",
        ),
        ("\u{1b}[2J\u{1b}[31mANSI-red", "ANSI-red"),
        ("spaced id", "spaced id"),
    ];
    let (status, body, _, _) = post(&node, &task("", Some(""))).await;
    assert_eq!(
        status, 200,
        "an empty task_id is assigned, an empty nonce counts as absent: {body}"
    );
    for field in ["task_id", "nonce"] {
        for (value, marker) in &bad {
            let t = if field == "task_id" {
                task(value, None)
            } else {
                task(&uuid::Uuid::new_v4().to_string(), Some(value))
            };
            let (status, body, text, _) = post(&node, &t).await;
            // Failure messages show only the start of a (possibly huge) value.
            let shown: String = value.chars().take(40).collect();
            let answer: String = text.chars().take(300).collect();
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (422, Some("validation_error")),
                "{field} {shown:?}: {answer}"
            );
            assert!(
                body["error"]["message"].as_str().unwrap().contains(field),
                "the message names the field: {answer}"
            );
            assert!(!text.contains(marker), "{field} {shown:?} echoed: {answer}");
        }
    }
    // Valid forms pass: a UUID, a plain token, a base64 nonce.
    for (id, nonce) in [
        (uuid::Uuid::new_v4().to_string(), None),
        ("job.42:part_1-a".to_owned(), Some("q83v+/A=")),
    ] {
        let (status, body, _, _) = post(&node, &task(&id, nonce)).await;
        assert_eq!(status, 200, "{id}: {body}");
        assert_eq!(body["task_id"], id.as_str());
    }
    node.shutdown().await;

    let logs = captured.text();
    assert!(
        logs.contains("job.42:part_1-a"),
        "a valid task id is logged: {logs}"
    );
    for (_, marker) in &bad {
        assert!(!logs.contains(marker), "`{marker}` reached the log");
    }
    for line in logs.lines().filter(|l| !l.is_empty()) {
        assert!(
            line.len() < 2000,
            "a log line of {} bytes: {}",
            line.len(),
            line.chars().take(200).collect::<String>()
        );
    }
    assert!(!logs.contains('\u{1b}'), "no escape sequence in the log");
}

#[tokio::test]
async fn a_full_replay_window_refuses_with_503_and_replays_stay_refused() {
    let node = node(3).await;
    let first = task("t-1", Some("n-1"));
    for t in [first.clone(), task("t-2", Some("n-2")), task("t-3", None)] {
        assert_eq!(post(&node, &t).await.0, 200, "{t}");
    }
    // The task-id window holds 3 unexpired ids: it is full.
    let (status, body, _, retry_after) = post(&node, &task("t-4", None)).await;
    assert_eq!(
        (
            status,
            body["error"]["code"].as_str(),
            body["error"]["reason"].as_str()
        ),
        (503, Some("IICP-E005"), Some("replay_window_full")),
        "{body}"
    );
    let retry_after: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!(
        (1..=300).contains(&retry_after),
        "until the oldest id expires: {retry_after}"
    );
    assert_eq!(body["error"]["retry_after_ms"], retry_after * 1000);

    // Replays inside the window are still refused, full or not.
    let (status, body, _, _) = post(&node, &task("t-1", None)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("IICP-E010"))
    );
    let (status, body, _, _) = post(&node, &first).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("IICP-E011"))
    );
    let (status, body, _, _) = post(&node, &task("t-5", Some("n-1"))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("IICP-E011"))
    );
    // A refused task left no trace: still 503, not 409, on a second try.
    let (status, _, _, _) = post(&node, &task("t-4", None)).await;
    assert_eq!(status, 503);
    node.shutdown().await;
}

//! Task ids and nonces (issue #11 item 6): their rules are the pipeline's
//! first step (an over-long or control-character id is refused and never
//! reaches a log line), and a full replay window refuses new tasks with 503
//! instead of forgetting ids, so a flood of fillers cannot let a replay pass.

mod common;

use common::CHAT;
use common::node::{Transport, local_config, start_node};
use iicp_client::{NodeConfig, RunningNode, TaskContext, TaskRequest};
use serde_json::{Value, json};

async fn node(replay_window_entries: usize) -> RunningNode {
    start_node(
        NodeConfig {
            replay_window_entries,
            ..local_config()
        },
        |_req: TaskRequest, _ctx: TaskContext| async move { Ok(json!({"ok": true})) },
    )
    .await
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
    let addr = node.local_addr();
    for &transport in Transport::ALL {
        let reply = transport.send(addr, task("", Some("")), &[]).await;
        reply.assert_ok(format!(
            "{transport:?}: an empty task_id is assigned, an empty nonce counts as absent"
        ));
        for field in ["task_id", "nonce"] {
            if field == "task_id" && !transport.carries_task_id() {
                continue;
            }
            for (value, marker) in &bad {
                let t = if field == "task_id" {
                    task(value, None)
                } else {
                    task(&uuid::Uuid::new_v4().to_string(), Some(value))
                };
                let reply = transport.send(addr, t, &[]).await;
                let (body, text) = (&reply.body, &reply.text);
                // Failure messages show only the start of a (possibly huge) value.
                let shown: String = value.chars().take(40).collect();
                let answer: String = text.chars().take(300).collect();
                reply.assert_is(
                    422,
                    Some("validation_error"),
                    format!("{transport:?}, {field} {shown:?}"),
                );
                assert!(
                    body["error"]["message"].as_str().unwrap().contains(field),
                    "the message names the field: {answer}"
                );
                assert!(!text.contains(marker), "{field} {shown:?} echoed: {answer}");
            }
        }
        // Valid forms pass: a UUID, a plain token, a base64 nonce.
        let nonce = format!("q83v+/A{}=", uuid::Uuid::new_v4().simple());
        for (id, nonce) in [
            (uuid::Uuid::new_v4().to_string(), None),
            (
                format!("job.42:part_1-a.{transport:?}"),
                Some(nonce.as_str()),
            ),
        ] {
            let reply = transport.send(addr, task(&id, nonce), &[]).await;
            reply.assert_ok(format!("{transport:?}, {id}"));
            if transport.carries_task_id() {
                assert_eq!(reply.body["task_id"], id.as_str(), "{transport:?}");
            }
        }
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
    for &transport in Transport::ALL {
        let node = node(3).await;
        let send = |t: Value| transport.send(node.local_addr(), t, &[]);
        let first = task("t-1", Some("n-1"));
        for t in [first.clone(), task("t-2", Some("n-2")), task("t-3", None)] {
            send(t.clone())
                .await
                .assert_ok(format!("{transport:?}: {t}"));
        }
        // The task-id window holds 3 unexpired ids: it is full.
        let reply = send(task("t-4", None)).await;
        let body = &reply.body;
        reply.assert_is(503, Some("IICP-E005"), format!("{transport:?}"));
        if transport.carries_details() {
            assert_eq!(body["error"]["reason"], "replay_window_full", "{body}");
            let retry_after = reply.retry_after_s.expect("Retry-After");
            assert!(
                (1..=300).contains(&retry_after),
                "until the oldest id expires: {retry_after}"
            );
            assert_eq!(body["error"]["retry_after_ms"], retry_after * 1000);
        }

        // Replays inside the window are still refused, full or not.
        for (again, code) in [
            (task("t-1", None), "IICP-E010"),
            (first.clone(), "IICP-E011"),
            (task("t-5", Some("n-1")), "IICP-E011"),
        ] {
            if code == "IICP-E010" && !transport.carries_task_id() {
                continue;
            }
            send(again.clone())
                .await
                .assert_is(409, Some(code), format!("{transport:?}: {again}"));
        }
        // A refused task left no trace: still 503, not 409, on a second try.
        send(task("t-4", None)).await.assert_is(
            503,
            Some("IICP-E005"),
            format!("{transport:?}: t-4 again"),
        );
        node.shutdown().await;
    }
}

//! Register and discover floods against the real `iicp-node directory`
//! binary (issue 18): the per-source rate limit holds, the node table stops
//! at `--max-nodes`, memory does not grow with the flood, and honest
//! registrants and consumers are served meanwhile.
//!
//! Many sources on one machine: the whole of 127.0.0.0/8 is loopback, so
//! each flood client binds its own 127.x.y.z address before it connects.
//! Every request runs with liveness probes on (one health stand-in answers
//! for all registered endpoints). No assertion is about time: where a flood
//! could straddle the 60 s rate window, the budget allowed is counted per
//! window spanned.

mod common;

use common::raw_http::{RawResponse, connect_from, read_response, send_get, send_post};
use common::watch::{Watched, rss_kib};
use common::{CHAT, health_server, node_bin, registration};
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The binary's default registrations per source and 60 s window.
const RATE: usize = 60;
/// Requests in flight at once from the flood.
const PARALLEL: usize = 32;

/// A directory binary on a free port with liveness probes on.
fn directory(args: &[&str]) -> (Watched, SocketAddr) {
    let port = node_bin::free_port();
    let dir = node_bin::directory_process(port, args);
    (dir, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Source address number `i` (from 127.1.0.1 on; never 127.0.0.1).
fn source(i: usize) -> IpAddr {
    let n = i + 1;
    IpAddr::V4(Ipv4Addr::new(
        127,
        1 + (n >> 16) as u8,
        (n >> 8) as u8,
        n as u8,
    ))
}

/// One request on a new connection from `from`; the answer, or `None` when
/// the connection ended without one.
async fn post_from(from: IpAddr, dir: SocketAddr, path: &str, body: &Value) -> Option<RawResponse> {
    let mut stream = connect_from(from, dir).await;
    send_post(&mut stream, path, body).await.ok()?;
    read_response(&mut stream).await
}

/// Registrations sent by a flood: `(source, body)` pairs, `PARALLEL` in
/// flight; the answers in the same order.
async fn flood(dir: SocketAddr, requests: Vec<(IpAddr, Value)>) -> Vec<RawResponse> {
    let gate = Arc::new(Semaphore::new(PARALLEL));
    let mut set = JoinSet::new();
    for (i, (from, body)) in requests.into_iter().enumerate() {
        let permit = gate.clone().acquire_owned().await.unwrap();
        set.spawn(async move {
            let answer = post_from(from, dir, "/v1/register", &body).await;
            drop(permit);
            (
                i,
                answer.unwrap_or_else(|| panic!("registration {i}: no answer")),
            )
        });
    }
    let mut answers: Vec<(usize, RawResponse)> = set.join_all().await;
    answers.sort_by_key(|(i, _)| *i);
    answers.into_iter().map(|(_, a)| a).collect()
}

/// The directory's `registered_nodes` gauge (`GET /metrics`).
async fn registered(dir: SocketAddr) -> usize {
    let mut stream = connect_from(IpAddr::V4(Ipv4Addr::LOCALHOST), dir).await;
    send_get(&mut stream, "/metrics").await.unwrap();
    let answer = read_response(&mut stream).await.expect("metrics answer");
    assert_eq!(answer.status, 200);
    let text = String::from_utf8(answer.body).unwrap();
    let line = text
        .lines()
        .find(|l| !l.starts_with('#') && l.contains("registered_nodes"))
        .unwrap_or_else(|| panic!("no registered_nodes gauge in {text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Windows of 60 s that the interval since `start` touches.
fn windows_spanned(start: Instant) -> usize {
    (start.elapsed().as_secs() / 60) as usize + 1
}

/// Statuses counted: `(201s, 429s with the flat E034 shape, others)`.
fn tally(answers: &[RawResponse]) -> (usize, usize, Vec<String>) {
    let mut created = 0;
    let mut limited = 0;
    let mut other = Vec::new();
    for a in answers {
        match a.status {
            201 => created += 1,
            429 => {
                let body = a.json();
                assert_eq!(body["error"], "IICP-E034", "flat E034 shape: {body}");
                assert_eq!(body["retry_after"], 60, "{body}");
                assert_eq!(a.header("retry-after"), Some("60"));
                limited += 1;
            }
            s => other.push(format!("{s} {}", String::from_utf8_lossy(&a.body))),
        }
    }
    (created, limited, other)
}

#[tokio::test]
async fn a_register_flood_from_one_source_gets_its_budget_and_one_log_line() {
    let (health, _h) = health_server().await;
    let (mut dir, addr) = directory(&[]);
    let endpoint = format!("http://{health}");
    let attacker = source(0);
    let start = Instant::now();
    let requests = (0..10 * RATE)
        .map(|_| (attacker, registration(&endpoint, &["m"])))
        .collect();
    let answers = flood(addr, requests).await;
    let windows = windows_spanned(start);
    let (created, limited, other) = tally(&answers);
    assert!(other.is_empty(), "only 201 and 429: {other:?}");
    assert!(
        created >= RATE && created <= RATE * windows,
        "{created} accepted over {windows} window(s) of {RATE}"
    );
    assert_eq!(created + limited, 10 * RATE);
    assert_eq!(
        registered(addr).await,
        created,
        "every accepted node is kept"
    );
    let lines = dir.count("IICP-E034");
    assert!(
        lines >= 1 && lines <= windows,
        "one log line per source and window, not one per refusal: {lines}"
    );

    // Another source is not held to the attacker's budget.
    let honest = post_from(
        source(1),
        addr,
        "/v1/register",
        &registration(&endpoint, &["m"]),
    )
    .await
    .expect("an answer");
    assert_eq!(
        honest.status,
        201,
        "{:?}",
        String::from_utf8_lossy(&honest.body)
    );
    dir.stop(Duration::from_secs(10));
}

/// Bytes of RSS growth allowed from one flood round to the next: the
/// allocator's slack, far below what keeping anything per refused request
/// would add (each round sends 4 000 registrations of ~300 bytes).
const ROUND_SLACK_KIB: u64 = 4 * 1024;

#[tokio::test]
async fn a_register_flood_from_many_sources_stops_at_max_nodes_and_memory_stays_flat() {
    const MAX_NODES: usize = 200;
    const SOURCES_PER_ROUND: usize = 2_000;
    let (health, _h) = health_server().await;
    let (mut dir, addr) = directory(&["--max-nodes", &MAX_NODES.to_string()]);
    let endpoint = format!("http://{health}");
    let mut rss_after_round = Vec::new();
    let mut created_total = 0;
    for round in 0..3 {
        let requests = (0..SOURCES_PER_ROUND)
            .flat_map(|i| {
                let from = source(round * SOURCES_PER_ROUND + i);
                [
                    (from, registration(&endpoint, &["m"])),
                    (from, registration(&endpoint, &["m"])),
                ]
            })
            .collect();
        let answers = flood(addr, requests).await;
        for a in &answers {
            match a.status {
                201 => created_total += 1,
                503 => {
                    let body = a.json();
                    assert_eq!(body["error"]["code"], "directory_full", "{body}");
                    assert!(a.header("retry-after").is_some());
                }
                s => panic!("round {round}: {s} {}", String::from_utf8_lossy(&a.body)),
            }
        }
        rss_after_round.push(rss_kib(dir.pid()));
    }
    println!("register flood from many sources: RSS after each round {rss_after_round:?} KiB");
    assert_eq!(
        created_total, MAX_NODES,
        "the table fills up and no further"
    );
    assert_eq!(registered(addr).await, MAX_NODES);
    // Round 1 is the warm-up (the table fills, buffers grow); rounds 2 and 3
    // are refused whole and must not keep anything.
    assert!(
        rss_after_round[2] <= rss_after_round[1] + ROUND_SLACK_KIB,
        "RSS after each round (KiB): {rss_after_round:?}"
    );
    // Each refusal is one warn line naming its code (not two).
    let refused = 3 * 2 * SOURCES_PER_ROUND - MAX_NODES;
    assert_eq!(dir.count("directory_full"), refused);
    assert_eq!(dir.count("registration refused"), refused);
    dir.stop(Duration::from_secs(10));
}

#[tokio::test]
async fn a_discover_flood_leaves_registration_served_and_memory_flat() {
    const NODES: usize = 50;
    const ROUND: usize = 4_000;
    let (health, _h) = health_server().await;
    let (mut dir, addr) = directory(&[]);
    let endpoint = format!("http://{health}");
    let requests = (0..NODES)
        .map(|i| (source(i), registration(&endpoint, &["m"])))
        .collect();
    let (created, _, other) = tally(&flood(addr, requests).await);
    assert_eq!((created, other.len()), (NODES, 0));

    // Keep-alive connections asking as fast as the directory answers.
    let discover_round = move || async move {
        let mut set = JoinSet::new();
        for w in 0..PARALLEL {
            set.spawn(async move {
                let mut stream = connect_from(source(10_000 + w), addr).await;
                for _ in 0..ROUND / PARALLEL {
                    send_get(&mut stream, &format!("/v1/discover?intent={CHAT}&limit=50"))
                        .await
                        .unwrap();
                    let a = read_response(&mut stream).await.expect("an answer");
                    assert_eq!(a.status, 200);
                    // Nodes that never heartbeat leave discover after 90 s.
                    let body = a.json();
                    let listed = body["nodes"].as_array().expect("a node list").len();
                    assert!(listed <= 50 && body["count"] == listed, "{body}");
                }
            });
        }
        set.join_all().await;
    };
    discover_round().await;
    let warm = rss_kib(dir.pid());
    let flooding = tokio::spawn(async move {
        for _ in 0..3 {
            discover_round().await;
        }
    });
    // An honest registration during the flood.
    let honest = post_from(
        source(NODES),
        addr,
        "/v1/register",
        &registration(&endpoint, &["m"]),
    )
    .await
    .expect("an answer during the flood");
    assert_eq!(honest.status, 201);
    flooding.await.expect("every discover answered 200");
    let after = rss_kib(dir.pid());
    println!("discover flood: RSS after 4 000 discovers {warm} KiB, after 12 000 more {after} KiB");
    assert!(
        after <= warm + ROUND_SLACK_KIB,
        "RSS after warm-up {warm} KiB, after 12 000 more discovers {after} KiB"
    );
    assert_eq!(registered(addr).await, NODES + 1);
    dir.stop(Duration::from_secs(10));
}

//! The relay (tier 3, PROTOCOL.md §7.2) in a home network built of
//! namespaces (`scripts/netlab.sh`): a worker on the LAN behind a
//! masquerading router with no UPnP and no inbound route; the directory,
//! two relay-capable nodes and the consumer on the WAN. Needs root;
//! `#[ignore]`d, run by `.ci/run` (`--ignored --test-threads 1`).
//!
//! The worker is started with no relay flag: the ladder finds nothing
//! (no public address, no gateway), so it elects a relay from the
//! directory, binds there and registers the relay's `relay-for` URL. The
//! consumer's chat must come back with the answer of the LAN's own model
//! (`scripts/lab_model.py`, which no WAN node serves); the traffic the
//! relay exchanges with the worker, captured on the router, must hold no
//! prompt or answer text with CX on; and when the elected relay is killed,
//! the worker must bind at the other one and be reachable again.

mod common;

use common::netlab::{Lab, Proc};
use std::time::{Duration, Instant};

const MODEL_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lab_model.py");
const BIN: &str = env!("CARGO_BIN_EXE_iicp-node");
/// The relay nodes: (name, HTTP port, relay accept port).
const RELAYS: [(&str, u16, u16); 2] = [("relay-a", 9001, 9485), ("relay-b", 9002, 9486)];

fn text(out: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Starts a relay-capable echo node on the WAN host.
fn start_relay(lab: &mut Lab, directory: &str, (name, port, accept): (&str, u16, u16)) -> Proc {
    let wan = lab.wan.clone();
    let host = lab.wan_ip.clone();
    let (port, accept) = (port.to_string(), accept.to_string());
    let p = lab.spawn_node(
        &wan,
        name,
        &[
            "serve",
            "--backend-type",
            "echo",
            "--host",
            &host,
            "--port",
            &port,
            "--directory-url",
            directory,
            "--relay-capable",
            "--relay-accept-port",
            &accept,
        ],
        &[("IICP_CONTAINER", "no")],
    );
    lab.wait_for_log(&p, "registered", Duration::from_secs(30));
    p
}

/// Sends one chat from the WAN host for the LAN's model; the output.
fn chat(lab: &Lab, directory: &str, prompt: &str) -> std::process::Output {
    lab.exec(
        &lab.wan,
        BIN,
        &[
            "chat",
            "--directory-url",
            directory,
            "--model",
            "lan-model",
            "--timeout-ms",
            "20000",
            prompt,
        ],
        &[("RUST_LOG", "warn")],
    )
}

/// The `host:port` of the relay the worker says it elected last.
fn elected(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .find_map(|l| l.split("auto-elected relay: ").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
}

/// Waits (bounded) until the directory lists the worker with a relay
/// endpoint on `port`; the node object.
fn wait_relayed(lab: &Lab, directory: &str, port: u16, limit: Duration) -> serde_json::Value {
    let start = Instant::now();
    let want = format!("{}:{port}/v1/relay-for/", lab.wan_ip);
    loop {
        let nodes = lab.discovered_nodes(directory);
        if let Some(node) = nodes
            .iter()
            .find(|n| n["endpoint"].as_str().is_some_and(|e| e.contains(&want)))
        {
            return node.clone();
        }
        assert!(
            start.elapsed() < limit,
            "no node listed through {want} within {limit:?}: {nodes:#?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
#[ignore = "needs root and the namespace lab (run by .ci/run)"]
fn a_worker_behind_nat_is_reached_through_an_elected_relay_and_fails_over() {
    let mut lab = Lab::up("rl1", 100, false);
    let directory = lab.start_directory();
    let relays: Vec<Proc> = RELAYS
        .iter()
        .map(|r| start_relay(&mut lab, &directory, *r))
        .collect();

    // The LAN's own model, and a capture of everything the router forwards.
    let lan = lab.lan.clone();
    let router = lab.router.clone();
    let model = lab.spawn(&lan, "lan-model", "python3", &[MODEL_SCRIPT, "8081"], &[]);
    let pcap = lab.path("router.pcap");
    let pcap_arg = pcap.to_string_lossy().into_owned();
    let capture = lab.spawn(
        &router,
        "tcpdump",
        "tcpdump",
        &[
            "-i",
            "wan0",
            "--immediate-mode",
            "-U",
            "-n",
            "-s",
            "0",
            "-w",
            &pcap_arg,
            "tcp",
        ],
        &[],
    );
    lab.wait_for_log(&capture, "listening on", Duration::from_secs(20));
    let start = Instant::now();
    while !lab
        .exec(
            &lan,
            "curl",
            &["-sf", "-m", "2", "http://127.0.0.1:8081/v1/models"],
            &[],
        )
        .status
        .success()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the LAN model did not start: {}",
            lab.log(&model)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Nothing on the WAN can dial the LAN host, nor the router's port.
    for target in [
        format!("http://{}:9484/iicp/health", lab.lan_ip),
        format!("http://{}:9484/iicp/health", lab.router_wan_ip),
    ] {
        let out = lab.exec(&lab.wan, "curl", &["-s", "-m", "3", &target], &[]);
        assert!(!out.status.success(), "{target} answered: {}", text(&out));
    }

    // The worker: no relay flag, no public endpoint.
    let worker = lab.spawn_node(
        &lan,
        "worker",
        &[
            "serve",
            "--backend-type",
            "openai_compat",
            "--backend-url",
            "http://127.0.0.1:8081/v1",
            "--directory-url",
            &directory,
        ],
        &[("IICP_CONTAINER", "no")],
    );
    let log = lab.wait_for_log(&worker, "auto-elected relay: ", Duration::from_secs(60));
    assert!(log.contains("NAT tier=3"), "{log}");
    let first = elected(&log).expect("an elected relay in the log");
    let first_port: u16 = first.rsplit(':').next().unwrap().parse().unwrap();
    let (first_index, http_port) = RELAYS
        .iter()
        .enumerate()
        .find(|(_, r)| r.2 == first_port)
        .map(|(i, r)| (i, r.1))
        .unwrap_or_else(|| panic!("elected {first}, not one of the lab's relays"));
    let node = wait_relayed(&lab, &directory, http_port, Duration::from_secs(30));
    assert_eq!(node["transport_method"], "turn_relay", "{node:#}");

    // A chat from the WAN reaches the LAN's model, sealed end to end.
    let prompt = "violet-okapi-4471 asks the LAN model";
    let out = chat(&lab, &directory, prompt);
    assert!(out.status.success(), "{}", text(&out));
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        answer.contains(&format!("from the LAN model: {prompt}")),
        "{}",
        text(&out)
    );

    // Let the capture write what it received, then stop it.
    std::thread::sleep(Duration::from_secs(1));
    lab.terminate(&capture);
    let captured = std::fs::read(&pcap).expect("the capture file");
    let holds = |needle: &[u8]| captured.windows(needle.len()).any(|w| w == needle);
    assert!(
        holds(b"IICP\x01\x0b"),
        "the capture saw the worker's RELAY_BIND ({} bytes): {}",
        captured.len(),
        lab.log(&capture)
    );
    assert!(
        holds(b"IICP\x01\x05") && holds(b"iicp_conf"),
        "the capture saw the relay's CALL carrying the sealed task"
    );
    assert!(
        !holds(b"violet-okapi-4471"),
        "prompt text crossed the relay"
    );
    assert!(
        !holds(b"from the LAN model"),
        "answer text crossed the relay"
    );

    // Kill the elected relay: the worker binds at the other and is
    // reachable again through it.
    lab.kill(&relays[first_index]);
    let other = RELAYS[1 - first_index];
    wait_relayed(&lab, &directory, other.1, Duration::from_secs(90));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = chat(&lab, &directory, "second question");
        if out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("from the LAN model: second question")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no answer through the other relay: {}\nworker:\n{}",
            text(&out),
            lab.log(&worker)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let log = lab.log(&worker);
    assert_eq!(
        elected(&log).as_deref(),
        Some(format!("{}:{}", lab.wan_ip, other.2).as_str()),
        "{log}"
    );

    // SIGTERM: the worker deregisters.
    assert_eq!(lab.terminate(&worker), Some(0));
    let nodes = lab.discovered_nodes(&directory);
    assert!(
        nodes
            .iter()
            .all(|n| !n["endpoint"].as_str().unwrap_or("").contains("relay-for")),
        "{nodes:#?}"
    );
}

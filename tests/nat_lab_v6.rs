//! Tiers 1b and 1c on a home network built for the test
//! (`scripts/netlab.sh up` and then `netlab.sh v6`): the router's IPv4 WAN
//! address is in carrier-grade NAT space, so no IPv4 mapping can reach the
//! node; IPv6 is routed (`2a0b:77::/64` WAN, `2a0b:78::/64` LAN) and the
//! router's firewall drops what comes in unless a pinhole lets it in.
//! miniupnpd runs as an IGD2 with `WANIPv6FirewallControl`. Needs root and
//! the lab's tools; ignored by default and run by `.ci/run`:
//! `cargo test --test nat_lab_v6 -- --ignored --test-threads 1`.
//!
//! Every lab here uses a prefix `v6<case>` and WAN number 61-90; each is
//! torn down when its test ends, passed or not.

mod common;

use common::netlab::{Lab, Proc};
use std::process::Command;
use std::time::{Duration, Instant};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/netlab.sh");

/// The node sees this machine as the host, not a container (the CI machine
/// itself runs in one).
const HOST: (&str, &str) = ("IICP_CONTAINER", "no");

/// The node's global IPv6 address on the LAN.
const LAN_IP6: &str = "2a0b:78::2";

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A lab whose router sits behind carrier-grade NAT on IPv4, with IPv6 on
/// every side; `igd` starts miniupnpd as an IGD2.
fn lab_v6(prefix: &str, n: u8, igd: bool, wan: &str) -> Lab {
    let lab = Lab::up_with(prefix, n, false, wan);
    let out = Command::new("bash")
        .arg(SCRIPT)
        .args(["v6", prefix, if igd { "on" } else { "off" }])
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "netlab.sh v6 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab
}

/// The lab's name prefix (its namespaces are `<prefix>wan`, …).
fn prefix(lab: &Lab) -> &str {
    lab.wan.strip_suffix("wan").unwrap()
}

/// The pinholes miniupnpd holds: the rules in the router's `miniupnpd`
/// chain.
fn pinholes(lab: &Lab) -> Vec<String> {
    let out = lab.exec(
        &lab.router,
        "nft",
        &["list", "chain", "inet", "filter", "miniupnpd"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("accept"))
        .map(|l| l.trim().to_owned())
        .collect()
}

/// miniupnpd's log so far.
fn igd_log(lab: &Lab) -> String {
    std::fs::read_to_string(format!("/tmp/netlab-{}/miniupnpd.log", prefix(lab)))
        .unwrap_or_default()
}

/// Whether `GET url` from namespace `ns` gets the node's health answer.
fn healthy(lab: &Lab, ns: &str, url: &str) -> bool {
    let out = lab.exec(ns, "curl", &["-s", "-m", "2", url], &[]);
    out.status.success() && text(&out).contains("\"ok\"")
}

/// Starts a directory on the WAN host, port 8020, whose liveness probe may
/// reach the LAN's IPv6 prefix (a local-mode directory probes only the
/// registrant's own address otherwise, and the node registers over IPv4,
/// from the router's NAT address); its API base URL.
fn start_directory(lab: &mut Lab) -> String {
    let listen = format!("{}:8020", lab.wan_ip);
    let wan = lab.wan.clone();
    let p = lab.spawn_node(
        &wan,
        "directory",
        &[
            "directory",
            "--listen",
            &listen,
            "--probe-allow",
            "2a0b:78::/64",
        ],
        &[],
    );
    lab.wait_for_log(&p, "listening", Duration::from_secs(20));
    format!("http://{listen}/api")
}

/// A node that serves on `port` without the ladder and registers nothing:
/// something listening, to show what the router's firewall lets through.
fn plain_listener(lab: &mut Lab, name: &str, port: &str) -> Proc {
    let lan = lab.lan.clone();
    let p = lab.spawn_node(
        &lan,
        name,
        &[
            "serve",
            "--backend-type",
            "echo",
            "--port",
            port,
            "--auto-detect-nat",
            "false",
            "--skip-registration",
        ],
        &[HOST],
    );
    lab.wait_for_log(&p, "iicp-node serving on", Duration::from_secs(30));
    p
}

/// Asserts that a listener on the LAN at `port` is reached from the LAN but
/// not from the WAN (the router's IPv6 firewall holds).
fn assert_firewall_closed(lab: &mut Lab, name: &str, port: &str) {
    let plain = plain_listener(lab, name, port);
    let url = format!("http://[{LAN_IP6}]:{port}/iicp/health");
    assert!(
        healthy(lab, &lab.lan.clone(), &url),
        "the LAN reaches {url}"
    );
    assert!(
        !healthy(lab, &lab.wan.clone(), &url),
        "the WAN reached {url} through the router's firewall"
    );
    assert_eq!(lab.terminate(&plain), Some(0));
}

#[test]
#[ignore = "needs root and the lab tools (scripts/netlab.sh); run by .ci/run"]
fn behind_cgnat_a_global_ipv6_node_is_reached_through_its_pinhole_until_sigterm() {
    let mut lab = lab_v6("v61", 61, true, "100.64");
    // First: the router's firewall keeps the WAN out.
    assert_firewall_closed(&mut lab, "before", "9484");

    let directory = start_directory(&mut lab);
    let node = lab.serve_on_lan(&directory, &["--nat-recheck-secs", "1"]);
    let log = lab.log(&node);
    let endpoint = format!("http://[{LAN_IP6}]:9484");
    assert!(log.contains("tier 1b"), "{log}");
    assert!(log.contains(&format!("as {endpoint} (tier 1b)")), "{log}");
    lab.wait_listed(&directory, &endpoint);
    let holes = pinholes(&lab);
    assert_eq!(holes.len(), 1, "{holes:?}");
    assert!(
        holes[0].contains("dport 9484") && holes[0].contains("0x2a0b0078000000000000000000000002"),
        "the pinhole leads to the node's address and port: {holes:?}"
    );

    // A consumer on the WAN reaches the node over IPv6 and chats.
    assert!(healthy(
        &lab,
        &lab.wan.clone(),
        &format!("{endpoint}/iicp/health")
    ));
    let chat = lab.node_cmd(
        &lab.wan.clone(),
        &["chat", "hello over IPv6", "--directory-url", &directory],
        &[],
    );
    assert!(chat.status.success(), "{}", text(&chat));
    assert_eq!(
        String::from_utf8_lossy(&chat.stdout).trim(),
        "echo: hello over IPv6"
    );

    // The pinhole is renewed (UpdatePinhole) while the node serves.
    let start = Instant::now();
    while !igd_log(&lab).contains("updating lease duration") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no UpdatePinhole reached the IGD:\n{}",
            igd_log(&lab)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // SIGTERM: deregistered, then the pinhole is deleted and the firewall
    // keeps the WAN out again.
    assert_eq!(lab.terminate(&node), Some(0));
    let log = lab.log(&node);
    assert!(log.contains("removed the IPv6 pinhole"), "{log}");
    assert!(pinholes(&lab).is_empty(), "{:?}", pinholes(&lab));
    assert!(igd_log(&lab).contains("DeletePinhole: (inbound) pinhole with ID"));
    assert!(lab.discovered(&directory).is_empty());
    assert_firewall_closed(&mut lab, "after", "9484");
}

#[test]
#[ignore = "needs root and the lab tools (scripts/netlab.sh); run by .ci/run"]
fn a_refused_pinhole_is_tier_1c_with_what_to_open_by_hand() {
    // miniupnpd refuses pinholes to ports below 1024: UPnP error 606.
    let mut lab = lab_v6("v62", 62, true, "100.64");
    let directory = start_directory(&mut lab);
    let node = lab.serve_on_lan(&directory, &["--port", "1023"]);
    let log = lab.log(&node);
    let endpoint = format!("http://[{LAN_IP6}]:1023");
    assert!(log.contains(&format!("as {endpoint} (tier 1c)")), "{log}");
    assert!(log.contains("UPnP error 606"), "{log}");
    assert!(
        log.contains(&format!("allow inbound TCP port 1023 to {LAN_IP6}")),
        "the operator is told what to open:\n{log}"
    );
    assert!(!log.contains("Envelope"), "no IGD XML in the log:\n{log}");
    assert!(pinholes(&lab).is_empty());
    // The node offers the address (the operator may open it by hand); until
    // then the firewall keeps the WAN out, and the directory's liveness
    // probe refuses to list it.
    let log = lab.wait_for_log(
        &node,
        "did not answer GET /iicp/health",
        Duration::from_secs(30),
    );
    assert!(log.contains("IICP-E036"), "{log}");
    assert!(!healthy(
        &lab,
        &lab.wan.clone(),
        &format!("{endpoint}/iicp/health")
    ));
    assert!(lab.discovered(&directory).is_empty());
    assert_eq!(lab.terminate(&node), Some(0));
}

#[test]
#[ignore = "needs root and the lab tools (scripts/netlab.sh); run by .ci/run"]
fn without_an_igd_a_global_ipv6_address_is_tier_1c() {
    let lab = lab_v6("v63", 63, false, "100.64");
    let doctor = lab.node_cmd(
        &lab.lan.clone(),
        &["doctor", "--upnp-timeout-ms", "1000"],
        &[HOST],
    );
    let shown = text(&doctor);
    assert!(doctor.status.success(), "{shown}");
    assert!(shown.contains("tier 1c"), "{shown}");
    assert!(
        shown.contains("no IGD with IPv6 firewall control answered"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("a node would advertise http://[{LAN_IP6}]:9484")),
        "{shown}"
    );
}

#[test]
#[ignore = "needs root and the lab tools (scripts/netlab.sh); run by .ci/run"]
fn an_ipv4_mapping_comes_first_when_the_router_has_a_public_address() {
    // Product order: 1a before 1b. doctor removes what it made.
    let lab = lab_v6("v64", 64, true, "11.77");
    let doctor = lab.node_cmd(&lab.lan.clone(), &["doctor"], &[HOST]);
    let shown = text(&doctor);
    assert!(doctor.status.success(), "{shown}");
    assert!(shown.contains("tier 1a"), "{shown}");
    assert!(
        shown.contains("a node would advertise http://11.77.64.1:9484"),
        "{shown}"
    );
    assert!(pinholes(&lab).is_empty(), "no pinhole was asked for");
    assert!(!igd_log(&lab).contains("AddPinhole"));
}

#[test]
#[ignore = "needs root and the lab tools (scripts/netlab.sh); run by .ci/run"]
fn doctor_opens_a_test_pinhole_and_deletes_it() {
    let lab = lab_v6("v65", 65, true, "100.64");
    let doctor = lab.node_cmd(&lab.lan.clone(), &["doctor"], &[HOST]);
    let shown = text(&doctor);
    assert!(doctor.status.success(), "{shown}");
    assert!(shown.contains("tier 1b"), "{shown}");
    assert!(shown.contains("=> IPv6 pinhole"), "{shown}");
    assert!(igd_log(&lab).contains("AddPinhole: (inbound)"));
    assert!(pinholes(&lab).is_empty(), "{:?}", pinholes(&lab));
}

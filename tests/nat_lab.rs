//! Reachability on a home network built for the test (`scripts/netlab.sh`,
//! `tests/common/netlab.rs`): a node on the LAN behind a router with
//! nftables NAT and a real UPnP IGD (miniupnpd), a directory and a consumer
//! on the WAN side. Needs root and the lab's tools (installed by the
//! script); ignored by default and run by `.ci/run`:
//! `cargo test --test nat_lab -- --ignored --test-threads 1`.
//!
//! Every lab here uses a prefix `nl<case>` and WAN number 1-29; each is torn
//! down when its test ends, passed or not.

mod common;

use common::netlab::Lab;
use std::time::Duration;

/// `doctor` sees this machine as the host, not a container (the CI machine
/// itself runs in one).
const HOST: (&str, &str) = ("IICP_CONTAINER", "no");

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
#[ignore = "needs root and the lab tools (scripts/netlab.sh); run by .ci/run"]
fn a_node_behind_a_upnp_router_is_reached_through_its_mapping_until_sigterm() {
    let mut lab = Lab::up("nl1", 1, true);
    let directory = lab.start_directory();
    // First: the WAN cannot dial the LAN directly.
    let direct = lab.exec(
        &lab.wan.clone(),
        "curl",
        &[
            "-s",
            "-m",
            "2",
            &format!("http://{}:9484/iicp/health", lab.lan_ip),
        ],
        &[],
    );
    assert!(
        !direct.status.success(),
        "the WAN reached the LAN without a mapping"
    );

    // The node starts with no reachability flag at all.
    let node = lab.serve_on_lan(&directory, &[]);
    let log = lab.log(&node);
    let endpoint = format!("http://{}:9484", lab.router_wan_ip);
    assert!(log.contains("tier 1a"), "{log}");
    assert!(log.contains(&format!("as {endpoint} (tier 1a)")), "{log}");
    lab.wait_listed(&directory, &endpoint);
    assert_eq!(lab.mappings().len(), 1, "{:?}", lab.mappings());
    assert!(lab.mappings()[0].contains("9484->192.168.77.2:9484"));

    // A consumer on the WAN chats through the mapping.
    let chat = lab.node_cmd(
        &lab.wan.clone(),
        &[
            "chat",
            "hello from the internet",
            "--directory-url",
            &directory,
        ],
        &[],
    );
    assert!(chat.status.success(), "{}", text(&chat));
    assert_eq!(
        String::from_utf8_lossy(&chat.stdout).trim(),
        "echo: hello from the internet"
    );

    // SIGTERM: deregistered, then the mapping is gone.
    assert_eq!(lab.terminate(&node), Some(0));
    let log = lab.log(&node);
    assert!(log.contains("removed the UPnP mapping"), "{log}");
    assert!(lab.mappings().is_empty(), "{:?}", lab.mappings());
    assert!(lab.discovered(&directory).is_empty());
}

#[test]
#[ignore = "needs root and the lab tools (scripts/netlab.sh); run by .ci/run"]
fn without_upnp_or_a_relay_the_node_serves_locally_with_guidance_and_registers_nothing() {
    let mut lab = Lab::up("nl2", 2, false);
    let directory = lab.start_directory();
    let node = lab.serve_on_lan(&directory, &["--upnp-timeout-ms", "1000"]);
    // Nothing worked and the directory is not on the LAN: the node looks
    // for a relay, and this directory lists none.
    let log = lab.wait_for_log(&node, "no relay to bind at", Duration::from_secs(30));
    assert!(log.contains("reachability: tier 4"), "{log}");
    assert!(
        log.contains("NAT tier=3: auto-electing relay from directory..."),
        "{log}"
    );
    assert!(
        log.contains("forward TCP port 9484 on your router to 192.168.77.2:9484")
            && log.contains("IICP_PUBLIC_ENDPOINT"),
        "the guidance says what to do:\n{log}"
    );
    assert!(!log.contains("registered with the directory"), "{log}");
    assert!(
        lab.discovered(&directory).is_empty(),
        "nothing unverified is listed"
    );
    // It still serves on the LAN.
    let health = lab.exec(
        &lab.lan,
        "curl",
        &["-s", "-m", "2", "http://192.168.77.2:9484/iicp/health"],
        &[],
    );
    assert!(text(&health).contains("\"ok\""), "{}", text(&health));
    assert_eq!(lab.terminate(&node), Some(0));
}

#[test]
#[ignore = "needs root and the lab tools (scripts/netlab.sh); run by .ci/run"]
fn doctor_shows_tier_0_for_a_public_address_and_for_an_operator_endpoint() {
    let lab = Lab::up("nl3", 3, true);
    // On the WAN host the interface address is public.
    let out = lab.node_cmd(&lab.wan, &["doctor", "--upnp-timeout-ms", "500"], &[HOST]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("tier 0"), "{shown}");
    assert!(
        shown.contains(&format!("advertise http://{}:9484", lab.wan_ip)),
        "{shown}"
    );

    // On the LAN, an operator endpoint wins without probing the router.
    let out = lab.node_cmd(
        &lab.lan,
        &["doctor"],
        &[
            HOST,
            ("IICP_PUBLIC_ENDPOINT", "http://node.example.net:9484"),
        ],
    );
    let shown = text(&out);
    assert!(shown.contains("tier 0"), "{shown}");
    assert!(
        shown.contains("advertise http://node.example.net:9484"),
        "{shown}"
    );
    assert!(!shown.contains("UPnP"), "nothing else is tried: {shown}");
    assert!(lab.mappings().is_empty());
}

#[test]
#[ignore = "needs root and the lab tools (scripts/netlab.sh); run by .ci/run"]
fn in_a_container_upnp_is_skipped_and_the_guidance_names_the_public_endpoint() {
    let lab = Lab::up("nl4", 4, true);
    let out = lab.node_cmd(&lab.lan, &["doctor"], &[("IICP_CONTAINER", "yes")]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("skipped: in a container"), "{shown}");
    assert!(shown.contains("tier 4"), "{shown}");
    assert!(shown.contains("IICP_PUBLIC_ENDPOINT"), "{shown}");
    assert!(lab.mappings().is_empty(), "no mapping was made");

    // The same LAN as a host: the router is used, and doctor's test mapping
    // is removed before it exits.
    let out = lab.node_cmd(&lab.lan, &["doctor"], &[HOST]);
    let shown = text(&out);
    assert!(shown.contains("tier 1a"), "{shown}");
    assert!(shown.contains("test mapping was removed"), "{shown}");
    assert!(lab.mappings().is_empty());
}

#[test]
#[ignore = "needs root and the lab tools (scripts/netlab.sh); run by .ci/run"]
fn a_changed_router_address_re_registers_the_node_with_it() {
    let mut lab = Lab::up("nl5", 5, true);
    let directory = lab.start_directory();
    let node = lab.serve_on_lan(&directory, &["--nat-recheck-secs", "1"]);
    lab.wait_listed(&directory, "http://11.77.5.1:9484");

    lab.readdress(25);
    lab.wait_for_log(&node, "the endpoint changed", Duration::from_secs(30));
    lab.wait_listed(&directory, "http://11.77.25.1:9484");
    let chat = lab.node_cmd(
        &lab.wan.clone(),
        &["chat", "after the move", "--directory-url", &directory],
        &[],
    );
    assert_eq!(
        String::from_utf8_lossy(&chat.stdout).trim(),
        "echo: after the move",
        "{}",
        text(&chat)
    );

    // A mapping the router lost (removed behind the node's back) is made
    // again at the next check.
    let removed = lab.exec(&lab.lan, "upnpc", &["-d", "9484", "TCP"], &[]);
    assert!(
        text(&removed).contains("UPNP_DeletePortMapping() returned : 0"),
        "the router removed it: {}",
        text(&removed)
    );
    let start = std::time::Instant::now();
    while lab.mappings().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the mapping did not come back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(lab.terminate(&node), Some(0));
    assert!(lab.mappings().is_empty());
}

#[test]
#[ignore = "needs root and the lab tools (scripts/netlab.sh); run by .ci/run"]
fn a_router_behind_carrier_grade_nat_is_tier_3_and_nothing_is_registered() {
    // The router's own WAN address is in 100.64.0.0/10: miniupnpd answers
    // an empty external address, and no mapping could reach the node.
    let mut lab = Lab::up_with("nl7", 7, true, "100.64");
    let doctor = lab.node_cmd(&lab.lan.clone(), &["doctor"], &[HOST]);
    let shown = text(&doctor);
    assert!(shown.contains("tier 3"), "{shown}");
    assert!(shown.contains("carrier-grade NAT"), "{shown}");
    assert!(shown.contains("IICP_RELAY_WORKER_ENDPOINT"), "{shown}");
    assert!(
        !shown.contains("Envelope"),
        "no gateway XML in the output: {shown}"
    );

    let directory = lab.start_directory();
    let node = lab.serve_on_lan(&directory, &[]);
    let log = lab.wait_for_log(&node, "no relay to bind at", Duration::from_secs(30));
    assert!(log.contains("(tier 3)"), "{log}");
    assert!(!log.contains("registered with the directory"), "{log}");
    assert!(lab.discovered(&directory).is_empty());
    assert!(lab.mappings().is_empty());
    assert_eq!(lab.terminate(&node), Some(0));
}

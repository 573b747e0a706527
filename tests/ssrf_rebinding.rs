//! DNS rebinding between the check and the connect, against a real DNS server
//! (`scripts/rebind_dns.py`, TTL 0) inside a network namespace of the lab
//! (`tests/common/netlab.rs`). The directory and the consumer are the real
//! `iicp-node` binary; the namespace's `/etc/resolv.conf` points at the lying
//! server, so their system resolver asks it. A name answers a public WAN
//! address first and `127.0.0.1` afterwards (or the other way round, or both
//! at once), and a "secret" HTTP server on `127.0.0.1` in the same namespace
//! records every request: it must get none. Each test also runs a control
//! that shows the secret server *would* have been reached (the DNS really
//! rebinds, the loopback server answers), so a pass is the pin's or the
//! guard's doing, not the setup's.
//!
//! Needs root (namespaces) and the DNS venv; ignored by default and run by
//! `.ci/run`: `IICP_DNS_PYTHON=<venv>/bin/python cargo test --test
//! ssrf_rebinding -- --ignored --test-threads 1`. Every lab here uses the
//! prefix `sr<case>` and WAN number 110-119.

mod common;

use common::netlab::Lab;
use common::watch::{Watched, in_ns};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The python of a venv with `dnslib` (`.ci/run` makes it).
const PYTHON_ENV: &str = "IICP_DNS_PYTHON";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/rebind_dns.py");
/// The node sees this machine as the host, not a container.
const HOST: (&str, &str) = ("IICP_CONTAINER", "no");

/// An HTTP server that answers every request with 200 (`/iicp/health` with
/// `{"status": "ok"}`, anything else with `{}`) and appends `METHOD PATH` to
/// the file `argv[3]` *before* it answers, so a client that got its answer
/// finds its request logged. Prints `{"event": "listening"}` once bound.
const RECORDER: &str = r#"
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = open(sys.argv[3], "a", encoding="utf-8")

class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        LOG.write(f"{self.command} {self.path}\n")
        LOG.flush()
        body = json.dumps({"status": "ok"} if self.path == "/iicp/health" else {}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = do_PUT = do_DELETE = answer

ThreadingHTTPServer.allow_reuse_address = True
server = ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Recorder)
print(json.dumps({"event": "listening"}), flush=True)
server.serve_forever()
"#;

fn skip_unless_root() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root {
        eprintln!("skipped: the netlab needs root");
    }
    !root
}

/// The venv's python; panics with what to do when it is not set (the tests
/// are `#[ignore]`d, so this only runs when asked for).
fn python() -> PathBuf {
    match std::env::var_os(PYTHON_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "{PYTHON_ENV} is not set: point it at the python of a venv with dnslib installed \
             (python3 -m venv v && v/bin/pip install dnslib==0.9.26; .ci/run makes \
             ~/.cache/iicp-client-ci/venv-dns)"
        ),
    }
}

/// Lines of a log file written by the DNS server or a recorder (none when
/// it does not exist yet).
fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A lab whose WAN namespace resolves names with the lying DNS server, and
/// the directories and recorders started in it.
struct Rebind {
    /// The DNS server and the recorders, outside the lab's own list; first,
    /// so they are killed before the lab's namespaces are deleted.
    procs: Vec<Watched>,
    lab: Lab,
    python: PathBuf,
    dns_log: PathBuf,
}

/// A recording HTTP server and its request log.
struct Recorder {
    log: PathBuf,
}

impl Recorder {
    /// Every request it got, as `METHOD PATH`.
    fn requests(&self) -> Vec<String> {
        lines(&self.log)
    }
}

impl Rebind {
    /// Builds lab `prefix` (WAN `11.77.<n>`) and starts the DNS server in
    /// its WAN namespace with the answer scripts `names` (`NAME=ANSWERS`, see
    /// `scripts/rebind_dns.py`; `{pub}` stands for the router's WAN address).
    fn up(prefix: &str, n: u8, names: &[&str]) -> Self {
        let python = python();
        let mut lab = Lab::up(prefix, n, false);
        let dns_log = lab.path("dns.log");
        let mut args = vec![
            SCRIPT.to_owned(),
            "--listen".into(),
            "127.0.0.1:53".into(),
            "--log".into(),
            dns_log.to_string_lossy().into_owned(),
        ];
        for name in names {
            args.push("--name".into());
            args.push(name.replace("{pub}", &lab.router_wan_ip));
        }
        let mut cmd = in_ns(&lab.wan, &python);
        cmd.args(&args);
        let mut dns = Watched::start(cmd);
        dns.wait_for("listening", Duration::from_secs(20));
        let wan = lab.wan.clone();
        lab.resolv_conf(&wan, "127.0.0.1");
        Self {
            lab,
            python,
            dns_log,
            procs: vec![dns],
        }
    }

    /// Starts a recorder on `host:port` in namespace `ns`.
    fn recorder(&mut self, ns: &str, name: &str, host: &str, port: u16) -> Recorder {
        let log = self.lab.path(&format!("{name}.requests"));
        let mut cmd = in_ns(ns, &self.python);
        cmd.args(["-c", RECORDER, host, &port.to_string()])
            .arg(&log);
        let mut p = Watched::start(cmd);
        p.wait_for("listening", Duration::from_secs(20));
        self.procs.push(p);
        Recorder { log }
    }

    /// Starts `iicp-node directory --public` on the WAN host; its base URL.
    fn directory(&mut self) -> String {
        self.directory_on(8020, &["--public"])
    }

    /// Starts `iicp-node directory <extra>` on the WAN host, port `port`;
    /// its base URL.
    fn directory_on(&mut self, port: u16, extra: &[&str]) -> String {
        let listen = format!("{}:{port}", self.lab.wan_ip);
        let wan = self.lab.wan.clone();
        let mut args = vec!["directory", "--listen", &listen];
        args.extend_from_slice(extra);
        let p = self
            .lab
            .spawn_node(&wan, &format!("directory-{port}"), &args, &[]);
        self.lab
            .wait_for_log(&p, "listening", Duration::from_secs(20));
        format!("http://{listen}")
    }

    /// The A queries the DNS server answered for `name`, each answer's
    /// addresses, in order.
    fn answers(&self, name: &str) -> Vec<Vec<String>> {
        lines(&self.dns_log)
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|q| q["name"] == name && q["type"] == "A")
            .map(|q| {
                q["answer"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_owned())
                    .collect()
            })
            .collect()
    }

    /// `POST /v1/register` for `endpoint`, sent from the router (the
    /// registrant's own public address); the status and the JSON body.
    fn register(&self, directory: &str, endpoint: &str) -> (u16, Value) {
        let body = common::registration(endpoint, &["m"]).to_string();
        let url = format!("{directory}/v1/register");
        let out = self.lab.exec(
            &self.lab.router,
            "curl",
            &[
                "-s",
                "-m",
                "30",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &body,
                "-w",
                "\n%{http_code}",
                &url,
            ],
            &[],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (json, status) = text.rsplit_once('\n').unwrap_or(("", ""));
        let status = status
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("curl gave no status: {text:?} {out:?}"));
        (status, serde_json::from_str(json).unwrap_or(Value::Null))
    }

    /// `iicp-node chat <prompt> <extra>` on the WAN host against `directory`.
    fn chat(&self, directory: &str, prompt: &str, extra: &[&str]) -> Output {
        let api = format!("{directory}/api");
        let mut args = vec![
            "chat",
            prompt,
            "--directory-url",
            &api,
            "--timeout-ms",
            "20000",
        ];
        args.extend_from_slice(extra);
        self.lab
            .node_cmd(&self.lab.wan, &args, &[("RUST_LOG", "warn")])
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The error code of a directory refusal (`{"error": {"code": …}}`).
fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// The port of the endpoints in the directory tests (the recorders' port).
const PROBED_PORT: u16 = 9490;

/// Endpoint-security-v1 `resolution_attempt_vectors` `public-to-private-rebind`
/// and the address vector `mixed-public-private`, at the directory's liveness
/// probe (`src/directory/reachability.rs`): the name is resolved once, the whole
/// answer judged, and the probe pinned to the judged address.
#[test]
#[ignore = "needs root, the lab tools (scripts/netlab.sh) and IICP_DNS_PYTHON; run by .ci/run"]
fn the_directory_probes_the_address_it_judged_whatever_dns_says_next() {
    if skip_unless_root() {
        return;
    }
    let mut rb = Rebind::up(
        "sr1",
        110,
        &[
            "first-public.rebind.example.com={pub},127.0.0.1",
            "first-private.rebind.example.com=127.0.0.1,{pub}",
            "mixed.rebind.example.com={pub}+127.0.0.1",
            "local.rebind.example.com={pub},127.0.0.1",
        ],
    );
    let public_ip = rb.lab.router_wan_ip.clone();
    let (wan, router) = (rb.lab.wan.clone(), rb.lab.router.clone());
    // The secret: a loopback service of the directory's host, on the port
    // the endpoints name. It answers the health probe, so a probe sent there
    // would succeed and the registration would pass.
    let secret = rb.recorder(&wan, "secret", "127.0.0.1", PROBED_PORT);
    // The registrant's real server on its public address.
    let public = rb.recorder(&router, "public", &public_ip, PROBED_PORT);
    let directory = rb.directory();
    let endpoint = |name: &str| format!("http://{name}.rebind.example.com:{PROBED_PORT}");

    // Public first, loopback afterwards: accepted, and the probe went to
    // the public address; one resolution, no second look-up for the probe.
    let (status, ack) = rb.register(&directory, &endpoint("first-public"));
    assert_eq!(status, 201, "{ack}");
    assert_eq!(
        secret.requests(),
        Vec::<String>::new(),
        "the probe reached loopback"
    );
    assert_eq!(public.requests(), ["GET /iicp/health"]);
    assert_eq!(
        rb.answers("first-public.rebind.example.com"),
        [[public_ip.clone()]],
        "the directory resolved the name more than once"
    );

    // Control: the name now answers loopback, and the directory judges the
    // fresh answer. A second look-up in the probe above would have got
    // this answer and reached the secret server.
    let (status, body) = rb.register(&directory, &endpoint("first-public"));
    assert_eq!((status, code(&body)), (422, "IICP-E035"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("loopback")),
        "{body}"
    );
    assert_eq!(
        rb.answers("first-public.rebind.example.com"),
        [[public_ip.clone()], ["127.0.0.1".to_owned()]]
    );

    // Loopback first: refused before any connection.
    let (status, body) = rb.register(&directory, &endpoint("first-private"));
    assert_eq!((status, code(&body)), (422, "IICP-E035"), "{body}");
    assert_eq!(rb.answers("first-private.rebind.example.com").len(), 1);

    // Public and loopback in one answer: refused whole.
    let (status, body) = rb.register(&directory, &endpoint("mixed"));
    assert_eq!((status, code(&body)), (422, "IICP-E035"), "{body}");
    assert_eq!(
        rb.answers("mixed.rebind.example.com"),
        [[public_ip.clone(), "127.0.0.1".to_owned()]]
    );

    // Nothing reached loopback, and the public server saw only the one probe.
    assert_eq!(
        secret.requests(),
        Vec::<String>::new(),
        "loopback was reached"
    );
    assert_eq!(public.requests(), ["GET /iicp/health"]);

    // A directory in local mode judges against its allowed set (here the
    // registrant's own address; loopback only for a registrant on this
    // machine) and pins the probe the same way.
    let local = rb.directory_on(8021, &[]);
    let (status, ack) = rb.register(&local, &endpoint("local"));
    assert_eq!(status, 201, "{ack}");
    assert_eq!(ack["public_reachable"], true, "{ack}");
    assert_eq!(public.requests(), ["GET /iicp/health", "GET /iicp/health"]);
    assert_eq!(
        rb.answers("local.rebind.example.com"),
        [[public_ip.clone()]]
    );
    let (status, body) = rb.register(&local, &endpoint("local"));
    assert_eq!((status, code(&body)), (422, "IICP-E035"), "{body}");
    assert_eq!(rb.answers("local.rebind.example.com").len(), 2);
    assert_eq!(
        secret.requests(),
        Vec::<String>::new(),
        "loopback was reached"
    );

    // `GET /v1/probe` (a TCP connect test) follows the same rule.
    let out = rb.lab.exec(
        &router,
        "curl",
        &[
            "-s",
            "-m",
            "30",
            &format!("{directory}/v1/probe?host=mixed.rebind.example.com&port={PROBED_PORT}"),
        ],
        &[],
    );
    let body: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(code(&body), "IICP-E035", "{body}");
}

/// The port of the node whose name rebinds (and of the secret server that
/// pretends to be it on the consumer's loopback).
const REBOUND_PORT: u16 = 9485;
/// The port of the node with a stable public address.
const STABLE_PORT: u16 = 9484;

/// `iicp-node serve` (echo backend) in the router namespace, advertising
/// `endpoint` to `directory`; waits until it is registered.
fn serve_node(
    rb: &mut Rebind,
    name: &str,
    directory: &str,
    port: u16,
    endpoint: &str,
    extra: &[&str],
) {
    let api = format!("{directory}/api");
    let port = port.to_string();
    let mut args = vec![
        "serve",
        "--backend-type",
        "echo",
        "--directory-url",
        &api,
        "--port",
        &port,
        "--public-endpoint",
        endpoint,
    ];
    args.extend_from_slice(extra);
    let router = rb.lab.router.clone();
    let p = rb.lab.spawn_node(&router, name, &args, &[HOST]);
    rb.lab
        .wait_for_log(&p, "registered with the directory", Duration::from_secs(45));
}

/// Endpoint-security-v1 `public-to-private-rebind` at the consumer
/// (`src/client/guard.rs`): the directory lists a node whose name answered
/// the directory's probe with a public address and answers `127.0.0.1` from
/// then on. The consumer's resolver judges the answer it connects with and
/// refuses it; a loopback server pretending to be the node gets nothing, and
/// the consumer moves on to the next candidate.
#[test]
#[ignore = "needs root, the lab tools (scripts/netlab.sh) and IICP_DNS_PYTHON; run by .ci/run"]
fn the_consumer_refuses_a_node_name_that_rebinds_to_loopback() {
    if skip_unless_root() {
        return;
    }
    let name = "rebound.rebind.example.com";
    let mut rb = Rebind::up("sr2", 111, &[&format!("{name}={{pub}},127.0.0.1")]);
    let public_ip = rb.lab.router_wan_ip.clone();
    let wan = rb.lab.wan.clone();
    // The secret: a loopback service of the consumer's host on the node's
    // port, answering 200 to anything.
    let secret = rb.recorder(&wan, "secret", "127.0.0.1", REBOUND_PORT);
    let directory = rb.directory();

    // The node registers its name; the directory's probe takes the first
    // answer (public) and reaches the node.
    let rebound = format!("http://{name}:{REBOUND_PORT}");
    serve_node(
        &mut rb,
        "rebound",
        &directory,
        REBOUND_PORT,
        &rebound,
        &["--region", "eu-rebind"],
    );
    assert_eq!(rb.answers(name), [[public_ip.clone()]]);

    // The only candidate: refused at connect time, the refusal reported.
    let out = rb.chat(&directory, "hello rebind", &[]);
    let shown = text(&out);
    assert!(!out.status.success(), "{shown}");
    // `[no_available_node] … every candidate failed (<node>: could not reach
    // node <node>: endpoint refused: node endpoint refused: `<name>` resolves
    // to a loopback address (…))`
    assert!(shown.contains("[no_available_node]"), "{shown}");
    assert!(
        shown.contains(&format!(
            "endpoint refused: node endpoint refused: `{name}` resolves to a loopback address"
        )),
        "{shown}"
    );
    assert_eq!(
        secret.requests(),
        Vec::<String>::new(),
        "the consumer reached loopback"
    );
    assert_eq!(
        rb.answers(name),
        [[public_ip.clone()], ["127.0.0.1".to_owned()]],
        "the consumer did not resolve the name (once)"
    );

    // With a second node on a stable public address: the rebinding node
    // ranks first for region eu-rebind, is refused, and the answer comes
    // from the other one.
    let stable = format!("http://{public_ip}:{STABLE_PORT}");
    serve_node(&mut rb, "stable", &directory, STABLE_PORT, &stable, &[]);
    let out = rb.chat(&directory, "hello again", &["--region", "eu-rebind"]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "echo: hello again",
        "{shown}"
    );
    assert_eq!(
        rb.answers(name).len(),
        3,
        "the rebinding node was not tried first: {shown}"
    );
    assert_eq!(
        secret.requests(),
        Vec::<String>::new(),
        "the consumer reached loopback"
    );

    // Control: with private nodes allowed (the guard's routability checks
    // off), the same consumer follows the name to loopback, so the refusals
    // above were the guard's.
    let out = rb.chat(
        &directory,
        "hello control",
        &["--region", "eu-rebind", "--allow-private-nodes"],
    );
    assert_eq!(
        secret.requests(),
        ["POST /v1/task"],
        "the control did not reach the secret server: {}",
        text(&out)
    );
}

//! Interop with the independently written Python SDK (`iicp-client==0.7.109` from
//! PyPI), everything on 127.0.0.1:
//!
//! 1. a Python `IicpNode` registers with our directory, heartbeats (answering the
//!    HMAC challenge) and serves our `IicpClient`;
//! 2. the Python `IicpClient` chats with our `iicp-node serve --backend-type echo`;
//! 3. the Python node deregisters from our directory on SIGTERM and on SIGINT.
//!
//! The Python side lives in `scripts/interop/` (py_node.py, py_client.py); these
//! tests need a venv with `scripts/interop/requirements.txt` installed, whose
//! python is given in `IICP_INTEROP_PYTHON`. See docs/INTEROP.md.

mod common;

use common::python::{Python, Spawned, chat_with_python_echo, discovered};
use iicp_client::directory::{Directory, DirectoryConfig, RunningDirectory};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

const CHAT: &str = "urn:iicp:intent:llm:chat:v1";

/// The node ids our directory currently lists for the chat intent.
async fn listed(dir_url: &str) -> Vec<String> {
    discovered(dir_url)
        .await
        .iter()
        .filter_map(|n| n["node_id"].as_str().map(str::to_owned))
        .collect()
}

async fn wait_listed(dir_url: &str, node_id: &str, want: bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if listed(dir_url).await.iter().any(|id| id == node_id) == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {node_id} {} listed by our directory after 15 s",
            if want { "never" } else { "still" }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Our directory with its default configuration. The Python node registers
/// before it listens (`await node.register()` then `node.serve(...)`); in local
/// mode our directory accepts such a loopback node without a probe answer and
/// lists it once its first heartbeat arrives (PROTOCOL.md §1.9 item 3).
async fn directory_for_python_node() -> RunningDirectory {
    Directory::start(DirectoryConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .expect("directory starts")
}

/// A running py_node.py.
struct PyNode {
    py: Spawned,
    node_id: String,
    endpoint: String,
}

impl PyNode {
    async fn spawn(dir_url: &str) -> Self {
        let mut py = Python::from_env().spawn(
            "py_node.py",
            &["--directory-url", dir_url, "--heartbeat-secs", "1"],
        );
        let started = py.listening(Duration::from_secs(30)).await;
        Self {
            node_id: started["node_id"].as_str().unwrap().to_owned(),
            endpoint: started["endpoint"].as_str().unwrap().to_owned(),
            py,
        }
    }

    /// The directory exchanges py_node.py saw, oldest first.
    fn directory_calls(&self, method: &str, path_suffix: &str) -> Vec<Value> {
        self.py
            .out
            .json()
            .into_iter()
            .filter(|e| {
                e["event"] == "directory"
                    && e["method"] == method
                    && e["path"].as_str().is_some_and(|p| p.ends_with(path_suffix))
            })
            .collect()
    }

    fn logs(&self) -> String {
        self.py.logs()
    }
}

// Multi-threaded: reader threads and the in-process directory run while the test
// polls child processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Python SDK venv (scripts/interop); run by .ci/run"]
async fn python_node_serves_our_client_and_passes_heartbeat_challenges() {
    let dir = directory_for_python_node().await;
    let base = dir.url();
    let node = PyNode::spawn(&base).await;
    assert!(node.endpoint.starts_with("http://127.0.0.1:"));
    wait_listed(&base, &node.node_id, true).await;

    chat_with_python_echo(&base, "hello from rust", &node.py).await;

    // The task envelope the Python node's handler received from our client.
    // (The reader thread may see the line a moment after the reply.)
    let task = node
        .py
        .wait_for(
            "the Python handler's task line",
            Duration::from_secs(5),
            async || node.py.out.event("task"),
        )
        .await;
    assert_eq!(task["request"]["intent"], CHAT);
    let last = task["request"]["payload"]["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["content"], "hello from rust", "task: {task}");
    // It arrived sealed to the key the Python node advertised (IICP-CX), with
    // an encrypted answer asked for; the Python node opened it and sealed its
    // answer, which our client opened.
    let registered = &node.directory_calls("POST", "/v1/register")[0]["request"];
    let advertised = registered["cx_public_key"]["key_id"]
        .as_str()
        .unwrap_or_else(|| panic!("the Python node advertises no CX key: {registered}"));
    assert_eq!(task["request"]["iicp_conf"]["recipient_key_id"], advertised);
    assert_eq!(task["request"]["iicp_conf"]["version"], 1);
    assert_eq!(task["request"]["cx_response_encryption"], "required");

    // Heartbeats: the second and later ones carry `challenge_response`
    // (HMAC-SHA256 of the previous beat's challenge under node_hmac_key); our
    // directory must answer them 200 with a fresh challenge.
    let answered = node
        .py
        .wait_for(
            "two heartbeats that answer the HMAC challenge",
            Duration::from_secs(30),
            async || {
                let beats = node.directory_calls("POST", "/v1/heartbeat");
                let answered: Vec<Value> = beats
                    .into_iter()
                    .filter(|b| b["request"]["challenge_response"].is_string())
                    .collect();
                (answered.len() >= 2).then_some(answered)
            },
        )
        .await;
    for beat in node.directory_calls("POST", "/v1/heartbeat") {
        assert_eq!(
            beat["status"],
            200,
            "heartbeat refused: {beat}\n{}",
            node.logs()
        );
        assert_eq!(beat["authorization"], "bearer");
        assert!(beat["response"]["challenge"].is_string(), "{beat}");
    }
    assert!(answered.iter().all(|b| b["status"] == 200));
    // Never re-registered (a refused heartbeat or a failed registry check would
    // make the SDK register again), and still discoverable.
    let registers = node.directory_calls("POST", "/v1/register");
    assert_eq!(registers.len(), 1, "re-registered:\n{}", node.logs());
    assert_eq!(registers[0]["status"], 201, "register: {}", registers[0]);
    assert!(listed(&base).await.contains(&node.node_id));
    // Shown with --nocapture: the envelopes recorded in docs/INTEROP.md.
    println!("{}", node.logs());
    let mut node = node;
    node.py.signal("-TERM");
    node.py.wait_exit(Duration::from_secs(20)).await;
    dir.shutdown().await;
}

/// `iicp-node serve --backend-type echo` on loopback with `extra` flags,
/// registered with `base`; returns once its startup line is out.
async fn spawn_our_node(base: &str, extra: &[&str]) -> (Spawned, tempfile::TempDir) {
    let port = common::node_bin::free_port();
    let home = tempfile::tempdir().unwrap(); // this node's IICP_HOME, removed afterwards
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iicp-node"));
    cmd.args(["serve", "--backend-type", "echo", "--host", "127.0.0.1"])
        .args(["--port", &port.to_string(), "--directory-url", base])
        .args(extra)
        .env("RUST_LOG", "info")
        .env("IICP_HOME", home.path());
    let ours = Spawned::start("iicp-node", cmd);
    ours.wait_for(
        "iicp-node serve to register",
        Duration::from_secs(30),
        async || {
            ours.err
                .all()
                .iter()
                .any(|l| l.contains("iicp-node serving on"))
                .then_some(())
        },
    )
    .await;
    (ours, home)
}

/// Runs py_client.py against `base` with `extra` arguments; returns its exit
/// status, its JSON events and its output for messages.
async fn run_py_client(
    python: &Python,
    base: &str,
    extra: &[&str],
) -> (std::process::ExitStatus, Vec<Value>, String) {
    let mut args = vec!["--directory-url", base, "--text", "hello from python"];
    args.extend_from_slice(extra);
    run_script(python, "py_client.py", &args, "reply").await
}

/// Runs a one-shot Python script to its end; returns its exit status, its
/// JSON events (read until one named `last` or `error` arrived) and its
/// output for messages.
async fn run_script(
    python: &Python,
    name: &str,
    args: &[&str],
    last: &str,
) -> (std::process::ExitStatus, Vec<Value>, String) {
    let mut py = python.spawn(name, args);
    let status = py.wait_exit(Duration::from_secs(60)).await;
    // The reader threads finish at EOF; give them a moment to drain.
    let events = py
        .wait_for(
            &format!("{name} output"),
            Duration::from_secs(5),
            async || {
                let events = py.out.json();
                events
                    .iter()
                    .any(|e| e["event"] == last || e["event"] == "error")
                    .then_some(events)
            },
        )
        .await;
    (status, events, py.logs())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Python SDK venv (scripts/interop); run by .ci/run"]
async fn our_node_serves_python_client() {
    // Resolve the venv first: nothing may be spawned before that can fail.
    let python = Python::from_env();
    let dir = Directory::start(DirectoryConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .expect("directory starts");
    let base = dir.url();
    let (mut ours, _home) = spawn_our_node(&base, &[]).await;
    let (status, events, logs) = run_py_client(&python, &base, &[]).await;
    assert!(status.success(), "py_client.py failed ({status})\n{logs}");
    let reply = events.iter().find(|e| e["event"] == "reply").unwrap();
    assert_eq!(reply["content"], "echo: hello from python", "{logs}");

    // What the Python client sent to our node, with its default settings: the
    // payload sealed to our node's CX key (no plaintext on the wire), and an
    // encrypted answer required.
    let sent = events
        .iter()
        .find(|e| {
            e["event"] == "http"
                && e["url"].as_str().is_some_and(|u| u.ends_with("/v1/task"))
                && e["request"].is_object()
        })
        .unwrap_or_else(|| panic!("no task POST seen\n{logs}"));
    let body = &sent["request"];
    assert_eq!(body["intent"], CHAT);
    assert!(body["task_id"].is_string());
    assert!(
        body.get("payload").is_none_or(Value::is_null),
        "no plaintext payload: {body}"
    );
    assert_eq!(body["cx_response_encryption"], "required", "{body}");
    let conf = &body["iicp_conf"];
    assert_eq!(conf["version"], 1, "{body}");
    assert!(
        conf["recipient_key_id"]
            .as_str()
            .is_some_and(|k| k.starts_with("cx-")),
        "{body}"
    );
    assert!(
        !body.to_string().contains("hello from python"),
        "the prompt is not readable on the wire"
    );
    println!("{logs}");

    ours.signal("-TERM");
    let code = ours.wait_exit(Duration::from_secs(20)).await;
    assert!(code.success(), "iicp-node exit: {code}");
    dir.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Python SDK venv (scripts/interop); run by .ci/run"]
async fn python_client_with_a_node_token_gets_into_our_node_in_token_mode() {
    let python = Python::from_env();
    let dir = Directory::start(DirectoryConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .expect("directory starts");
    let base = dir.url();
    let (mut ours, _home) = spawn_our_node(&base, &["--task-auth", "token"]).await;

    // The Python consumer runs a node of its own: its directory token is what
    // buys it a consumer token (its endpoint does not answer, so the directory
    // keeps it out of discover).
    let ack: Value = reqwest::Client::new()
        .post(format!("{base}/v1/register"))
        .json(&serde_json::json!({
            "endpoint": "http://127.0.0.1:1",
            "capabilities": [{"intent": CHAT, "models": ["none"]}],
            "limits": {"max_concurrent": 1, "tokens_per_min": 1},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = ack["node_token"].as_str().expect("a node token");

    // Without it, our node turns the Python client away.
    let (status, events, logs) = run_py_client(&python, &base, &[]).await;
    assert!(
        !status.success(),
        "token mode let an anonymous task in\n{logs}"
    );
    let error = events.iter().find(|e| e["event"] == "error").unwrap();
    assert!(
        error["error"].as_str().unwrap_or_default().contains("401")
            || error["error"]
                .as_str()
                .unwrap_or_default()
                .contains("unauthorized"),
        "{logs}"
    );

    // With it, the Python SDK asks our directory for a consumer token (Bearer
    // only, no X-Node-Id) and sends it as X-IICP-Consumer-Token; our node
    // verifies it against the directory's Ed25519 key.
    let (status, events, logs) = run_py_client(&python, &base, &["--node-token", token]).await;
    assert!(status.success(), "py_client.py failed ({status})\n{logs}");
    let reply = events.iter().find(|e| e["event"] == "reply").unwrap();
    assert_eq!(reply["content"], "echo: hello from python", "{logs}");
    assert!(!logs.contains(token), "the token never reaches the output");

    ours.signal("-TERM");
    let code = ours.wait_exit(Duration::from_secs(20)).await;
    assert!(code.success(), "iicp-node exit: {code}");
    dir.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Python SDK venv (scripts/interop); run by .ci/run"]
async fn python_node_deregisters_on_sigterm_and_sigint() {
    let dir = directory_for_python_node().await;
    let base = dir.url();
    for sig in ["-TERM", "-INT"] {
        let mut node = PyNode::spawn(&base).await;
        wait_listed(&base, &node.node_id, true).await;
        node.py.signal(sig);
        let status = node.py.wait_exit(Duration::from_secs(20)).await;
        let logs = node.logs();
        assert!(
            status.success(),
            "py_node.py exit after {sig}: {status}\n{logs}"
        );
        let deletes = node.directory_calls("DELETE", "/v1/register");
        assert_eq!(deletes.len(), 1, "no deregister after {sig}\n{logs}");
        assert_eq!(deletes[0]["status"], 200, "{logs}");
        assert_eq!(deletes[0]["authorization"], "bearer");
        assert_eq!(deletes[0]["request"]["node_id"], node.node_id.as_str());
        // Gone at once: no need to wait for the TTL.
        assert!(
            !listed(&base).await.contains(&node.node_id),
            "still listed after {sig}"
        );
        let url = format!("{base}/v1/registry/nodes/{}", node.node_id);
        let code = reqwest::get(&url).await.unwrap().status();
        assert_eq!(code, 404, "registry still has {} after {sig}", node.node_id);
    }
    dir.shutdown().await;
}

/// Issue 13: the Python SDK's native client (`IicpTcpClient`, with cbor2)
/// handshakes, pings, calls, discovers and `stream_call`s our node on its one
/// port, found through the `transport_endpoint` our directory lists; HTTP
/// keeps working on that port.
#[tokio::test]
#[ignore = "needs the Python SDK with iicp-tcp (IICP_INTEROP_PYTHON); run by .ci/run"]
async fn python_native_client_calls_our_node_on_its_one_port() {
    let python = Python::from_env();
    let dir = Directory::start(DirectoryConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .expect("directory starts");
    let base = dir.url();
    let (_ours, _home) = spawn_our_node(&base, &["--no-cx"]).await;
    let mut listed = Value::Null;
    let started = Instant::now();
    while listed.is_null() && started.elapsed() < Duration::from_secs(30) {
        let url = format!("{base}/v1/discover?intent={CHAT}");
        let body: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        listed = body["nodes"][0].clone();
        if listed.is_null() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let native = listed["transport_endpoint"]
        .as_str()
        .unwrap_or_else(|| panic!("no transport_endpoint listed: {listed}"));
    let hostport = native.strip_prefix("iicp://").expect("iicp:// endpoint");
    assert_eq!(
        listed["endpoint"].as_str().unwrap().strip_prefix("http://"),
        Some(hostport),
        "one port for HTTP and native"
    );
    let (host, port) = hostport.rsplit_once(':').unwrap();
    let args = [
        host,
        port,
        "--stream",
        "interop-task-1",
        "--text",
        "native hello",
    ];
    let (status, events, logs) = run_script(&python, "py_native_client.py", &args, "stream").await;
    assert!(
        status.success(),
        "py_native_client.py failed ({status})\n{logs}"
    );
    let event = |name: &str| {
        events
            .iter()
            .find(|e| e["event"] == name)
            .unwrap_or_else(|| panic!("no {name} event\n{logs}"))
            .clone()
    };
    assert_eq!(event("ping")["echo"], hex_of(b"interop"));
    let content = &event("call")["result"]["choices"][0]["message"]["content"];
    assert_eq!(content, "echo: native hello", "{logs}");
    assert_eq!(event("discover")["nodes"][0]["transport_endpoint"], native);
    // stream_call checks the lifecycle itself (sequence from 0, task and
    // call ids, status and event agree, one final step): it yields partials
    // word by word, then the whole answer.
    let items: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "stream")
        .map(|e| &e["item"])
        .collect();
    let (last, partials) = items.split_last().expect("stream items");
    assert_eq!(partials.len(), 3, "one partial per word\n{logs}");
    let mut text = String::new();
    for (n, p) in partials.iter().enumerate() {
        assert_eq!(
            (p["status"].as_str(), p["lifecycle"]["event"].as_str()),
            (Some("partial"), Some("partial"))
        );
        assert_eq!(p["lifecycle"]["sequence"], n);
        text += p["result"]["choices"][0]["delta"]["content"]
            .as_str()
            .unwrap();
    }
    assert_eq!(text, "echo: native hello");
    assert_eq!(last["lifecycle"]["event"], "completed", "{logs}");
    assert_eq!(last["lifecycle"]["sequence"], 3);
    assert_eq!(last["lifecycle"]["task_id"], "interop-task-1");
    assert_eq!(
        last["result"]["choices"][0]["message"]["content"],
        "echo: native hello"
    );
    // HTTP on the same port still answers.
    let health: Value = reqwest::get(format!("http://{hostport}/iicp/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Issue 13, the other direction: our native client handshakes, pings and
/// calls the Python node on the port of its HTTP endpoint.
#[cfg(feature = "iicp-tcp")]
#[tokio::test]
#[ignore = "needs the Python SDK with iicp-tcp (IICP_INTEROP_PYTHON); run by .ci/run"]
async fn our_native_client_calls_the_python_node() {
    use iicp_client::transport::{NativeClient, NativeOptions};
    let dir = directory_for_python_node().await;
    let base = dir.url();
    let node = PyNode::spawn(&base).await;
    let hostport = node.endpoint.strip_prefix("http://").unwrap().to_owned();
    let client = NativeClient::connect(&hostport, NativeOptions::default())
        .await
        .unwrap_or_else(|e| panic!("handshake with the Python node: {e}\n{}", node.logs()));
    assert_eq!(&client.ping(b"from rust").await.unwrap()[..], b"from rust");
    let result = client
        .call(
            CHAT,
            serde_json::json!({"messages": [{"role": "user", "content": "native from rust"}]}),
        )
        .await
        .unwrap_or_else(|e| panic!("call: {e}\n{}", node.logs()));
    let text = serde_json::to_string(&result).unwrap();
    assert!(text.contains("python echo: native from rust"), "{text}");
}

/// Issue 13: `IicpClient` with `prefer_native` submits to the Python node
/// over its native port. A second directory lists the Python node with a
/// dead HTTP endpoint beside its real native one, so only a native submit
/// can succeed; a sealed task (the Python node's native path does not
/// apply IICP-CX) gets a plaintext answer, which our client refuses.
#[cfg(feature = "iicp-tcp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Python SDK with iicp-tcp (IICP_INTEROP_PYTHON); run by .ci/run"]
async fn our_client_prefers_native_with_the_python_node() {
    use iicp_client::{ChatMessage, ClientConfig, IicpClient};
    let dir = directory_for_python_node().await;
    let node = PyNode::spawn(&dir.url()).await;
    wait_listed(&dir.url(), &node.node_id, true).await;
    let listed: Value = reqwest::get(format!("{}/v1/discover?intent={CHAT}", dir.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cx_key = listed["nodes"][0]["cx_public_key"].clone();
    let hostport = node.endpoint.strip_prefix("http://").unwrap().to_owned();

    let native_only = Directory::start(
        DirectoryConfig {
            skip_liveness_check: true,
            ..DirectoryConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("directory starts");
    let register = |id: &str, key: Value| {
        serde_json::json!({
            "node_id": id,
            "endpoint": "http://127.0.0.1:1",
            "transport_endpoint": format!("iicp://{hostport}"),
            "region": "eu-central",
            "capabilities": [{"intent": CHAT, "models": ["py-echo"], "max_tokens": 4096}],
            "limits": {"max_concurrent": 4, "tokens_per_min": 1000},
            "cx_public_key": key,
        })
    };
    let client = IicpClient::builder(ClientConfig {
        directory_url: native_only.url(),
        timeout_ms: 20_000,
        ..Default::default()
    })
    .allow_private_nodes(true)
    .allow_plaintext(true)
    .prefer_native(true)
    .build()
    .expect("client");
    let http = reqwest::Client::new();
    let post = |body: Value| {
        http.post(format!("{}/v1/register", native_only.url()))
            .json(&body)
            .send()
    };
    assert_eq!(
        post(register("py-native", Value::Null))
            .await
            .unwrap()
            .status(),
        201
    );
    let reply = client
        .chat(vec![ChatMessage::user("native from IicpClient")], None)
        .await
        .unwrap_or_else(|e| panic!("native chat with the Python node: {e}\n{}", node.logs()));
    assert_eq!(reply.text(), "python echo: native from IicpClient");

    // The same node listed with its CX key (in another directory): the task
    // goes sealed, the Python node answers in plaintext, and the answer is
    // refused.
    let sealed_dir = Directory::start(
        DirectoryConfig {
            skip_liveness_check: true,
            ..DirectoryConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("directory starts");
    let status = http
        .post(format!("{}/v1/register", sealed_dir.url()))
        .json(&register("py-native-cx", cx_key))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 201);
    let sealed = IicpClient::builder(ClientConfig {
        directory_url: sealed_dir.url(),
        timeout_ms: 20_000,
        ..Default::default()
    })
    .allow_private_nodes(true)
    .prefer_native(true)
    .build()
    .expect("client");
    let err = sealed
        .chat(vec![ChatMessage::user("sealed over native")], None)
        .await
        .expect_err("a plaintext answer to a sealed task is refused");
    assert_eq!(
        err.code(),
        "IICP-CX-RESP-REQUIRED",
        "{err:?}\n{}",
        node.logs()
    );
}

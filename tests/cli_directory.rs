//! The real `iicp-node directory` binary: it logs where it listens, answers
//! health and discover, exits 0 on SIGTERM, and keeps its token signing key
//! in the file `--signing-key` names.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Command, Stdio};

#[tokio::test]
async fn directory_binary_starts_logs_its_address_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_iicp-node"))
        .args(["directory", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env_remove("IICP_DIRECTORY_SIGNING_KEY")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.contains("listening on"))
        .expect("a startup line");
    assert!(line.contains("local mode"), "the mode is stated: {line}");
    assert!(
        line.contains("signing key generated in memory"),
        "without --signing-key the key is generated for this run: {line}"
    );
    let url = line
        .split_whitespace()
        .skip_while(|w| *w != "URL")
        .nth(1)
        .expect("directory URL in the startup line")
        .to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/api"),
        "{url}"
    );

    let health: serde_json::Value = reqwest::get(url.replace("/api", "/iicp/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["ok"], true);
    let discover = reqwest::get(format!(
        "{url}/v1/discover?intent=urn:iicp:intent:llm:chat:v1"
    ))
    .await
    .unwrap();
    assert_eq!(discover.status(), 200);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean shutdown");
    assert!(
        lines
            .map_while(Result::ok)
            .any(|l| l.contains("shutting down")),
        "shutdown is logged"
    );
}

type StderrLines = std::io::Lines<BufReader<ChildStderr>>;

/// Starts `iicp-node directory` on a free port with `extra` arguments and
/// environment; returns the child, its remaining log lines, and the startup
/// line.
fn start_directory(
    extra: &[&str],
    env: &[(&str, &std::path::Path)],
) -> (Child, StderrLines, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iicp-node"));
    cmd.args(["directory", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "info")
        .env_remove("IICP_DIRECTORY_SIGNING_KEY")
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.contains("listening on"))
        .expect("a startup line");
    (child, lines, line)
}

/// The directory URL (`http://127.0.0.1:PORT/api`) of a startup line.
fn url_of(line: &str) -> String {
    line.split_whitespace()
        .skip_while(|w| *w != "URL")
        .nth(1)
        .expect("directory URL in the startup line")
        .to_owned()
}

fn stop(mut child: Child) {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

async fn served_public_key(url: &str) -> String {
    let resp = reqwest::get(format!("{url}/v1/directory-key"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["algorithm"], "ed25519");
    body["public_key"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_key_file_is_created_private_and_reused_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys").join("directory.key");
    let path_arg = path.to_str().unwrap();

    let (child, _lines, line) = start_directory(&["--signing-key", path_arg], &[]);
    assert!(
        line.contains(&format!("created at {path_arg}")),
        "the startup line says the key file was created: {line}"
    );
    let first = served_public_key(&url_of(&line)).await;
    stop(child);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the key file is private");
    }
    let secret = std::fs::read_to_string(&path).unwrap();
    let seed: [u8; 32] = hex::decode(secret.trim()).unwrap().try_into().unwrap();
    let public = iicp_client::token::DirectorySigningKey::from_seed(seed)
        .public_key()
        .to_hex();
    assert_eq!(first, public, "the served key is the file's key");
    assert!(
        line.ends_with(&format!("public key {public}")),
        "the public key is logged: {line}"
    );
    assert!(!line.contains(secret.trim()), "the secret is never logged");

    // Restart, naming the file through the environment this time.
    let (child, _lines, line) = start_directory(&[], &[("IICP_DIRECTORY_SIGNING_KEY", &path)]);
    assert!(
        line.contains(&format!("loaded from {path_arg}")),
        "the startup line says the key was loaded: {line}"
    );
    assert!(!line.contains(secret.trim()), "the secret is never logged");
    assert_eq!(
        served_public_key(&url_of(&line)).await,
        first,
        "the same key after a restart"
    );
    stop(child);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        secret,
        "loading does not rewrite the file"
    );
}

#[test]
fn help_explains_the_signing_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_iicp-node"))
        .args(["directory", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "--signing-key <FILE>",
        "IICP_DIRECTORY_SIGNING_KEY",
        "0600",
        "/v1/directory-key",
        "generated in memory",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}: {help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_token_issuance_without_the_token_or_the_bearer() {
    let (child, lines, line) = start_directory(&["--skip-liveness-check"], &[]);
    let url = url_of(&line);
    let http = reqwest::Client::new();
    let mut acks = Vec::new();
    for port in [1, 2] {
        let resp = http
            .post(format!("{url}/v1/register"))
            .json(&serde_json::json!({
                "endpoint": format!("http://127.0.0.1:{port}"),
                "region": "eu-central",
                "capabilities": [{"intent": "urn:iicp:intent:llm:chat:v1", "models": ["m"]}],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        acks.push(resp.json::<serde_json::Value>().await.unwrap());
    }
    let bearer = acks[0]["node_token"].as_str().unwrap().to_owned();
    let resp = http
        .post(format!("{url}/v1/consumer-token"))
        .bearer_auth(&bearer)
        .json(&serde_json::json!({"target_node_id": acks[1]["node_id"], "intent": "*"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: serde_json::Value = resp.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    let public = served_public_key(&url).await;
    let claims = iicp_client::token::DirectoryPublicKey::from_hex(&public)
        .unwrap()
        .verify_consumer_token(&token)
        .unwrap();
    assert_eq!(claims.sub, acks[0]["node_id"].as_str().unwrap());
    stop(child);

    let logs: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        logs.iter().any(|l| l.contains("consumer token issued")),
        "issuance is logged: {logs:?}"
    );
    let (_, signature) = token.split_once('.').unwrap();
    for l in std::iter::once(&line).chain(&logs) {
        assert!(!l.contains(&bearer), "the bearer reached the log: {l}");
        assert!(!l.contains(signature), "the token reached the log: {l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_takes_its_proxy_probe_and_capacity_limits_from_flags_and_env() {
    let (child, _lines, line) = start_directory(
        &[
            "--skip-liveness-check",
            "--trusted-proxy",
            "127.0.0.1",
            "--max-nodes",
            "1",
            "--evict-after-secs",
            "120",
        ],
        &[(
            "IICP_PROBE_ALLOW",
            std::path::Path::new("10.0.0.0/8,192.168.0.0/16"),
        )],
    );
    assert!(line.contains("trusted proxies 127.0.0.1/32"), "{line}");
    assert!(
        line.contains("at most 1 nodes, evicted after 120 s"),
        "{line}"
    );
    let url = url_of(&line);
    let http = reqwest::Client::new();
    let body = serde_json::json!({
        "endpoint": "http://10.0.0.9:1",
        "capabilities": [{"intent": "urn:iicp:intent:llm:chat:v1", "models": ["m"]}],
    });
    let register = || {
        http.post(format!("{url}/v1/register"))
            .header("x-forwarded-for", "198.51.100.7")
            .json(&body)
            .send()
    };
    let first: serde_json::Value = register().await.unwrap().json().await.unwrap();
    assert_eq!(first["observed_source_ip"], "198.51.100.7", "{first}");
    let full = register().await.unwrap();
    assert_eq!(full.status(), 503);
    assert_eq!(full.headers()["retry-after"], "60");
    let full: serde_json::Value = full.json().await.unwrap();
    assert_eq!(full["error"]["code"], "directory_full");
    stop(child);

    let out = Command::new(env!("CARGO_BIN_EXE_iicp-node"))
        .args(["directory", "--trusted-proxy", "proxy.example.com"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a name is not a CIDR range");
    assert!(String::from_utf8_lossy(&out.stderr).contains("CIDR"));
}

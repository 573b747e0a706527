//! The real `iicp-node directory` binary: it logs where it listens, answers
//! health and discover, and exits 0 on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn directory_binary_starts_logs_its_address_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_iicp-node"))
        .args(["directory", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
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

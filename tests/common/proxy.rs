//! The real `iicp-node proxy` binary in front of a local mesh: an
//! in-process directory ([`Harness`]), one `iicp-node serve` node
//! ([`NodeProcess`], the echo demo backend unless told otherwise) and the
//! gateway, each on a free loopback port.
//!
//! ```ignore
//! // Multi-threaded: the directory answers while the binaries start.
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn t() {
//!     let mesh = ProxyMesh::echo(&[], &["--allow-plaintext"]).await;
//!     let reply = reqwest::Client::new()
//!         .post(format!("{}/v1/chat/completions", mesh.proxy.base()))
//!         .json(&json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}))
//!         .send().await.unwrap();
//! }
//! ```

use super::Harness;
use super::node_bin::{NodeProcess, free_port, sigterm};
use iicp_client::directory::DirectoryConfig;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// A running `iicp-node proxy` on 127.0.0.1.
pub struct ProxyProcess {
    child: Child,
    pub port: u16,
    /// Every stderr line so far (a reader thread keeps adding).
    lines: Arc<Mutex<Vec<String>>>,
}

impl ProxyProcess {
    /// Starts `iicp-node proxy --port P --directory-url URL <args>` and
    /// waits for its "listening" line (panics with its output when it
    /// exits first).
    pub fn start(directory_url: &str, args: &[&str]) -> Self {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_iicp-node"))
            .args(["proxy", "--port", &port.to_string()])
            .args(["--directory-url", directory_url])
            .args(args)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("binary starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let sink = lines.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("iicp-node proxy listening on") {
                    let _ = ready_tx.send(());
                }
                sink.lock().unwrap().push(line);
            }
        });
        if ready_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .is_err()
        {
            let _ = child.kill();
            panic!(
                "the proxy did not start:\n{}",
                lines.lock().unwrap().join("\n")
            );
        }
        Self { child, port, lines }
    }

    /// `http://127.0.0.1:PORT` (the Anthropic and Ollama base URL).
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT/v1` (the OpenAI base URL).
    pub fn openai_base(&self) -> String {
        format!("{}/v1", self.base())
    }

    /// Every stderr line so far.
    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// SIGTERM, then the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        sigterm(&self.child);
        self.child.wait().unwrap().code()
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Directory, one node, the proxy.
pub struct ProxyMesh {
    pub directory: Harness,
    pub node: NodeProcess,
    pub proxy: ProxyProcess,
}

impl ProxyMesh {
    /// A node with the echo demo backend (`echo: <last user message>`,
    /// model `echo`) plus `node_args`, and the proxy with `proxy_args`.
    pub async fn echo(node_args: &[&str], proxy_args: &[&str]) -> Self {
        let mut args = vec!["--backend-type", "echo"];
        args.extend_from_slice(node_args);
        Self::start(&args, proxy_args).await
    }

    /// A node started with `node_args` (name the backend there) and the
    /// proxy with `proxy_args`, both pointed at a fresh directory.
    pub async fn start(node_args: &[&str], proxy_args: &[&str]) -> Self {
        Self::start_with(DirectoryConfig::default(), node_args, proxy_args).await
    }

    /// [`start`](Self::start) with a directory configured as given.
    pub async fn start_with(
        config: DirectoryConfig,
        node_args: &[&str],
        proxy_args: &[&str],
    ) -> Self {
        let directory = Harness::start(config).await;
        let base = directory.base.clone();
        let mut args = vec!["--directory-url", base.as_str()];
        args.extend_from_slice(node_args);
        let node = tokio::task::spawn_blocking({
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            move || NodeProcess::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap();
        let mut intents: Vec<&str> = node_args
            .windows(2)
            .filter(|w| w[0] == "--intent")
            .map(|w| w[1])
            .collect();
        if intents.is_empty() {
            intents.push("urn:iicp:intent:llm:chat:v1");
        }
        for intent in intents {
            directory.wait_listed(intent).await;
        }
        let proxy = tokio::task::spawn_blocking({
            let args: Vec<String> = proxy_args.iter().map(|s| s.to_string()).collect();
            move || ProxyProcess::start(&base, &args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap();
        Self {
            directory,
            node,
            proxy,
        }
    }
}

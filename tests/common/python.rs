//! The other side of the Python interop tests (tests/interop_python*.rs): the
//! venv's python from `IICP_INTEROP_PYTHON` ([`Python`]), a script of
//! `scripts/interop/` (or any command) run in the background with its
//! stdout and stderr lines collected ([`Spawned`], killed when dropped), its
//! `{"event": "listening", …}` line waited for, and bounded waits that show
//! the process's output when they time out.
//!
//! ```ignore
//! let mut py = Python::from_env().spawn("py_node.py", &["--directory-url", &base]);
//! let listening = py.listening(Duration::from_secs(30)).await;
//! py.wait_for("a task", Duration::from_secs(5), async || {
//!     py.out.json().into_iter().find(|e| e["event"] == "task")
//! })
//! .await;
//! ```

use iicp_client::{ChatMessage, ClientConfig, IicpClient};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why the interop tests are `#[ignore]`d.
pub const IGNORE: &str = "needs the Python SDK venv (scripts/interop); set IICP_INTEROP_PYTHON";

/// The python of the interop venv (`scripts/interop/requirements.txt`).
pub struct Python(PathBuf);

impl Python {
    /// `IICP_INTEROP_PYTHON`; panics when it is not set. Call it before
    /// spawning anything else, so nothing is left running when it fails.
    pub fn from_env() -> Self {
        match std::env::var_os("IICP_INTEROP_PYTHON") {
            Some(p) if !p.is_empty() => Self(PathBuf::from(p)),
            _ => panic!(
                "IICP_INTEROP_PYTHON is not set: point it at the python of a venv with \
                 scripts/interop/requirements.txt installed ({IGNORE})"
            ),
        }
    }

    /// `python scripts/interop/<script> <args>`, with loopback nodes allowed
    /// and unbuffered output.
    pub fn spawn(&self, script: &str, args: &[&str]) -> Spawned {
        let mut cmd = Command::new(&self.0);
        cmd.arg(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("scripts/interop")
                .join(script),
        )
        .args(args)
        .env("IICP_PROXY_ALLOW_LOOPBACK_NODES", "1")
        .env("PYTHONUNBUFFERED", "1");
        Spawned::start(script, cmd)
    }
}

/// Lines a child writes, collected by a reader thread.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    pub fn collect(stream: impl Read + Send + 'static) -> Self {
        let lines = Self::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                sink.0.lock().unwrap().push(line);
            }
        });
        lines
    }

    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn text(&self) -> String {
        self.all().join("\n")
    }

    /// The lines that are JSON objects.
    pub fn json(&self) -> Vec<Value> {
        self.all()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// The first JSON line whose `event` is `name`.
    pub fn event(&self, name: &str) -> Option<Value> {
        self.json().into_iter().find(|e| e["event"] == name)
    }
}

/// A background process (stdin closed, stdout and stderr collected), killed
/// when dropped if it still runs (a failed assertion included).
pub struct Spawned {
    name: String,
    pub child: Child,
    pub out: Lines,
    pub err: Lines,
}

impl Spawned {
    /// Starts `cmd`; `name` labels its output in failure messages.
    pub fn start(name: &str, mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let out = Lines::collect(child.stdout.take().unwrap());
        let err = Lines::collect(child.stderr.take().unwrap());
        Self {
            name: name.to_owned(),
            child,
            out,
            err,
        }
    }

    /// Its output so far, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "{} stdout:\n{}\nstderr:\n{}",
            self.name,
            self.out.text(),
            self.err.text()
        )
    }

    /// Polls `check` until it gives `Some`, for at most `limit`; the
    /// timeout's panic shows this process's output.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        check: impl AsyncFnMut() -> Option<T>,
    ) -> T {
        wait_for(what, limit, || self.logs(), check).await
    }

    /// Waits for its `{"event": "listening", …}` line on stdout and returns
    /// it; panics when the process exits first or `limit` passes.
    pub async fn listening(&mut self, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(event) = self.out.event("listening") {
                return event;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "{} exited ({status}) before listening\n{}",
                    self.name,
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen within {limit:?}\n{}",
                self.name,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL (its connections break as in a crash), and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `sig` (`-TERM`, `-INT`); panics when `kill` fails.
    pub fn signal(&self, sig: &str) {
        super::node_bin::signal(&self.child, sig);
    }

    /// Waits (bounded) for the exit; kills it and panics if it does not.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not exit within {limit:?}\n{}",
                    self.name,
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Our `IicpClient` (default settings, so the task goes sealed with IICP-CX;
/// loopback nodes allowed) finds a chat node through `directory_url` and
/// says `text`; the answer must be the Python echo handler's (py_node.py):
/// `python echo: <text>` from model `py-echo`. A failed chat panics with
/// `py`'s output.
pub async fn chat_with_python_echo(directory_url: &str, text: &str, py: &Spawned) {
    let client = IicpClient::builder(ClientConfig {
        directory_url: directory_url.to_owned(),
        timeout_ms: 20_000,
        ..Default::default()
    })
    .allow_private_nodes(true)
    .build()
    .expect("client");
    let reply = client
        .chat(vec![ChatMessage::user(text)], None)
        .await
        .unwrap_or_else(|e| panic!("chat with the Python node failed: {e}\n{}", py.logs()));
    assert_eq!(reply.text(), format!("python echo: {text}"));
    assert_eq!(reply.model, "py-echo");
}

/// The nodes `directory_url` lists for the chat intent (discover, up to 50;
/// none when it does not answer with a list).
pub async fn discovered(directory_url: &str) -> Vec<Value> {
    let url = format!(
        "{directory_url}/v1/discover?intent={}&limit=50",
        super::CHAT
    );
    let body: Value = reqwest::get(&url)
        .await
        .expect("discover answers")
        .json()
        .await
        .expect("discover is JSON");
    body["nodes"].as_array().cloned().unwrap_or_default()
}

/// Polls `check` every 100 ms until it gives `Some`, for at most `limit`;
/// the timeout's panic names `what` and shows `context()`.
pub async fn wait_for<T>(
    what: &str,
    limit: Duration,
    context: impl Fn() -> String,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

//! A real llama.cpp server (llama-cpp-python's, `scripts/llama-server.sh`)
//! on a free loopback port, running the tiny random model the script
//! generates ([`MODEL`]); stopped on drop.
//!
//! Tests that use it are `#[ignore]`d: the server needs
//! `bash scripts/llama-server.sh setup` once (CI runs it before the tests).

use iicp_client::backends::{self, Backend, BackendKind, BackendOptions};
use std::process::Command;
use std::sync::Arc;

/// The model alias the server serves.
pub const MODEL: &str = "tiny-random-llama";

/// The tiny model's embedding width.
pub const EMBEDDING_WIDTH: usize = 64;

/// A llama.cpp server of our own; stopped on drop.
pub struct LlamaServer {
    /// `http://127.0.0.1:PORT/v1`.
    pub url: String,
    pub pid: String,
}

fn script() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/llama-server.sh")
}

impl LlamaServer {
    /// Starts a server (panics with the script's output when it does not).
    pub fn start() -> Self {
        let out = Command::new("bash")
            .args([script(), "start"])
            .output()
            .expect("bash runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "llama server did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let var = |name: &str| {
            stdout
                .split(';')
                .find_map(|part| part.trim().strip_prefix(&format!("export {name}=")))
                .unwrap_or_else(|| panic!("{name} missing in `{stdout}`"))
                .trim()
                .to_owned()
        };
        Self {
            url: var("IICP_TEST_LLAMA_URL"),
            pid: var("IICP_TEST_LLAMA_PID"),
        }
    }

    /// Stops the server (again on drop; a second stop does nothing).
    pub fn stop(&self) {
        let _ = Command::new("bash")
            .args([script(), "stop", &self.pid])
            .output();
    }

    /// A backend of `kind` in front of this server.
    pub fn backend(&self, kind: BackendKind, model: Option<&str>) -> Arc<dyn Backend> {
        backends::build(
            kind,
            BackendOptions {
                base_url: Some(self.url.clone()),
                model: model.map(str::to_owned),
                ..Default::default()
            },
        )
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        self.stop();
    }
}

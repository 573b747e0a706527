//! The real `iicp-node serve` binary as a child process: started on a
//! loopback port with its own `IICP_HOME`, read up to its startup line, and
//! stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Command, Stdio};

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let spare = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    spare.local_addr().unwrap().port()
}

/// Sends SIGTERM to `child` (panics when `kill` fails).
pub fn sigterm(child: &Child) {
    signal(child, "-TERM");
}

/// Sends `sig` (`-TERM`, `-INT`, …) to `child` (panics when `kill` fails).
pub fn signal(child: &Child, sig: &str) {
    assert!(
        Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap()
            .success(),
        "kill {sig} {}",
        child.id()
    );
}

/// `iicp-node serve --host 127.0.0.1 --port <port> <args>` logging at
/// `info` with `IICP_HOME` at `home`, not started (to run under
/// [`Watched`](super::watch::Watched) or `run_bounded`).
pub fn serve_command(home: &std::path::Path, port: u16, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iicp-node"));
    cmd.args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(args)
        .env("RUST_LOG", "info")
        .env("IICP_HOME", home);
    cmd
}

/// `iicp-node directory --listen 127.0.0.1:<port> <args>` logging at
/// `info`, not started.
pub fn directory_command(port: u16, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iicp-node"));
    cmd.args(["directory", "--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("IICP_DIRECTORY_SIGNING_KEY");
    cmd
}

/// A real `iicp-node directory` on 127.0.0.1:`port` with `args`, in
/// memory unless `args` says `--db`; returns once it listens.
pub fn directory_process(port: u16, args: &[&str]) -> super::watch::Watched {
    let mut dir = super::watch::Watched::start(directory_command(port, args));
    dir.wait_for("listening on", std::time::Duration::from_secs(30));
    dir
}

/// A running `iicp-node serve` on 127.0.0.1:`port` with its own IICP_HOME;
/// its log is audited for leaks when it ends ([`super::logs::assert_no_leaks`]).
pub struct NodeProcess {
    child: Child,
    pub port: u16,
    /// stderr lines after the startup line.
    lines: std::io::Lines<BufReader<ChildStderr>>,
    /// stderr lines up to and including the startup line.
    seen: Vec<String>,
    _home: tempfile::TempDir,
}

impl NodeProcess {
    /// Starts `iicp-node serve --host 127.0.0.1 --port P <args>` and waits
    /// for its startup line.
    pub fn start(args: &[&str]) -> Self {
        let port = free_port();
        let home = tempfile::tempdir().unwrap(); // removed afterwards
        let mut child = Command::new(env!("CARGO_BIN_EXE_iicp-node"))
            .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(args)
            .env("RUST_LOG", "info")
            .env("IICP_HOME", home.path())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("binary starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        loop {
            let l = lines.next().expect("a startup line").unwrap();
            seen.push(l.clone());
            if l.contains("iicp-node serving on") {
                break;
            }
        }
        Self {
            child,
            port,
            lines,
            seen,
            _home: home,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The line that announced it serves.
    pub fn startup_line(&self) -> &str {
        self.seen.last().unwrap()
    }

    /// SIGTERM, then the exit code and every stderr line.
    pub fn terminate(mut self) -> (Option<i32>, Vec<String>) {
        sigterm(&self.child);
        let code = self.child.wait().unwrap().code();
        let rest: Vec<String> = self.lines.by_ref().map_while(Result::ok).collect();
        self.seen.extend(rest);
        let lines = std::mem::take(&mut self.seen);
        super::logs::assert_no_leaks("iicp-node serve", &lines.join("\n"));
        (code, lines)
    }
}

impl Drop for NodeProcess {
    /// A node a failed test left running is stopped too; what it logged
    /// is audited for leaks (unless the test is failing already or
    /// [`terminate`](Self::terminate) did it).
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if !self.seen.is_empty() && !std::thread::panicking() {
            let rest: Vec<String> = self.lines.by_ref().map_while(Result::ok).collect();
            self.seen.extend(rest);
            super::logs::assert_no_leaks("iicp-node serve", &self.seen.join("\n"));
        }
    }
}

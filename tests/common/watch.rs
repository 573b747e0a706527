//! Processes a test must not wait on forever: [`run_bounded`] runs a
//! command to its end within a limit, [`Watched`] keeps a background
//! process's output lines to wait on and count, SIGKILLs it on demand, and
//! kills it when dropped (also when the test fails). [`in_ns`] prefixes a command with `ip netns exec`;
//! [`rss_kib`] reads a process's resident memory.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `program` run inside network namespace `ns` (`ip netns exec` execs it,
/// so the child's pid is the program's).
pub fn in_ns(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(program);
    c
}

/// Resident memory of process `pid` in KiB (`VmRSS`; 0 when it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs `cmd` to its end, killing it and panicking when it takes longer
/// than `limit` (a hang is a failure, not a wait).
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("command starts");
    let stdout = reader(child.stdout.take().unwrap());
    let stderr = reader(child.stderr.take().unwrap());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn reader(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = r.read_to_end(&mut all);
        all
    })
}

/// A background process: its stdout and stderr lines are collected;
/// dropping it kills it (SIGKILL) and reaps it. The output of an
/// `iicp-node` process is then audited for leaked secrets
/// ([`super::logs::assert_no_leaks`]) unless the test is failing already.
pub struct Watched {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    /// What to call the process in the audit; `None`: not audited.
    audited: Option<String>,
}

/// Whether `cmd` runs the `iicp-node` binary (directly or through `ip
/// netns exec`, `unshare`, …): the name it goes by in the audit.
fn iicp_node_run(cmd: &Command) -> Option<String> {
    let bin = std::ffi::OsStr::new(env!("CARGO_BIN_EXE_iicp-node"));
    let mut words = std::iter::once(cmd.get_program()).chain(cmd.get_args());
    words.any(|w| w == bin).then(|| {
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        format!("iicp-node {}", args.join(" "))
    })
}

impl Watched {
    /// Starts `cmd` with its output collected line by line.
    pub fn start(mut cmd: Command) -> Self {
        let audited = iicp_node_run(&cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("process starts");
        let (tx, lines) = mpsc::channel();
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Self {
            child,
            lines,
            seen: Vec::new(),
            audited,
        }
    }

    /// Waits for a line containing `needle` (panics with what was seen
    /// after `limit`, or when the process's output ends first).
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no line with {needle:?} ({e:?}); seen:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Every line read so far (plus those waiting now).
    pub fn lines(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// Every line it printed, once it has ended (waits up to 5 s for the
    /// readers to reach the end of its output).
    pub fn output(&mut self) -> Vec<String> {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        self.seen.clone()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many lines read so far contain `needle`.
    pub fn count(&mut self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }

    /// SIGKILL, as a crash would end it, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `limit` for the exit; the exit code,
    /// or a panic (after SIGKILL) when it did not exit in time.
    pub fn terminate(&mut self, limit: Duration) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "no exit within {limit:?} of SIGTERM; seen:\n{}",
                    self.lines().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits up to `limit` for the exit (then SIGKILL).
    pub fn stop(&mut self, limit: Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(what) = self.audited.take()
            && !std::thread::panicking()
        {
            super::logs::assert_no_leaks(&what, &self.output().join("\n"));
        }
    }
}

//! A home network built by `scripts/netlab.sh` (WAN, router and LAN network
//! namespaces; needs root), torn down when the [`Lab`] is dropped, and
//! processes inside it that are killed when their [`Proc`] is dropped, also
//! when a test fails. Only addresses inside the namespaces are used.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The repository's `scripts/` directory.
pub fn scripts() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")
}

/// Whether this runs as root (the labs need it); tests skip with a note
/// otherwise.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A lab `<prefix>wan`, `<prefix>rtr`, `<prefix>lan` with WAN prefix
/// 11.77.`n`.0/24 (see scripts/netlab.sh). Dropping it stops every process
/// in its namespaces and deletes them.
pub struct Lab {
    pub prefix: String,
    /// Internet side: directory, consumers.
    pub wan: String,
    /// The router (nftables NAT; miniupnpd when `upnp` was on).
    pub rtr: String,
    /// The home host.
    pub lan: String,
    /// The WAN host's address, 11.77.n.2.
    pub wan_ip: String,
    /// The router's WAN address, 11.77.n.1.
    pub router_wan_ip: String,
    /// The router's LAN address.
    pub router_lan_ip: &'static str,
    /// The home host's address.
    pub lan_ip: &'static str,
}

impl Lab {
    /// Installs the tools when missing and builds the lab (miniupnpd
    /// running when `upnp`). Panics when that fails.
    pub fn up(prefix: &str, n: u8, upnp: bool) -> Self {
        netlab(&["install"]);
        let lab = Self {
            prefix: prefix.to_owned(),
            wan: format!("{prefix}wan"),
            rtr: format!("{prefix}rtr"),
            lan: format!("{prefix}lan"),
            wan_ip: format!("11.77.{n}.2"),
            router_wan_ip: format!("11.77.{n}.1"),
            router_lan_ip: "192.168.77.1",
            lan_ip: "192.168.77.2",
        };
        // From here on, a failure still tears down what was built.
        netlab(&[
            "up",
            prefix,
            &n.to_string(),
            if upnp { "on" } else { "off" },
        ]);
        lab
    }

    /// `program args…` inside namespace `ns`.
    pub fn command(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(scripts().join("netlab.sh"))
            .args(["down", &self.prefix])
            .status();
    }
}

fn netlab(args: &[&str]) {
    let out = Command::new("bash")
        .arg(scripts().join("netlab.sh"))
        .args(args)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "netlab.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// A process started in a lab: its stdout and stderr lines are collected;
/// dropping it kills it (SIGKILL) and reaps it.
pub struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    /// Starts `cmd` with its output collected line by line.
    pub fn start(mut cmd: Command) -> Self {
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

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

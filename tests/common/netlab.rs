//! A home network for one test (`scripts/netlab.sh`): WAN, router (nftables
//! NAT and, when asked, a real miniupnpd IGD) and LAN namespaces, with the
//! `iicp-node` binary started inside them. Needs root and the tools
//! `netlab.sh install` brings; the tests that use it are `#[ignore]` and run
//! by `.ci/run`. Dropping the [`Lab`] kills what it started and deletes the
//! namespaces, also when the test fails.

use super::node_bin::sigterm;
use super::watch::{in_ns, run_bounded};
use std::io::Read;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/netlab.sh");
const BIN: &str = env!("CARGO_BIN_EXE_iicp-node");
/// The longest a command run to its end in a namespace may take.
const EXEC_LIMIT: Duration = Duration::from_secs(120);

/// The namespaces of one lab and their addresses.
pub struct Lab {
    prefix: String,
    /// The WAN prefix number (`11.77.<n>.0/24`).
    pub n: u8,
    pub wan: String,
    pub router: String,
    pub lan: String,
    /// The WAN host (directory, consumers).
    pub wan_ip: String,
    /// The router's address on the WAN.
    pub router_wan_ip: String,
    /// The node's LAN address.
    pub lan_ip: String,
    children: Vec<Child>,
    /// Log files of the `iicp-node` processes, audited for leaks on drop.
    node_logs: Vec<std::path::PathBuf>,
    home: tempfile::TempDir,
    /// The `/etc/netns/<ns>` folders [`Lab::resolv_conf`] made.
    netns_etc: Vec<std::path::PathBuf>,
}

/// A process started in a namespace, its output collected in files.
pub struct Proc {
    index: usize,
    log: std::path::PathBuf,
}

impl Lab {
    /// Builds the lab `prefix` with WAN prefix `11.77.<n>`; `upnp` starts
    /// miniupnpd.
    pub fn up(prefix: &str, n: u8, upnp: bool) -> Self {
        Self::up_with(prefix, n, upnp, "11.77")
    }

    /// [`up`](Self::up) with the WAN prefix `<wan>.<n>.0/24` (`100.64` puts
    /// the router in carrier-grade NAT space).
    pub fn up_with(prefix: &str, n: u8, upnp: bool, wan: &str) -> Self {
        let run = |args: &[&str]| {
            let out = Command::new("bash")
                .arg(SCRIPT)
                .args(args)
                .output()
                .expect("bash runs");
            assert!(
                out.status.success(),
                "netlab.sh {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&["install"]);
        run(&[
            "up",
            prefix,
            &n.to_string(),
            if upnp { "on" } else { "off" },
            wan,
        ]);
        Self {
            prefix: prefix.to_owned(),
            n,
            wan: format!("{prefix}wan"),
            router: format!("{prefix}rtr"),
            lan: format!("{prefix}lan"),
            wan_ip: format!("{wan}.{n}.2"),
            router_wan_ip: format!("{wan}.{n}.1"),
            lan_ip: "192.168.77.2".into(),
            children: Vec::new(),
            node_logs: Vec::new(),
            home: tempfile::tempdir().unwrap(),
            netns_etc: Vec::new(),
        }
    }

    /// Runs `program args` in namespace `ns` to completion.
    /// A command that hangs fails the test after [`EXEC_LIMIT`].
    pub fn exec(&self, ns: &str, program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = in_ns(ns, program);
        cmd.args(args).envs(env.iter().copied());
        run_bounded(cmd, EXEC_LIMIT)
    }

    /// Runs `iicp-node args` in `ns` to completion (stdout, stderr, status).
    pub fn node_cmd(&self, ns: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let home = self.home.path().to_string_lossy().into_owned();
        let mut all = vec![("IICP_HOME", home.as_str())];
        all.extend_from_slice(env);
        self.exec(ns, BIN, args, &all)
    }

    /// Starts `iicp-node args` in `ns` in the background.
    pub fn spawn_node(
        &mut self,
        ns: &str,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Proc {
        let home = self.home.path().join(name);
        std::fs::create_dir_all(&home).unwrap();
        let home = home.to_string_lossy().into_owned();
        let mut all = vec![("RUST_LOG", "info"), ("IICP_HOME", home.as_str())];
        all.extend_from_slice(env);
        self.spawn(ns, name, BIN, args, &all)
    }

    /// Starts `program args` in `ns` in the background, its stderr (and
    /// stdout) in the log file `name.log`.
    pub fn spawn(
        &mut self,
        ns: &str,
        name: &str,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Proc {
        let log = self.home.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = in_ns(ns, program)
            .args(args)
            .envs(env.iter().copied())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("{program} starts: {e}"));
        self.children.push(child);
        if program == BIN {
            self.node_logs.push(log.clone());
        }
        Proc {
            index: self.children.len() - 1,
            log,
        }
    }

    /// A file path in the lab's own temporary directory.
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.home.path().join(name)
    }

    /// Kills the process (SIGKILL: no goodbye to anyone) and reaps it.
    pub fn kill(&mut self, p: &Proc) {
        let child = &mut self.children[p.index];
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts `iicp-node serve --backend-type echo --directory-url
    /// <directory> <extra>` on the LAN host, as a host (not a container),
    /// and waits (bounded) for its startup line.
    pub fn serve_on_lan(&mut self, directory: &str, extra: &[&str]) -> Proc {
        let mut args = vec![
            "serve",
            "--backend-type",
            "echo",
            "--directory-url",
            directory,
        ];
        args.extend_from_slice(extra);
        let lan = self.lan.clone();
        let node = self.spawn_node(&lan, "node", &args, &[("IICP_CONTAINER", "no")]);
        self.wait_for_log(&node, "iicp-node serving on", Duration::from_secs(45));
        node
    }

    /// Starts a directory on the WAN host, port 8020; its API base URL.
    pub fn start_directory(&mut self) -> String {
        let listen = format!("{}:8020", self.wan_ip);
        let wan = self.wan.clone();
        let p = self.spawn_node(&wan, "directory", &["directory", "--listen", &listen], &[]);
        self.wait_for_log(&p, "listening", Duration::from_secs(20));
        format!("http://{listen}/api")
    }

    /// The process's log so far.
    pub fn log(&self, p: &Proc) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&p.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Waits (bounded) until the log contains `needle`; panics with the log.
    pub fn wait_for_log(&self, p: &Proc, needle: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let text = self.log(p);
            if text.contains(needle) {
                return text;
            }
            assert!(
                start.elapsed() < limit,
                "`{needle}` not in the log within {limit:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM to the process and waits (bounded) for it to exit;
    /// its exit code.
    pub fn terminate(&mut self, p: &Proc) -> Option<i32> {
        let child = &mut self.children[p.index];
        // `ip netns exec` execs the program, so the pid is the node's.
        sigterm(child);
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The mappings miniupnpd holds, as `upnpc -l` lists them from the LAN.
    pub fn mappings(&self) -> Vec<String> {
        let out = self.exec(&self.lan, "upnpc", &["-l"], &[]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("TCP") && l.contains("->"))
            .map(str::to_owned)
            .collect()
    }

    /// The endpoints the directory lists for the chat intent.
    pub fn discovered(&self, directory: &str) -> Vec<String> {
        self.discovered_nodes(directory)
            .iter()
            .filter_map(|n| n["endpoint"].as_str().map(str::to_owned))
            .collect()
    }

    /// The node objects the directory lists for the chat intent, asked
    /// from the WAN host.
    pub fn discovered_nodes(&self, directory: &str) -> Vec<serde_json::Value> {
        let url = format!("{directory}/v1/discover?intent=urn:iicp:intent:llm:chat:v1");
        let out = self.exec(&self.wan, "curl", &["-s", "-m", "5", &url], &[]);
        let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        body["nodes"].as_array().cloned().unwrap_or_default()
    }

    /// Waits (bounded) until the directory lists exactly `endpoint`.
    pub fn wait_listed(&self, directory: &str, endpoint: &str) {
        let start = Instant::now();
        loop {
            let listed = self.discovered(directory);
            if listed == [endpoint] {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the directory lists {listed:?}, not [{endpoint}]"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Points the system resolver of namespace `ns` at `nameserver` (an
    /// IPv4 address, port 53): `ip netns exec` bind-mounts
    /// `/etc/netns/<ns>/resolv.conf` over `/etc/resolv.conf` for every
    /// program it starts from now on. The folder is removed when the lab is
    /// dropped (and by `netlab.sh down`, for a crashed run's leftovers).
    pub fn resolv_conf(&mut self, ns: &str, nameserver: &str) {
        let dir = std::path::Path::new("/etc/netns").join(ns);
        std::fs::create_dir_all(&dir).unwrap();
        // One attempt, short timeout: a server that does not answer fails
        // the lookup instead of stalling the test for glibc's 5 s x 2.
        std::fs::write(
            dir.join("resolv.conf"),
            format!("nameserver {nameserver}\noptions timeout:2 attempts:1\n"),
        )
        .unwrap();
        self.netns_etc.push(dir);
    }

    /// The router's WAN address becomes `11.77.<m>.1` (`netlab.sh readdress`).
    pub fn readdress(&mut self, m: u8) {
        let out = Command::new("bash")
            .arg(SCRIPT)
            .args([
                "readdress",
                &self.prefix,
                &self.n.to_string(),
                &m.to_string(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.router_wan_ip = format!("11.77.{m}.1");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for dir in &self.netns_etc {
            let _ = std::fs::remove_dir_all(dir);
        }
        let _ = Command::new("bash")
            .arg(SCRIPT)
            .args(["down", &self.prefix])
            .output();
        if !std::thread::panicking() {
            for log in &self.node_logs {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                super::logs::assert_no_leaks(&log.display().to_string(), &text);
            }
        }
    }
}

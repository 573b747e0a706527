//! Scripted HTTP peers as separate processes (python3, no packages), so a
//! test can SIGKILL them and every connection they hold breaks as in a
//! crash (an in-process server's kept-alive connections would outlive it):
//! an OpenAI-style chat backend that stalls some tasks, a directory that
//! answers 500 to everything, and a server that accepts connections and
//! never answers. Each prints `{"event": "listening"}` once bound, then one
//! line per request (`task`, `hit`, `accepted`) for the test to count.

use super::python::Spawned;
use std::process::Command;
use std::time::Duration;

/// An OpenAI chat server on `argv[1]`. `argv[2]` says which tasks stall
/// for 120 s: `slow` those whose last message starts with "slow", `first`
/// the first task it gets. Every other task is answered at once with
/// "fine". Prints `task` per POST.
const CHAT_BACKEND: &str = r#"
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = sys.argv[2]
lock = threading.Lock()
seen = [0]

class Chat(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def send_json(self, value):
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.send_json({"object": "list", "data": [{"id": "m", "object": "model"}]})
    def do_POST(self):
        task = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with lock:
            seen[0] += 1
            n = seen[0]
        print("task", flush=True)
        text = task["messages"][-1]["content"]
        if (MODE == "slow" and text.startswith("slow")) or (MODE == "first" and n == 1):
            time.sleep(120)
        self.send_json({"id": "c", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "fine"}}]})

ThreadingHTTPServer.allow_reuse_address = True
server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Chat)
print(json.dumps({"event": "listening"}), flush=True)
server.serve_forever()
"#;

/// Answers every request with 500 and an IICP error body; prints `hit`.
const FAILING: &str = r#"
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Failing(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def fail(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        print("hit", flush=True)
        body = json.dumps({"error": {"code": "internal", "message": "scripted failure"}}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = do_DELETE = fail

ThreadingHTTPServer.allow_reuse_address = True
server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Failing)
print(json.dumps({"event": "listening"}), flush=True)
server.serve_forever()
"#;

/// Accepts every connection and holds it open without reading or
/// answering; prints `accepted` per connection.
const SILENT: &str = r#"
import json, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
print(json.dumps({"event": "listening"}), flush=True)
held = []
while True:
    conn, _ = s.accept()
    held.append(conn)
    print("accepted", flush=True)
"#;

/// Which tasks a [`chat_backend`] stalls (for 120 s).
#[derive(Debug, Clone, Copy)]
pub enum Stall {
    /// Tasks whose last message starts with "slow".
    SlowPrefix,
    /// The first task it receives, whatever it says.
    FirstTask,
}

async fn start(name: &str, script: &str, args: &[&str]) -> Spawned {
    let mut cmd = Command::new("python3");
    cmd.args(["-u", "-c", script]).args(args);
    let mut spawned = Spawned::start(name, cmd);
    spawned.listening(Duration::from_secs(20)).await;
    spawned
}

/// A chat backend on `port`, listening when this returns.
pub async fn chat_backend(port: u16, stall: Stall) -> Spawned {
    let mode = match stall {
        Stall::SlowPrefix => "slow",
        Stall::FirstTask => "first",
    };
    start("chat backend", CHAT_BACKEND, &[&port.to_string(), mode]).await
}

/// A directory stand-in on `port` answering 500 to everything.
pub async fn failing_directory(port: u16) -> Spawned {
    start("failing directory", FAILING, &[&port.to_string()]).await
}

/// A server on `port` that accepts connections and never answers.
pub async fn silent_server(port: u16) -> Spawned {
    start("silent server", SILENT, &[&port.to_string()]).await
}

/// How many lines `spawned` printed that are exactly `word`.
pub fn printed(spawned: &Spawned, word: &str) -> usize {
    spawned
        .out
        .all()
        .iter()
        .filter(|l| l.as_str() == word)
        .count()
}

//! `iicp-node demo`, the README's first command: it starts a directory and
//! nodes, walks discover → select → submit, prints each step and exits 0.

use std::process::Command;

#[test]
fn demo_runs_a_whole_mesh_and_prints_the_reply() {
    let out = Command::new(env!("CARGO_BIN_EXE_iicp-node"))
        .args([
            "demo",
            "--nodes",
            "2",
            "--backend-type",
            "echo",
            "--prompt",
            "Hello mesh",
        ])
        .env_remove("RUST_LOG")
        .output()
        .expect("binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "[1] Starting a local directory",
        "[3] Starting 2 provider node(s)",
        "2 node(s) in",
        "score",
        "served by node",
        "echo: Hello mesh",
        "Summary: 2 node(s) discovered",
    ] {
        assert!(
            stdout.contains(expected),
            "missing `{expected}` in:\n{stdout}"
        );
    }
    assert!(
        out.stderr.is_empty(),
        "no log noise by default: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

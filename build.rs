//! Link options for the `iicp-node` binary, nothing else.
//!
//! On Linux with glibc the binary is linked with packed relative
//! relocations (`-z pack-relative-relocs`, DT_RELR): a position-independent
//! executable's table of pointers to fix up at load shrinks from ~520 KiB to
//! ~7 KiB, and with it what the loader reads into memory when the node
//! starts (~0.8 MiB less idle RSS, BENCHMARKS.md). Building it needs GNU
//! ld 2.38+ or lld, and running it glibc 2.36+ (Debian 12, Ubuntu 22.10 and
//! later). Set `IICP_NODE_NO_RELR=1` when building for an older system.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=IICP_NODE_NO_RELR");
    if std::env::var_os("IICP_NODE_NO_RELR").is_some_and(|v| v == "1") {
        return;
    }
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bin=iicp-node=-Wl,-z,pack-relative-relocs");
    }
}

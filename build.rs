//! Link options for the release `iicp-node` (issue 17: idle memory). Nothing here touches
//! the library, debug builds or other targets.
//!
//! - `link/hot-text.ld` (made by `scripts/hot_text.sh`) lays the functions a node and a
//!   directory run out together ahead of the rest of `.text`, so an idle process keeps
//!   ~2 MiB of code resident instead of ~7 MiB.
//! - `-z pack-relative-relocs` stores the ~22 000 start-up relocations of a PIE as RELR
//!   instead of RELA: 10 KiB to read at start instead of 520 KiB.
//!
//! Both are used only where they were measured and are known to link: a release build for
//! x86_64 Linux with glibc, with the linker rustc picks itself (rust-lld since Rust 1.90;
//! a configured linker or any `link` flag in RUSTFLAGS turns both off), and RELR only when
//! the build machine's glibc (2.36 or later) can load it. `IICP_HOT_TEXT=0` turns both off.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=link/hot-text.ld");
    println!("cargo:rerun-if-env-changed=IICP_HOT_TEXT");
    if !wanted() {
        return;
    }
    let dir = env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let script = Path::new(&dir).join("link/hot-text.ld");
    if script.is_file() {
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
    if glibc_at_least(2, 36) && env::var("TARGET").ok() == env::var("HOST").ok() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// A release build for x86_64 Linux/glibc with rustc's own choice of linker (rust-lld).
fn wanted() -> bool {
    let var = |k: &str| env::var(k).unwrap_or_default();
    var("IICP_HOT_TEXT") != "0"
        && var("PROFILE") == "release"
        && var("TARGET") == "x86_64-unknown-linux-gnu"
        && env::var_os("RUSTC_LINKER").is_none()
        && !var("CARGO_ENCODED_RUSTFLAGS").contains("link")
        && rustc_minor().is_some_and(|minor| minor >= 90)
}

/// The minor version of the compiler building us (`rustc 1.95.0 (...)` gives 95).
fn rustc_minor() -> Option<u32> {
    let rustc = env::var_os("RUSTC")?;
    let out = Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.split_whitespace()
        .nth(1)?
        .split('.')
        .nth(1)?
        .parse()
        .ok()
}

/// Whether this machine's glibc (`getconf GNU_LIBC_VERSION`: `glibc 2.36`) is at least
/// `major.minor`; the binary built here runs here.
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (have_major, have_minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (have_major, have_minor) >= (major, minor)
}

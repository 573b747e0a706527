//! A program run in a private mount namespace (`unshare --mount`), after a
//! shell setup there: a read-only or full tmpfs, a read-only bind mount.
//! The mounts exist only for that process and vanish with it; nothing on
//! the machine's own mount table changes. Root is needed, and chmod alone
//! would not stop root, hence real read-only and full file systems.
//!
//! `unshare` and the shell exec the program, so the child's pid is the
//! program's, and `/proc/<pid>/root/<dir>` reaches its view of `<dir>`
//! from outside (to fill a disk or read a file under it).

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

/// A mount to make at a directory before the program starts.
#[derive(Debug, Clone, Copy)]
pub enum Mount {
    /// An empty read-only tmpfs.
    ReadOnlyTmpfs,
    /// A tmpfs of 256 KiB, filled up.
    FullTmpfs,
    /// A tmpfs of 1 MiB with room (to fill while the program runs).
    SmallTmpfs,
    /// The directory itself, bind-mounted read-only (its files stay).
    ReadOnlyBind,
}

impl Mount {
    fn script(self) -> &'static str {
        match self {
            Self::ReadOnlyTmpfs => r#"mount -t tmpfs -o ro,size=1m tmpfs "$M""#,
            Self::FullTmpfs => {
                r#"mount -t tmpfs -o size=256k tmpfs "$M" && { dd if=/dev/zero of="$M/fill" bs=4k 2>/dev/null || true; }"#
            }
            Self::SmallTmpfs => r#"mount -t tmpfs -o size=1m tmpfs "$M""#,
            Self::ReadOnlyBind => r#"mount --bind "$M" "$M" && mount -o remount,bind,ro "$M""#,
        }
    }
}

/// `program args` run after `mount` is made at `dir`, in a mount namespace
/// of its own.
pub fn with_mount(mount: Mount, dir: &Path, program: impl AsRef<OsStr>, args: &[&str]) -> Command {
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!("{} && exec \"$0\" \"$@\"", mount.script()))
        .arg(program)
        .args(args)
        .env("M", dir);
    c
}

/// `path` as the process `pid` sees it (its mount namespace).
pub fn seen_by(pid: u32, path: &Path) -> std::path::PathBuf {
    Path::new(&format!("/proc/{pid}/root")).join(path.strip_prefix("/").unwrap_or(path))
}

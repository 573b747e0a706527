//! 32-byte secret keys kept in files: the node's CX key and the directory's
//! signing key. A key is loaded from its file, or created there on first
//! start with 0600 permissions, so the public key stays stable across
//! restarts. Creation is atomic and never overwrites: the key is written to
//! a private temporary file and hard-linked into place, so two processes
//! starting at once end up with the same key instead of one failing or
//! reading half a file. The file holds the secret as 64 hex characters.

use std::io;
use std::path::Path;

/// Loads the secret in `path`, creating a random one there first when the
/// file does not exist. `what` names the key in errors ("CX key"). Every
/// error names the file and what could not be done with it, with the
/// system's cause ("Read-only file system", "No space left on device"),
/// so a start that fails on it says why in one line.
pub(crate) fn load_or_create(path: &Path, what: &str) -> io::Result<[u8; 32]> {
    let failed = |doing: &str, e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("cannot {doing} the {what} file {}: {e}", path.display()),
        )
    };
    match std::fs::read_to_string(path) {
        Ok(text) => hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} does not hold a 32-byte hex {what}", path.display()),
                )
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            rand::fill(&mut secret);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| failed("create the folder of", e))?;
            }
            let tmp = path.with_extension(format!(
                "tmp-{}-{}",
                std::process::id(),
                rand::random::<u32>()
            ));
            let written = write_private(&tmp, &hex::encode(secret));
            let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
            // Also after a failed write (a full disk): no half file is left.
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => Ok(secret),
                // Another process created it first: use that key.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => load_or_create(path, what),
                Err(e) => Err(failed("create", e)),
            }
        }
        Err(e) => Err(failed("read", e)),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    // On disk before it is linked into place: a crash leaves no empty key.
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reloaded_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("secret.key");
        let first = load_or_create(&path, "key").unwrap();
        let again = load_or_create(&path, "key").unwrap();
        assert_eq!(first, again, "stable across restarts");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        std::fs::write(&path, "not a key").unwrap();
        assert!(load_or_create(&path, "key").is_err());
    }

    #[test]
    fn concurrent_first_starts_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let ids: Vec<[u8; 32]> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_create(&path, "key").unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary files are left behind");
    }
}

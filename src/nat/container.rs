//! Whether this process runs in a container on a bridge network, where a
//! UPnP request would reach the container host's NAT, not the home router.
//! `IICP_CONTAINER=auto|yes|no` (default `auto`) lets an operator, or a
//! test on a machine that is itself a container, decide.

use std::str::FromStr;

/// How to decide whether we run in a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContainerMode {
    /// Look for container markers (`/.dockerenv`, `/run/.containerenv`, a
    /// container cgroup of PID 1).
    #[default]
    Auto,
    /// Treat the process as containerised.
    Yes,
    /// Treat it as running on the host.
    No,
}

impl FromStr for ContainerMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Self::Auto),
            "yes" | "true" | "1" => Ok(Self::Yes),
            "no" | "false" | "0" => Ok(Self::No),
            other => Err(format!(
                "IICP_CONTAINER must be auto, yes or no, not `{other}`"
            )),
        }
    }
}

impl ContainerMode {
    /// Whether to treat this process as containerised, and why.
    pub fn detect(self) -> Option<&'static str> {
        match self {
            Self::Yes => Some("IICP_CONTAINER=yes"),
            Self::No => None,
            Self::Auto => detect_markers(),
        }
    }
}

fn detect_markers() -> Option<&'static str> {
    if std::path::Path::new("/.dockerenv").exists() {
        return Some("/.dockerenv exists");
    }
    if std::path::Path::new("/run/.containerenv").exists() {
        return Some("/run/.containerenv exists (podman)");
    }
    let cgroup = std::fs::read_to_string("/proc/1/cgroup").unwrap_or_default();
    if ["docker", "kubepods", "containerd", "libpod"]
        .iter()
        .any(|m| cgroup.contains(m))
    {
        return Some("PID 1 runs in a container cgroup");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_parses_and_overrides_detection() {
        assert_eq!("auto".parse(), Ok(ContainerMode::Auto));
        assert_eq!("YES".parse(), Ok(ContainerMode::Yes));
        assert_eq!("no".parse(), Ok(ContainerMode::No));
        assert!("maybe".parse::<ContainerMode>().is_err());
        assert!(ContainerMode::Yes.detect().is_some());
        assert!(ContainerMode::No.detect().is_none());
    }
}

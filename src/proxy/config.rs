//! [`ProxyConfig`]: where the gateway listens and how much it reads.

use crate::error::{IicpError, Result};
use crate::server::ServerLimits;
use std::net::{Ipv4Addr, SocketAddr};

/// Default port: 9483, the IICP proxy port the peer SDKs use.
pub const DEFAULT_PORT: u16 = 9483;
/// Default [`ProxyConfig::max_body_bytes`]: 8 MiB (room for a long
/// conversation or an image part, not for a flood).
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// How the gateway serves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// Address to bind (default `127.0.0.1:9483`).
    pub listen: SocketAddr,
    /// Allow an address other than loopback. Off by default: whoever
    /// reaches the gateway spends the operator's consumer identity.
    pub allow_remote: bool,
    /// Largest request body read (default 8 MiB); a larger one is the
    /// dialect's 413.
    pub max_body_bytes: usize,
    /// Header and body read timeouts and the connection cap.
    pub server_limits: ServerLimits,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)),
            allow_remote: false,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            server_limits: ServerLimits::default(),
        }
    }
}

impl ProxyConfig {
    /// A configuration listening on `listen`, other settings default.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            ..Self::default()
        }
    }

    /// Refuses a non-loopback address unless `allow_remote` is set.
    pub(crate) fn check(&self) -> Result<()> {
        if self.listen.ip().is_loopback() || self.allow_remote {
            return Ok(());
        }
        Err(IicpError::InvalidConfig(format!(
            "the proxy would listen on {}, which is not a loopback address: anyone who reaches it \
             spends this operator's consumer identity; bind 127.0.0.1 or ::1, or allow it \
             explicitly (--allow-remote / IICP_PROXY_ALLOW_REMOTE=1)",
            self.listen
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only_unless_allowed() {
        for (addr, allow, ok) in [
            ("127.0.0.1:9483", false, true),
            ("[::1]:9483", false, true),
            ("0.0.0.0:9483", false, false),
            ("[::]:9483", false, false),
            ("192.168.1.5:9483", false, false),
            ("0.0.0.0:9483", true, true),
        ] {
            let mut c = ProxyConfig::new(addr.parse().unwrap());
            c.allow_remote = allow;
            assert_eq!(c.check().is_ok(), ok, "{addr} allow_remote={allow}");
        }
        let err = ProxyConfig::new("0.0.0.0:1".parse().unwrap())
            .check()
            .unwrap_err();
        assert_eq!(err.code(), "invalid_config");
        assert!(err.to_string().contains("--allow-remote"));
    }
}

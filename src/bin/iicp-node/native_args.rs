//! `iicp-node serve` flags for the native transport's session limits
//! (`NodeConfig::native_limits`), each with its `IICP_NATIVE_*` variable.

use clap::Args;
use iicp_client::node::{
    DEFAULT_NATIVE_IDLE_TIMEOUT, DEFAULT_NATIVE_INIT_TIMEOUT, DEFAULT_NATIVE_MAX_CALLS,
    MAX_NATIVE_CALLS, MAX_NATIVE_FRAME_BYTES, MIN_NATIVE_FRAME_BYTES, NativeLimits,
};
use std::time::Duration;

/// Bounds of native (iicp-tcp) connections on the node's port.
#[derive(Debug, Clone, Copy, Args)]
pub struct NativeLimitArgs {
    /// Milliseconds a new native connection has to send INIT; past it the
    /// node sends CLOSE protocol_error and drops it.
    #[arg(long, env = "IICP_NATIVE_INIT_TIMEOUT_MS",
          default_value_t = DEFAULT_NATIVE_INIT_TIMEOUT.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub native_init_timeout_ms: u64,

    /// Milliseconds a native connection may stay silent while none of its
    /// calls runs; past it the node sends CLOSE idle_timeout.
    #[arg(long, env = "IICP_NATIVE_IDLE_TIMEOUT_MS",
          default_value_t = DEFAULT_NATIVE_IDLE_TIMEOUT.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub native_idle_timeout_ms: u64,

    /// Calls in flight on one native connection (1..=65536); one more is
    /// answered 429 IICP-E021 and the connection stays open. The node-wide
    /// --max-concurrent still applies across all connections.
    #[arg(long, env = "IICP_NATIVE_MAX_CALLS",
          default_value_t = DEFAULT_NATIVE_MAX_CALLS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_NATIVE_CALLS as u64))]
    pub native_max_calls: usize,

    /// Largest native frame payload in bytes (1024..=16777216, the protocol's
    /// 16 MiB); a larger frame gets CLOSE frame_too_large before anything is
    /// allocated for it. The lower of this and --max-body-bytes applies.
    #[arg(long, env = "IICP_NATIVE_MAX_FRAME_BYTES",
          default_value_t = MAX_NATIVE_FRAME_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
              .range(MIN_NATIVE_FRAME_BYTES as u64..=MAX_NATIVE_FRAME_BYTES as u64))]
    pub native_max_frame_bytes: usize,
}

impl NativeLimitArgs {
    /// The library's limits.
    pub fn limits(self) -> NativeLimits {
        let mut limits = NativeLimits::default();
        limits.init_timeout = Duration::from_millis(self.native_init_timeout_ms);
        limits.idle_timeout = Duration::from_millis(self.native_idle_timeout_ms);
        limits.max_calls = self.native_max_calls;
        limits.max_frame = self.native_max_frame_bytes;
        limits
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn serve(args: &[&str]) -> Result<iicp_client::node::NativeLimits, clap::Error> {
        let cli = Cli::try_parse_from([&["iicp-node", "serve"], args].concat())?;
        let Command::Serve(serve) = cli.command else {
            panic!("serve subcommand");
        };
        Ok(serve.native.limits())
    }

    #[test]
    fn native_limit_flags_reach_the_limits() {
        assert_eq!(serve(&[]).unwrap(), Default::default());
        let limits = serve(&[
            "--native-init-timeout-ms=1500",
            "--native-idle-timeout-ms=2500",
            "--native-max-calls=3",
            "--native-max-frame-bytes=4096",
        ])
        .unwrap();
        assert_eq!(limits.init_timeout.as_millis(), 1500);
        assert_eq!(limits.idle_timeout.as_millis(), 2500);
        assert_eq!((limits.max_calls, limits.max_frame), (3, 4096));
        for bad in [
            "--native-init-timeout-ms=0",
            "--native-idle-timeout-ms=0",
            "--native-max-calls=0",
            "--native-max-frame-bytes=100",
            "--native-max-frame-bytes=16777217",
        ] {
            assert!(serve(&[bad]).is_err(), "{bad}");
        }
    }
}

//! [`NativeLimits`]: the bounds of a node's native (`iicp-tcp`) sessions,
//! part of [`NodeConfig`](super::NodeConfig) and set from `iicp-node serve`
//! flags (`--native-init-timeout-ms`, `--native-idle-timeout-ms`,
//! `--native-max-calls`, `--native-max-frame-bytes`) or their `IICP_NATIVE_*`
//! variables. They exist with or without the `iicp-tcp` feature, so a
//! configuration compiles the same either way.

use std::time::Duration;

/// Default [`NativeLimits::init_timeout`]: 5 s, the ACK deadline of the spec.
pub const DEFAULT_NATIVE_INIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`NativeLimits::idle_timeout`]: 120 s.
pub const DEFAULT_NATIVE_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Default [`NativeLimits::max_calls`]: 64 calls in flight per connection.
pub const DEFAULT_NATIVE_MAX_CALLS: usize = 64;
/// Largest [`NativeLimits::max_frame`] allowed, and its default: 16 MiB,
/// the protocol's maximum frame (PROTOCOL.md §7.1).
pub const MAX_NATIVE_FRAME_BYTES: usize = 16 * 1024 * 1024;
/// Smallest [`NativeLimits::max_frame`] allowed: 1 KiB, so INIT, PING and a
/// small CALL always fit.
pub const MIN_NATIVE_FRAME_BYTES: usize = 1024;
/// Largest [`NativeLimits::max_calls`] allowed.
pub const MAX_NATIVE_CALLS: usize = 65_536;

/// Bounds of one native session on the node: how long a new connection has
/// to say INIT, how long an idle one is kept, how many CALLs may be in
/// flight on it and how large a frame may be. Start from
/// [`Default`] and set the fields (the struct is `non_exhaustive`).
///
/// ```
/// use iicp_client::node::NativeLimits;
/// let mut limits = NativeLimits::default();
/// limits.max_calls = 8;
/// assert_eq!(limits.max_frame, 16 * 1024 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NativeLimits {
    /// Largest frame payload accepted, in bytes (1 KiB..=16 MiB); a larger
    /// frame gets CLOSE `frame_too_large` before anything is allocated for
    /// it. The node applies the lower of this and
    /// [`NodeConfig::max_body_bytes`](super::NodeConfig::max_body_bytes).
    pub max_frame: usize,
    /// Time a new connection has to send INIT; past it, CLOSE
    /// `protocol_error` (must be greater than 0).
    pub init_timeout: Duration,
    /// Time without a frame, while no call runs, before CLOSE `idle_timeout`
    /// (must be greater than 0).
    pub idle_timeout: Duration,
    /// CALLs in flight on one connection (1..=65 536); one more is answered
    /// 429 `IICP-E021` and the connection stays open.
    pub max_calls: usize,
}

impl Default for NativeLimits {
    fn default() -> Self {
        Self {
            max_frame: MAX_NATIVE_FRAME_BYTES,
            init_timeout: DEFAULT_NATIVE_INIT_TIMEOUT,
            idle_timeout: DEFAULT_NATIVE_IDLE_TIMEOUT,
            max_calls: DEFAULT_NATIVE_MAX_CALLS,
        }
    }
}

impl NativeLimits {
    /// Checks every bound; the message names the field and its range.
    pub(crate) fn validate(&self) -> crate::Result<()> {
        let bad = |what: String| Err(crate::IicpError::InvalidConfig(what));
        if !(MIN_NATIVE_FRAME_BYTES..=MAX_NATIVE_FRAME_BYTES).contains(&self.max_frame) {
            return bad(format!(
                "native_limits.max_frame is {} bytes but must be within \
                 {MIN_NATIVE_FRAME_BYTES}..={MAX_NATIVE_FRAME_BYTES}",
                self.max_frame
            ));
        }
        if !(1..=MAX_NATIVE_CALLS).contains(&self.max_calls) {
            return bad(format!(
                "native_limits.max_calls is {} but must be within 1..={MAX_NATIVE_CALLS}",
                self.max_calls
            ));
        }
        for (name, value) in [
            ("init_timeout", self.init_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if value.is_zero() {
                return bad(format!("native_limits.{name} must be greater than 0"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_pass_and_each_bound_is_checked() {
        NativeLimits::default().validate().unwrap();
        type Change = fn(&mut NativeLimits);
        let cases: [(Change, &str); 6] = [
            (|l| l.max_frame = 0, "max_frame"),
            (|l| l.max_frame = MAX_NATIVE_FRAME_BYTES + 1, "max_frame"),
            (|l| l.max_calls = 0, "max_calls"),
            (|l| l.max_calls = MAX_NATIVE_CALLS + 1, "max_calls"),
            (|l| l.init_timeout = Duration::ZERO, "init_timeout"),
            (|l| l.idle_timeout = Duration::ZERO, "idle_timeout"),
        ];
        for (change, field) in cases {
            let mut limits = NativeLimits::default();
            change(&mut limits);
            let err = limits.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
        NativeLimits {
            max_frame: MIN_NATIVE_FRAME_BYTES,
            max_calls: 1,
            ..NativeLimits::default()
        }
        .validate()
        .unwrap();
    }
}

//! [`RelayLimits`]: the bounds of a relay-capable node (PROTOCOL.md §7.2
//! "Relay rules"), part of [`NodeConfig`](crate::NodeConfig). They exist
//! with or without the `iicp-tcp` feature, so a configuration compiles the
//! same either way.

use std::time::Duration;

/// Default [`RelayLimits::max_sessions`]: 256 bound workers.
pub const DEFAULT_RELAY_MAX_SESSIONS: usize = 256;
/// Largest [`RelayLimits::max_sessions`] allowed.
pub const MAX_RELAY_SESSIONS: usize = 65_536;
/// Default [`RelayLimits::binds_per_window`]: 30 new binds per source.
pub const DEFAULT_RELAY_BIND_RATE: u32 = 30;

/// Bounds of a relay. Start from [`Default`] and set the fields (the struct
/// is `non_exhaustive`).
///
/// ```
/// use iicp_client::relay::RelayLimits;
/// let mut limits = RelayLimits::default();
/// limits.max_sessions = 16;
/// assert_eq!(limits.binds_per_window, 30);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayLimits {
    /// Workers bound at once (TCP and long-poll together); a new worker
    /// beyond it is refused `relay at session capacity` (HTTP 503
    /// `IICP-E039`). Dead sessions are dropped first.
    pub max_sessions: usize,
    /// New binds one source address may make per [`bind_window`](Self::bind_window)
    /// (0: unlimited); past it `relay_bind_rate_limited` (HTTP 429
    /// `IICP-E039`). A rebind of a worker id last bound from the same
    /// source is exempt.
    pub binds_per_window: u32,
    /// The window of [`binds_per_window`](Self::binds_per_window).
    pub bind_window: Duration,
    /// Calls waiting for one worker's answer; one more is refused 429
    /// `IICP-E021`.
    pub max_pending_calls: usize,
    /// A session that sent nothing (TCP) or did not pull (long-poll) for
    /// this long is dead: its calls fail (502 `IICP-E031`) and its worker id
    /// may be bound again.
    pub silence_timeout: Duration,
    /// How often the relay PINGs a bound TCP worker.
    pub ping_interval: Duration,
    /// How long `GET /v1/relay/pull` waits for a call before 204.
    pub poll_timeout: Duration,
    /// The longest a consumer's task may wait for the worker (the task's
    /// `constraints.timeout_ms`, else the node's default task timeout, is
    /// capped at it).
    pub max_call_timeout: Duration,
    /// Connections on the accept port that have not bound yet; when one more
    /// arrives the oldest of them is dropped, so idle connections cannot
    /// keep a worker out.
    pub max_handshakes: usize,
    /// Bind ticket ids (`jti`) remembered until their expiry, to refuse
    /// replays; when full of unexpired ids, ticketed binds are refused.
    pub max_ticket_ids: usize,
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            max_sessions: DEFAULT_RELAY_MAX_SESSIONS,
            binds_per_window: DEFAULT_RELAY_BIND_RATE,
            bind_window: Duration::from_secs(60),
            max_pending_calls: 64,
            silence_timeout: Duration::from_secs(90),
            ping_interval: Duration::from_secs(30),
            poll_timeout: Duration::from_secs(25),
            max_call_timeout: Duration::from_secs(120),
            max_handshakes: 128,
            max_ticket_ids: 65_536,
        }
    }
}

impl RelayLimits {
    /// Checks every bound; the message names the field.
    pub(crate) fn validate(&self) -> crate::Result<()> {
        let bad = |what: String| Err(crate::IicpError::InvalidConfig(what));
        if !(1..=MAX_RELAY_SESSIONS).contains(&self.max_sessions) {
            return bad(format!(
                "relay_limits.max_sessions is {} but must be within 1..={MAX_RELAY_SESSIONS}",
                self.max_sessions
            ));
        }
        for (name, value) in [
            ("max_pending_calls", self.max_pending_calls),
            ("max_handshakes", self.max_handshakes),
            ("max_ticket_ids", self.max_ticket_ids),
        ] {
            if value == 0 {
                return bad(format!("relay_limits.{name} must be greater than 0"));
            }
        }
        for (name, value) in [
            ("bind_window", self.bind_window),
            ("silence_timeout", self.silence_timeout),
            ("ping_interval", self.ping_interval),
            ("poll_timeout", self.poll_timeout),
            ("max_call_timeout", self.max_call_timeout),
        ] {
            if value.is_zero() {
                return bad(format!("relay_limits.{name} must be greater than 0"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_pass_and_bounds_are_checked() {
        RelayLimits::default().validate().unwrap();
        type Change = fn(&mut RelayLimits);
        let cases: [(Change, &str); 4] = [
            (|l| l.max_sessions = 0, "max_sessions"),
            (|l| l.max_sessions = MAX_RELAY_SESSIONS + 1, "max_sessions"),
            (|l| l.max_pending_calls = 0, "max_pending_calls"),
            (|l| l.silence_timeout = Duration::ZERO, "silence_timeout"),
        ];
        for (change, field) in cases {
            let mut limits = RelayLimits::default();
            change(&mut limits);
            let err = limits.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
    }
}

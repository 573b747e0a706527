//! What the node says about its link to the directory: one log line per
//! change of state, not one per attempt (issue 18).
//!
//! A directory that is down, answers 500s or never answers makes the
//! lifecycle retry for as long as it lasts; a line per attempt would bury
//! everything else an operator reads. So [`Link`] remembers what it last
//! said: the first failure of a kind (registration refused by a 500,
//! heartbeat timed out, …) is one `warn` line, repeats of the same kind are
//! `debug`, a different kind is a new `warn`, and the recovery is one `info`
//! line naming how many attempts failed in between.
//!
//! Threat model: the directory is a remote peer and may be down, slow,
//! wrong or hostile. Nothing here trusts what it says; the error texts come
//! from `outbound::exchange`, which names only "the directory", never the
//! URL, a token or a request body.

use crate::error::IicpError;
use std::fmt;
use std::time::Duration;

/// The directory call that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// `POST /v1/register` (or the key fetch that goes with it).
    Register,
    /// `POST /v1/heartbeat`.
    Heartbeat,
}

impl Step {
    fn as_str(self) -> &'static str {
        match self {
            Self::Register => "registration",
            Self::Heartbeat => "heartbeat",
        }
    }
}

/// How a directory call failed, coarsely enough that repeated failures of
/// one outage compare equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    /// No connection (refused, reset, DNS, TLS).
    Unreachable,
    /// Connected, but no whole answer within the call's time limit.
    NoAnswer,
    /// It answered with this HTTP status.
    Status(u16),
    /// It answered 2xx with something unreadable or oversized.
    BadAnswer,
}

impl Kind {
    /// The kind of `e`.
    pub(super) fn of(e: &IicpError) -> Self {
        match e {
            IicpError::Transport { .. } => Self::Unreachable,
            IicpError::Timeout { .. } => Self::NoAnswer,
            IicpError::Protocol { status, .. } => Self::Status(*status),
            _ => Self::BadAnswer,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable => f.write_str("directory unreachable"),
            Self::NoAnswer => f.write_str("directory not answering in time"),
            Self::Status(s) => write!(f, "directory answering HTTP {s}"),
            Self::BadAnswer => f.write_str("directory answering something unusable"),
        }
    }
}

/// The link's state as last reported, and the failures since the last
/// success.
#[derive(Debug, Default)]
pub(super) struct Link {
    /// The failure last logged at `warn`; `None` while the link works.
    reported: Option<(Step, Kind)>,
    /// Failed attempts since the last success.
    failures: u32,
    /// Whether the node has registered at least once.
    ever_registered: bool,
}

impl Link {
    /// A directory call failed; the lifecycle retries in `retry_in`. Logs
    /// at `warn` when this is a new state, else at `debug`.
    pub(super) fn failed(&mut self, step: Step, e: &IicpError, retry_in: Duration) {
        self.failures += 1;
        let state = (step, Kind::of(e));
        let retry_in_ms = retry_in.as_millis() as u64;
        if self.reported.as_ref() == Some(&state) {
            tracing::debug!(step = step.as_str(), attempt = self.failures, error = %e, retry_in_ms, "directory call failed again");
            return;
        }
        tracing::warn!(
            step = step.as_str(),
            error = %e,
            "{}: {} failed; serving tasks and retrying (next in {} ms, backing off; \
             repeats of this failure are logged at debug)",
            state.1,
            step.as_str(),
            retry_in_ms,
        );
        self.reported = Some(state);
    }

    /// The directory took a registration.
    pub(super) fn registered(&mut self, node_id: &str, directory: &str) {
        match (self.failures, self.ever_registered) {
            (0, _) => {
                tracing::info!(node_id, directory, "registered with the directory")
            }
            (n, false) => tracing::info!(
                node_id,
                directory,
                "registered with the directory after {n} failed attempts"
            ),
            (n, true) => tracing::info!(
                node_id,
                directory,
                "registered with the directory again after {n} failed attempts"
            ),
        }
        self.ever_registered = true;
        self.recovered();
    }

    /// A heartbeat got its PONG.
    pub(super) fn beat(&mut self) {
        if self.failures > 0 {
            tracing::info!(
                "the directory answers heartbeats again after {} failed attempts",
                self.failures
            );
        }
        self.recovered();
    }

    /// The directory answered a heartbeat with `status` (401/404/410): it no
    /// longer knows this registration (restarted, expired, evicted).
    pub(super) fn rejected(&mut self, status: u16) {
        tracing::warn!(
            status,
            "the directory no longer knows this node (heartbeat answered HTTP {status}); registering again"
        );
        // The registration that follows reports its own outcome.
        self.reported = None;
    }

    fn recovered(&mut self) {
        self.failures = 0;
        self.reported = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> IicpError {
        IicpError::Transport {
            target: "the directory".into(),
            reason: "connection failed: refused".into(),
        }
    }

    fn status(s: u16) -> IicpError {
        IicpError::Protocol {
            code: format!("http_{s}"),
            message: "x".into(),
            status: s,
        }
    }

    #[test]
    fn kinds_compare_by_cause_not_text() {
        assert_eq!(Kind::of(&refused()), Kind::Unreachable);
        assert_eq!(Kind::of(&status(500)), Kind::Status(500));
        assert_ne!(Kind::of(&status(500)), Kind::of(&status(503)));
        let timeout = IicpError::Timeout {
            what: "the directory".into(),
            elapsed_ms: 10,
        };
        assert_eq!(Kind::of(&timeout), Kind::NoAnswer);
    }

    #[test]
    fn repeats_are_not_new_states_and_success_resets() {
        let mut link = Link::default();
        let pause = Duration::from_secs(1);
        link.failed(Step::Register, &refused(), pause);
        let first = link.reported.clone();
        link.failed(Step::Register, &refused(), pause);
        assert_eq!(link.reported, first);
        assert_eq!(link.failures, 2);
        link.failed(Step::Register, &status(500), pause);
        assert_eq!(
            link.reported,
            Some((Step::Register, Kind::Status(500))),
            "a new kind is a new state"
        );
        link.registered("n", "d");
        assert_eq!((link.failures, link.reported.clone()), (0, None));
        link.failed(Step::Heartbeat, &status(500), pause);
        assert_eq!(link.reported, Some((Step::Heartbeat, Kind::Status(500))));
        link.beat();
        assert_eq!((link.failures, link.reported.clone()), (0, None));
    }
}

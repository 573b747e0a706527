//! `IicpError`, the one error type of the public API.
//!
//! Every variant says what happened and, where it helps, what to do. No
//! variant carries a token, key or payload, so `Display` and `Debug` are safe
//! to log (SDK-06).

use crate::wire::{IntentError, PolicyViolation};

/// `Result` with [`IicpError`] as the default error.
pub type Result<T, E = IicpError> = std::result::Result<T, E>;

/// Everything that can go wrong in the SDK.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IicpError {
    /// A peer answered with an IICP error: `code` is the slug or `IICP-E0xx`
    /// from the body, `status` the HTTP status.
    #[error("[{code}] {message} (HTTP {status})")]
    Protocol {
        /// Error code, e.g. `unauthorized`, `IICP-E021`.
        code: String,
        /// The peer's message.
        message: String,
        /// HTTP status.
        status: u16,
    },
    /// The intent is not a valid URN; nothing was sent (SDK-03).
    #[error("invalid intent: {0}")]
    InvalidIntent(#[from] IntentError),
    /// The intent is refused by the policy guard; nothing was sent.
    #[error("[IICP-POLICY-001] {0}")]
    PolicyRefused(#[from] PolicyViolation),
    /// The configuration cannot work (code `invalid_config`, SDK-04).
    #[error("[invalid_config] {0}")]
    InvalidConfig(String),
    /// Could not reach a peer (connection refused, DNS, TLS, reset).
    #[error("could not reach {target}: {reason}")]
    Transport {
        /// What we tried to reach: a directory or node base URL.
        target: String,
        /// Why, without request contents.
        reason: String,
    },
    /// The operation ran out of time.
    #[error("timed out after {elapsed_ms} ms waiting for {what}")]
    Timeout {
        /// What we waited for.
        what: String,
        /// How long we waited.
        elapsed_ms: u64,
    },
    /// A peer's answer could not be decoded.
    #[error("could not decode {what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: String,
        /// Why (a serde location, never the body).
        reason: String,
    },
    /// A node answered, but with no result (code `no_result`).
    #[error("[no_result] node {node_id} answered without a result")]
    NoResult {
        /// The node that answered.
        node_id: String,
    },
    /// No node could serve the task (code `no_available_node`): the
    /// directory listed none, none was usable, or the candidates failed in
    /// different ways. When every candidate answered with the same
    /// [`Protocol`](Self::Protocol) error, that error is returned instead.
    #[error("[no_available_node] no node served {intent}: {reason}")]
    NoAvailableNode {
        /// The intent asked for.
        intent: String,
        /// Why: none found, all filtered, or each node's failure.
        reason: String,
        /// The last candidate's own error, whole (`None` when no node was
        /// tried): match on it for its code and status.
        last: Option<Box<IicpError>>,
    },
    /// Nodes serve the intent but none advertises an IICP-CX key, and
    /// plaintext was not allowed: nothing was sent (code `IICP-CX-REQUIRED`).
    #[error(
        "[IICP-CX-REQUIRED] {nodes} node(s) serve {intent} but none advertises a CX encryption key, \
         so the payload would cross the network readable; nothing was sent (allow plaintext with \
         ClientBuilder::allow_plaintext(true) or IICP_CX_ALLOW_PLAINTEXT=1)"
    )]
    PlaintextRefused {
        /// The intent asked for.
        intent: String,
        /// How many usable nodes were skipped for having no key.
        nodes: usize,
    },
    /// A peer's answer was larger than the client reads (code
    /// `response_too_large`); the rest was not read.
    #[error("[response_too_large] the answer of {target} exceeds {limit} bytes; not read")]
    ResponseTooLarge {
        /// Who answered: "the directory", "node 1a2b3c4d".
        target: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The backend behind a node failed (code `backend_error`).
    #[error("[backend_error] {0}")]
    Backend(String),
    /// A local I/O failure (binding a port, reading a file).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl IicpError {
    /// A machine-readable code for the error.
    pub fn code(&self) -> &str {
        match self {
            Self::Protocol { code, .. } => code,
            Self::InvalidIntent(_) => "invalid_intent",
            Self::PolicyRefused(_) => crate::wire::policy::POLICY_CODE,
            Self::InvalidConfig(_) => "invalid_config",
            Self::Transport { .. } => "IICP-E004",
            Self::Timeout { .. } => "task_timeout",
            Self::Decode { .. } => "decode_error",
            Self::NoResult { .. } => "no_result",
            Self::NoAvailableNode { .. } => "no_available_node",
            Self::PlaintextRefused { .. } => "IICP-CX-REQUIRED",
            Self::ResponseTooLarge { .. } => "response_too_large",
            Self::Backend(_) => "backend_error",
            Self::Io(_) => "io_error",
        }
    }

    /// The HTTP status, for errors that came with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Protocol { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether trying again (the same or another node) may succeed:
    /// transport failures, timeouts, 429/502/503/504 and the transient
    /// `IICP-E004/E005/E008` codes (SDK-ERR-02). Validation, policy and
    /// authorisation failures are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Protocol { code, status, .. } => {
                matches!(status, 408 | 429 | 502 | 503 | 504)
                    || matches!(code.as_str(), "IICP-E004" | "IICP-E005" | "IICP-E008")
            }
            Self::Transport { .. } | Self::Timeout { .. } | Self::NoAvailableNode { .. } => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_display_matches_the_seed_readme() {
        let e = IicpError::Protocol {
            code: "IICP-E021".into(),
            message: "capacity_exceeded".into(),
            status: 429,
        };
        assert_eq!(e.to_string(), "[IICP-E021] capacity_exceeded (HTTP 429)");
        assert!(e.is_retryable());
        assert_eq!(e.status(), Some(429));
    }

    #[test]
    fn retryability() {
        let p = |code: &str, status| IicpError::Protocol {
            code: code.into(),
            message: String::new(),
            status,
        };
        assert!(!p("validation_error", 422).is_retryable());
        assert!(!p("unauthorized", 401).is_retryable());
        assert!(p("IICP-E005", 200).is_retryable());
        assert!(p("backend_error", 502).is_retryable());
        assert!(!IicpError::InvalidConfig("x".into()).is_retryable());
        let policy = crate::wire::check_intent_policy("urn:iicp:intent:csam:x:v1").unwrap_err();
        let e = IicpError::from(policy);
        assert!(!e.is_retryable());
        assert_eq!(e.code(), "IICP-POLICY-001");
    }
}

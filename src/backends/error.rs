//! `BackendError`: how a call to a model server failed, with upstream text
//! truncated and the API key scrubbed.

/// Longest upstream error text kept (PROTOCOL.md §6: 512 chars).
pub const MAX_UPSTREAM_TEXT: usize = 512;

/// A failed backend call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The server answered with an error status.
    #[error("backend answered HTTP {status}: {message}")]
    Upstream {
        /// Its status.
        status: u16,
        /// Its message, truncated.
        message: String,
    },
    /// No answer in time.
    #[error("backend did not answer within {0} ms")]
    Timeout(u64),
    /// Could not connect or the connection broke.
    #[error("backend unreachable: {0}")]
    Unreachable(String),
    /// The task cannot be sent as it is (e.g. no model named anywhere).
    #[error("{0}")]
    InvalidRequest(String),
    /// This engine does not serve the intent.
    #[error("backend does not serve {0}")]
    Unsupported(String),
    /// The server answered 2xx with something unreadable.
    #[error("backend answer could not be read: {0}")]
    BadAnswer(String),
}

impl BackendError {
    /// An upstream error from a status and body text, truncated, with
    /// `secret` (the API key) removed wherever the server echoed it.
    pub fn upstream(status: u16, text: &str, secret: Option<&str>) -> Self {
        let mut message = match secret.filter(|s| !s.is_empty()) {
            Some(key) => text.replace(key, "***"),
            None => text.to_owned(),
        };
        if message.chars().count() > MAX_UPSTREAM_TEXT {
            message = message.chars().take(MAX_UPSTREAM_TEXT).collect::<String>() + "…";
        }
        Self::Upstream { status, message }
    }

    /// From a reqwest failure (no URL in the message).
    pub fn from_reqwest(e: &reqwest::Error, timeout_ms: u64) -> Self {
        if e.is_timeout() {
            Self::Timeout(timeout_ms)
        } else {
            Self::Unreachable(crate::outbound::root_cause(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_text_is_truncated_and_scrubbed() {
        let e = BackendError::upstream(401, "bad key sk-123 given", Some("sk-123"));
        assert_eq!(
            e.to_string(),
            "backend answered HTTP 401: bad key *** given"
        );
        let long = "x".repeat(2000);
        let BackendError::Upstream { message, .. } = BackendError::upstream(500, &long, None)
        else {
            unreachable!()
        };
        assert_eq!(message.chars().count(), MAX_UPSTREAM_TEXT + 1);
    }
}

//! `BackendError`: how a call to a model server failed. Its `Display` is
//! what a consumer may see; the upstream error text (which may hold
//! internal URLs or credentials) stays out of it and is kept, scrubbed, for
//! the operator's log only.

/// Longest upstream error text kept for the local log (characters, after
/// scrubbing).
pub const MAX_UPSTREAM_TEXT: usize = 512;

/// A failed backend call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The server answered with an error status. The message names only
    /// the status; the body text is in `detail`, for local logs only.
    #[error("the backend answered HTTP {status}")]
    Upstream {
        /// Its status.
        status: u16,
        /// Its body text, scrubbed (API key replaced, control characters
        /// escaped, cut to [`MAX_UPSTREAM_TEXT`]). For the operator's log:
        /// never send it to a consumer.
        detail: String,
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
    /// An upstream error from a status and its body text, scrubbed
    /// (`secret`, the API key, replaced; control characters escaped; cut to
    /// [`MAX_UPSTREAM_TEXT`]).
    pub fn upstream(status: u16, text: &str, secret: Option<&str>) -> Self {
        Self::Upstream {
            status,
            detail: scrub(text, secret),
        }
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

/// Peer text made fit for a log line: `secret` (the API key) replaced by
/// `***` wherever it occurs, control characters escaped (`\n`, `\u{1b}`, …,
/// so no line or colour can be forged), cut to [`MAX_UPSTREAM_TEXT`]
/// characters with `…` after.
pub(crate) fn scrub(text: &str, secret: Option<&str>) -> String {
    let text = match secret.filter(|s| !s.is_empty()) {
        Some(key) => text.replace(key, "***"),
        None => text.to_owned(),
    };
    let mut out = String::with_capacity(text.len().min(MAX_UPSTREAM_TEXT + 8));
    for (n, c) in text.chars().enumerate() {
        if n == MAX_UPSTREAM_TEXT {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_text_stays_out_of_the_message_and_is_scrubbed() {
        let e =
            BackendError::upstream(401, "bad key sk-123 at http://10.0.0.1/x\n", Some("sk-123"));
        assert_eq!(e.to_string(), "the backend answered HTTP 401");
        let BackendError::Upstream { detail, .. } = e else {
            unreachable!()
        };
        assert_eq!(detail, "bad key *** at http://10.0.0.1/x\\n");
        let long = "x".repeat(2000);
        let BackendError::Upstream { detail, .. } = BackendError::upstream(500, &long, None) else {
            unreachable!()
        };
        assert_eq!(detail.chars().count(), MAX_UPSTREAM_TEXT + 1);
        assert_eq!(scrub("a\u{1b}[31mb\r", None), "a\\u{1b}[31mb\\r");
    }
}

//! Why a request body was not read, with the status, code and message its
//! JSON error answer carries (kept apart from the axum extractors in
//! `request.rs`, so that code without axum can name it).

use std::time::Duration;

/// Why a request body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Over the router's limit (named when the router told it).
    TooLarge(Option<usize>),
    /// It did not arrive within this time; the rest will not be read, so
    /// the connection must close after the answer.
    Timeout(Duration),
    /// The connection failed while it was read.
    Unreadable,
}

impl BodyError {
    /// 413, 408 or 400.
    pub fn status(self) -> u16 {
        match self {
            Self::TooLarge(_) => 413,
            Self::Timeout(_) => 408,
            Self::Unreadable => 400,
        }
    }

    /// `payload_too_large`, `request_timeout` or `validation_error`.
    pub fn code(self) -> &'static str {
        match self {
            Self::TooLarge(_) => "payload_too_large",
            Self::Timeout(_) => "request_timeout",
            Self::Unreadable => "validation_error",
        }
    }

    /// What went wrong, for the client.
    pub fn message(self) -> String {
        match self {
            Self::TooLarge(Some(n)) => format!("request body exceeds the limit of {n} bytes"),
            Self::TooLarge(None) => "request body exceeds the size limit".to_owned(),
            Self::Timeout(t) => format!(
                "the request body did not arrive within {} ms",
                t.as_millis()
            ),
            Self::Unreadable => "could not read the request body".to_owned(),
        }
    }
}

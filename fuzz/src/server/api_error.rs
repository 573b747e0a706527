//! Stands in for `src/server/api_error.rs`: the JSON error answer of the
//! directory and the relay. The original's constructors are kept (same
//! names, same status codes, the same `ErrorBody` for the body) so that the
//! mounted files build their refusals unchanged; its `IntoResponse` (axum's
//! response types) is left out, since no response is sent here. The
//! harnesses read the status and the code of a refusal.

use crate::wire::ErrorBody;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// An error answer: status and JSON body.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub body: Value,
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// `{"error":{"code","message"}}` with `status`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let body = serde_json::to_value(ErrorBody::new(code, message)).unwrap_or(Value::Null);
        Self {
            status,
            body,
            retry_after_s: None,
        }
    }

    /// The flat form `{"error":code,"message",…}`.
    pub fn flat(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({"error": code, "message": message.into()}),
            retry_after_s: None,
        }
    }

    /// 422 `validation_error`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            message,
        )
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 404 `IICP-E003`.
    pub fn unknown_node() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "IICP-E003",
            "node is not registered with this directory; register again",
        )
    }

    /// Adds `Retry-After`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    /// `Connection: close` (nothing to close here).
    pub fn close_connection(self) -> Self {
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error code of either body form.
    pub fn code(&self) -> &str {
        match &self.body["error"] {
            Value::String(code) => code,
            inner => inner["code"].as_str().unwrap_or(""),
        }
    }
}

//! JSON error answers of the directory (PROTOCOL.md §1.2).
//!
//! Every failure leaves as JSON: the normal `{"error":{"code","message"}}`,
//! or the flat form for the register rate limit (E034), as the reference
//! directory sends it.

use crate::wire::ErrorBody;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error answer: status, JSON body and an optional `Retry-After`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: Value,
    retry_after_s: Option<u64>,
    close_connection: bool,
}

impl ApiError {
    /// `{"error":{"code","message"}}` with `status`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let body = serde_json::to_value(ErrorBody::new(code, message)).unwrap_or(Value::Null);
        Self {
            status,
            body,
            retry_after_s: None,
            close_connection: false,
        }
    }

    /// The flat form `{"error":code,"message",…}`.
    pub fn flat(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({"error": code, "message": message.into()}),
            retry_after_s: None,
            close_connection: false,
        }
    }

    /// Its HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Its error code, in either body form.
    pub fn code(&self) -> &str {
        let error = &self.body["error"];
        error
            .as_str()
            .or_else(|| error["code"].as_str())
            .unwrap_or("")
    }

    /// Its message, in either body form (the directory's own words; it
    /// quotes no secret).
    pub fn message(&self) -> &str {
        let body = &self.body;
        body["message"]
            .as_str()
            .or_else(|| body["error"]["message"].as_str())
            .unwrap_or("")
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

    /// 404 `IICP-E003`: the node is not registered.
    pub fn unknown_node() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "IICP-E003",
            "node is not registered with this directory; register again",
        )
    }

    /// Adds `retry_after` (seconds) to the body and a `Retry-After` header.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        if let Some(obj) = self.body.as_object_mut() {
            match obj.get_mut("error") {
                Some(Value::Object(inner)) => {
                    inner.insert("retry_after".into(), seconds.into());
                }
                _ => {
                    obj.insert("retry_after".into(), seconds.into());
                }
            }
        }
        self.retry_after_s = Some(seconds);
        self
    }

    /// Adds `Connection: close`: the server closes the connection after
    /// this answer (used when the rest of the request will not be read).
    pub fn close_connection(mut self) -> Self {
        self.close_connection = true;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(s) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.close_connection {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

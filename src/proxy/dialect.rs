//! The three API dialects the gateway speaks and their error shapes.
//!
//! Each SDK parses errors its own way, so every failure, from a body that
//! is not JSON to a mesh with no node, leaves in the caller's shape:
//! - OpenAI: `{"error":{"message","type","param":null,"code"}}`;
//! - Anthropic: `{"type":"error","error":{"type","message"}}`;
//! - Ollama: `{"error":"message"}`.
//!
//! [`status_of`] is the one place that maps an [`IicpError`] to an HTTP
//! status; the message is the error's `Display`, which never carries a
//! payload or a token (SDK-06).

use crate::error::IicpError;
use crate::server::request::BodyError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Which API a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Dialect {
    /// `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, `/v1/models`.
    OpenAi,
    /// `/v1/messages`.
    #[allow(dead_code)] // TEMP: until the Anthropic routes land
    Anthropic,
    /// `/api/*`.
    Ollama,
}

impl Dialect {
    /// The label value in the proxy's metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Ollama => "ollama",
        }
    }

    /// A failure as this dialect's error answer.
    pub fn error(self, status: StatusCode, code: &str, message: impl Into<String>) -> ProxyError {
        ProxyError {
            dialect: self,
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// 400 for a request this dialect cannot take.
    pub fn invalid(self, message: impl Into<String>) -> ProxyError {
        self.error(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// A mesh failure, with the status [`status_of`] gives it.
    /// `model` is the model the request named, if any: a named model no
    /// node serves is 404 `model_not_found`, as OpenAI answers.
    pub fn mesh_error(self, e: &IicpError, model: Option<&str>) -> ProxyError {
        if let (IicpError::NoAvailableNode { last: None, .. }, Some(model)) = (e, model) {
            return self.error(
                StatusCode::NOT_FOUND,
                "model_not_found",
                format!("no node on the mesh serves the model `{model}` ({e})"),
            );
        }
        self.error(status_of(e), e.code(), e.to_string())
    }

    /// A body that could not be read.
    pub fn body_error(self, e: BodyError) -> ProxyError {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        self.error(status, e.code(), e.message())
    }
}

/// The HTTP status a mesh failure is answered with.
pub(crate) fn status_of(e: &IicpError) -> StatusCode {
    match e {
        IicpError::InvalidIntent(_) | IicpError::PolicyRefused(_) | IicpError::InvalidConfig(_) => {
            StatusCode::BAD_REQUEST
        }
        IicpError::Protocol { status, .. } => protocol_status(*status),
        IicpError::NoAvailableNode { last: None, .. } | IicpError::PlaintextRefused { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        IicpError::NoAvailableNode {
            last: Some(last), ..
        } => match status_of(last) {
            s @ (StatusCode::TOO_MANY_REQUESTS
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT) => s,
            _ => StatusCode::BAD_GATEWAY,
        },
        IicpError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        IicpError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// A node's refusal: the caller's own faults keep their status (the
/// request would fail anywhere); busy and slow stay 503 and 504; every
/// other server-side failure is the gateway's upstream failing, 502.
fn protocol_status(status: u16) -> StatusCode {
    match status {
        400 | 401 | 403 | 404 | 413 | 422 | 429 | 503 | 504 => {
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY)
        }
        408 => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// An error answer in one dialect's shape.
#[derive(Debug)]
pub(crate) struct ProxyError {
    dialect: Dialect,
    status: StatusCode,
    code: String,
    message: String,
}

impl ProxyError {
    /// The HTTP status.
    #[allow(dead_code)] // TEMP: until the Anthropic/Ollama routes land
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body, in the dialect's shape.
    pub fn body(&self) -> Value {
        match self.dialect {
            Dialect::OpenAi => json!({"error": {
                "message": self.message,
                "type": openai_type(self.status),
                "param": null,
                "code": self.code,
            }}),
            Dialect::Anthropic => json!({
                "type": "error",
                "error": {"type": anthropic_type(self.status), "message": self.message},
            }),
            Dialect::Ollama => json!({"error": self.message}),
        }
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// OpenAI's `error.type` for a status.
fn openai_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

/// Anthropic's `error.type` for a status.
fn anthropic_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_node(last: Option<IicpError>) -> IicpError {
        IicpError::NoAvailableNode {
            intent: "urn:iicp:intent:llm:chat:v1".into(),
            reason: "r".into(),
            last: last.map(Box::new),
        }
    }

    fn refusal(status: u16) -> IicpError {
        IicpError::Protocol {
            code: "x".into(),
            message: "m".into(),
            status,
        }
    }

    #[test]
    fn statuses() {
        let cases: Vec<(IicpError, u16)> = vec![
            (IicpError::InvalidConfig("x".into()), 400),
            (refusal(401), 401),
            (refusal(422), 422),
            (refusal(429), 429),
            (refusal(500), 502),
            (refusal(503), 503),
            (refusal(408), 504),
            (no_node(None), 503),
            (no_node(Some(refusal(503))), 503),
            (no_node(Some(refusal(500))), 502),
            (
                IicpError::Timeout {
                    what: "w".into(),
                    elapsed_ms: 1,
                },
                504,
            ),
            (IicpError::Backend("b".into()), 502),
            (
                IicpError::PlaintextRefused {
                    intent: "i".into(),
                    nodes: 1,
                },
                503,
            ),
        ];
        for (e, status) in cases {
            assert_eq!(status_of(&e).as_u16(), status, "{e}");
        }
    }

    #[test]
    fn a_named_model_nobody_serves_is_404_in_every_dialect() {
        for d in [Dialect::OpenAi, Dialect::Anthropic, Dialect::Ollama] {
            let e = d.mesh_error(&no_node(None), Some("gpt-9"));
            assert_eq!(e.status(), StatusCode::NOT_FOUND);
            assert!(e.body().to_string().contains("gpt-9"));
            // Without a model it is the mesh being empty.
            assert_eq!(d.mesh_error(&no_node(None), None).status(), 503);
        }
    }

    #[test]
    fn shapes() {
        let e = Dialect::OpenAi.error(StatusCode::TOO_MANY_REQUESTS, "busy", "slow down");
        assert_eq!(
            e.body(),
            json!({"error": {"message": "slow down", "type": "rate_limit_error", "param": null, "code": "busy"}})
        );
        let e = Dialect::Anthropic.invalid("bad");
        assert_eq!(
            e.body(),
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}})
        );
        let e = Dialect::Ollama.error(StatusCode::BAD_GATEWAY, "backend_error", "down");
        assert_eq!(e.body(), json!({"error": "down"}));
    }
}

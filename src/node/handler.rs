//! The task handler contract: what `serve()` calls for each task, what it
//! gets (the task and its context) and what it returns (the *inner* result,
//! which the node wraps once in the response envelope).

use crate::backends::BackendError;
use crate::error::IicpError;
use crate::wire::{IntentUrn, Qos, TaskRequest};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::time::Instant;

/// What the node knows about a task besides the request itself.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// The task id (also in the request).
    pub task_id: String,
    /// The intent (also in the request).
    pub intent: IntentUrn,
    /// The caller's W3C traceparent, if sent.
    pub traceparent: Option<String>,
    /// When the handler's budget runs out.
    pub deadline: Instant,
    /// The QoS class asked for.
    pub qos: Option<Qos>,
    /// This node's id, once registered.
    pub node_id: Option<String>,
}

impl TaskContext {
    /// Time left before the deadline.
    pub fn remaining(&self) -> std::time::Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// A failed task, as the handler reports it. The node answers with
/// `status: "error"`, this code and message, and this HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[{code}] {message}")]
pub struct HandlerError {
    /// HTTP status of the answer.
    pub status: u16,
    /// Error code, e.g. `backend_error`.
    pub code: String,
    /// What went wrong. Never include the payload or a key.
    pub message: String,
}

impl HandlerError {
    /// An error with any status and code.
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    /// 502 `backend_error`: the model server failed.
    pub fn backend(message: impl Into<String>) -> Self {
        Self::new(502, "backend_error", message)
    }

    /// 504 `task_timeout`: the model server took too long.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "task_timeout", message)
    }

    /// 400 `validation_error`: the payload cannot be served.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "validation_error", message)
    }
}

impl From<String> for HandlerError {
    fn from(message: String) -> Self {
        Self::new(500, "handler_error", message)
    }
}

impl From<&str> for HandlerError {
    fn from(message: &str) -> Self {
        Self::new(500, "handler_error", message)
    }
}

impl From<IicpError> for HandlerError {
    fn from(e: IicpError) -> Self {
        let status = match &e {
            IicpError::Backend(_) => 502,
            IicpError::Timeout { .. } => 504,
            _ => e.status().unwrap_or(500),
        };
        Self::new(status, e.code().to_owned(), e.to_string())
    }
}

/// The node's answer for a backend failure: 502 `backend_error`, 504
/// `task_timeout` for timeouts, 400 for requests that cannot be sent, 422
/// `unknown_intent` for intents the engine does not serve.
impl From<BackendError> for HandlerError {
    fn from(e: BackendError) -> Self {
        let message = e.to_string();
        match e {
            BackendError::Timeout(_) => HandlerError::timeout(message),
            BackendError::InvalidRequest(_) => HandlerError::invalid(message),
            BackendError::Unsupported(_) => HandlerError::new(422, "unknown_intent", message),
            _ => HandlerError::backend(message),
        }
    }
}

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, HandlerError>> + Send>>;

/// Runs tasks. Implemented for every
/// `Fn(TaskRequest, TaskContext) -> impl Future<Output = Result<Value, HandlerError>>`,
/// so a closure `|req, ctx| async move { … }` is a handler.
pub trait TaskHandler: Send + Sync + 'static {
    /// Runs one task and returns its *inner* result.
    fn handle(&self, task: TaskRequest, ctx: TaskContext) -> HandlerFuture;
}

impl TaskHandler for Arc<dyn TaskHandler> {
    fn handle(&self, task: TaskRequest, ctx: TaskContext) -> HandlerFuture {
        self.as_ref().handle(task, ctx)
    }
}

impl<F, Fut> TaskHandler for F
where
    F: Fn(TaskRequest, TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
{
    fn handle(&self, task: TaskRequest, ctx: TaskContext) -> HandlerFuture {
        Box::pin(self(task, ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_errors_map_to_statuses() {
        let h: HandlerError = BackendError::Timeout(5).into();
        assert_eq!((h.status, h.code.as_str()), (504, "task_timeout"));
        let h: HandlerError = BackendError::upstream(500, "x", None).into();
        assert_eq!((h.status, h.code.as_str()), (502, "backend_error"));
        let h: HandlerError = BackendError::Unreachable("refused".into()).into();
        assert_eq!((h.status, h.code.as_str()), (502, "backend_error"));
        let h: HandlerError = BackendError::InvalidRequest("no model".into()).into();
        assert_eq!((h.status, h.code.as_str()), (400, "validation_error"));
    }
}

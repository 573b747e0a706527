//! The task handler contract: what `serve()` calls for each task, what it
//! gets (the task and its context) and what it returns (the *inner* result,
//! which the node wraps once in the response envelope).

use crate::backends::BackendError;
use crate::error::IicpError;
use crate::partials::PartialSink;
use crate::wire::{IntentUrn, Qos, TaskRequest};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::time::Instant;

/// What the node knows about a task besides the request itself.
#[derive(Debug, Clone)]
#[non_exhaustive]
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
    /// Where to send partial results, when the consumer asked for a
    /// streamed answer (never for a confidential task). The returned
    /// result is still the whole answer. See [`PartialSink`].
    pub partials: Option<PartialSink>,
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

    /// 500 `handler_error` for any other failure: the error is logged on
    /// this node (at warn, escaped) and the consumer gets a generic message,
    /// since an internal error's text may name files, hosts or keys. The
    /// `?` operator does this by itself for `std::io::Error` and
    /// `serde_json::Error`; for other errors write `.map_err(HandlerError::internal)?`.
    ///
    /// ```
    /// use iicp_client::HandlerError;
    /// fn parse(text: &str) -> Result<u32, HandlerError> {
    ///     Ok(text.trim().parse::<u32>().map_err(HandlerError::internal)?)
    /// }
    /// let err = parse("not a number").unwrap_err();
    /// assert_eq!((err.status, err.code.as_str()), (500, "handler_error"));
    /// assert!(!err.message.contains("invalid digit"));
    /// ```
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::warn!(error = ?error.to_string(), "the task handler failed");
        Self::new(500, "handler_error", "the handler failed on this node")
    }
}

/// `?` on an I/O error in a handler: [`HandlerError::internal`].
impl From<std::io::Error> for HandlerError {
    fn from(e: std::io::Error) -> Self {
        Self::internal(e)
    }
}

/// `?` on a JSON error in a handler: [`HandlerError::internal`].
impl From<serde_json::Error> for HandlerError {
    fn from(e: serde_json::Error) -> Self {
        Self::internal(e)
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
/// `Fn(TaskRequest, TaskContext) -> impl Future<Output = Result<Value, HandlerError>>`.
///
/// A closure passed straight to `serve`/`start` needs its parameter types
/// written out (`|req: TaskRequest, ctx: TaskContext| async move { … }`):
/// the compiler cannot learn them from a trait bound. [`handler_fn`] takes
/// the closure as it is, and is the way to keep a handler in a variable.
/// A struct that implements this trait works too.
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

/// Makes a handler of a closure whose parameter types are left to the
/// compiler: `handler_fn(|req, ctx| async move { … })`.
///
/// ```
/// use iicp_client::node::handler_fn;
/// use iicp_client::{HandlerError, TaskHandler};
/// use serde_json::json;
///
/// let handler = handler_fn(|req, ctx| async move {
///     let text = req.payload["text"].as_str().ok_or_else(|| HandlerError::invalid("text is required"))?;
///     let parsed: serde_json::Value = serde_json::from_str(text)?; // `?` on a serde_json::Error
///     Ok(json!({"task": ctx.task_id, "parsed": parsed}))
/// });
/// fn is_handler(_: &impl TaskHandler) {}
/// is_handler(&handler);
/// ```
pub fn handler_fn<F, Fut>(f: F) -> F
where
    F: Fn(TaskRequest, TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
{
    f
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

    #[test]
    fn internal_errors_keep_their_text_on_the_node() {
        let io = std::io::Error::other("/srv/secret/path unreadable");
        let h: HandlerError = io.into();
        assert_eq!((h.status, h.code.as_str()), (500, "handler_error"));
        assert!(!h.message.contains("/srv/secret"), "{h}");
        let json_err = serde_json::from_str::<Value>("{").unwrap_err();
        let h: HandlerError = json_err.into();
        assert_eq!(h.code, "handler_error");
    }
}

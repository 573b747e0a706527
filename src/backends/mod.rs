//! Backends: what turns a task into a call to a model server. A trait,
//! [`Backend`], with one implementation per engine API (OpenAI-compatible,
//! Anthropic), all sharing one pooled HTTP client (PROTOCOL.md §6).
//!
//! A payload comes from a consumer while the server bills the operator:
//! every request's cost fields are lowered to [`CostLimits`] first
//! ([`BackendOptions::max_tokens`], [`BackendOptions::max_choices`]), and an
//! upstream error body never reaches a [`BackendError`]'s message (only its
//! status does; the scrubbed text is logged).
//!
//! [`invoke_backend`] and [`openai_compat::invoke`] are the seed's
//! conveniences: they return the consumer envelope `{"result": …}`, so a
//! `serve()` handler unwraps it before returning:
//!
//! ```no_run
//! # async fn handler(req: iicp_client::TaskRequest) -> Result<serde_json::Value, iicp_client::HandlerError> {
//! let opts = iicp_client::backends::BackendOptions::default();
//! let v = iicp_client::backends::invoke_backend("openai_compat", &opts, &req.intent, &req.payload)
//! .await
//! .unwrap_or_else(|e| serde_json::json!({"error_code": 500, "error_message": e}));
//! // serve() re-wraps in TaskResponse.result — return the inner value to stay single-level.
//! Ok(v.get("result").cloned().unwrap_or(v))
//! # }
//! ```

pub mod anthropic;
mod anthropic_stream;
mod beside;
mod chat_stream;
mod client;
mod error;
mod http;
mod limits;
mod multipart;
pub mod openai_compat;
mod options;
mod sse;
mod streaming;

pub use anthropic::Anthropic;
pub use error::{BackendError, MAX_UPSTREAM_TEXT};
pub use limits::{CostLimits, DEFAULT_MAX_CHOICES, DEFAULT_MAX_TOKENS, clamp_cost};
pub use openai_compat::OpenAiCompat;
pub use options::{BackendKind, BackendOptions};

use crate::partials::PartialSink;
use crate::wire::BackendFlavour;
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A result as [`Backend::invoke_output`] gives it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// The result as a JSON value.
    Value(Value),
    /// The engine's answer as the JSON text it sent, unread. Whoever relays
    /// it checks it first (the node does: one JSON object in UTF-8, else it
    /// is parsed as a [`Output::Value`] would be, and fails the same way).
    Json(bytes::Bytes),
}

impl Output {
    /// The result as a value: JSON text is parsed, and text that is not
    /// JSON is [`BackendError::BadAnswer`], as any engine answer that is not.
    pub fn into_value(self) -> Result<Value, BackendError> {
        match self {
            Output::Value(value) => Ok(value),
            Output::Json(text) => parse_answer(&text),
        }
    }
}

/// An engine's JSON answer as a value; text that is not JSON is
/// [`BackendError::BadAnswer`].
pub(crate) fn parse_answer(text: &[u8]) -> Result<Value, BackendError> {
    crate::wire::from_json_bytes(text).map_err(|e| BackendError::BadAnswer(e.to_string()))
}

/// A boxed backend future.
pub type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'a>>;

/// A model server a node can sit in front of.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// The engine kind.
    fn kind(&self) -> BackendKind;
    /// Runs one task and returns the result (not an envelope).
    fn invoke<'a>(&'a self, intent: &'a str, payload: &'a Value) -> BackendFuture<'a, Value>;
    /// [`Backend::invoke`] on a payload the caller gives away, for a result
    /// the caller may relay as the engine's JSON text ([`Output::Json`]).
    /// An engine that sends the payload on as it is and answers JSON (the
    /// OpenAI-compatible ones) saves copying the payload and parsing the
    /// answer; by default the payload is lent to `invoke`.
    fn invoke_output<'a>(&'a self, intent: &'a str, payload: Value) -> BackendFuture<'a, Output> {
        Box::pin(async move { self.invoke(intent, &payload).await.map(Output::Value) })
    }
    /// Runs one task, streaming from the model server: partial results go
    /// to `partials` as they arrive, and the whole result is returned as
    /// [`Backend::invoke`] would return it. An engine or intent that does
    /// not stream just invokes (no partials).
    fn invoke_streaming<'a>(
        &'a self,
        intent: &'a str,
        payload: &'a Value,
        partials: &'a PartialSink,
    ) -> BackendFuture<'a, Value> {
        let _ = partials;
        self.invoke(intent, payload)
    }
    /// The models the server has loaded now, and the engine flavour it reveals.
    fn probe(&self) -> BackendFuture<'_, (Vec<String>, BackendFlavour)>;
}

impl Backend for OpenAiCompat {
    fn kind(&self) -> BackendKind {
        self.kind()
    }
    fn invoke<'a>(&'a self, intent: &'a str, payload: &'a Value) -> BackendFuture<'a, Value> {
        Box::pin(OpenAiCompat::invoke(self, intent, payload))
    }
    fn invoke_output<'a>(&'a self, intent: &'a str, payload: Value) -> BackendFuture<'a, Output> {
        Box::pin(OpenAiCompat::invoke_output(self, intent, payload))
    }
    fn invoke_streaming<'a>(
        &'a self,
        intent: &'a str,
        payload: &'a Value,
        partials: &'a PartialSink,
    ) -> BackendFuture<'a, Value> {
        Box::pin(OpenAiCompat::invoke_streaming(
            self, intent, payload, partials,
        ))
    }
    fn probe(&self) -> BackendFuture<'_, (Vec<String>, BackendFlavour)> {
        Box::pin(OpenAiCompat::probe(self))
    }
}

impl Backend for Anthropic {
    fn kind(&self) -> BackendKind {
        BackendKind::Anthropic
    }
    fn invoke<'a>(&'a self, intent: &'a str, payload: &'a Value) -> BackendFuture<'a, Value> {
        Box::pin(Anthropic::invoke(self, intent, payload))
    }
    fn invoke_streaming<'a>(
        &'a self,
        intent: &'a str,
        payload: &'a Value,
        partials: &'a PartialSink,
    ) -> BackendFuture<'a, Value> {
        Box::pin(Anthropic::invoke_streaming(self, intent, payload, partials))
    }
    fn probe(&self) -> BackendFuture<'_, (Vec<String>, BackendFlavour)> {
        Box::pin(async move { Ok((self.models().await?, BackendFlavour::Anthropic)) })
    }
}

/// The backend for `kind` with `opts`.
pub fn build(kind: BackendKind, opts: BackendOptions) -> Arc<dyn Backend> {
    match kind {
        BackendKind::Anthropic => Arc::new(Anthropic::new(opts)),
        other => Arc::new(OpenAiCompat::new(other, opts)),
    }
}

/// Runs one task on the engine named `kind` (`openai_compat`, `vllm`,
/// `llamacpp`, `anthropic`) and returns `{"result": …}`; an error is a
/// message string.
pub async fn invoke_backend(
    kind: &str,
    opts: &BackendOptions,
    intent: &str,
    payload: &Value,
) -> Result<Value, String> {
    let kind: BackendKind = kind.parse()?;
    build(kind, opts.clone())
        .invoke(intent, payload)
        .await
        .map(|result| json!({ "result": result }))
        .map_err(|e| e.to_string())
}

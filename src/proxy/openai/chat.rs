//! `POST /v1/chat/completions`: one chat task; with `stream: true` the
//! answer as `chat.completion.chunk` events, then the usage chunk when
//! `stream_options.include_usage` is set, then `data: [DONE]`.

use crate::client::{ChatChunk, ChatResponse, ChatStreamEnd};
use crate::error::IicpError;
use crate::proxy::ProxyState;
use crate::proxy::answer::{self, Delivery};
use crate::proxy::dialect::Dialect;
use crate::proxy::events::{self, Encoder, sse};
use crate::proxy::metrics::Endpoint;
use crate::proxy::task::{count, flag, json_object, take_model, task, unix_now};
use crate::server::request::{BodyError, RawBody};
use crate::wire::{IntentUrn, TaskRequest};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::Arc;

const D: Dialect = Dialect::OpenAi;

/// What the gateway reads of a chat request; the rest goes to the node.
pub(crate) struct ChatCall {
    pub task: TaskRequest,
    pub model: Option<String>,
    pub stream: bool,
    pub include_usage: bool,
}

/// Decodes an OpenAI chat request.
pub(crate) fn decode(
    body: Result<RawBody, BodyError>,
) -> Result<ChatCall, crate::proxy::dialect::ProxyError> {
    let mut body = json_object(D, body)?;
    let stream = flag(D, &body, "stream", false)?;
    let include_usage = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    body.remove("stream");
    body.remove("stream_options");
    match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => {}
        _ => return Err(D.invalid("`messages` must be a non-empty array")),
    }
    let model = take_model(D, &mut body)?;
    let max_tokens = match count(D, &body, "max_completion_tokens")? {
        Some(n) => Some(n),
        None => count(D, &body, "max_tokens")?,
    };
    Ok(ChatCall {
        task: task(IntentUrn::LLM_CHAT_V1, body, model.clone(), max_tokens),
        model,
        stream,
        include_usage,
    })
}

/// The handler.
pub(crate) async fn chat(
    State(st): State<Arc<ProxyState>>,
    body: Result<RawBody, BodyError>,
) -> Response {
    let timer = st.metrics.start(D, Endpoint::Chat);
    let call = match decode(body) {
        Ok(call) => call,
        Err(e) => return answer::refused(timer, e),
    };
    let model = call.model;
    let delivery = if call.stream {
        Delivery::Stream(events::SSE, Chunks::new(call.include_usage, model.clone()))
    } else {
        Delivery::Whole
    };
    let name = model.clone();
    answer::chat(
        &st,
        D,
        timer,
        call.task,
        model.as_deref(),
        delivery,
        |reply| Json(completion(reply, name)).into_response(),
    )
    .await
}

/// The reply with the fields an SDK requires filled when a node left them
/// out (`id`, `created`, `model`, `usage`).
fn completion(mut reply: ChatResponse, model: Option<String>) -> ChatResponse {
    if reply.id.is_empty() {
        reply.id = format!("chatcmpl-{}", reply.task_id);
    }
    if reply.created == 0 {
        reply.created = unix_now();
    }
    if reply.model.is_empty() {
        reply.model = model.unwrap_or_default();
    }
    if reply.object.is_empty() {
        reply.object = "chat.completion".into();
    }
    reply
}

/// OpenAI's chunk stream.
struct Chunks {
    include_usage: bool,
    /// Set from the first chunk (the node's id), or made up.
    id: Option<String>,
    created: u64,
    model: String,
}

impl Chunks {
    fn new(include_usage: bool, model: Option<String>) -> Self {
        Self {
            include_usage,
            id: None,
            created: unix_now(),
            model: model.unwrap_or_default(),
        }
    }

    /// Every chunk of a completion carries the same id, created and model.
    fn stamp(&mut self, chunk: &mut ChatChunk) {
        let id = self.id.get_or_insert_with(|| {
            if chunk.id.is_empty() {
                format!("chatcmpl-{}", crate::ids::uuid_v4().simple())
            } else {
                chunk.id.clone()
            }
        });
        chunk.id.clone_from(id);
        if self.model.is_empty() {
            self.model.clone_from(&chunk.model);
        }
        chunk.model.clone_from(&self.model);
        chunk.created = self.created;
    }
}

impl Encoder for Chunks {
    fn chunk(&mut self, chunk: &ChatChunk, out: &mut Vec<u8>) {
        let mut chunk = chunk.clone();
        self.stamp(&mut chunk);
        sse(out, None, &chunk);
    }

    fn done(&mut self, end: &ChatStreamEnd, out: &mut Vec<u8>) {
        if self.include_usage {
            if let Some(mut usage) = end.usage_chunk() {
                self.stamp(&mut usage);
                sse(out, None, &usage);
            }
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }

    /// OpenAI's SDKs raise on a `data:` event that holds an `error`.
    fn error(&mut self, error: &IicpError, out: &mut Vec<u8>) {
        sse(out, None, &D.mesh_error(error, None).body());
    }
}

//! The Anthropic engine: an `llm:chat:v1` task becomes a Messages API call,
//! and the reply becomes an OpenAI chat completion, so a Claude-backed node
//! looks like any other node (PROTOCOL.md §6).
//!
//! Request: system messages are hoisted into `system` (joined with a blank
//! line), `max_tokens` is the task's, at most the options' `max_tokens`
//! (which is also the value when the task sets none: Anthropic requires it),
//! `temperature` and `top_p` pass through, `stop` becomes `stop_sequences`,
//! `image_url` parts become image blocks (data URLs as base64, others as
//! URL sources), other parts are dropped. Headers: `x-api-key` and
//! `anthropic-version: 2023-06-01`.

use super::anthropic_stream::{AnthropicStream, finish_reason};
use super::client::{BackendRequest, Target, parse_url};
use super::error::BackendError;
use super::http::{send, send_streaming};
use super::limits::clamped;
use super::options::{BackendKind, BackendOptions};
use super::sse::SseStream;
use super::streaming::drive;
use crate::partials::PartialSink;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The API version sent in `anthropic-version`.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Content blocks for one message's content (string or OpenAI parts).
fn blocks(content: &Value) -> Vec<Value> {
    match content {
        Value::String(text) => vec![json!({"type": "text", "text": text})],
        Value::Array(parts) => parts.iter().filter_map(block).collect(),
        _ => Vec::new(),
    }
}

fn block(part: &Value) -> Option<Value> {
    match part.get("type").and_then(Value::as_str)? {
        "text" => Some(json!({"type": "text", "text": part.get("text")?.as_str()?})),
        "image_url" => {
            let url = match part.get("image_url")? {
                Value::String(u) => u.as_str(),
                obj => obj.get("url")?.as_str()?,
            };
            Some(match parse_data_url(url) {
                Some((media_type, data)) => json!({"type": "image",
                    "source": {"type": "base64", "media_type": media_type, "data": data}}),
                None => json!({"type": "image", "source": {"type": "url", "url": url}}),
            })
        }
        _ => None,
    }
}

/// `data:<media type>;base64,<data>` → (media type, data).
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}

/// The text of a system message (string, or the text parts of an array).
fn system_text(content: &Value) -> String {
    blocks(content)
        .iter()
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Translates an `llm:chat:v1` payload into a Messages API request body.
/// `max_tokens` is the payload's, lowered to `max_tokens` (the operator's
/// limit), or `max_tokens` when the payload sets none.
pub fn to_messages_request(
    payload: &Value,
    default_model: Option<&str>,
    max_tokens: u64,
) -> Result<Value, BackendError> {
    let messages = payload
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| BackendError::InvalidRequest("a chat payload needs `messages`".into()))?;
    let model = payload
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .or(default_model)
        .ok_or_else(|| {
            BackendError::InvalidRequest(
                "no model: the task names none and the node has no --model".into(),
            )
        })?;
    let mut system = Vec::new();
    let mut out = Vec::new();
    for m in messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let content = m.get("content").unwrap_or(&Value::Null);
        match role {
            "system" | "developer" => system.push(system_text(content)),
            "assistant" => out.push(json!({"role": "assistant", "content": blocks(content)})),
            // Anthropic has only user and assistant turns; tool output is user input to it.
            _ => out.push(json!({"role": "user", "content": blocks(content)})),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("messages".into(), out.into());
    let asked = match payload.get("max_tokens") {
        Some(v) => clamped("max_tokens", v, max_tokens)?,
        None => None,
    };
    body.insert("max_tokens".into(), asked.unwrap_or(max_tokens).into());
    let system: Vec<String> = system.into_iter().filter(|s| !s.is_empty()).collect();
    if !system.is_empty() {
        body.insert("system".into(), system.join("\n\n").into());
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = payload.get(key).filter(|v| v.is_number()) {
            body.insert(key.into(), v.clone());
        }
    }
    match payload.get("stop") {
        Some(Value::String(s)) => {
            body.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if !a.is_empty() => {
            body.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    Ok(Value::Object(body))
}

/// Translates a Messages API reply into an OpenAI chat completion.
pub fn to_chat_completion(reply: &Value) -> Result<Value, BackendError> {
    let content = reply
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| BackendError::BadAnswer("the Messages reply has no `content`".into()))?;
    let text: String = content
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    let finish_reason = finish_reason(reply.get("stop_reason").and_then(Value::as_str));
    let usage = reply.get("usage").cloned().unwrap_or_default();
    let prompt = usage
        .get("input_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let completion = usage
        .get("output_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(json!({
        "id": reply.get("id").cloned().unwrap_or_else(|| "".into()),
        "object": "chat.completion",
        "created": created,
        "model": reply.get("model").cloned().unwrap_or_else(|| "".into()),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }))
}

/// The Anthropic engine.
#[derive(Debug, Clone)]
pub struct Anthropic {
    /// `{base}/messages` and `{base}/models`, parsed once (a parse failure
    /// is reported by each request).
    messages: Result<Arc<Target>, BackendError>,
    models: Result<Arc<Target>, BackendError>,
    opts: BackendOptions,
}

impl Anthropic {
    /// With no base URL (or the Ollama default) it targets `https://api.anthropic.com/v1`.
    pub fn new(opts: BackendOptions) -> Self {
        let mut base = opts.base_for(BackendKind::Anthropic);
        if base == BackendKind::OpenaiCompat.default_base_url() {
            base = BackendKind::Anthropic.default_base_url().to_owned();
        }
        Self {
            messages: parse_url(&format!("{base}/messages")),
            models: parse_url(&format!("{base}/models")),
            opts,
        }
    }

    fn request(
        &self,
        method: http::Method,
        target: &Result<Arc<Target>, BackendError>,
    ) -> BackendRequest {
        let req = BackendRequest::new(method, target.clone(), self.opts.timeout).header(
            http::HeaderName::from_static("anthropic-version"),
            ANTHROPIC_VERSION,
        );
        match &self.opts.api_key {
            Some(key) => {
                req.sensitive_header(http::HeaderName::from_static("x-api-key"), key.expose())
            }
            None => req,
        }
    }

    fn key(&self) -> Option<&str> {
        self.opts.api_key.as_ref().map(|k| k.expose())
    }

    /// Runs a chat task; other intents are not served.
    pub async fn invoke(&self, intent: &str, payload: &Value) -> Result<Value, BackendError> {
        if intent != crate::wire::intent::LLM_CHAT_V1 {
            return Err(BackendError::Unsupported(intent.to_owned()));
        }
        let body = to_messages_request(payload, self.opts.model.as_deref(), self.opts.max_tokens)?;
        let reply = send(
            self.request(http::Method::POST, &self.messages).json(&body),
            self.key(),
        )
        .await?
        .json()?;
        to_chat_completion(&reply)
    }

    /// Runs a chat task streaming (`stream: true`): text goes to `partials`
    /// as OpenAI chunks, and the whole answer is returned as
    /// [`invoke`](Self::invoke) returns it.
    pub async fn invoke_streaming(
        &self,
        intent: &str,
        payload: &Value,
        partials: &PartialSink,
    ) -> Result<Value, BackendError> {
        if intent != crate::wire::intent::LLM_CHAT_V1 {
            return Err(BackendError::Unsupported(intent.to_owned()));
        }
        let mut body =
            to_messages_request(payload, self.opts.model.as_deref(), self.opts.max_tokens)?;
        body["stream"] = true.into();
        let resp = send_streaming(
            self.request(http::Method::POST, &self.messages).json(&body),
            self.key(),
        )
        .await?;
        let mut state = AnthropicStream::default();
        drive(SseStream::new(resp), partials, |e| state.step(e)).await
    }

    /// Model ids from `GET /models`.
    pub async fn models(&self) -> Result<Vec<String>, BackendError> {
        let body = send(self.request(http::Method::GET, &self.models), self.key())
            .await?
            .json()?;
        Ok(body
            .get("data")
            .and_then(Value::as_array)
            .map(|d| {
                d.iter()
                    .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_mapping() {
        let payload = json!({
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "system", "content": [{"type": "text", "text": "Be kind."}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0"}},
                    {"type": "image_url", "image_url": {"url": "https://img.example.net/a.jpg"}},
                    {"type": "input_audio", "input_audio": {}}
                ]},
                {"role": "assistant", "content": "A cat."},
                {"role": "user", "content": "Sure?"}
            ],
            "temperature": 0.2, "top_p": 0.9, "stop": "END"
        });
        let body = to_messages_request(&payload, Some("claude-x"), 4096).unwrap();
        assert_eq!(body["model"], "claude-x");
        assert_eq!(body["system"], "Be brief.\n\nBe kind.");
        assert_eq!(body["max_tokens"], 4096);
        assert_eq!(body["temperature"], 0.2);
        assert_eq!(body["top_p"], 0.9);
        assert_eq!(body["stop_sequences"], json!(["END"]));
        let msgs = body["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3, "system messages are hoisted out");
        let parts = msgs[0]["content"].as_array().unwrap();
        assert_eq!(parts.len(), 3, "the audio part is dropped");
        assert_eq!(
            parts[1],
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0"}})
        );
        assert_eq!(
            parts[2],
            json!({"type": "image", "source": {"type": "url", "url": "https://img.example.net/a.jpg"}})
        );
        assert_eq!(
            msgs[1],
            json!({"role": "assistant", "content": [{"type": "text", "text": "A cat."}]})
        );
        let own = to_messages_request(
            &json!({"model": "m2", "max_tokens": 5, "messages": []}),
            Some("claude-x"),
            4096,
        )
        .unwrap();
        assert_eq!(
            (own["model"].as_str(), own["max_tokens"].as_u64()),
            (Some("m2"), Some(5))
        );
        assert!(own.get("system").is_none());
        let capped = |asked: Value| {
            to_messages_request(
                &json!({"max_tokens": asked, "messages": []}),
                Some("c"),
                100,
            )
            .map(|b| b["max_tokens"].clone())
        };
        assert_eq!(capped(json!(1_000_000)).unwrap(), 100);
        assert_eq!(capped(json!(null)).unwrap(), 100);
        assert!(capped(json!("1000000")).is_err());
        assert!(to_messages_request(&json!({"messages": []}), None, 1).is_err());
    }

    #[test]
    fn reply_mapping() {
        let reply = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "text", "text": "Hello"}, {"type": "tool_use", "id": "t"}, {"type": "text", "text": " there"}],
            "stop_reason": "max_tokens", "usage": {"input_tokens": 10, "output_tokens": 3}
        });
        let c = to_chat_completion(&reply).unwrap();
        assert_eq!(c["choices"][0]["message"]["content"], "Hello there");
        assert_eq!(c["choices"][0]["finish_reason"], "length");
        assert_eq!(
            c["usage"],
            json!({"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13})
        );
        assert_eq!(
            (c["id"].as_str(), c["model"].as_str(), c["object"].as_str()),
            (Some("msg_1"), Some("claude-x"), Some("chat.completion"))
        );
        for (stop, want) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("tool_use", "tool_calls"),
        ] {
            let r = json!({"content": [], "stop_reason": stop});
            assert_eq!(
                to_chat_completion(&r).unwrap()["choices"][0]["finish_reason"],
                want
            );
        }
        assert!(to_chat_completion(&json!({"error": {}})).is_err());
    }
}

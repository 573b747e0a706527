//! An Anthropic Messages request as the payload of an OpenAI-shaped chat
//! task.
//!
//! Order of checks: the body is a JSON object; `stream` is a boolean;
//! `model` is a string (`auto`, `iicp` or empty mean any model and are left
//! out); `max_tokens` is a positive integer or absent (Anthropic requires
//! it, the gateway does not); `tools` is absent or empty; `system` is a
//! string or text blocks; `messages` is a non-empty array of
//! `{role: user|assistant, content}`; `temperature`, `top_p` are numbers;
//! `stop_sequences` is an array of strings.
//!
//! Translation: `system` becomes the first message (text blocks joined
//! with a blank line); content that is a string stays one, a lone text
//! block becomes a string, several blocks become OpenAI content parts
//! (`text`, and `image_url` with a `data:` URL for a base64 image or the
//! URL of a `url` image). Every other block type (`tool_use`,
//! `tool_result`, `document`, `thinking`…) is refused with a 400 that names
//! it: the gateway answers text only and will not drop part of a
//! conversation silently. `stop_sequences` becomes `stop`; `top_k`,
//! `metadata` and every field not named here are dropped.

use crate::proxy::dialect::{Dialect, ProxyError};
use crate::proxy::task::{count, flag, json_object, take_model, task};
use crate::server::request::{BodyError, RawBody};
use crate::wire::{IntentUrn, TaskRequest};
use serde_json::{Map, Value, json};

const D: Dialect = Dialect::Anthropic;

/// Image types Anthropic accepts.
const MEDIA_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// What the gateway reads of a Messages request.
pub(crate) struct MessagesCall {
    /// The chat task (an OpenAI chat payload).
    pub task: TaskRequest,
    /// The model the request named, to route by (`None`: any).
    pub model: Option<String>,
    /// `stream: true`.
    pub stream: bool,
}

/// Decodes a Messages request into a chat task.
pub(crate) fn decode(body: Result<RawBody, BodyError>) -> Result<MessagesCall, ProxyError> {
    let mut body = json_object(D, body)?;
    let stream = flag(D, &body, "stream", false)?;
    let model = take_model(D, &mut body)?;
    let max_tokens = count(D, &body, "max_tokens")?;
    match body.get("tools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(t)) if t.is_empty() => {}
        Some(_) => {
            return Err(
                D.invalid("`tools` is not supported by the gateway: it answers with text only")
            );
        }
    }
    let mut messages = Vec::new();
    if let Some(system) = system(body.get("system"))? {
        messages.push(json!({"role": "system", "content": system}));
    }
    let Some(Value::Array(turns)) = body.get("messages") else {
        return Err(D.invalid("`messages` must be a non-empty array"));
    };
    if turns.is_empty() {
        return Err(D.invalid("`messages` must be a non-empty array"));
    }
    for (i, turn) in turns.iter().enumerate() {
        messages.push(message(i, turn)?);
    }
    let mut payload = Map::new();
    if let Some(m) = &model {
        payload.insert("model".into(), m.clone().into());
    }
    payload.insert("messages".into(), Value::Array(messages));
    if let Some(n) = max_tokens {
        payload.insert("max_tokens".into(), n.into());
    }
    for field in ["temperature", "top_p"] {
        match body.get(field) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Number(_)) => {
                payload.insert(field.into(), v.clone());
            }
            Some(_) => return Err(D.invalid(format!("`{field}` must be a number"))),
        }
    }
    if let Some(stop) = stop_sequences(body.get("stop_sequences"))? {
        payload.insert("stop".into(), stop);
    }
    Ok(MessagesCall {
        task: task(IntentUrn::LLM_CHAT_V1, payload, model.clone(), max_tokens),
        model,
        stream,
    })
}

/// `system`: a string, or text blocks joined with a blank line; `None`
/// when absent or empty.
fn system(value: Option<&Value>) -> Result<Option<String>, ProxyError> {
    let text = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for block in blocks {
                match block_type(block) {
                    Some("text") => texts.push(text_of(block, "`system`")?),
                    other => {
                        return Err(D.invalid(format!(
                            "`system` blocks must be text blocks, not {}",
                            describe(other)
                        )));
                    }
                }
            }
            texts.join("\n\n")
        }
        Some(_) => return Err(D.invalid("`system` must be a string or an array of text blocks")),
    };
    Ok((!text.is_empty()).then_some(text))
}

/// One turn as an OpenAI message.
fn message(i: usize, turn: &Value) -> Result<Value, ProxyError> {
    let role = match turn.get("role").and_then(Value::as_str) {
        Some(r @ ("user" | "assistant")) => r,
        _ => {
            return Err(D.invalid(format!(
                "`messages[{i}].role` must be `user` or `assistant`"
            )));
        }
    };
    let content = match turn.get("content") {
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Array(blocks)) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (j, block) in blocks.iter().enumerate() {
                parts.push(part(i, j, block)?);
            }
            match parts.as_slice() {
                [only] if only["type"] == "text" => only["text"].clone(),
                _ => Value::Array(parts),
            }
        }
        _ => {
            return Err(D.invalid(format!(
                "`messages[{i}].content` must be a string or an array of content blocks"
            )));
        }
    };
    Ok(json!({"role": role, "content": content}))
}

/// One content block as an OpenAI content part.
fn part(i: usize, j: usize, block: &Value) -> Result<Value, ProxyError> {
    let at = format!("`messages[{i}].content[{j}]`");
    match block_type(block) {
        Some("text") => Ok(json!({"type": "text", "text": text_of(block, &at)?})),
        Some("image") => {
            Ok(json!({"type": "image_url", "image_url": {"url": image_url(block, &at)?}}))
        }
        other => Err(D.invalid(format!(
            "{at} is {}: the gateway takes text and image blocks only",
            describe(other)
        ))),
    }
}

/// The URL an image block becomes: a `data:` URL for a base64 source, the
/// URL itself for a `url` source.
fn image_url(block: &Value, at: &str) -> Result<String, ProxyError> {
    let source = block.get("source");
    let field = |name: &str| source.and_then(|s| s.get(name)).and_then(Value::as_str);
    match field("type") {
        Some("base64") => {
            let media_type = field("media_type").unwrap_or_default();
            if !MEDIA_TYPES.contains(&media_type) {
                return Err(D.invalid(format!(
                    "{at}.source.media_type must be one of {}",
                    MEDIA_TYPES.join(", ")
                )));
            }
            let data = field("data").unwrap_or_default();
            let base64 = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=');
            if data.is_empty() || !data.bytes().all(base64) {
                return Err(D.invalid(format!("{at}.source.data must be base64")));
            }
            Ok(format!("data:{media_type};base64,{data}"))
        }
        Some("url") => match field("url") {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                Ok(url.to_owned())
            }
            _ => Err(D.invalid(format!("{at}.source.url must be an http(s) URL"))),
        },
        _ => Err(D.invalid(format!("{at}.source.type must be `base64` or `url`"))),
    }
}

/// `stop_sequences` as OpenAI's `stop` (`None` when absent or empty).
fn stop_sequences(value: Option<&Value>) -> Result<Option<Value>, ProxyError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(s)) if s.iter().all(Value::is_string) => {
            Ok((!s.is_empty()).then(|| Value::Array(s.clone())))
        }
        Some(_) => Err(D.invalid("`stop_sequences` must be an array of strings")),
    }
}

fn block_type(block: &Value) -> Option<&str> {
    block.get("type").and_then(Value::as_str)
}

fn text_of(block: &Value, at: &str) -> Result<String, ProxyError> {
    block
        .get("text")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| D.invalid(format!("{at}: a text block needs a string `text`")))
}

/// A block's type for an error message (bounded: a type that is not a
/// short name is not repeated back).
fn describe(kind: Option<&str>) -> String {
    match kind {
        Some(k) if k.len() <= 40 && k.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') => {
            format!("a `{k}` block")
        }
        _ => "a block without a known `type`".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_json(v: Value) -> Result<MessagesCall, ProxyError> {
        decode(Ok(RawBody(serde_json::to_vec(&v).unwrap().into())))
    }

    #[test]
    fn a_full_request_becomes_an_openai_chat_payload() {
        let call = decode_json(json!({
            "model": "claude-x", "max_tokens": 64, "stream": true,
            "system": [{"type": "text", "text": "be brief"}, {"type": "text", "text": "be kind"}],
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}},
                ]},
            ],
            "temperature": 0.5, "top_p": 0.9, "top_k": 5,
            "stop_sequences": ["END"], "metadata": {"user_id": "u"},
        }))
        .unwrap();
        assert!(call.stream);
        assert_eq!(call.model.as_deref(), Some("claude-x"));
        assert_eq!(
            call.task.payload,
            json!({
                "model": "claude-x",
                "messages": [
                    {"role": "system", "content": "be brief\n\nbe kind"},
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello"},
                    {"role": "user", "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                    ]},
                ],
                "max_tokens": 64, "temperature": 0.5, "top_p": 0.9, "stop": ["END"],
            })
        );
        let c = call.task.constraints.unwrap();
        assert_eq!(c.model.as_deref(), Some("claude-x"));
        assert_eq!(c.max_tokens, Some(64));
    }

    #[test]
    fn auto_means_any_model_and_max_tokens_may_be_missing() {
        let call =
            decode_json(json!({"model": "auto", "messages": [{"role": "user", "content": "x"}]}))
                .unwrap();
        assert!(!call.stream);
        assert_eq!(call.model, None);
        assert_eq!(
            call.task.payload,
            json!({"messages": [{"role": "user", "content": "x"}]})
        );
        let c = call.task.constraints.unwrap();
        assert_eq!((c.model, c.max_tokens), (None, None));
    }

    #[test]
    fn image_urls_pass_as_urls() {
        let call = decode_json(json!({"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        ]}]}))
        .unwrap();
        assert_eq!(
            call.task.payload["messages"][0]["content"],
            json!([{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}])
        );
    }

    #[test]
    fn what_it_refuses() {
        let user = |content: Value| json!({"messages": [{"role": "user", "content": content}]});
        let image = |source: Value| user(json!([{"type": "image", "source": source}]));
        let cases: Vec<(&str, Value, &str)> = vec![
            ("no messages", json!({"model": "m"}), "`messages`"),
            ("empty messages", json!({"messages": []}), "`messages`"),
            (
                "a system role",
                json!({"messages": [{"role": "system", "content": "x"}]}),
                "role",
            ),
            ("content a number", user(json!(7)), "content"),
            (
                "a tool_use block",
                user(json!([{"type": "tool_use", "id": "t", "name": "f", "input": {}}])),
                "`tool_use` block",
            ),
            (
                "a block without type",
                user(json!([{"text": "x"}])),
                "known `type`",
            ),
            (
                "a text block without text",
                user(json!([{"type": "text"}])),
                "string `text`",
            ),
            (
                "an svg image",
                image(json!({"type": "base64", "media_type": "image/svg+xml", "data": "AA"})),
                "media_type",
            ),
            (
                "data that is not base64",
                image(json!({"type": "base64", "media_type": "image/png", "data": "a,b"})),
                "base64",
            ),
            (
                "a file image",
                image(json!({"type": "file", "file_id": "f"})),
                "source.type",
            ),
            (
                "a non-http url",
                image(json!({"type": "url", "url": "file:///etc/passwd"})),
                "http(s)",
            ),
            (
                "system with an image",
                json!({"system": [{"type": "image"}], "messages": [{"role": "user", "content": "x"}]}),
                "`system`",
            ),
            (
                "system a number",
                json!({"system": 1, "messages": [{"role": "user", "content": "x"}]}),
                "`system`",
            ),
            (
                "tools",
                json!({"tools": [{"name": "f"}], "messages": [{"role": "user", "content": "x"}]}),
                "`tools`",
            ),
            (
                "max_tokens 0",
                json!({"max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}),
                "max_tokens",
            ),
            (
                "temperature a string",
                json!({"temperature": "hot", "messages": [{"role": "user", "content": "x"}]}),
                "temperature",
            ),
            (
                "stop_sequences a string",
                json!({"stop_sequences": "END", "messages": [{"role": "user", "content": "x"}]}),
                "stop_sequences",
            ),
            (
                "stream a string",
                json!({"stream": "yes", "messages": [{"role": "user", "content": "x"}]}),
                "stream",
            ),
            (
                "model a number",
                json!({"model": 1, "messages": []}),
                "model",
            ),
        ];
        for (what, body, needle) in cases {
            let e = match decode_json(body) {
                Ok(_) => panic!("{what}: accepted"),
                Err(e) => e,
            };
            assert_eq!(e.status(), 400, "{what}");
            let b = e.body();
            assert_eq!(b["type"], "error", "{what}");
            assert_eq!(b["error"]["type"], "invalid_request_error", "{what}");
            let msg = b["error"]["message"].as_str().unwrap();
            assert!(msg.contains(needle), "{what}: {msg}");
        }
    }

    #[test]
    fn a_long_block_type_is_not_repeated() {
        let long = "x".repeat(500);
        let e = decode_json(
            json!({"messages": [{"role": "user", "content": [{"type": long.clone()}]}]}),
        )
        .err()
        .unwrap();
        assert!(!e.body().to_string().contains(&long));
    }
}

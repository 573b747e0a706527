//! Anthropic's streamed Messages events as OpenAI chunks, so a streamed
//! Claude answer folds and groups like any other (`streaming.rs`), and its
//! whole answer is the same `chat.completion` a buffered call returns.
//!
//! `message_start` gives the id, model and input tokens (and the role
//! chunk); `content_block_start` of a `tool_use` block opens a tool call;
//! `content_block_delta` carries text (`text_delta`) or tool arguments
//! (`input_json_delta`); `message_delta` the stop reason and output tokens;
//! `message_stop` ends it; `error` fails it. `ping` and unknown events are
//! skipped.

use super::error::{BackendError, scrub};
use super::sse::SseEvent;
use super::streaming::Step;
use serde_json::{Value, json};
use std::collections::HashMap;

/// The state of one streamed answer.
#[derive(Debug, Default)]
pub(crate) struct AnthropicStream {
    id: Value,
    model: Value,
    prompt_tokens: u64,
    /// Content block index → tool call index.
    tools: HashMap<u64, u64>,
}

/// Anthropic's stop reason as OpenAI's finish reason.
pub(crate) fn finish_reason(stop_reason: Option<&str>) -> &str {
    match stop_reason {
        Some("end_turn" | "stop_sequence") | None => "stop",
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        Some(other) => other,
    }
}

impl AnthropicStream {
    /// One event as a [`Step`].
    pub fn step(&mut self, event: SseEvent) -> Result<Step, BackendError> {
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|e| BackendError::BadAnswer(format!("a streamed event is not JSON: {e}")))?;
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref())
            .unwrap_or_default();
        Ok(match kind {
            "message_start" => {
                let message = &data["message"];
                self.id = message.get("id").cloned().unwrap_or_else(|| "".into());
                self.model = message.get("model").cloned().unwrap_or_else(|| "".into());
                self.prompt_tokens = message["usage"]["input_tokens"].as_u64().unwrap_or(0);
                Step::Chunk(self.chunk(json!({"role": "assistant", "content": ""}), Value::Null))
            }
            "content_block_start" => {
                let block = &data["content_block"];
                if block.get("type").and_then(Value::as_str) != Some("tool_use") {
                    return Ok(Step::Skip);
                }
                let index = data["index"].as_u64().unwrap_or(0);
                let tool = self.tools.len() as u64;
                self.tools.insert(index, tool);
                Step::Chunk(self.chunk(
                    json!({"tool_calls": [{"index": tool, "id": block["id"], "type": "function",
                        "function": {"name": block["name"], "arguments": ""}}]}),
                    Value::Null,
                ))
            }
            "content_block_delta" => {
                let delta = &data["delta"];
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => Step::Chunk(self.chunk(
                        json!({"content": delta["text"].as_str().unwrap_or_default()}),
                        Value::Null,
                    )),
                    Some("input_json_delta") => {
                        let index = data["index"].as_u64().unwrap_or(0);
                        let Some(&tool) = self.tools.get(&index) else {
                            return Ok(Step::Skip);
                        };
                        Step::Chunk(self.chunk(
                            json!({"tool_calls": [{"index": tool, "function": {
                                "arguments": delta["partial_json"].as_str().unwrap_or_default()}}]}),
                            Value::Null,
                        ))
                    }
                    _ => Step::Skip,
                }
            }
            "message_delta" => {
                let reason = finish_reason(data["delta"]["stop_reason"].as_str());
                let completion = data["usage"]["output_tokens"].as_u64().unwrap_or(0);
                let mut chunk = self.chunk(json!({}), reason.into());
                chunk["usage"] = json!({"prompt_tokens": self.prompt_tokens,
                    "completion_tokens": completion,
                    "total_tokens": self.prompt_tokens + completion});
                Step::Chunk(chunk)
            }
            "message_stop" => Step::Done,
            "error" => {
                let detail = scrub(&data["error"].to_string(), None);
                tracing::warn!(body = ?detail, "the backend failed while streaming");
                return Err(BackendError::BadAnswer(
                    "the backend reported an error while streaming".into(),
                ));
            }
            _ => Step::Skip,
        })
    }

    fn chunk(&self, delta: Value, finish_reason: Value) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::chat_stream::ChatStream;

    /// A Messages stream as Anthropic documents it, text then a tool call.
    const EVENTS: &[(&str, &str)] = &[
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_1","model":"claude-x","usage":{"input_tokens":12,"output_tokens":1}}}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        ("ping", r#"{"type":"ping"}"#),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" there"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"lookup","input":{}}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"q\":"}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"1}"}}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
        (
            "after",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ignored"}}"#,
        ),
    ];

    #[test]
    fn a_messages_stream_folds_into_a_chat_completion() {
        let mut a = AnthropicStream::default();
        let mut s = ChatStream::default();
        for (event, data) in EVENTS {
            let step = a
                .step(SseEvent {
                    event: Some((*event).into()),
                    data: (*data).into(),
                })
                .unwrap();
            match step {
                Step::Chunk(chunk) => {
                    s.absorb(&chunk).unwrap();
                }
                Step::Skip => {}
                Step::Done => break,
            }
        }
        let answer = s.finish();
        assert_eq!(
            (answer["id"].as_str(), answer["model"].as_str()),
            (Some("msg_1"), Some("claude-x"))
        );
        let choice = &answer["choices"][0];
        assert_eq!(choice["message"]["content"], "Hi there");
        assert_eq!(choice["message"]["tool_calls"][0]["id"], "toolu_1");
        assert_eq!(
            choice["message"]["tool_calls"][0]["function"],
            json!({"name": "lookup", "arguments": "{\"q\":1}"})
        );
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(
            answer["usage"],
            json!({"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21})
        );
    }

    #[test]
    fn an_error_event_fails_the_call_without_its_text() {
        let mut a = AnthropicStream::default();
        let err = a
            .step(SseEvent {
                event: Some("error".into()),
                data: r#"{"type":"error","error":{"type":"overloaded_error","message":"secret detail"}}"#.into(),
            })
            .err()
            .expect("an error");
        assert!(matches!(err, BackendError::BadAnswer(_)));
        assert!(!err.to_string().contains("secret detail"));
    }
}

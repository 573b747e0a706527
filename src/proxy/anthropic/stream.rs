//! A chat stream as Anthropic's Server-Sent Events, named as Anthropic
//! names them: `message_start` (the message with no content yet),
//! `content_block_start` (block 0, empty text), `ping`, one
//! `content_block_delta` (`text_delta`) per piece of text,
//! `content_block_stop`, `message_delta` (the stop reason and the usage),
//! `message_stop`. The first three go out with the first piece (or the
//! end, for an empty answer). A failure after the stream started is one
//! `event: error` with Anthropic's error object, and nothing after it.
//!
//! The input token count is known only at the end, so `message_start`
//! carries 0 and `message_delta` the real count (the SDKs take both).

use super::reply::{message_id, model_name, stop_reason, usage};
use crate::client::{ChatChunk, ChatStreamEnd};
use crate::error::IicpError;
use crate::proxy::dialect::Dialect;
use crate::proxy::events::{Encoder, sse};
use serde_json::json;

/// Anthropic's event stream for one message.
pub(crate) struct Events {
    /// The model the request named.
    asked: Option<String>,
    /// Whether `message_start` went out.
    started: bool,
}

impl Events {
    pub fn new(asked: Option<String>) -> Self {
        Self {
            asked,
            started: false,
        }
    }

    /// `message_start`, `content_block_start`, `ping`, once.
    fn start(&mut self, answered: &str, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({
            "id": message_id(""),
            "type": "message",
            "role": "assistant",
            "model": model_name(answered, self.asked.as_deref()),
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        });
        sse(
            out,
            Some("message_start"),
            &json!({"type": "message_start", "message": message}),
        );
        sse(
            out,
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
        );
        sse(out, Some("ping"), &json!({"type": "ping"}));
    }
}

impl Encoder for Events {
    fn chunk(&mut self, chunk: &ChatChunk, out: &mut Vec<u8>) {
        let text = chunk.text();
        if text.is_empty() {
            return;
        }
        self.start(&chunk.model, out);
        sse(
            out,
            Some("content_block_delta"),
            &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": text}}),
        );
    }

    fn done(&mut self, end: &ChatStreamEnd, out: &mut Vec<u8>) {
        self.start(&end.response.model, out);
        sse(
            out,
            Some("content_block_stop"),
            &json!({"type": "content_block_stop", "index": 0}),
        );
        sse(
            out,
            Some("message_delta"),
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": stop_reason(end.finish_reason.as_deref()),
                              "stop_sequence": null},
                    "usage": usage(end.usage.as_ref())}),
        );
        sse(out, Some("message_stop"), &json!({"type": "message_stop"}));
    }

    fn error(&mut self, error: &IicpError, out: &mut Vec<u8>) {
        sse(
            out,
            Some("error"),
            &Dialect::Anthropic.mesh_error(error, None).body(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ChatResponse;
    use serde_json::Value;

    fn chunk(text: &str) -> ChatChunk {
        serde_json::from_value(json!({"id": "c", "model": "echo",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]}))
        .unwrap()
    }

    fn end() -> ChatStreamEnd {
        let response: ChatResponse = serde_json::from_value(json!({
            "id": "c", "object": "chat.completion", "created": 1, "model": "echo",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "a b"},
                         "finish_reason": "length"}],
            "usage": null, "task_id": "t", "node_id": null, "generated_by_ai": true,
        }))
        .unwrap();
        ChatStreamEnd {
            finish_reason: Some("length".into()),
            usage: Some(
                serde_json::from_value(json!({"prompt_tokens": 4, "completion_tokens": 2}))
                    .unwrap(),
            ),
            streamed: true,
            response,
        }
    }

    /// (event name, data) of every event.
    fn parse(out: &[u8]) -> Vec<(String, Value)> {
        let text = std::str::from_utf8(out).unwrap();
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (event, data) = e.split_once('\n').unwrap();
                (
                    event.strip_prefix("event: ").unwrap().to_owned(),
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn the_event_sequence() {
        let mut e = Events::new(None);
        let mut out = Vec::new();
        e.chunk(&chunk(""), &mut out);
        assert!(out.is_empty(), "an empty piece sends nothing");
        e.chunk(&chunk("a"), &mut out);
        e.chunk(&chunk(" b"), &mut out);
        e.done(&end(), &mut out);
        let events = parse(&out);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        for (name, data) in &events {
            assert_eq!(
                &data["type"],
                name.as_str(),
                "the data's type is the event's name"
            );
        }
        let start = &events[0].1["message"];
        assert_eq!(start["model"], "echo");
        assert_eq!(start["content"], json!([]));
        assert!(start["id"].as_str().unwrap().starts_with("msg_"));
        let text: String = events
            .iter()
            .filter_map(|(_, d)| d["delta"]["text"].as_str())
            .collect();
        assert_eq!(text, "a b");
        assert_eq!(events[6].1["delta"]["stop_reason"], "max_tokens");
        assert_eq!(
            events[6].1["usage"],
            json!({"input_tokens": 4, "output_tokens": 2})
        );
    }

    #[test]
    fn an_empty_answer_still_starts_and_a_failure_is_an_error_event() {
        let mut e = Events::new(Some("m".into()));
        let mut out = Vec::new();
        e.done(&end(), &mut out);
        assert_eq!(parse(&out).len(), 6);

        let mut out = Vec::new();
        Events::new(None).error(
            &IicpError::Timeout {
                what: "the answer".into(),
                elapsed_ms: 5,
            },
            &mut out,
        );
        let events = parse(&out);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0, "error");
        assert_eq!(events[0].1["type"], "error");
        assert_eq!(events[0].1["error"]["type"], "timeout_error");
    }
}

//! A chat answer as Ollama's objects: `/api/chat` puts the text in
//! `message.content`, `/api/generate` in `response` ([`Shape`]).
//!
//! Streamed ([`Lines`]), each piece is a line `{"model","created_at",
//! "message"|"response","done":false}` and the last one has `done: true`,
//! empty text, `done_reason` (`length` when the answer was cut, else
//! `stop`), the token counts the node reported (0 when none) and the
//! durations the gateway measured, in nanoseconds: `total_duration` from
//! the request's arrival; `prompt_eval_duration` to the first piece and
//! `eval_duration` from there to the end (unstreamed: 0 and the whole);
//! `load_duration` is always 0 (loading is the node's business). A failure
//! after the first line is a last line `{"error": "…"}`.

use crate::client::{ChatChunk, ChatResponse, ChatStreamEnd};
use crate::error::IicpError;
use crate::mesh::time::{format_rfc3339, now_ms};
use crate::proxy::dialect::Dialect;
use crate::proxy::events::{Encoder, ndjson};
use crate::wire::ChatUsage;
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

/// Which endpoint's object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `/api/chat`: `message: {role, content}`.
    Chat,
    /// `/api/generate`: `response`.
    Generate,
}

/// Time now, as Ollama writes `created_at`.
fn created_at() -> String {
    format_rfc3339(now_ms())
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A line or object without the end fields.
fn object(shape: Shape, model: &str, text: &str, tool_calls: Option<Value>) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("model".into(), json!(model));
    o.insert("created_at".into(), json!(created_at()));
    match shape {
        Shape::Chat => {
            let mut message = json!({"role": "assistant", "content": text});
            if let Some(calls) = tool_calls {
                message["tool_calls"] = calls;
            }
            o.insert("message".into(), message);
        }
        Shape::Generate => {
            o.insert("response".into(), json!(text));
        }
    }
    o.insert("done".into(), json!(false));
    o
}

/// What the last object says besides the text.
struct End<'a> {
    finish_reason: Option<&'a str>,
    usage: Option<&'a ChatUsage>,
    total: Duration,
    prompt_eval: Duration,
    eval: Duration,
}

fn finish(mut o: Map<String, Value>, end: End<'_>) -> Value {
    let reason = match end.finish_reason {
        Some("length") => "length",
        _ => "stop",
    };
    let (prompt, completion) = end
        .usage
        .map_or((0, 0), |u| (u.prompt_tokens, u.completion_tokens));
    o.insert("done".into(), json!(true));
    o.insert("done_reason".into(), json!(reason));
    o.insert("total_duration".into(), json!(nanos(end.total)));
    o.insert("load_duration".into(), json!(0));
    o.insert("prompt_eval_count".into(), json!(prompt));
    o.insert("prompt_eval_duration".into(), json!(nanos(end.prompt_eval)));
    o.insert("eval_count".into(), json!(completion));
    o.insert("eval_duration".into(), json!(nanos(end.eval)));
    Value::Object(o)
}

/// The answer to a "load the model" call (`done_reason: "load"`, as
/// Ollama answers it).
pub(crate) fn load(shape: Shape, model: &str) -> Value {
    let mut o = object(shape, model, "", None);
    o.insert("done".into(), json!(true));
    o.insert("done_reason".into(), json!("load"));
    Value::Object(o)
}

/// The model an answer names: the node's, else the one asked for.
fn model_of<'a>(node: &'a str, asked: &'a str) -> &'a str {
    if node.is_empty() { asked } else { node }
}

/// OpenAI tool calls (arguments as a JSON string) as Ollama's (arguments
/// as an object; a string that is not JSON stays a string).
fn tool_calls(reply: &ChatResponse) -> Option<Value> {
    let calls = reply
        .choices
        .first()?
        .message
        .extra
        .get("tool_calls")?
        .as_array()?;
    if calls.is_empty() {
        return None;
    }
    let calls = calls
        .iter()
        .filter_map(|c| {
            let f = c.get("function")?;
            let arguments = match f.get("arguments") {
                Some(Value::String(s)) => {
                    serde_json::from_str::<Value>(s).unwrap_or_else(|_| json!(s))
                }
                Some(v) => v.clone(),
                None => json!({}),
            };
            Some(json!({"function": {"name": f.get("name")?, "arguments": arguments}}))
        })
        .collect();
    Some(Value::Array(calls))
}

/// The unstreamed answer: one object, `done: true`.
pub(crate) fn whole(shape: Shape, asked: &str, reply: &ChatResponse, started: Instant) -> Value {
    let total = started.elapsed();
    let o = object(
        shape,
        model_of(&reply.model, asked),
        &reply.text(),
        tool_calls(reply),
    );
    let finish_reason = reply
        .choices
        .first()
        .and_then(|c| c.finish_reason.as_deref());
    finish(
        o,
        End {
            finish_reason,
            usage: reply.usage.as_ref(),
            total,
            prompt_eval: Duration::ZERO,
            eval: total,
        },
    )
}

/// Ollama's NDJSON stream.
pub(crate) struct Lines {
    shape: Shape,
    model: String,
    started: Instant,
    first: Option<Instant>,
}

impl Lines {
    /// A stream for `shape`, naming `asked` until a chunk names the model,
    /// timed from `started`.
    pub fn new(shape: Shape, asked: &str, started: Instant) -> Self {
        Self {
            shape,
            model: asked.to_owned(),
            started,
            first: None,
        }
    }
}

impl Encoder for Lines {
    fn chunk(&mut self, chunk: &ChatChunk, out: &mut Vec<u8>) {
        if !chunk.model.is_empty() {
            self.model.clone_from(&chunk.model);
        }
        let text = chunk.text();
        if text.is_empty() {
            return;
        }
        self.first.get_or_insert_with(Instant::now);
        ndjson(out, &object(self.shape, &self.model, text, None));
    }

    fn done(&mut self, end: &ChatStreamEnd, out: &mut Vec<u8>) {
        let now = Instant::now();
        let first = self.first.unwrap_or(now);
        let model = model_of(&end.response.model, &self.model).to_owned();
        let o = object(self.shape, &model, "", tool_calls(&end.response));
        let line = finish(
            o,
            End {
                finish_reason: end.finish_reason.as_deref(),
                usage: end.usage.as_ref(),
                total: now.duration_since(self.started),
                prompt_eval: first.duration_since(self.started),
                eval: now.duration_since(first),
            },
        );
        ndjson(out, &line);
    }

    /// Ollama's clients raise on a line that holds `error`.
    fn error(&mut self, error: &IicpError, out: &mut Vec<u8>) {
        ndjson(out, &Dialect::Ollama.mesh_error(error, None).body());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ChunkChoice, ChunkDelta};

    fn reply(text: &str, finish: &str, extra: Map<String, Value>) -> ChatResponse {
        serde_json::from_value::<crate::wire::ChatChoice>(json!({
            "index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish
        }))
        .map(|mut choice| {
            choice.message.extra = extra;
            ChatResponse {
                id: "c".into(),
                object: "chat.completion".into(),
                created: 1,
                model: "echo".into(),
                choices: vec![choice],
                usage: Some(ChatUsage {
                    prompt_tokens: 3,
                    completion_tokens: 5,
                    total_tokens: 8,
                    extra: Map::new(),
                }),
                task_id: "t".into(),
                node_id: None,
                generated_by_ai: true,
                extra: Map::new(),
            }
        })
        .unwrap()
    }

    fn lines(out: &[u8]) -> Vec<Value> {
        std::str::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn whole_chat_and_generate() {
        let r = reply("hello", "length", Map::new());
        let v = whole(Shape::Chat, "auto", &r, Instant::now());
        assert_eq!(v["model"], "echo");
        assert_eq!(
            v["message"],
            json!({"role": "assistant", "content": "hello"})
        );
        assert_eq!(v["done"], true);
        assert_eq!(v["done_reason"], "length");
        assert_eq!(v["prompt_eval_count"], 3);
        assert_eq!(v["eval_count"], 5);
        assert!(v["total_duration"].is_u64());
        assert_eq!(v["load_duration"], 0);
        assert!(v["created_at"].as_str().unwrap().ends_with('Z'));
        let v = whole(Shape::Generate, "m", &r, Instant::now());
        assert_eq!(v["response"], "hello");
        assert!(v.get("message").is_none());
    }

    #[test]
    fn tool_calls_come_back_with_object_arguments() {
        let mut extra = Map::new();
        extra.insert(
            "tool_calls".into(),
            json!([{"id": "x", "type": "function",
                    "function": {"name": "f", "arguments": "{\"a\":1}"}}]),
        );
        let v = whole(
            Shape::Chat,
            "m",
            &reply("", "tool_calls", extra),
            Instant::now(),
        );
        assert_eq!(
            v["message"]["tool_calls"],
            json!([{"function": {"name": "f", "arguments": {"a": 1}}}])
        );
        assert_eq!(v["done_reason"], "stop");
    }

    #[test]
    fn streamed_lines_end_with_done_or_an_error() {
        let mut enc = Lines::new(Shape::Chat, "auto", Instant::now());
        let mut out = Vec::new();
        for piece in [None, Some("echo:"), Some(" hi")] {
            let chunk = ChatChunk {
                id: "c".into(),
                object: "chat.completion.chunk".into(),
                created: 1,
                model: "echo".into(),
                choices: vec![ChunkChoice {
                    index: 0,
                    delta: ChunkDelta {
                        role: Some("assistant".into()),
                        content: piece.map(str::to_owned),
                        extra: Map::new(),
                    },
                    finish_reason: None,
                    extra: Map::new(),
                }],
                usage: None,
                extra: Map::new(),
            };
            enc.chunk(&chunk, &mut out);
        }
        let r = reply("echo: hi", "stop", Map::new());
        enc.done(
            &ChatStreamEnd {
                finish_reason: Some("stop".into()),
                usage: r.usage.clone(),
                streamed: true,
                response: r,
            },
            &mut out,
        );
        let l = lines(&out);
        assert_eq!(l.len(), 3, "the role-only chunk sends nothing");
        assert_eq!(l[0]["message"]["content"], "echo:");
        assert_eq!(l[0]["done"], false);
        assert_eq!(l[0]["model"], "echo");
        assert_eq!(l[2]["done"], true);
        assert_eq!(l[2]["message"]["content"], "");
        assert_eq!(l[2]["done_reason"], "stop");
        assert_eq!(l[2]["eval_count"], 5);

        let mut out = Vec::new();
        let mut enc = Lines::new(Shape::Generate, "m", Instant::now());
        enc.error(&IicpError::Backend("down".into()), &mut out);
        let l = lines(&out);
        assert!(l[0]["error"].as_str().unwrap().contains("down"));
        assert_eq!(l[0].as_object().unwrap().len(), 1);
    }

    #[test]
    fn load_answer() {
        let v = load(Shape::Generate, "llama3");
        assert_eq!(v["done"], true);
        assert_eq!(v["done_reason"], "load");
        assert_eq!(v["response"], "");
        assert_eq!(v["model"], "llama3");
    }
}

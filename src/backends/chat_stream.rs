//! A streamed chat completion, both ways at once: each OpenAI
//! `chat.completion.chunk` is folded into the whole answer (the task's
//! final result, the same `chat.completion` a buffered call returns), and
//! passed on as a partial result, small chunks grouped.
//!
//! Grouping: consecutive chunks that only add text (a `content` delta, maybe
//! a `role`) merge into one partial until it holds [`GROUP_BYTES`] of text
//! or the oldest text waited [`GROUP_WAIT`]; anything else (a finish
//! reason, tool calls) is passed on as it came, after the text before it.
//! A chunk without choices (the usage chunk of `include_usage`) only feeds
//! the final answer. Partials are `chat.completion.chunk` objects, so a
//! gateway can forward them to an OpenAI client as they are.
//!
//! The whole answer is bounded: text and tool-call arguments beyond
//! [`MAX_ANSWER_BYTES`] end the call with [`BackendError::BadAnswer`].

use super::error::BackendError;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// Text held back before a partial is sent, at most.
pub(crate) const GROUP_BYTES: usize = 256;
/// Time the oldest held-back text waits, at most.
pub(crate) const GROUP_WAIT: Duration = Duration::from_millis(25);
/// Largest whole answer a stream may build.
pub(crate) const MAX_ANSWER_BYTES: usize = 16 << 20;

/// One choice as it builds up.
#[derive(Debug, Default)]
struct Choice {
    role: Option<String>,
    content: String,
    saw_content: bool,
    /// Tool calls by index: id, type, name, arguments (concatenated).
    tool_calls: BTreeMap<u64, (Option<String>, Option<String>, String, String)>,
    finish_reason: Value,
}

/// The answer so far, and the text not yet passed on.
#[derive(Debug, Default)]
pub(crate) struct ChatStream {
    id: Option<Value>,
    model: Option<Value>,
    created: Option<Value>,
    system_fingerprint: Option<Value>,
    usage: Option<Value>,
    choices: BTreeMap<u64, Choice>,
    /// Held-back text per choice: (role, text).
    pending: BTreeMap<u64, (Option<String>, String)>,
    pending_bytes: usize,
    answer_bytes: usize,
}

impl ChatStream {
    /// Folds in one chunk (an SSE event's JSON) and returns the partials it
    /// makes ready to send, in order.
    pub fn absorb(&mut self, chunk: &Value) -> Result<Vec<Value>, BackendError> {
        let Some(obj) = chunk.as_object() else {
            return Err(BackendError::BadAnswer(
                "a streamed chunk is not a JSON object".into(),
            ));
        };
        for (key, slot) in [
            ("id", &mut self.id),
            ("model", &mut self.model),
            ("created", &mut self.created),
            ("system_fingerprint", &mut self.system_fingerprint),
        ] {
            if slot.is_none() {
                *slot = obj.get(key).filter(|v| !v.is_null()).cloned();
            }
        }
        if let Some(usage) = obj.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        let choices = obj.get("choices").and_then(Value::as_array);
        let Some(choices) = choices.filter(|c| !c.is_empty()) else {
            return Ok(Vec::new());
        };
        let mut ready = Vec::new();
        let text_only = choices.iter().all(is_text_only);
        if !text_only {
            ready.extend(self.flush());
        }
        for c in choices {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            self.fold(index, c)?;
            if text_only {
                let delta = &c["delta"];
                let entry = self.pending.entry(index).or_default();
                if entry.0.is_none() {
                    entry.0 = delta.get("role").and_then(Value::as_str).map(str::to_owned);
                }
                let text = delta.get("content").and_then(Value::as_str).unwrap_or("");
                entry.1.push_str(text);
                self.pending_bytes += text.len();
            }
        }
        if !text_only {
            ready.push(chunk.clone());
        } else if self.pending_bytes >= GROUP_BYTES {
            ready.extend(self.flush());
        }
        Ok(ready)
    }

    /// Whether the answer is complete: it has a choice and every choice has
    /// its `finish_reason`. A stream that ends otherwise was cut (a server
    /// that stopped early, e.g. llama-cpp-python interrupting a stream when
    /// another request arrives, or a connection closed mid-answer).
    pub fn is_finished(&self) -> bool {
        !self.choices.is_empty() && self.choices.values().all(|c| !c.finish_reason.is_null())
    }

    /// Whether text is held back (the caller flushes it after [`GROUP_WAIT`]).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The held-back text as one partial, if any.
    pub fn flush(&mut self) -> Option<Value> {
        if self.pending.is_empty() {
            return None;
        }
        let choices: Vec<Value> = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|(index, (role, text))| {
                let mut delta = Map::new();
                if let Some(role) = role {
                    delta.insert("role".into(), role.into());
                }
                delta.insert("content".into(), text.into());
                json!({"index": index, "delta": delta, "finish_reason": null})
            })
            .collect();
        self.pending_bytes = 0;
        let mut chunk = self.head("chat.completion.chunk");
        chunk.insert("choices".into(), choices.into());
        Some(Value::Object(chunk))
    }

    /// The whole answer, as a buffered call would have returned it.
    pub fn finish(self) -> Value {
        let mut answer = self.head("chat.completion");
        let choices: Vec<Value> = self
            .choices
            .into_iter()
            .map(|(index, c)| {
                let mut message = Map::new();
                message.insert("role".into(), c.role.unwrap_or("assistant".into()).into());
                let content = if c.saw_content || c.tool_calls.is_empty() {
                    Value::from(c.content)
                } else {
                    Value::Null
                };
                message.insert("content".into(), content);
                if !c.tool_calls.is_empty() {
                    let calls: Vec<Value> = c
                        .tool_calls
                        .into_iter()
                        .map(|(i, (id, kind, name, arguments))| {
                            json!({"index": i, "id": id, "type": kind.unwrap_or("function".into()),
                                "function": {"name": name, "arguments": arguments}})
                        })
                        .collect();
                    message.insert("tool_calls".into(), calls.into());
                }
                json!({"index": index, "message": message, "finish_reason": c.finish_reason})
            })
            .collect();
        answer.insert("choices".into(), choices.into());
        if let Some(usage) = &self.usage {
            answer.insert("usage".into(), usage.clone());
        }
        Value::Object(answer)
    }

    fn head(&self, object: &str) -> Map<String, Value> {
        let mut m = Map::new();
        for (key, value) in [
            ("id", &self.id),
            ("created", &self.created),
            ("model", &self.model),
            ("system_fingerprint", &self.system_fingerprint),
        ] {
            if let Some(v) = value {
                m.insert(key.into(), v.clone());
            }
        }
        m.insert("object".into(), object.into());
        m
    }

    fn fold(&mut self, index: u64, c: &Value) -> Result<(), BackendError> {
        let choice = self.choices.entry(index).or_default();
        if let Some(reason) = c.get("finish_reason").filter(|r| !r.is_null()) {
            choice.finish_reason = reason.clone();
        }
        let Some(delta) = c.get("delta").and_then(Value::as_object) else {
            return Ok(());
        };
        if let Some(role) = delta.get("role").and_then(Value::as_str) {
            choice.role.get_or_insert_with(|| role.to_owned());
        }
        let mut added = 0;
        if let Some(text) = delta.get("content").and_then(Value::as_str) {
            choice.content.push_str(text);
            choice.saw_content |= !text.is_empty();
            added += text.len();
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let i = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let slot = choice.tool_calls.entry(i).or_default();
            let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
            if let Some(id) = text(call.get("id")) {
                slot.0 = Some(id);
            }
            if let Some(kind) = text(call.get("type")) {
                slot.1 = Some(kind);
            }
            let function = call.get("function");
            if let Some(name) = text(function.and_then(|f| f.get("name"))) {
                added += name.len();
                slot.2.push_str(&name);
            }
            if let Some(args) = text(function.and_then(|f| f.get("arguments"))) {
                added += args.len();
                slot.3.push_str(&args);
            }
        }
        self.answer_bytes += added;
        if self.answer_bytes > MAX_ANSWER_BYTES {
            return Err(BackendError::BadAnswer(format!(
                "the streamed answer is longer than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        Ok(())
    }
}

/// A choice whose delta adds only text (and maybe the role), with no
/// finish reason.
fn is_text_only(choice: &Value) -> bool {
    if choice.get("finish_reason").is_some_and(|r| !r.is_null()) {
        return false;
    }
    match choice.get("delta").and_then(Value::as_object) {
        Some(delta) => delta.iter().all(|(k, v)| match k.as_str() {
            "content" => v.is_string() || v.is_null(),
            "role" => v.is_string() || v.is_null(),
            _ => v.is_null(),
        }),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(delta: Value, finish: Value) -> Value {
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    #[test]
    fn small_text_chunks_group_and_the_whole_answer_is_rebuilt() {
        let mut s = ChatStream::default();
        let mut partials = Vec::new();
        partials.extend(
            s.absorb(&chunk(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            ))
            .unwrap(),
        );
        for word in ["Hel", "lo", " world"] {
            partials.extend(
                s.absorb(&chunk(json!({"content": word}), Value::Null))
                    .unwrap(),
            );
        }
        assert!(partials.is_empty(), "small text is held back: {partials:?}");
        assert!(s.has_pending());
        partials.extend(s.absorb(&chunk(json!({}), json!("stop"))).unwrap());
        partials.extend(
            s.absorb(&json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}}))
                .unwrap(),
        );
        assert_eq!(partials.len(), 2, "{partials:?}");
        assert_eq!(partials[0]["object"], "chat.completion.chunk");
        assert_eq!(
            partials[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": "Hello world"})
        );
        assert_eq!(partials[1]["choices"][0]["finish_reason"], "stop");
        assert!(!s.has_pending());
        let answer = s.finish();
        assert_eq!(answer["object"], "chat.completion");
        assert_eq!(
            (answer["id"].as_str(), answer["model"].as_str()),
            (Some("c1"), Some("m"))
        );
        assert_eq!(
            answer["choices"][0]["message"],
            json!({"role": "assistant", "content": "Hello world"})
        );
        assert_eq!(answer["choices"][0]["finish_reason"], "stop");
        assert_eq!(answer["usage"]["total_tokens"], 6);
    }

    #[test]
    fn enough_text_is_passed_on_without_waiting() {
        let mut s = ChatStream::default();
        let long = "x".repeat(GROUP_BYTES);
        let ready = s
            .absorb(&chunk(json!({"content": long}), Value::Null))
            .unwrap();
        assert_eq!(ready.len(), 1);
        assert_eq!(
            ready[0]["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap()
                .len(),
            GROUP_BYTES
        );
        assert!(s.flush().is_none());
    }

    #[test]
    fn tool_call_pieces_join_into_one_call() {
        let mut s = ChatStream::default();
        let call = |v: Value| chunk(json!({"tool_calls": [v]}), Value::Null);
        s.absorb(&call(json!({"index": 0, "id": "t1", "type": "function", "function": {"name": "get", "arguments": "{\"a\""}}))).unwrap();
        let ready = s
            .absorb(&call(json!({"index": 0, "function": {"arguments": ":1}"}})))
            .unwrap();
        assert_eq!(ready.len(), 1, "tool-call chunks pass as they came");
        s.absorb(&chunk(json!({}), json!("tool_calls"))).unwrap();
        let answer = s.finish();
        let message = &answer["choices"][0]["message"];
        assert_eq!(message["content"], Value::Null);
        assert_eq!(message["tool_calls"][0]["id"], "t1");
        assert_eq!(
            message["tool_calls"][0]["function"],
            json!({"name": "get", "arguments": "{\"a\":1}"})
        );
    }

    #[test]
    fn a_chunk_that_is_not_an_object_or_an_endless_answer_is_refused() {
        let mut s = ChatStream::default();
        assert!(matches!(
            s.absorb(&json!([1])),
            Err(BackendError::BadAnswer(_))
        ));
        let big = "y".repeat(1 << 20);
        let result = (0..=16).try_for_each(|_| {
            s.absorb(&chunk(json!({"content": big}), Value::Null))
                .map(drop)
        });
        assert!(matches!(result, Err(BackendError::BadAnswer(_))));
    }
}

//! A chat completion as an Anthropic Message: one text block, the finish
//! reason as a `stop_reason`, the usage as input and output tokens.

use crate::client::ChatResponse;
use crate::wire::ChatUsage;
use serde_json::{Value, json};

/// The Message for a buffered answer. `model` is the model the request
/// named, used when the node did not say which answered.
pub(crate) fn message(reply: &ChatResponse, model: Option<&str>) -> Value {
    let finish = reply
        .choices
        .first()
        .and_then(|c| c.finish_reason.as_deref());
    json!({
        "id": message_id(&reply.task_id),
        "type": "message",
        "role": "assistant",
        "model": model_name(&reply.model, model),
        "content": [{"type": "text", "text": reply.text()}],
        "stop_reason": stop_reason(finish),
        "stop_sequence": null,
        "usage": usage(reply.usage.as_ref()),
    })
}

/// `msg_` and the task id's letters and digits (a made-up id when the task
/// has none).
pub(crate) fn message_id(task_id: &str) -> String {
    let id: String = task_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(64)
        .collect();
    if id.is_empty() {
        format!("msg_{}", crate::ids::uuid_v4().simple())
    } else {
        format!("msg_{id}")
    }
}

/// The model that answered, else the one asked for, else `auto`.
pub(crate) fn model_name(answered: &str, asked: Option<&str>) -> String {
    if !answered.is_empty() {
        answered.to_owned()
    } else {
        asked.unwrap_or("auto").to_owned()
    }
}

/// OpenAI's `finish_reason` as Anthropic's `stop_reason`. OpenAI's `stop`
/// does not say whether a stop sequence matched, so it is `end_turn`.
pub(crate) fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// `{input_tokens, output_tokens}` (zeros when the node reported none).
pub(crate) fn usage(usage: Option<&ChatUsage>) -> Value {
    let (input, output) = usage.map_or((0, 0), |u| (u.prompt_tokens, u.completion_tokens));
    json!({"input_tokens": input, "output_tokens": output})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(text: &str, finish: Option<&str>, usage: Option<Value>) -> ChatResponse {
        serde_json::from_value(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish}],
            "usage": usage, "task_id": "6f1c-22aa", "node_id": null, "generated_by_ai": true,
        }))
        .unwrap()
    }

    #[test]
    fn a_completion_becomes_a_message() {
        let r = reply(
            "hello",
            Some("stop"),
            Some(json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})),
        );
        assert_eq!(
            message(&r, Some("claude-x")),
            json!({
                "id": "msg_6f1c22aa", "type": "message", "role": "assistant", "model": "claude-x",
                "content": [{"type": "text", "text": "hello"}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 3, "output_tokens": 2},
            })
        );
        let m = message(&reply("", None, None), None);
        assert_eq!(m["model"], "auto");
        assert_eq!(m["usage"], json!({"input_tokens": 0, "output_tokens": 0}));
        assert_eq!(m["content"][0]["text"], "");
    }

    #[test]
    fn stop_reasons() {
        for (finish, reason) in [
            (Some("stop"), "end_turn"),
            (None, "end_turn"),
            (Some("length"), "max_tokens"),
            (Some("tool_calls"), "tool_use"),
            (Some("function_call"), "tool_use"),
            (Some("content_filter"), "refusal"),
            (Some("odd"), "end_turn"),
        ] {
            assert_eq!(stop_reason(finish), reason, "{finish:?}");
        }
    }

    #[test]
    fn ids() {
        assert_eq!(message_id("a-b_c"), "msg_abc");
        assert!(message_id("--").starts_with("msg_"));
        assert!(message_id("--").len() > 10);
        assert_eq!(message_id(&"x".repeat(500)).len(), 4 + 64);
    }
}

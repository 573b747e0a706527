//! The `echo` demo backend: answers a chat with "echo: <last user message>"
//! in the OpenAI chat-completion shape. It is not a model; it lets a mesh be
//! tried, and tested, without an LLM server.

use iicp_client::wire::MessageContent;
use iicp_client::{HandlerError, TaskContext, TaskRequest};
use serde_json::{Value, json};

/// The model name the echo backend advertises.
pub const MODEL: &str = "echo";

pub async fn handle(req: TaskRequest, _ctx: TaskContext) -> Result<Value, HandlerError> {
    let Some(messages) = req.payload.get("messages").and_then(Value::as_array) else {
        return Err(HandlerError::invalid(
            "the echo backend answers chat payloads with `messages`",
        ));
    };
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
        .and_then(|c| serde_json::from_value::<MessageContent>(c.clone()).ok())
        .map(|c| c.text())
        .unwrap_or_default();
    let content = format!("echo: {last_user}");
    let words = |s: &str| s.split_whitespace().count() as u64;
    let prompt_tokens: u64 = messages
        .iter()
        .filter_map(|m| m.get("content").and_then(Value::as_str))
        .map(words)
        .sum();
    let completion_tokens = words(&content);
    Ok(json!({
        "id": format!("chatcmpl-echo-{}", req.task_id),
        "object": "chat.completion",
        "created": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens}
    }))
}

//! The `echo` demo backend: answers a chat with "echo: <last user message>"
//! in the OpenAI chat-completion shape. It is not a model; it lets a mesh be
//! tried, and tested, without an LLM server. Asked for a streamed answer
//! (a native CALL with a task id) it also sends the reply word by word as
//! `chat.completion.chunk` partials, the way a model backend does.

use iicp_client::wire::MessageContent;
use iicp_client::{HandlerError, TaskContext, TaskRequest};
use serde_json::{Value, json};

/// The model name the echo backend advertises.
pub const MODEL: &str = "echo";

pub async fn handle(req: TaskRequest, ctx: TaskContext) -> Result<Value, HandlerError> {
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
    let id = format!("chatcmpl-echo-{}", req.task_id);
    if let Some(partials) = &ctx.partials {
        for (n, word) in content.split(' ').enumerate() {
            let piece = if n == 0 {
                word.to_owned()
            } else {
                format!(" {word}")
            };
            let chunk = json!({"id": id, "object": "chat.completion.chunk", "model": MODEL,
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]});
            if !partials.send(chunk).await {
                break;
            }
        }
    }
    Ok(json!({
        "id": id,
        "object": "chat.completion",
        "created": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens}
    }))
}

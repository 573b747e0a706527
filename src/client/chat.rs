//! `chat()`: an `llm:chat:v1` task and its OpenAI-shaped reply (PROTOCOL.md
//! §6; SDK-02 in the S numbering).

use crate::error::{IicpError, Result};
use crate::wire::{ChatChoice, ChatCompletion, ChatMessage, ChatUsage, TaskResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The reply of [`IicpClient::chat`](super::IicpClient::chat): the OpenAI
/// chat completion the node returned, plus where it came from.
///
/// `reply.choices[0].message.content` prints with `{}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Completion id.
    pub id: String,
    /// `chat.completion`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// The model that answered.
    pub model: String,
    /// The choices; the first holds the answer.
    pub choices: Vec<ChatChoice>,
    /// Token usage, when the node reported it.
    pub usage: Option<ChatUsage>,
    /// The IICP task id.
    pub task_id: String,
    /// The node that served the task.
    pub node_id: Option<String>,
    /// Whether the node says a model produced the answer.
    pub generated_by_ai: bool,
    /// Other fields of the completion.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatResponse {
    /// The text of the first choice (empty when there is none).
    pub fn text(&self) -> String {
        self.choices
            .first()
            .map(|c| c.message.content.text())
            .unwrap_or_default()
    }
}

/// The payload of a chat task. `model`, `temperature` and `max_tokens` go in
/// the payload, where the backend reads them.
pub(crate) fn payload(
    messages: &[ChatMessage],
    model: Option<&str>,
    temperature: Option<f64>,
    max_tokens: Option<u64>,
) -> Value {
    let mut p = json!({ "messages": messages });
    if let Some(m) = model {
        p["model"] = m.into();
    }
    if let Some(t) = temperature {
        p["temperature"] = t.into();
    }
    if let Some(n) = max_tokens {
        p["max_tokens"] = n.into();
    }
    p
}

/// Finds the completion in a task result. Nodes that wrap their handler's
/// value once more (`{"result": {...}}`, PROTOCOL.md §2.3) are unwrapped.
fn completion_value(result: Value) -> Value {
    unwrap_result(result, "choices")
}

/// Finds the OpenAI answer holding `key` (`choices`, `data`) in a task
/// result, unwrapping up to two `{"result": …}` layers.
pub(super) fn unwrap_result(mut result: Value, key: &str) -> Value {
    for _ in 0..2 {
        if result.get(key).is_some() {
            break;
        }
        match result.get_mut("result").map(Value::take) {
            Some(inner) if inner.is_object() => result = inner,
            _ => break,
        }
    }
    result
}

/// Builds the chat reply from a task response.
pub(crate) fn into_chat_response(response: TaskResponse) -> Result<ChatResponse> {
    let node_id = response.metrics.as_ref().and_then(|m| m.node_id.clone());
    let result = response.result.ok_or_else(|| IicpError::NoResult {
        node_id: node_id.clone().unwrap_or_else(|| "?".into()),
    })?;
    let completion: ChatCompletion =
        serde_json::from_value(completion_value(result)).map_err(|e| IicpError::Decode {
            what: "the chat result (an OpenAI chat completion was expected)".into(),
            reason: e.to_string(),
        })?;
    if completion.choices.is_empty() {
        return Err(IicpError::NoResult {
            node_id: node_id.unwrap_or_else(|| "?".into()),
        });
    }
    Ok(ChatResponse {
        id: completion.id,
        object: completion.object,
        created: completion.created,
        model: completion.model,
        choices: completion.choices,
        usage: completion.usage,
        task_id: response.task_id,
        node_id,
        generated_by_ai: response.generated_by_ai.unwrap_or(true),
        extra: completion.extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(result: Option<Value>) -> TaskResponse {
        serde_json::from_value(json!({
            "task_id": "t1", "status": "success", "result": result,
            "metrics": {"node_id": "n1"}, "generated_by_ai": true
        }))
        .unwrap()
    }

    fn completion(text: &str) -> Value {
        json!({"id": "c", "object": "chat.completion", "model": "m",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})
    }

    #[test]
    fn plain_and_double_wrapped_results() {
        let r = into_chat_response(response(Some(completion("hi")))).unwrap();
        assert_eq!(format!("{}", r.choices[0].message.content), "hi");
        assert_eq!(
            (r.task_id.as_str(), r.node_id.as_deref()),
            ("t1", Some("n1"))
        );
        let r =
            into_chat_response(response(Some(json!({"result": completion("wrapped")})))).unwrap();
        assert_eq!(r.text(), "wrapped");
    }

    #[test]
    fn missing_or_empty_results_are_no_result() {
        let e = into_chat_response(response(None)).unwrap_err();
        assert_eq!(e.code(), "no_result");
        let e = into_chat_response(response(Some(json!({"choices": []})))).unwrap_err();
        assert_eq!(e.code(), "no_result");
        let e = into_chat_response(response(Some(json!({"text": "no choices"})))).unwrap_err();
        assert_eq!(e.code(), "decode_error");
    }

    #[test]
    fn payload_carries_generation_parameters() {
        let p = payload(
            &[ChatMessage::user("hi")],
            Some("phi3"),
            Some(0.2),
            Some(64),
        );
        assert_eq!(p["model"], "phi3");
        assert_eq!(p["temperature"], 0.2);
        assert_eq!(p["max_tokens"], 64);
        assert_eq!(p["messages"][0]["content"], "hi");
        let p = payload(&[ChatMessage::user("hi")], None, None, None);
        assert!(p.get("model").is_none() && p.get("max_tokens").is_none());
    }
}

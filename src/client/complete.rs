//! `complete()`: an `llm:completion:v1` task and its OpenAI text
//! completion (PROTOCOL.md §3, §6).

use super::chat::unwrap_result;
use crate::error::{IicpError, Result};
use crate::wire::{ChatUsage, CompletionChoice, TaskResponse, TextCompletion};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The answer of [`IicpClient::complete`](super::IicpClient::complete): the
/// OpenAI text completion the node returned, plus where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionResponse {
    /// Completion id.
    pub id: String,
    /// `text_completion`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// The model that answered.
    pub model: String,
    /// The choices; the first holds the text.
    pub choices: Vec<CompletionChoice>,
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

impl CompletionResponse {
    /// The text of the first choice (empty when there is none).
    pub fn text(&self) -> &str {
        self.choices
            .first()
            .map(|c| c.text.as_str())
            .unwrap_or_default()
    }
}

/// The payload of a completion task: `{prompt, model?, temperature?, max_tokens?}`.
pub(crate) fn payload(
    prompt: &str,
    model: Option<&str>,
    temperature: Option<f64>,
    max_tokens: Option<u64>,
) -> Value {
    let mut p = json!({ "prompt": prompt });
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

/// Builds the completion answer from a task response.
pub(crate) fn into_completion_response(response: TaskResponse) -> Result<CompletionResponse> {
    let node_id = response.metrics.as_ref().and_then(|m| m.node_id.clone());
    let result = response.result.ok_or_else(|| IicpError::NoResult {
        node_id: node_id.clone().unwrap_or_else(|| "?".into()),
    })?;
    let c: TextCompletion =
        serde_json::from_value(unwrap_result(result, "choices")).map_err(|e| {
            IicpError::Decode {
                what: "the completion result (an OpenAI text completion was expected)".into(),
                reason: e.to_string(),
            }
        })?;
    if c.choices.is_empty() {
        return Err(IicpError::NoResult {
            node_id: node_id.unwrap_or_else(|| "?".into()),
        });
    }
    Ok(CompletionResponse {
        id: c.id,
        object: c.object,
        created: c.created,
        model: c.model,
        choices: c.choices,
        usage: c.usage,
        task_id: response.task_id,
        node_id,
        generated_by_ai: response.generated_by_ai.unwrap_or(true),
        extra: c.extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_errors() {
        let ok: TaskResponse = serde_json::from_value(json!({
            "task_id": "t", "status": "success",
            "result": {"result": {"choices": [{"index": 0, "text": "upon", "finish_reason": "length"}]}}
        }))
        .unwrap();
        let r = into_completion_response(ok).unwrap();
        assert_eq!(r.text(), "upon");
        let empty: TaskResponse = serde_json::from_value(json!({
            "task_id": "t", "status": "success", "result": {"choices": []}
        }))
        .unwrap();
        assert_eq!(
            into_completion_response(empty).unwrap_err().code(),
            "no_result"
        );
        assert_eq!(
            payload("Once", Some("m"), None, Some(5)),
            json!({"prompt": "Once", "model": "m", "max_tokens": 5})
        );
    }
}

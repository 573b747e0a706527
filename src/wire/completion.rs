//! `llm:completion:v1` payloads and results in the OpenAI shape
//! (PROTOCOL.md §3, §6: the node's OpenAI-compatible backend posts the
//! payload to `/completions` as it is and returns the upstream answer).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One choice of a text completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionChoice {
    /// Position.
    #[serde(default)]
    pub index: u32,
    /// The generated text.
    #[serde(default)]
    pub text: String,
    /// `stop`, `length`, …
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Everything else (`logprobs`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An OpenAI text completion, the `llm:completion:v1` result. Usage has
/// the chat's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextCompletion {
    /// Completion id.
    #[serde(default)]
    pub id: String,
    /// `text_completion`.
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// At least one choice.
    pub choices: Vec<CompletionChoice>,
    /// Usage, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<super::ChatUsage>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_openai_text_completion() {
        let c: TextCompletion = serde_json::from_value(serde_json::json!({
            "id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
            "choices": [{"text": " upon a time", "index": 0, "logprobs": null, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 4, "total_tokens": 5}
        }))
        .unwrap();
        assert_eq!(c.choices[0].text, " upon a time");
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("length"));
        assert_eq!(c.usage.unwrap().completion_tokens, 4);
    }
}

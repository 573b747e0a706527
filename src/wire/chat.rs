//! `llm:chat:v1` payloads and results in the OpenAI shape (PROTOCOL.md §6).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// Message content: a string, or OpenAI-style parts (`text`, `image_url`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Content parts, e.g. `[{"type":"text","text":…},{"type":"image_url",…}]`.
    Parts(Vec<Value>),
}

impl MessageContent {
    /// The text of the content: the string itself, or the `text` parts joined.
    pub fn text(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Parts(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
        }
    }
}

impl Default for MessageContent {
    fn default() -> Self {
        Self::Text(String::new())
    }
}

impl fmt::Display for MessageContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(s) => f.write_str(s),
            Self::Parts(_) => f.write_str(&self.text()),
        }
    }
}

impl From<&str> for MessageContent {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

impl From<String> for MessageContent {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl From<Vec<Value>> for MessageContent {
    fn from(parts: Vec<Value>) -> Self {
        Self::Parts(parts)
    }
}

impl PartialEq<&str> for MessageContent {
    fn eq(&self, other: &&str) -> bool {
        matches!(self, Self::Text(s) if s == other)
    }
}

fn content_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<MessageContent, D::Error> {
    Ok(Option::<MessageContent>::deserialize(d)?.unwrap_or_default())
}

/// One chat message: `ChatMessage { role: "user".into(), content: "Hi".into() }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The content; `null` reads as empty (assistant messages with tool calls).
    #[serde(deserialize_with = "content_or_null")]
    pub content: MessageContent,
}

impl ChatMessage {
    /// A message with `role` and `content`.
    pub fn new(role: impl Into<String>, content: impl Into<MessageContent>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `user` message.
    pub fn user(content: impl Into<MessageContent>) -> Self {
        Self::new("user", content)
    }

    /// A `system` message.
    pub fn system(content: impl Into<MessageContent>) -> Self {
        Self::new("system", content)
    }
}

/// The message of a chat choice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionMessage {
    /// Usually `assistant`.
    #[serde(default)]
    pub role: String,
    /// The reply; prints with `{}`.
    #[serde(default, deserialize_with = "content_or_null")]
    pub content: MessageContent,
    /// Everything else (`tool_calls`, `reasoning_content`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One choice of a chat completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    /// Position.
    #[serde(default)]
    pub index: u32,
    /// The reply.
    pub message: ChatCompletionMessage,
    /// `stop`, `length`, `tool_calls`, …
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Token usage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatUsage {
    /// Prompt tokens.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Completion tokens.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Both.
    #[serde(default)]
    pub total_tokens: u64,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An OpenAI chat completion, the `llm:chat:v1` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    /// Completion id.
    #[serde(default)]
    pub id: String,
    /// `chat.completion`.
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// At least one choice.
    pub choices: Vec<ChatChoice>,
    /// Usage, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ChatUsage>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_literal_shape_and_display() {
        let m = ChatMessage {
            role: "user".into(),
            content: "What is IICP?".into(),
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            serde_json::json!({"role":"user","content":"What is IICP?"})
        );
        let c: ChatCompletion = serde_json::from_value(serde_json::json!({
            "choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]
        }))
        .unwrap();
        assert_eq!(format!("{}", c.choices[0].message.content), "hi");
    }

    #[test]
    fn parts_and_null_content() {
        let m: ChatMessage = serde_json::from_value(serde_json::json!({
            "role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]
        }))
        .unwrap();
        assert_eq!(m.content.text(), "ab");
        let m: ChatCompletionMessage = serde_json::from_value(
            serde_json::json!({"role":"assistant","content":null,"tool_calls":[]}),
        )
        .unwrap();
        assert_eq!(m.content, "");
        assert!(m.extra.contains_key("tool_calls"));
    }
}

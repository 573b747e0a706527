//! `llm:embedding:v1` payloads and results in the OpenAI shape (PROTOCOL.md
//! §3, §6: the node's OpenAI-compatible backend posts the payload to
//! `/embeddings` as it is and returns the upstream answer).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What to embed: one text, or several (one vector each, in order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    One(String),
    /// Several texts.
    Many(Vec<String>),
}

impl EmbeddingInput {
    /// How many vectors the answer should hold.
    pub fn len(&self) -> usize {
        match self {
            Self::One(_) => 1,
            Self::Many(v) => v.len(),
        }
    }

    /// True for an empty list.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<&str> for EmbeddingInput {
    fn from(s: &str) -> Self {
        Self::One(s.to_owned())
    }
}

impl From<String> for EmbeddingInput {
    fn from(s: String) -> Self {
        Self::One(s)
    }
}

impl From<Vec<String>> for EmbeddingInput {
    fn from(v: Vec<String>) -> Self {
        Self::Many(v)
    }
}

impl From<Vec<&str>> for EmbeddingInput {
    fn from(v: Vec<&str>) -> Self {
        Self::Many(v.into_iter().map(str::to_owned).collect())
    }
}

impl<const N: usize> From<[&str; N]> for EmbeddingInput {
    fn from(v: [&str; N]) -> Self {
        Self::Many(v.into_iter().map(str::to_owned).collect())
    }
}

/// The `llm:embedding:v1` payload: an OpenAI embeddings request
/// `{model?, input}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    /// The model; the node fills in its configured one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The text or texts.
    pub input: EmbeddingInput,
    /// Other request fields (`dimensions`, `user`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One vector of an embeddings answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// Position of its input.
    #[serde(default)]
    pub index: u32,
    /// The vector.
    pub embedding: Vec<f32>,
    /// Everything else (`object: "embedding"`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Token usage of an embeddings call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingUsage {
    /// Prompt tokens.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// All tokens.
    #[serde(default)]
    pub total_tokens: u64,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An OpenAI embeddings answer, the `llm:embedding:v1` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingList {
    /// `list`.
    #[serde(default)]
    pub object: String,
    /// One vector per input.
    pub data: Vec<Embedding>,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// Usage, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<EmbeddingUsage>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_is_the_openai_shape() {
        let r = EmbeddingRequest {
            model: None,
            input: "a cat".into(),
            extra: Map::new(),
        };
        assert_eq!(serde_json::to_value(&r).unwrap(), json!({"input": "a cat"}));
        let r = EmbeddingRequest {
            model: Some("nomic-embed-text".into()),
            input: ["a", "b"].into(),
            extra: Map::new(),
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"model": "nomic-embed-text", "input": ["a", "b"]})
        );
        assert_eq!(r.input.len(), 2);
    }

    #[test]
    fn answer_reads_vectors_and_keeps_the_rest() {
        let l: EmbeddingList = serde_json::from_value(json!({
            "object": "list", "model": "m",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -1, 2.25]}],
            "usage": {"prompt_tokens": 3, "total_tokens": 3}
        }))
        .unwrap();
        assert_eq!(l.data[0].embedding, vec![0.5, -1.0, 2.25]);
        assert_eq!(l.data[0].extra["object"], "embedding");
        assert_eq!(l.usage.unwrap().total_tokens, 3);
    }
}

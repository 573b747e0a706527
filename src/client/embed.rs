//! `embed()`: an `llm:embedding:v1` task and its OpenAI-shaped answer
//! (PROTOCOL.md §3, §6).

use super::chat::unwrap_result;
use crate::error::{IicpError, Result};
use crate::wire::{Embedding, EmbeddingInput, EmbeddingList, EmbeddingUsage, TaskResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The answer of [`IicpClient::embed`](super::IicpClient::embed): the
/// OpenAI embeddings list the node returned, plus where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedResponse {
    /// One vector per input, in input order.
    pub data: Vec<Embedding>,
    /// The model that answered.
    pub model: String,
    /// Token usage, when the node reported it.
    pub usage: Option<EmbeddingUsage>,
    /// The IICP task id.
    pub task_id: String,
    /// The node that served the task.
    pub node_id: Option<String>,
    /// Whether the node says a model produced the answer.
    pub generated_by_ai: bool,
    /// Other fields of the answer.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl EmbedResponse {
    /// The vectors, in input order.
    pub fn vectors(&self) -> Vec<&[f32]> {
        self.data.iter().map(|e| e.embedding.as_slice()).collect()
    }
}

/// The payload of an embedding task: `{model?, input}`.
pub(crate) fn payload(input: &EmbeddingInput, model: Option<&str>) -> Value {
    let mut p = json!({ "input": input });
    if let Some(m) = model {
        p["model"] = m.into();
    }
    p
}

/// Builds the embed answer from a task response; an answer whose vector
/// count differs from the input count is refused.
pub(crate) fn into_embed_response(response: TaskResponse, inputs: usize) -> Result<EmbedResponse> {
    let node_id = response.metrics.as_ref().and_then(|m| m.node_id.clone());
    let result = response.result.ok_or_else(|| IicpError::NoResult {
        node_id: node_id.clone().unwrap_or_else(|| "?".into()),
    })?;
    let mut list: EmbeddingList =
        serde_json::from_value(unwrap_result(result, "data")).map_err(|e| IicpError::Decode {
            what: "the embedding result (an OpenAI embeddings list was expected)".into(),
            reason: e.to_string(),
        })?;
    if list.data.is_empty() {
        return Err(IicpError::NoResult {
            node_id: node_id.unwrap_or_else(|| "?".into()),
        });
    }
    if list.data.len() != inputs {
        return Err(IicpError::Decode {
            what: "the embedding result".into(),
            reason: format!("{} vector(s) for {inputs} input(s)", list.data.len()),
        });
    }
    list.data.sort_by_key(|e| e.index);
    Ok(EmbedResponse {
        data: list.data,
        model: list.model,
        usage: list.usage,
        task_id: response.task_id,
        node_id,
        generated_by_ai: response.generated_by_ai.unwrap_or(true),
        extra: list.extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(result: Value) -> TaskResponse {
        serde_json::from_value(json!({
            "task_id": "t1", "status": "success", "result": result,
            "metrics": {"node_id": "n1"}
        }))
        .unwrap()
    }

    #[test]
    fn vectors_in_input_order_and_wrapped_results() {
        let list = json!({"object": "list", "model": "e", "data": [
            {"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1.0]}]});
        let r = into_embed_response(response(list.clone()), 2).unwrap();
        assert_eq!(r.vectors(), vec![&[1.0f32][..], &[2.0][..]]);
        assert_eq!((r.node_id.as_deref(), r.model.as_str()), (Some("n1"), "e"));
        let r = into_embed_response(response(json!({"result": list})), 2).unwrap();
        assert_eq!(r.data.len(), 2);
    }

    #[test]
    fn wrong_counts_and_shapes_are_errors() {
        let one = json!({"data": [{"index": 0, "embedding": [1.0]}]});
        assert_eq!(
            into_embed_response(response(one), 2).unwrap_err().code(),
            "decode_error"
        );
        let none = json!({"data": []});
        assert_eq!(
            into_embed_response(response(none), 1).unwrap_err().code(),
            "no_result"
        );
        let text = json!({"text": "no vectors"});
        assert_eq!(
            into_embed_response(response(text), 1).unwrap_err().code(),
            "decode_error"
        );
    }

    #[test]
    fn payload_is_openai_embeddings_request() {
        assert_eq!(payload(&"hi".into(), None), json!({"input": "hi"}));
        assert_eq!(
            payload(&["a", "b"].into(), Some("e")),
            json!({"input": ["a", "b"], "model": "e"})
        );
    }
}

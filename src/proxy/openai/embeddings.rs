//! `POST /v1/embeddings`: one embedding task. The mesh answers floats;
//! `encoding_format: "base64"` (what the OpenAI Python SDK asks for by
//! default) is encoded here, as little-endian `f32`s.

use crate::client::embed::into_embed_response;
use crate::proxy::ProxyState;
use crate::proxy::answer;
use crate::proxy::dialect::Dialect;
use crate::proxy::metrics::{Endpoint, Outcome};
use crate::proxy::task::{json_object, take_model, task};
use crate::server::request::{BodyError, RawBody};
use crate::wire::IntentUrn;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use std::sync::Arc;

const D: Dialect = Dialect::OpenAi;

/// How many vectors an `input` asks for: a string or a token array is one,
/// an array of strings or of token arrays one each.
fn inputs(input: Option<&Value>) -> Option<usize> {
    match input? {
        Value::String(_) => Some(1),
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) if items.iter().all(Value::is_number) => Some(1),
        Value::Array(items) if items.iter().all(|i| i.is_string() || i.is_array()) => {
            Some(items.len())
        }
        _ => None,
    }
}

/// The handler.
pub(crate) async fn embeddings(
    State(st): State<Arc<ProxyState>>,
    body: Result<RawBody, BodyError>,
) -> Response {
    let timer = st.metrics.start(D, Endpoint::Embedding);
    let decoded = (|| {
        let mut body = json_object(D, body)?;
        let base64 = match body.remove("encoding_format") {
            None | Some(Value::Null) => false,
            Some(Value::String(f)) if f == "float" => false,
            Some(Value::String(f)) if f == "base64" => true,
            Some(_) => return Err(D.invalid("`encoding_format` must be `float` or `base64`")),
        };
        let n = inputs(body.get("input")).ok_or_else(|| {
            D.invalid("`input` must be a string, an array of strings, or token arrays, not empty")
        })?;
        let model = take_model(D, &mut body)?;
        Ok((
            task(IntentUrn::LLM_EMBEDDING_V1, body, model.clone(), None),
            model,
            n,
            base64,
        ))
    })();
    let (task, model, n, base64) = match decoded {
        Ok(d) => d,
        Err(e) => return answer::refused(timer, e),
    };
    let reply = st
        .client
        .submit_interactive(task, None)
        .await
        .and_then(|r| into_embed_response(r, n));
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => {
            timer.finish(Outcome::MeshError);
            return D.mesh_error(&e, model.as_deref()).into_response();
        }
    };
    timer.finish(Outcome::Success);
    let data: Vec<Value> = reply
        .data
        .iter()
        .map(|e| {
            let vector = if base64 {
                let bytes: Vec<u8> = e.embedding.iter().flat_map(|f| f.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(e.embedding)
            };
            json!({"object": "embedding", "index": e.index, "embedding": vector})
        })
        .collect();
    let usage = reply.usage.as_ref().map_or(
        json!({"prompt_tokens": 0, "total_tokens": 0}),
        |u| json!({"prompt_tokens": u.prompt_tokens, "total_tokens": u.total_tokens}),
    );
    let model = if reply.model.is_empty() {
        model.unwrap_or_default()
    } else {
        reply.model
    };
    Json(json!({"object": "list", "data": data, "model": model, "usage": usage})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_counts() {
        for (input, n) in [
            (json!("a"), Some(1)),
            (json!(["a", "b"]), Some(2)),
            (json!([1, 2, 3]), Some(1)),
            (json!([[1, 2], [3]]), Some(2)),
            (json!([]), None),
            (json!(5), None),
            (json!([{"a": 1}]), None),
        ] {
            assert_eq!(inputs(Some(&input)), n, "{input}");
        }
        assert_eq!(inputs(None), None);
    }
}

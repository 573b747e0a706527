//! `POST /api/embed` (`{model, input}` → `{model, embeddings: [[…]]}`) and
//! the older `POST /api/embeddings` (`{model, prompt}` → `{embedding: […]}`),
//! each one embedding task. Order: the body is an object, the input is a
//! non-empty string or list of strings (the older call: `prompt` a string),
//! `model` a string; then the mesh. `truncate`, `options` and `keep_alive`
//! are dropped; `dimensions` passes on.

use crate::client::embed::into_embed_response;
use crate::proxy::ProxyState;
use crate::proxy::dialect::{Dialect, ProxyError};
use crate::proxy::metrics::{Endpoint, Outcome};
use crate::proxy::task::{count, json_object, take_model, task};
use crate::server::request::{BodyError, RawBody};
use crate::wire::{IntentUrn, TaskRequest};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Instant;

const D: Dialect = Dialect::Ollama;

/// Which of the two calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// `/api/embed`: `input`, `embeddings`.
    Embed,
    /// `/api/embeddings`: `prompt`, `embedding`.
    Legacy,
}

/// `POST /api/embed`.
pub(crate) async fn embed(
    State(st): State<Arc<ProxyState>>,
    body: Result<RawBody, BodyError>,
) -> Response {
    run(&st, Api::Embed, body).await
}

/// `POST /api/embeddings`.
pub(crate) async fn embeddings(
    State(st): State<Arc<ProxyState>>,
    body: Result<RawBody, BodyError>,
) -> Response {
    run(&st, Api::Legacy, body).await
}

/// The task, the model to route by, the name asked for, the input count.
fn decode(
    api: Api,
    body: Result<RawBody, BodyError>,
) -> Result<(TaskRequest, Option<String>, String, usize), ProxyError> {
    let body = json_object(D, body)?;
    let (input, n) = match api {
        Api::Embed => match body.get("input") {
            Some(Value::String(s)) if !s.is_empty() => (json!(s), 1),
            Some(Value::Array(list))
                if !list.is_empty()
                    && list
                        .iter()
                        .all(|i| i.as_str().is_some_and(|s| !s.is_empty())) =>
            {
                (Value::Array(list.clone()), list.len())
            }
            _ => return Err(D.invalid("`input` must be a non-empty string or list of strings")),
        },
        Api::Legacy => match body.get("prompt") {
            Some(Value::String(s)) if !s.is_empty() => (json!(s), 1),
            _ => return Err(D.invalid("`prompt` must be a non-empty string")),
        },
    };
    let mut payload = Map::new();
    if let Some(m) = body.get("model") {
        payload.insert("model".into(), m.clone());
    }
    let name = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let model = take_model(D, &mut payload)?;
    payload.insert("input".into(), input);
    if let Some(d) = count(D, &body, "dimensions")? {
        payload.insert("dimensions".into(), d.into());
    }
    Ok((
        task(IntentUrn::LLM_EMBEDDING_V1, payload, model.clone(), None),
        model,
        name,
        n,
    ))
}

async fn run(st: &ProxyState, api: Api, body: Result<RawBody, BodyError>) -> Response {
    let started = Instant::now();
    let timer = st.metrics.start(D, Endpoint::Embedding);
    let (task, model, name, n) = match decode(api, body) {
        Ok(d) => d,
        Err(e) => {
            timer.finish(Outcome::Invalid);
            return e.into_response();
        }
    };
    let reply = match st
        .client
        .submit_interactive(task, None)
        .await
        .and_then(|r| into_embed_response(r, n))
    {
        Ok(reply) => reply,
        Err(e) => {
            timer.finish(Outcome::MeshError);
            return D.mesh_error(&e, model.as_deref()).into_response();
        }
    };
    timer.finish(Outcome::Success);
    let mut vectors: Vec<Value> = reply.data.iter().map(|e| json!(e.embedding)).collect();
    if api == Api::Legacy {
        let embedding = vectors.pop().unwrap_or_else(|| json!([]));
        return Json(json!({ "embedding": embedding })).into_response();
    }
    let model = if reply.model.is_empty() {
        name
    } else {
        reply.model
    };
    let total = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    Json(json!({
        "model": model,
        "embeddings": vectors,
        "total_duration": total,
        "load_duration": 0,
        "prompt_eval_count": reply.usage.as_ref().map_or(0, |u| u.prompt_tokens),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(v: Value) -> Result<RawBody, BodyError> {
        Ok(RawBody(serde_json::to_vec(&v).unwrap().into()))
    }

    #[test]
    fn inputs_and_models() {
        let (t, model, name, n) = decode(
            Api::Embed,
            raw(json!({"model": "nomic", "input": ["a", "b"], "truncate": true, "keep_alive": 0})),
        )
        .unwrap();
        assert_eq!(
            (model.as_deref(), name.as_str(), n),
            (Some("nomic"), "nomic", 2)
        );
        assert_eq!(t.intent, IntentUrn::LLM_EMBEDDING_V1);
        assert_eq!(t.payload, json!({"model": "nomic", "input": ["a", "b"]}));
        let (t, model, _, n) =
            decode(Api::Legacy, raw(json!({"model": "auto", "prompt": "x"}))).unwrap();
        assert_eq!((model, n), (None, 1));
        assert_eq!(t.payload, json!({"input": "x"}));
        for body in [
            json!({"input": ""}),
            json!({"input": []}),
            json!({"input": [1]}),
            json!({"input": "x", "model": 1}),
            json!({"input": "x", "dimensions": 0}),
        ] {
            assert_eq!(
                decode(Api::Embed, raw(body.clone())).unwrap_err().status(),
                400,
                "{body}"
            );
        }
        assert!(decode(Api::Legacy, raw(json!({"input": "x"}))).is_err());
    }
}

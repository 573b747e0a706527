//! `GET /v1/models`: the chat models the mesh offers; `GET /v1/models/{id}`:
//! one of them, or OpenAI's 404 `model_not_found`.

use crate::proxy::ProxyState;
use crate::proxy::dialect::Dialect;
use crate::proxy::metrics::{Endpoint, Outcome};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

/// `{"object":"list","data":[{"id","object":"model","created","owned_by"}]}`.
pub(crate) async fn models(State(st): State<Arc<ProxyState>>) -> Response {
    let timer = st.metrics.start(Dialect::OpenAi, Endpoint::Models);
    match st.catalog.chat_models(&st.client).await {
        Ok(models) => {
            timer.finish(Outcome::Success);
            let data: Vec<_> = models.iter().map(|id| model_object(id)).collect();
            Json(json!({"object": "list", "data": data})).into_response()
        }
        Err(e) => {
            timer.finish(Outcome::MeshError);
            Dialect::OpenAi.mesh_error(&e, None).into_response()
        }
    }
}

/// One model in OpenAI's shape.
fn model_object(id: &str) -> serde_json::Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "iicp-mesh"})
}

/// `GET /v1/models/{id}` (ids may hold `/`, as `org/model` does).
pub(crate) async fn model(State(st): State<Arc<ProxyState>>, Path(id): Path<String>) -> Response {
    let timer = st.metrics.start(Dialect::OpenAi, Endpoint::Models);
    match st.catalog.chat_models(&st.client).await {
        Ok(models) if models.contains(&id) => {
            timer.finish(Outcome::Success);
            Json(model_object(&id)).into_response()
        }
        Ok(_) => {
            timer.finish(Outcome::Invalid);
            let shown: String = id.chars().take(128).collect();
            Dialect::OpenAi
                .error(
                    StatusCode::NOT_FOUND,
                    "model_not_found",
                    format!("no node on the mesh serves the model `{shown}`"),
                )
                .into_response()
        }
        Err(e) => {
            timer.finish(Outcome::MeshError);
            Dialect::OpenAi.mesh_error(&e, None).into_response()
        }
    }
}

//! `GET /v1/models`: the chat models the mesh offers.

use crate::proxy::ProxyState;
use crate::proxy::dialect::Dialect;
use crate::proxy::metrics::{Endpoint, Outcome};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

/// `{"object":"list","data":[{"id","object":"model","created","owned_by"}]}`.
pub(crate) async fn models(State(st): State<Arc<ProxyState>>) -> Response {
    let timer = st.metrics.start(Dialect::OpenAi, Endpoint::Models);
    match st.catalog.chat_models(&st.client).await {
        Ok(models) => {
            timer.finish(Outcome::Success);
            let data: Vec<_> = models
                .iter()
                .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "iicp-mesh"}))
                .collect();
            Json(json!({"object": "list", "data": data})).into_response()
        }
        Err(e) => {
            timer.finish(Outcome::MeshError);
            Dialect::OpenAi.mesh_error(&e, None).into_response()
        }
    }
}

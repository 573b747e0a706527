//! `GET /api/tags` (the chat models the mesh offers, in Ollama's list
//! shape), `GET /api/version`, and `GET /` (the text Ollama answers there,
//! which some clients probe before anything else).

use crate::mesh::time::{format_rfc3339, now_ms};
use crate::proxy::ProxyState;
use crate::proxy::dialect::Dialect;
use crate::proxy::metrics::{Endpoint, Outcome};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The version `/api/version` reports: an Ollama API level clients accept,
/// marked as this gateway.
const VERSION: &str = "0.6.0-iicp";

/// `{"models":[{"name","model","modified_at","size":0,"digest","details"}]}`.
pub(crate) async fn tags(State(st): State<Arc<ProxyState>>) -> Response {
    let timer = st.metrics.start(Dialect::Ollama, Endpoint::Models);
    match st.catalog.chat_models(&st.client).await {
        Ok(models) => {
            timer.finish(Outcome::Success);
            let now = format_rfc3339(now_ms());
            let models: Vec<Value> = models.iter().map(|m| entry(m, &now)).collect();
            Json(json!({ "models": models })).into_response()
        }
        Err(e) => {
            timer.finish(Outcome::MeshError);
            Dialect::Ollama.mesh_error(&e, None).into_response()
        }
    }
}

/// One model. The mesh has no blobs: `size` is 0, and `digest` is the
/// SHA-256 of the name, so it is stable and distinct per name but is not
/// the digest of any weights. The details are not known here (nodes
/// advertise names only), so they are empty.
fn entry(name: &str, modified_at: &str) -> Value {
    let digest = hex::encode(Sha256::digest(name.as_bytes()));
    json!({
        "name": name,
        "model": name,
        "modified_at": modified_at,
        "size": 0,
        "digest": digest,
        "details": {
            "parent_model": "",
            "format": "iicp",
            "family": "",
            "families": [],
            "parameter_size": "",
            "quantization_level": "",
        },
    })
}

/// `{"version": "0.6.0-iicp"}`.
pub(crate) async fn version() -> Response {
    Json(json!({ "version": VERSION })).into_response()
}

/// `Ollama is running`.
pub(crate) async fn root() -> &'static str {
    "Ollama is running"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_have_a_stable_digest() {
        let a = entry("echo", "2026-01-01T00:00:00.000Z");
        assert_eq!(a["name"], "echo");
        assert_eq!(a["model"], "echo");
        assert_eq!(a["size"], 0);
        assert_eq!(a["digest"].as_str().unwrap().len(), 64);
        assert_eq!(a["digest"], entry("echo", "x")["digest"]);
        assert_ne!(a["digest"], entry("echo2", "x")["digest"]);
        assert!(a["details"]["families"].is_array());
    }
}

//! The gateway's router: the OpenAI, Anthropic and Ollama paths (`GET /`
//! answers as Ollama does), `/metrics`, `/health`, and JSON 404/405 answers
//! in the dialect the path belongs to (`/api/*` is Ollama's, `/v1/messages*`
//! Anthropic's, the rest OpenAI's).

use super::ProxyState;
use super::dialect::Dialect;
use super::{anthropic, ollama, openai};
use crate::server::request::BodyLimit;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;

/// The router, reading bodies up to `max_body` bytes.
pub(crate) fn router(state: Arc<ProxyState>, max_body: usize) -> Router {
    Router::new()
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{*id}", get(openai::model))
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/messages", post(anthropic::messages))
        .route("/api/chat", post(ollama::chat))
        .route("/api/generate", post(ollama::generate))
        .route("/api/tags", get(ollama::tags))
        .route("/api/version", get(ollama::version))
        .route("/api/embed", post(ollama::embed))
        .route("/api/embeddings", post(ollama::embeddings))
        .route("/", get(ollama::root))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::Extension(BodyLimit(max_body)))
        .with_state(state)
}

/// `GET /metrics`: the gateway's counters (see `metrics`).
async fn metrics(State(st): State<Arc<ProxyState>>) -> Response {
    st.metrics.render()
}

/// `GET /health`.
async fn health() -> Response {
    axum::Json(serde_json::json!({"status": "ok", "service": "iicp-proxy"})).into_response()
}

fn dialect_of(uri: &Uri) -> Dialect {
    if uri.path().starts_with("/api/") {
        Dialect::Ollama
    } else if uri.path().starts_with("/v1/messages") {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    }
}

async fn not_found(method: Method, uri: Uri) -> Response {
    dialect_of(&uri)
        .error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for {method} {}", uri.path()),
        )
        .into_response()
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    dialect_of(&uri)
        .error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not supported on {}", uri.path()),
        )
        .into_response()
}

//! The OpenAI API: `GET /v1/models` (and `/v1/models/{id}`), `POST /v1/chat/completions` (with
//! `stream: true` as SSE chunks ending in `[DONE]`), `POST /v1/completions`,
//! `POST /v1/embeddings`. Request bodies pass to the node as they came,
//! less what only the gateway reads (`stream`, `stream_options`,
//! `encoding_format`) and a model that means "any" (`auto`).

mod chat;
mod completions;
mod embeddings;
mod models;

pub(crate) use chat::chat;
pub(crate) use completions::completions;
pub(crate) use embeddings::embeddings;
pub(crate) use models::{model, models};

//! The Ollama API: `POST /api/chat`, `POST /api/generate` (a prompt routed
//! as a chat), `GET /api/tags`, `GET /api/version`, `POST /api/embed`
//! (and the older `POST /api/embeddings`), and `GET /` ("Ollama is running", which some clients probe).
//!
//! Unlike OpenAI's, Ollama's requests are translated, not passed through:
//! `request` turns a chat or generate body into an OpenAI chat payload
//! (messages with base64 `images` become `image_url` data-URL parts,
//! `options` become OpenAI fields, `format` becomes `response_format`), and
//! `reply` turns the answer back into Ollama's objects: NDJSON lines
//! (`stream` defaults to TRUE in Ollama) ending in a `done: true` line with
//! the counts and durations the gateway knows, or one object when
//! `stream: false`. Errors are Ollama's `{"error": "…"}`, with the status;
//! a failure after the stream started is a last `{"error": "…"}` line.

mod chat;
mod embed;
mod reply;
mod request;
mod tags;

pub(crate) use chat::{chat, generate};
pub(crate) use embed::{embed, embeddings};
pub(crate) use tags::{root, tags, version};

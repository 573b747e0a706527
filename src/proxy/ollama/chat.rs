//! `POST /api/chat` and `POST /api/generate`: one chat task each, answered
//! as NDJSON lines (the default) or, with `stream: false`, one object.
//! Order: decode ([`request`](super::request)), answer a "load the model"
//! call at once, else ask the mesh (streamed or buffered) and encode
//! ([`reply`](super::reply)). A failure before the first line is Ollama's
//! `{"error"}` with its status; after it, a last `{"error"}` line.

use super::reply::{self, Lines, Shape};
use super::request::{self, Call};
use crate::client::chat::into_chat_response;
use crate::proxy::ProxyState;
use crate::proxy::dialect::{Dialect, ProxyError};
use crate::proxy::events::{self, EncodedStream, ndjson};
use crate::proxy::metrics::{Endpoint, Outcome};
use crate::server::request::{BodyError, RawBody};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

const D: Dialect = Dialect::Ollama;

/// `POST /api/chat`.
pub(crate) async fn chat(
    State(st): State<Arc<ProxyState>>,
    body: Result<RawBody, BodyError>,
) -> Response {
    let started = Instant::now();
    run(
        &st,
        Endpoint::Chat,
        Shape::Chat,
        request::chat(body),
        started,
    )
    .await
}

/// `POST /api/generate`: a prompt, routed as a chat.
pub(crate) async fn generate(
    State(st): State<Arc<ProxyState>>,
    body: Result<RawBody, BodyError>,
) -> Response {
    let started = Instant::now();
    let call = request::generate(body);
    run(&st, Endpoint::Completion, Shape::Generate, call, started).await
}

async fn run(
    st: &ProxyState,
    endpoint: Endpoint,
    shape: Shape,
    call: Result<Call, ProxyError>,
    started: Instant,
) -> Response {
    let timer = st.metrics.start(D, endpoint);
    let call = match call {
        Ok(call) => call,
        Err(e) => {
            timer.finish(Outcome::Invalid);
            return e.into_response();
        }
    };
    let Some(task) = call.task else {
        timer.finish(Outcome::Success);
        return one(call.stream, reply::load(shape, &call.name));
    };
    let model = call.model;
    if call.stream {
        return match st.client.chat_stream_task(task).await {
            Ok(chat) => events::streaming_response(
                events::NDJSON,
                EncodedStream::new(chat, Lines::new(shape, &call.name, started), timer),
                st.metrics.streams_open(),
            ),
            Err(e) => {
                timer.finish(Outcome::MeshError);
                D.mesh_error(&e, model.as_deref()).into_response()
            }
        };
    }
    match st
        .client
        .submit_interactive(task, None)
        .await
        .and_then(into_chat_response)
    {
        Ok(answer) => {
            timer.finish(Outcome::Success);
            Json(reply::whole(shape, &call.name, &answer, started)).into_response()
        }
        Err(e) => {
            timer.finish(Outcome::MeshError);
            D.mesh_error(&e, model.as_deref()).into_response()
        }
    }
}

/// One object: an NDJSON line when the caller asked for a stream, else JSON.
fn one(stream: bool, value: Value) -> Response {
    if !stream {
        return Json(value).into_response();
    }
    let mut line = Vec::new();
    ndjson(&mut line, &value);
    let mut response = line.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(events::NDJSON),
    );
    response
}

//! `POST /api/chat` and `POST /api/generate`: one chat task each, answered
//! as NDJSON lines (the default) or, with `stream: false`, one object.
//! Order: decode ([`request`](super::request)), answer a "load the model"
//! call at once, else ask the mesh (streamed or buffered) and encode
//! ([`reply`](super::reply)). A failure before the first line is Ollama's
//! `{"error"}` with its status; after it, a last `{"error"}` line.

use super::reply::{self, Lines, Shape};
use super::request::{self, Call};
use crate::proxy::ProxyState;
use crate::proxy::answer::{self, Delivery};
use crate::proxy::dialect::{Dialect, ProxyError};
use crate::proxy::events::{self, ndjson};
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
        Err(e) => return answer::refused(timer, e),
    };
    let Some(task) = call.task else {
        timer.finish(Outcome::Success);
        return one(call.stream, reply::load(shape, &call.name));
    };
    let delivery = if call.stream {
        Delivery::Stream(events::NDJSON, Lines::new(shape, &call.name, started))
    } else {
        Delivery::Whole
    };
    let name = &call.name;
    answer::chat(
        st,
        D,
        timer,
        task,
        call.model.as_deref(),
        delivery,
        |answer| Json(reply::whole(shape, name, &answer, started)).into_response(),
    )
    .await
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

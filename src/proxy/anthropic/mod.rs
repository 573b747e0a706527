//! The Anthropic Messages API: `POST /v1/messages`, plain or with
//! `stream: true` as Anthropic's named Server-Sent Events.
//!
//! A request is decoded and translated to an OpenAI chat payload
//! ([`request`]), sent as one chat task (the model it names routes it;
//! `auto` means any), and the completion translated back to a Message
//! ([`reply`]) or, streamed, re-encoded event by event ([`stream`]).
//! Every failure is Anthropic's `{"type":"error","error":{type,message}}`
//! with the status [`Dialect::Anthropic`] gives it.

mod reply;
mod request;
mod stream;

use crate::proxy::ProxyState;
use crate::proxy::answer::{self, Delivery};
use crate::proxy::dialect::Dialect;
use crate::proxy::events;
use crate::proxy::metrics::Endpoint;
use crate::server::request::{BodyError, RawBody};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

const D: Dialect = Dialect::Anthropic;

/// `POST /v1/messages`.
pub(crate) async fn messages(
    State(st): State<Arc<ProxyState>>,
    body: Result<RawBody, BodyError>,
) -> Response {
    let timer = st.metrics.start(D, Endpoint::Chat);
    let call = match request::decode(body) {
        Ok(call) => call,
        Err(e) => return answer::refused(timer, e),
    };
    let model = call.model;
    let delivery = if call.stream {
        Delivery::Stream(events::SSE, stream::Events::new(model.clone()))
    } else {
        Delivery::Whole
    };
    let asked = model.as_deref();
    answer::chat(&st, D, timer, call.task, asked, delivery, |answer| {
        Json(reply::message(&answer, asked)).into_response()
    })
    .await
}

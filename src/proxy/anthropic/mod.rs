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

use crate::client::chat::into_chat_response;
use crate::proxy::ProxyState;
use crate::proxy::dialect::Dialect;
use crate::proxy::events::{self, EncodedStream};
use crate::proxy::metrics::{Endpoint, Outcome};
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
        Err(e) => {
            timer.finish(Outcome::Invalid);
            return e.into_response();
        }
    };
    let model = call.model;
    if call.stream {
        return match st.client.chat_stream_task(call.task).await {
            Ok(chat) => events::streaming_response(
                events::SSE,
                EncodedStream::new(chat, stream::Events::new(model), timer),
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
        .submit_interactive(call.task, None)
        .await
        .and_then(into_chat_response)
    {
        Ok(answer) => {
            timer.finish(Outcome::Success);
            Json(reply::message(&answer, model.as_deref())).into_response()
        }
        Err(e) => {
            timer.finish(Outcome::MeshError);
            D.mesh_error(&e, model.as_deref()).into_response()
        }
    }
}

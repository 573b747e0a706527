//! What every chat handler does once its request is decoded: ask the mesh,
//! streamed or buffered, and record how it ended. The dialect supplies only
//! its stream [`Encoder`] and how a whole answer is shaped.

use super::ProxyState;
use super::dialect::Dialect;
use super::events::{self, EncodedStream, Encoder};
use super::metrics::{Outcome, RequestTimer};
use crate::client::ChatResponse;
use crate::client::chat::into_chat_response;
use crate::wire::TaskRequest;
use axum::response::{IntoResponse, Response};

/// How the caller wants the answer.
pub(crate) enum Delivery<E> {
    /// As it is generated: `content_type` (SSE or NDJSON) framed by the
    /// encoder.
    Stream(&'static str, E),
    /// Whole, once done.
    Whole,
}

/// Runs a chat `task` and answers: a stream through the encoder, or the
/// whole answer shaped by `whole`. A mesh failure before the first byte is
/// the dialect's error (a named `model` nobody serves is its 404).
pub(crate) async fn chat<E: Encoder>(
    st: &ProxyState,
    dialect: Dialect,
    timer: RequestTimer,
    task: TaskRequest,
    model: Option<&str>,
    delivery: Delivery<E>,
    whole: impl FnOnce(ChatResponse) -> Response,
) -> Response {
    let failed = |timer: RequestTimer, e: crate::IicpError| {
        timer.finish(Outcome::MeshError);
        dialect.mesh_error(&e, model).into_response()
    };
    match delivery {
        Delivery::Stream(content_type, encoder) => match st.client.chat_stream_task(task).await {
            Ok(chat) => events::streaming_response(
                content_type,
                EncodedStream::new(chat, encoder, timer),
                st.metrics.streams_open(),
            ),
            Err(e) => failed(timer, e),
        },
        Delivery::Whole => match st
            .client
            .submit_interactive(task, None)
            .await
            .and_then(into_chat_response)
        {
            Ok(answer) => {
                timer.finish(Outcome::Success);
                whole(answer)
            }
            Err(e) => failed(timer, e),
        },
    }
}

/// A request refused before the mesh was asked: recorded as `invalid`.
pub(crate) fn refused(timer: RequestTimer, error: super::dialect::ProxyError) -> Response {
    timer.finish(Outcome::Invalid);
    error.into_response()
}

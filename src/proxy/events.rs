//! A [`ChatStream`] re-encoded, event by event, as the bytes of a
//! dialect's streaming answer (OpenAI and Anthropic Server-Sent Events,
//! Ollama NDJSON).
//!
//! An [`Encoder`] knows one dialect's framing; [`EncodedStream`] drives it
//! from the chat stream and is the HTTP body. Dropping the body (the caller
//! hung up) drops the chat stream, which closes its native connection, so
//! the node aborts the backend call; the request's [`RequestTimer`] then
//! records it as cancelled.

use super::metrics::{Outcome, RequestTimer};
use crate::client::{ChatChunk, ChatStream, ChatStreamEnd, ChatStreamEvent};
use crate::error::IicpError;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures_core::Stream;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// One dialect's streaming framing. Each method appends whole events to
/// `out` (possibly none).
pub(crate) trait Encoder: Send + Unpin + 'static {
    /// A piece of the answer.
    fn chunk(&mut self, chunk: &ChatChunk, out: &mut Vec<u8>);
    /// The end of a stream that succeeded.
    fn done(&mut self, end: &ChatStreamEnd, out: &mut Vec<u8>);
    /// The stream failed after it started; this is its last event.
    fn error(&mut self, error: &IicpError, out: &mut Vec<u8>);
}

/// Appends one Server-Sent Event: `event:` when named, then `data:`.
pub(crate) fn sse(out: &mut Vec<u8>, event: Option<&str>, data: &impl serde::Serialize) {
    if let Some(event) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    // Serialising a JSON value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

/// Appends one NDJSON line.
#[allow(dead_code)] // TEMP: until the Ollama routes land
pub(crate) fn ndjson(out: &mut Vec<u8>, line: &impl serde::Serialize) {
    let _ = serde_json::to_writer(&mut *out, line);
    out.push(b'\n');
}

/// The body of a streamed answer.
pub(crate) struct EncodedStream<E> {
    chat: Option<ChatStream>,
    encoder: E,
    timer: Option<RequestTimer>,
}

impl<E: Encoder> EncodedStream<E> {
    /// A body that encodes `chat` with `encoder` and records the request's
    /// end in `timer`.
    pub fn new(chat: ChatStream, encoder: E, timer: RequestTimer) -> Self {
        Self {
            chat: Some(chat),
            encoder,
            timer: Some(timer),
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        self.chat = None;
        if let Some(timer) = self.timer.take() {
            timer.finish(outcome);
        }
    }
}

impl<E: Encoder> Stream for EncodedStream<E> {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let Some(chat) = this.chat.as_mut() else {
                return Poll::Ready(None);
            };
            let mut out = Vec::new();
            match Pin::new(chat).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(ChatStreamEvent::Chunk(chunk)))) => {
                    this.encoder.chunk(&chunk, &mut out)
                }
                Poll::Ready(Some(Ok(ChatStreamEvent::Done(end)))) => {
                    this.encoder.done(&end, &mut out);
                    this.finish(Outcome::Success);
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!(error = %e, "a streamed answer failed after it started");
                    this.encoder.error(&e, &mut out);
                    this.finish(Outcome::MeshError);
                }
                // A stream ends with Done or an error; ending without
                // either is a failure of the stream itself.
                Poll::Ready(None) => {
                    let e = IicpError::Decode {
                        what: "the streamed answer".into(),
                        reason: "it ended before its last event".into(),
                    };
                    this.encoder.error(&e, &mut out);
                    this.finish(Outcome::MeshError);
                }
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Bytes::from(out))));
            }
        }
    }
}

/// A 200 whose body is `stream`, with `content_type` and no caching.
pub(crate) fn streaming_response<E: Encoder>(
    content_type: &'static str,
    mut stream: EncodedStream<E>,
    open: prometheus_client::metrics::gauge::Gauge,
) -> Response {
    if let Some(timer) = stream.timer.as_mut() {
        timer.streaming(open);
    }
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `text/event-stream`.
pub(crate) const SSE: &str = "text/event-stream";
/// `application/x-ndjson`, as Ollama streams.
#[allow(dead_code)] // TEMP: until the Ollama routes land
pub(crate) const NDJSON: &str = "application/x-ndjson";
